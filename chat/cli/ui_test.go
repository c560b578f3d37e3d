package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/profile"
)

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
	// A log made readable by others before is owner-only again once opened.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, closeLog, err = openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	closeLog()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a loose log file reopened: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestMainRejectsStrayArguments(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runUI(t.Context(), []string{"--home", t.TempDir(), "extra"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), `unexpected argument "extra"`) {
		t.Fatalf("stderr %q", errb.String())
	}
}

// The UI and the headless commands refuse an empty passphrase given up front with the
// same words, before anything starts (the demo, which reads none, is tested in
// TestDemoEchoAnswers).
func TestEmptyPassphraseRefusedByUIAndHeadless(t *testing.T) {
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, source := range []struct {
		name, env string
		flags     []string
		want      string
	}{
		{name: "environment", want: profile.EnvPassphrase + " is set but empty"},
		{name: "file", env: "ignored, the file wins", flags: []string{"--passphrase-file", emptyFile}, want: "is empty"},
	} {
		for _, command := range [][]string{nil, {"init", "--name", "alice"}} {
			home := t.TempDir()
			args := append(append([]string{"--home", home}, source.flags...), command...)
			what := "UI"
			if command != nil {
				what = command[0]
			}
			t.Run(source.name+"/"+what, func(t *testing.T) {
				t.Setenv(profile.EnvPassphrase, source.env)
				var out, errb bytes.Buffer
				if code := Main(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitFail {
					t.Fatalf("exit %d, want %d; stderr %q", code, exitFail, errb.String())
				}
				if !strings.Contains(errb.String(), source.want) {
					t.Fatalf("stderr %q does not say %q", errb.String(), source.want)
				}
				if out.Len() != 0 {
					t.Fatalf("something started: stdout %q", out.String())
				}
			})
		}
	}
}

func TestAutoDownloadFlag(t *testing.T) {
	for in, want := range map[string]int64{"": 10 << 20, "10": 10 << 20, "1": 1 << 20, "0": -1} {
		if got, err := autoDownloadMax(in); err != nil || got != want {
			t.Errorf("--auto-download-mib %q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "ten", "1.5", "99999999"} {
		if _, err := autoDownloadMax(bad); err == nil || !strings.Contains(err.Error(), "--auto-download-mib") {
			t.Errorf("--auto-download-mib %q: %v, want a usage error", bad, err)
		}
	}
}

// The UI and the demo need a terminal: given a pipe, /dev/null or a buffer they say so
// and point to the headless commands, with the usage exit code, before they make
// anything (Bubble Tea would draw into the pipe and wait for input that never comes).
func TestUINeedsATerminal(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct {
		name  string
		stdin io.Reader
		run   func(args []string, stdin io.Reader, stdout, stderr *bytes.Buffer) int
		want  string
	}{
		{"ui, /dev/null", devnull, func(args []string, in io.Reader, out, errb *bytes.Buffer) int {
			return runUI(t.Context(), args, in, out, errb)
		}, "pfschat: the chat UI needs a terminal, and standard input is not one"},
		{"ui, a pipe", strings.NewReader("\n"), func(args []string, in io.Reader, out, errb *bytes.Buffer) int {
			return runUI(t.Context(), args, in, out, errb)
		}, "pfschat: the chat UI needs a terminal"},
		{"demo", strings.NewReader(""), func(_ []string, in io.Reader, out, errb *bytes.Buffer) int {
			return runDemo(t.Context(), nil, in, out, errb)
		}, "pfschat demo: the chat UI needs a terminal"},
	} {
		home := filepath.Join(t.TempDir(), "profile")
		var out, errb bytes.Buffer
		if code := tc.run([]string{"--home", home}, tc.stdin, &out, &errb); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, exitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "headless commands") || out.Len() != 0 {
			t.Errorf("%s: stdout %q, stderr %q", tc.name, out.String(), errb.String())
		}
		if _, err := os.Stat(home); !os.IsNotExist(err) {
			t.Errorf("%s: the refusal made the profile directory (%v)", tc.name, err)
		}
	}
}
