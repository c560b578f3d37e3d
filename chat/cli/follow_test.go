package cli_test

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// recv --follow started while the relay is down waits for it, as a device's service
// that starts before its relay must, and prints what arrives once the relay is back.
func TestRecvFollowWaitsForARelayThatIsDown(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	homes := map[string]string{"alice": t.TempDir(), "bob": t.TempDir()}
	run := func(who string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		all := append([]string{"--home", homes[who], "--relay", r.URL}, args...)
		code := cli.Main(t.Context(), all, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, who := range []string{"alice", "bob"} {
		if code, _, errs := run(who, "init", "--name", who); code != 0 {
			t.Fatalf("init %s: %d %s", who, code, errs)
		}
	}
	if code, _, errs := run("alice", "send", "bob", "before"); code != 0 {
		t.Fatalf("send: %d %s", code, errs)
	}
	r.Close()

	stderrR, stderrW := io.Pipe()
	var out syncBuffer
	exit := make(chan int, 1)
	go func() {
		all := []string{"--home", homes["bob"], "--relay", r.URL, "recv", "--follow", "--count", "2"}
		exit <- cli.Main(t.Context(), all, strings.NewReader(""), &out, stderrW)
		stderrW.Close()
	}()
	lines := bufio.NewScanner(stderrR)
	if !lines.Scan() || !strings.Contains(lines.Text(), "cannot be reached yet (connection refused); waiting for it") {
		t.Fatalf("recv --follow with the relay down said %q (%v), want that it waits", lines.Text(), lines.Err())
	}
	go io.Copy(io.Discard, stderrR)

	r.StartAgain(t)
	if code, _, errs := run("alice", "send", "bob", "after"); code != 0 {
		t.Fatalf("send: %d %s", code, errs)
	}
	if code := <-exit; code != 0 {
		t.Fatalf("recv --follow exited %d", code)
	}
	got := out.String()
	if !strings.Contains(got, ": before\n") || !strings.Contains(got, ": after\n") {
		t.Fatalf("recv --follow printed %q, want both messages", got)
	}
}

// syncBuffer is a bytes.Buffer safe to write from the command's goroutine and read
// from the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
