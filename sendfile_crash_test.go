package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// TestSendFileSurvivesSIGKILL: a real 'pfschat send-file' is SIGKILLed in the middle of
// its upload; the next 'pfschat send-file' first finishes that upload from the relay's
// next chunk (the acknowledged ones are not sent again), then sends its own file, and
// bob gets both files intact. The relay keeps its default frame rate (6.25 MiB/s of
// blob data), so a 3 MiB upload lasts long enough to be killed in the middle.
func TestSendFileSurvivesSIGKILL(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	bin, err := exec.LookPath("pfschat") // the test binary itself, set up by TestMain
	if err != nil {
		t.Fatalf("the pfschat command is not in $PATH (TestMain sets it up): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := relaytest.Start(t)
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, chattest.Passphrase, 0o600); err != nil {
		t.Fatal(err)
	}
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice")
	alice.Close() // from now on only the child processes open alice's store
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.Read(big)
	bigPath := filepath.Join(src, "big.bin")
	smallPath := filepath.Join(src, "small.txt")
	os.WriteFile(bigPath, big, 0o600)
	os.WriteFile(smallPath, []byte("after the crash"), 0o600)
	args := func(path string) []string {
		return []string{"--home", alice.Profile.Dir, "--relay", r.URL, "--passphrase-file", passFile, "send-file", "bob", path}
	}
	percent := regexp.MustCompile(`: (\d+)% \(`)

	// The first run: killed once 30 % is acknowledged (stderr is not a terminal: a line per 10 %).
	cmd := exec.CommandContext(ctx, bin, args(bigPath)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killedAt := -1
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := percent.FindStringSubmatch(sc.Text()); m != nil && strings.HasPrefix(sc.Text(), "uploading big.bin") {
			if p, _ := strconv.Atoi(m[1]); p >= 30 && p < 100 {
				cmd.Process.Kill()
				killedAt = p
				break
			}
		}
	}
	cmd.Wait()
	if killedAt < 0 {
		t.Fatal("the upload finished before it could be killed")
	}

	// The second run finishes the killed upload first, from where the relay stood.
	out, err := exec.CommandContext(ctx, bin, args(smallPath)...).CombinedOutput()
	if err != nil {
		t.Fatalf("second send-file: %v\n%s", err, out)
	}
	var resumedFrom = -1
	for _, line := range strings.Split(string(out), "\n") {
		if m := percent.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, "resuming an earlier upload") {
			resumedFrom, _ = strconv.Atoi(m[1])
			break
		}
	}
	if resumedFrom < killedAt || !bytes.Contains(out, []byte("finished an earlier upload to bob: big.bin")) {
		t.Fatalf("killed at %d%%, resumed from %d%%:\n%s", killedAt, resumedFrom, out)
	}
	t.Logf("killed at %d%%, resumed from %d%%", killedAt, resumedFrom)

	// bob gets both, the big one byte for byte.
	got := map[string]chat.Message{}
	deadline := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case ev := <-bob.Events():
			if ev.Kind == chat.MessageReceived && ev.Message.Attachment != nil {
				got[ev.Message.Attachment.FileName] = *ev.Message
			}
		case <-deadline:
			t.Fatalf("bob has %d of 2 files", len(got))
		}
	}
	path, err := bob.Download(ctx, got["big.bin"].ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, big) {
		t.Fatal("big.bin differs after the crash")
	}
}
