package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// unset marks a variable that setenv removes from the environment for the test.
const unset = "<unset>"

func setenv(t *testing.T, name, value string) {
	t.Setenv(name, value) // restores the old value after the test
	if value == unset {
		os.Unsetenv(name)
	}
}

// The passphrase rules the UI and the headless commands share: --passphrase-file wins
// over $PFSCHAT_PASSPHRASE; the first one given is the only one read; an empty one is
// refused.
func TestPassphraseSources(t *testing.T) {
	tests := []struct {
		name      string
		file      *string // contents of --passphrase-file; nil = flag not given
		env       string  // $PFSCHAT_PASSPHRASE
		want      string
		wantGiven bool
		wantErr   string
	}{
		{name: "nothing given", env: unset},
		{name: "environment", env: "s3cret env", want: "s3cret env", wantGiven: true},
		{name: "empty environment is refused", env: "", wantGiven: true, wantErr: EnvPassphrase + " is set but empty"},
		{name: "file, newline trimmed", file: ptr("from file\n"), env: unset, want: "from file", wantGiven: true},
		{name: "file, CRLF trimmed", file: ptr("from file\r\n"), env: unset, want: "from file", wantGiven: true},
		{name: "empty file is refused", file: ptr(""), env: unset, wantGiven: true, wantErr: "is empty"},
		{name: "file of line breaks is refused", file: ptr("\n\r\n"), env: unset, wantGiven: true, wantErr: "is empty"},
		{name: "file wins over environment", file: ptr("from file"), env: "from env", want: "from file", wantGiven: true},
		{name: "file wins over empty environment", file: ptr("from file"), env: "", want: "from file", wantGiven: true},
		{name: "empty file is not passed over for the environment", file: ptr(""), env: "from env", wantGiven: true, wantErr: "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, EnvPassphrase, tt.env)
			var f Flags
			if tt.file != nil {
				f.PassphraseFile = filepath.Join(t.TempDir(), "pass.txt")
				if err := os.WriteFile(f.PassphraseFile, []byte(*tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, given, err := f.GivenPassphrase()
			if given != tt.wantGiven {
				t.Errorf("given = %v, want %v", given, tt.wantGiven)
			}
			switch {
			case tt.wantErr != "" && (err == nil || !contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case string(got) != tt.want:
				t.Errorf("passphrase %q, want %q", got, tt.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestPassphraseFileMissing(t *testing.T) {
	f := Flags{PassphraseFile: filepath.Join(t.TempDir(), "absent")}
	if _, given, err := f.GivenPassphrase(); !given || err == nil || !contains(err.Error(), "reading the passphrase file") {
		t.Fatalf("given %v, err %v", given, err)
	}
}

// Without a source and without a terminal to prompt on, the error names both sources.
func TestPassphraseNoTerminal(t *testing.T) {
	setenv(t, EnvPassphrase, unset)
	var f Flags
	var stderr strings.Builder
	_, err := f.Passphrase(strings.NewReader(""), &stderr, "passphrase: ")
	if err == nil || !contains(err.Error(), EnvPassphrase) || !contains(err.Error(), "--passphrase-file") {
		t.Fatalf("err = %v", err)
	}
	if stderr.Len() != 0 {
		t.Fatalf("prompted without a terminal: %q", stderr.String())
	}
}

// The new passphrase of a change, without a source and a terminal: the error names its
// own sources, not $PFSCHAT_PASSPHRASE, which gave the current one (it said "no
// passphrase: set PFSCHAT_PASSPHRASE" to a script that had set it).
func TestNewPassphraseNoTerminal(t *testing.T) {
	setenv(t, EnvPassphrase, "the current one")
	setenv(t, EnvNewPassphrase, unset)
	_, err := NewPassphrase("", strings.NewReader(""), io.Discard)
	if err == nil || !contains(err.Error(), "no new passphrase") || !contains(err.Error(), EnvNewPassphrase) ||
		!contains(err.Error(), "--new-passphrase-file") || contains(err.Error(), EnvPassphrase+" ") {
		t.Fatalf("err = %v", err)
	}
}

// A file holding a secret is refused when group or others may read or write it (the
// mode of the file a symlink leads to counts), with a sentence naming the file, its
// mode and the fixes; owner-only files are read.
func TestSecretFileMode(t *testing.T) {
	if !permissionBitsMeanAccess {
		t.Skip("permission bits say nothing about other users here")
	}
	setenv(t, EnvPassphrase, unset)
	setenv(t, EnvNewPassphrase, unset)
	readers := []struct {
		name    string
		read    func(path string) ([]byte, error)
		instead string
	}{
		{"--passphrase-file", func(path string) ([]byte, error) {
			p, _, err := (&Flags{PassphraseFile: path}).GivenPassphrase()
			return p, err
		}, EnvPassphrase},
		{"--new-passphrase-file", func(path string) ([]byte, error) {
			return NewPassphrase(path, strings.NewReader(""), io.Discard)
		}, EnvNewPassphrase},
		{"--recovery-code-file", ReadRecoveryCodeFile, "type the code when asked"},
	}
	modes := []struct {
		mode     os.FileMode
		symlink  bool
		refused  bool
		wantMode string
	}{
		{mode: 0o600}, {mode: 0o400}, {mode: 0o600, symlink: true},
		{mode: 0o644, refused: true, wantMode: "0644"},
		{mode: 0o444, refused: true, wantMode: "0444"},
		{mode: 0o640, refused: true, wantMode: "0640"},
		{mode: 0o604, refused: true, wantMode: "0604"},
		{mode: 0o620, refused: true, wantMode: "0620"},
		{mode: 0o602, refused: true, wantMode: "0602"},
		{mode: 0o644, symlink: true, refused: true, wantMode: "0644"},
	}
	for _, r := range readers {
		for _, m := range modes {
			t.Run(fmt.Sprintf("%s %04o symlink=%v", r.name, m.mode, m.symlink), func(t *testing.T) {
				dir := t.TempDir()
				target := filepath.Join(dir, "secret")
				if err := os.WriteFile(target, []byte("s3cret-long\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(target, m.mode); err != nil {
					t.Fatal(err)
				}
				path := target
				if m.symlink {
					path = filepath.Join(dir, "link")
					if err := os.Symlink(target, path); err != nil {
						t.Fatal(err)
					}
				}
				got, err := r.read(path)
				if !m.refused {
					if err != nil || !strings.HasPrefix(string(got), "s3cret") {
						t.Fatalf("read %q, err %v", got, err)
					}
					return
				}
				var modeErr *SecretFileModeError
				if !errors.As(err, &modeErr) || got != nil {
					t.Fatalf("read %q, err %v; want a SecretFileModeError", got, err)
				}
				for _, want := range []string{path, "mode " + m.wantMode, "chmod 600 " + path, "0400", r.instead} {
					if !contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			})
		}
	}
}

// A secret file is read up to a bound: a wrong path (a log, /dev/zero) is refused with a
// sentence instead of read for ever; a pipe (a process substitution) still works.
func TestSecretFileIsBounded(t *testing.T) {
	setenv(t, EnvPassphrase, unset)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), maxSecretFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&Flags{PassphraseFile: big}).GivenPassphrase(); err == nil || !strings.Contains(err.Error(), "holds more than 64 KiB") {
		t.Fatalf("a passphrase file over the bound: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.Write([]byte("from a pipe\n"))
		w.Close()
	}()
	defer r.Close()
	p, _, err := (&Flags{PassphraseFile: fmt.Sprintf("/dev/fd/%d", r.Fd())}).GivenPassphrase()
	if err != nil || string(p) != "from a pipe" {
		t.Fatalf("a passphrase from a pipe: %q, %v", p, err)
	}
}
