package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrorsExit2Everywhere: a mistake in how a command is called exits 2 — the
// UI, the demo, the relay and every headless command — with a message on stderr.
func TestUsageErrorsExit2Everywhere(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--bogus"}, {"--home", home, "stray"},
		{"demo", "--bogus"}, {"demo", "stray"},
		{"relay", "--bogus"}, {"relay", "stray"},
		{"relay", "backup", "--bogus", "x.db"}, {"relay", "backup"}, {"relay", "backup", "a.db", "b.db"},
		{"relay", "rotate-key", "--bogus"}, {"relay", "rotate-key", "stray"},
		{"relay", "invite", "--bogus"}, {"relay", "invite", "stray"}, {"relay", "invite", "--uses", "0"},
		// A relay flag's value out of its range: refused before anything is made.
		{"relay", "--rate", "0"}, {"relay", "--burst", "-1"}, {"relay", "--synchronous", "OFF"},
		{"relay", "--max-queue-count", "0"}, {"relay", "--max-blob-mib", "0"}, {"relay", "--min-free-mib", "-1"},
		{"relay", "--registration", "sometimes"}, {"relay", "--gc-percent", "-5"}, {"relay", "--login-timeout", "0s"},
		{"relay", "--trusted-proxies", "not-a-cidr"}, {"relay", "--acme-http-addr", ":80"},
		// TLS flags that do not go together.
		{"relay", "--tls-cert", "c.pem"}, {"relay", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--acme-domain", "x.example"},
		{"relay", "--acme-email", "ops@x.example"}, {"relay", "--acme-domain", "x.example", "--tls-terminated-upstream"},
		{"frobnicate"}, {"send", "--home", home}, {"recv", "--home", home, "--count", "x"},
		{"contacts", "--home", home, "stray"}, {"version", "stray"},
		{"rotate-keys", "--home", home, "--count", "0"},
		// A --wait that cannot be waited: refused before anything is queued.
		{"send", "--home", home, "--wait", "-1s", "bob", "hi"}, {"send", "--home", home, "--wait", "0", "bob", "hi"},
		{"send-file", "--home", home, "--wait", "-1s", "bob", file},
		// An empty text, given or from stdin.
		{"send", "--home", home, "bob", ""}, {"send", "--home", home, "bob", "-"},
		// A NAME that no one can have.
		{"add", "--home", home, "bad name"}, {"send", "--home", home, "bad/name", "hi"},
		{"send-file", "--home", home, "bad name", file}, {"fingerprint", "--home", home, "no one"},
		{"block", "--home", home, "no one"}, {"nickname", "--home", home, "no one", "nick"},
		{"delete-message", "--home", home, "no one", "1"}, {"clear", "--home", home, "no one"},
		// A relay URL that is none.
		{"--relay", "127.0.0.1:7878", "contacts", "--home", home}, {"send", "--home", home, "--relay", "http://x", "bob", "hi"},
		{"init", "--home", home, "--name", "alice", "--relay", "ws://"},
	} {
		var out, errb bytes.Buffer
		if code := Main(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (usage); stderr %q", args, code, exitUsage, errb.String())
		} else if errb.Len() == 0 {
			t.Errorf("%q: exit 2 with nothing on stderr", args)
		}
	}
}
