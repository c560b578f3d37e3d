package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// send --wait D bounds the whole command: against a relay refusing sends (its disk
// below the high-water mark) it returns at about D with the message kept in the outbox
// (exit 3), not D plus the last flush's retries (it took D + 5 s).
func TestSendWaitBoundsTheCommand(t *testing.T) {
	dir := t.TempDir()
	r := &scriptRelay{path: filepath.Join(dir, "relay.db")}
	if err := r.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer func() { r.stop() }()
	t.Setenv("PFSCHAT_PASSPHRASE", "long-secret")
	relayURL := "ws://" + r.addr
	pfschat := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, name := range []string{"alice", "bob"} {
		if code, _, errs := pfschat("init", "--home", filepath.Join(dir, name), "--relay", relayURL, "--name", name); code != 0 {
			t.Fatalf("init %s: exit %d: %s", name, code, errs)
		}
	}
	if code, _, errs := pfschat("send", "--home", filepath.Join(dir, "alice"), "bob", "first"); code != 0 {
		t.Fatalf("send: exit %d: %s", code, errs)
	}
	r.stop()
	r.full = true
	if err := r.start(r.addr); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, _, errs := pfschat("send", "--wait", "500ms", "--home", filepath.Join(dir, "alice"), "bob", "refused for now")
	took := time.Since(start)
	if code != 3 {
		t.Fatalf("send to a full relay: exit %d, want 3 (kept in the outbox): %s", code, errs)
	}
	if !strings.Contains(errs, "within 500ms") || !strings.Contains(errs, "storage_full (min_free): the relay's disk is nearly out of free space") {
		t.Errorf("stderr %q: want it to name the wait and the relay's answer (its disk is full)", errs)
	}
	// Opening the profile (Argon2id) and connecting take a moment; 5 s of retries
	// past the wait do not fit.
	if took > 3*time.Second {
		t.Errorf("send --wait 500ms took %v; want it to return at about the wait", took)
	}
}
