package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoInTmux runs the real binary in a real terminal: `pfschat demo` inside a
// detached tmux session of 100×30, a message typed with send-keys, and the echo's
// encrypted reply read back with capture-pane.
func TestDemoInTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux); the real-terminal test needs it")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH; cannot build the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "pfschat")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = "../.." // the module root: package main
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// A private tmux server, so the test never touches a user's sessions.
	sock := fmt.Sprintf("pfschat-test-%d", os.Getpid())
	tm := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = tm("kill-server") })

	state := filepath.Join(dir, "state")
	cmd := fmt.Sprintf("env HOME=%s XDG_STATE_HOME=%s TMPDIR=%s %s demo", dir, state, dir, bin)
	if out, err := tm("new-session", "-d", "-x", "100", "-y", "30", "-s", "demo", cmd); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// The server outlives the demo's session: the second session below would otherwise
	// race the first server's exit ("server exited unexpectedly", seen in CI).
	if out, err := tm("set-option", "-g", "exit-empty", "off"); err != nil {
		t.Fatalf("tmux set-option exit-empty: %v\n%s", err, out)
	}
	capture := func() string {
		out, _ := tm("capture-pane", "-p", "-t", "demo")
		return out
	}
	waitScreen := func(what string, cond func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			s := capture()
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("tmux: no screen with %s after 60 s; screen:\n%s", what, s)
			}
			time.Sleep(100 * time.Millisecond) // polling interval of capture-pane
		}
	}
	contains := func(texts ...string) func(string) bool {
		return func(s string) bool {
			for _, x := range texts {
				if !strings.Contains(s, x) {
					return false
				}
			}
			return true
		}
	}

	waitScreen("the echo's greeting", contains("I am echo", "relay connected"))
	if out, err := tm("send-keys", "-t", "demo", "-l", "hello from tmux"); err != nil {
		t.Fatalf("send-keys: %v %s", err, out)
	}
	if out, err := tm("send-keys", "-t", "demo", "Enter"); err != nil {
		t.Fatalf("send-keys: %v %s", err, out)
	}
	screen := waitScreen("the echo's reply", contains("xumt morf olleh", "message #"))
	if !strings.Contains(screen, "hello from tmux") {
		t.Fatalf("own message missing:\n%s", screen)
	}

	// /quit leaves cleanly and removes the throwaway profile.
	_, _ = tm("send-keys", "-t", "demo", "-l", "/quit")
	_, _ = tm("send-keys", "-t", "demo", "Enter")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := tm("has-session", "-t", "demo"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not exit after /quit; screen:\n%s", capture())
		}
		time.Sleep(100 * time.Millisecond)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "pfschat-demo-*"))
	if len(left) != 0 {
		t.Fatalf("demo left its temporary profile behind: %v", left)
	}

	// A closed terminal (the session killed: SIGHUP) also removes it.
	if out, err := tm("new-session", "-d", "-x", "100", "-y", "30", "-s", "demo", cmd); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	waitScreen("the echo's greeting", contains("I am echo", "relay connected"))
	if made, _ := filepath.Glob(filepath.Join(dir, "pfschat-demo-*")); len(made) != 1 {
		t.Fatalf("the second demo's temporary profile: %v", made)
	}
	if out, err := tm("kill-session", "-t", "demo"); err != nil {
		t.Fatalf("tmux kill-session: %v %s", err, out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		left, _ := filepath.Glob(filepath.Join(dir, "pfschat-demo-*"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after its terminal closed, the demo's temporary profile is still there: %v", left)
		}
		time.Sleep(100 * time.Millisecond) // polling for the directory's removal
	}

	// Ctrl+C during onboarding leaves no new profile directory behind, as a failed
	// 'pfschat init' leaves none (it left an empty one, mode 0700).
	home := filepath.Join(dir, "newhome")
	ui := fmt.Sprintf("env HOME=%s XDG_STATE_HOME=%s TMPDIR=%s %s --home %s --relay ws://127.0.0.1:9", dir, state, dir, bin, home)
	if out, err := tm("new-session", "-d", "-x", "100", "-y", "30", "-s", "onboard", ui); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	capture = func() string {
		out, _ := tm("capture-pane", "-p", "-t", "onboard")
		return out
	}
	waitScreen("onboarding", contains("create your identity"))
	if _, err := os.Stat(home); err != nil {
		t.Fatalf("the UI made no profile directory to onboard into: %v", err)
	}
	_, _ = tm("send-keys", "-t", "onboard", "C-c")
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := tm("has-session", "-t", "onboard"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the UI did not exit on ctrl+c during onboarding; screen:\n%s", capture())
		}
		time.Sleep(100 * time.Millisecond) // polling for the session's end
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(home)
		t.Fatalf("ctrl+c during onboarding left %s behind (%v, %d entries)", home, err, len(entries))
	}
}
