package ui

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultPathsFollowXDG(t *testing.T) {
	data, state := t.TempDir(), t.TempDir()
	t.Setenv("PFSCHAT_HOME", "")
	t.Setenv("XDG_DATA_HOME", data)
	t.Setenv("XDG_STATE_HOME", state)
	p, err := DefaultPaths("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Home != filepath.Join(data, "pfschat") || p.LogFile != filepath.Join(state, "pfschat", "pfschat.log") {
		t.Fatalf("paths %+v", p)
	}
	p, err = DefaultPaths("/somewhere/else")
	if err != nil || p.Home != "/somewhere/else" {
		t.Fatalf("--home ignored: %+v %v", p, err)
	}
	// Relative XDG values are invalid per the spec and ignored.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "relative/dir")
	p, _ = DefaultPaths("")
	if p.Home != filepath.Join(home, ".local/share/pfschat") {
		t.Fatalf("relative XDG_DATA_HOME used: %+v", p)
	}
}

// The UI finds the same profile as the headless commands: $PFSCHAT_HOME, unless --home.
func TestDefaultPathsHonourPFSCHATHOME(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PFSCHAT_HOME", dir)
	if p, err := DefaultPaths(""); err != nil || p.Home != dir {
		t.Fatalf("PFSCHAT_HOME ignored: %+v %v", p, err)
	}
	if p, err := DefaultPaths("/flag/wins"); err != nil || p.Home != "/flag/wins" {
		t.Fatalf("--home should win over PFSCHAT_HOME: %+v %v", p, err)
	}
}

func TestLogFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "pfschat", "pfschat.log")
	log, closeLog, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	closeLog()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "hello") {
		t.Fatalf("log file: %q", b)
	}
}

func TestMainRejectsStrayArguments(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--home", t.TempDir(), "extra"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), `unexpected argument "extra"`) {
		t.Fatalf("stderr %q", errb.String())
	}
}
