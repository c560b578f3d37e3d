package profile

import (
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
	_, err := f.Passphrase(strings.NewReader(""), &stderr, "passphrase: ", false)
	if err == nil || !contains(err.Error(), EnvPassphrase) || !contains(err.Error(), "--passphrase-file") {
		t.Fatalf("err = %v", err)
	}
	if stderr.Len() != 0 {
		t.Fatalf("prompted without a terminal: %q", stderr.String())
	}
}
