package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
)

// A relay run with --registration invite refuses `pfschat init` without a code, takes
// one made by `pfschat relay invite` (while it runs, on the same database) once, and
// refuses the used-up code.
func TestRelayInviteAndInitInvite(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	db := filepath.Join(t.TempDir(), "relay.db")
	done := make(chan error, 1)
	go func() {
		done <- cli.RunRelay(ctx, []string{"--addr", "127.0.0.1:0", "--admin-addr", "", "--db", db, "--registration", "invite",
			"--log", filepath.Join(t.TempDir(), "relay.log")}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url string
	for url == "" && lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "pfschat relay listening on "); ok {
			url = u
		}
	}
	if url == "" {
		t.Fatal("relay did not print its address:", <-done)
	}
	go io.Copy(io.Discard, pr)

	var code, errb bytes.Buffer
	if err := cli.RunRelay(ctx, []string{"invite", "--db", db, "--uses", "1", "--ttl", "1h"}, &code, &errb); err != nil {
		t.Fatalf("relay invite: %v", err)
	}
	inv := strings.TrimSpace(code.String())
	if !strings.HasPrefix(inv, "pfsinv-") || len(inv) < len("pfsinv-")+26 { // 128 bits of base32
		t.Fatalf("invite code %q", inv)
	}

	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	// A refused init leaves its new home as it was: not there.
	initAs := func(name string, extra ...string) (int, string) {
		var out, errOut bytes.Buffer
		home := filepath.Join(t.TempDir(), "home")
		args := append([]string{"--home", home, "--relay", url, "init", "--name", name}, extra...)
		rc := cli.Main(ctx, args, strings.NewReader(""), &out, &errOut)
		if _, err := os.Stat(home); rc != 0 && !os.IsNotExist(err) {
			t.Errorf("init %s refused (%q), and its home is left behind: %v", name, errOut.String(), err)
		}
		return rc, errOut.String()
	}
	if rc, msg := initAs("alice"); rc == 0 || !strings.Contains(msg, "invite") {
		t.Fatalf("init without an invite: exit %d, %q", rc, msg)
	}
	if rc, msg := initAs("alice", "--invite", inv); rc != 0 {
		t.Fatalf("init with the invite: exit %d, %q", rc, msg)
	}
	if rc, msg := initAs("bob", "--invite", inv); rc == 0 || !strings.Contains(msg, "invite") {
		t.Fatalf("init with a used-up invite: exit %d, %q", rc, msg)
	}
	// The code in $PFSCHAT_INVITE instead, out of sight of ps.
	code.Reset()
	if err := cli.RunRelay(ctx, []string{"invite", "--db", db}, &code, &errb); err != nil {
		t.Fatalf("relay invite: %v", err)
	}
	t.Setenv(profile.EnvInvite, strings.TrimSpace(code.String()))
	if rc, msg := initAs("carol"); rc != 0 {
		t.Fatalf("init with the invite in $%s: exit %d, %q", profile.EnvInvite, rc, msg)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay exited with %v", err)
	}
}

func TestRelayInviteBadFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "none.db")
	for _, args := range [][]string{
		{"invite", "--db", db},                   // no such database
		{"invite", "--db", db, "--uses", "0"},    // no use
		{"invite", "--db", db, "--ttl", "-1h"},   // negative lifetime
		{"invite", "--db", db, "stray-argument"}, // stray argument
	} {
		if err := cli.RunRelay(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if err := cli.RunRelay(t.Context(), []string{"--registration", "sometimes", "--db", db}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--registration") {
		t.Errorf("--registration sometimes: %v", err)
	}
}
