package cli_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// `pfschat passphrase` at a terminal: it asks for the current passphrase, naming the
// profile; a wrong one typed there says so without pointing at $PFSCHAT_PASSPHRASE or
// a file no one used; two different new ones change nothing, and say so; a short one
// is refused before it is asked again.
func TestPassphraseChangeAtATerminal(t *testing.T) {
	r := relaytest.Start(t)
	home := t.TempDir()
	const pass = "correct horse battery staple"
	t.Setenv(profile.EnvPassphrase, pass)
	initIn(t, r, home, "alice")
	os.Unsetenv(profile.EnvPassphrase) // t.Setenv puts it back
	os.Unsetenv(profile.EnvNewPassphrase)
	change := func(typed string) (int, string, string) {
		master, slave := openPTY(t)
		if _, err := master.WriteString(typed); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := cli.Main(t.Context(), []string{"--home", home, "--relay", r.URL, "passphrase"}, slave, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errb := change("wrong horse\n")
	if code != 1 || !strings.Contains(errb, "current passphrase for alice ("+home+"): ") ||
		!strings.Contains(errb, "pfschat passphrase: wrong passphrase for this profile; try again\n") ||
		strings.Contains(errb, "PFSCHAT_PASSPHRASE") || strings.Contains(errb, "--passphrase-file") {
		t.Errorf("a wrong current passphrase typed: exit %d, %q %q", code, out, errb)
	}
	code, out, errb = change(pass + "\nnew horse battery\nnew horse batterz\n")
	if code != 1 || !strings.Contains(errb, "the two passphrases differ; nothing was changed, try again") {
		t.Errorf("two different new passphrases: exit %d, %q %q", code, out, errb)
	}
	code, out, errb = change(pass + "\nshort\nshort\n")
	if code != 1 || !strings.Contains(errb, "the passphrase you typed is too short (5 characters): use at least 8 characters") ||
		strings.Contains(errb, "repeat the passphrase") {
		t.Errorf("a short new passphrase: exit %d, %q %q", code, out, errb)
	}
	// Nothing was changed: the first passphrase still opens.
	t.Setenv(profile.EnvPassphrase, pass)
	if code, out, errb := runIn(t, r, home, "contacts"); code != 0 {
		t.Errorf("contacts with the old passphrase: exit %d, %q %q", code, out, errb)
	}
	// A wrong one from the environment says where it came from.
	t.Setenv(profile.EnvPassphrase, "wrong horse")
	if code, _, errb := runIn(t, r, home, "contacts"); code != 1 || !strings.Contains(errb, "wrong passphrase for this profile in $PFSCHAT_PASSPHRASE") {
		t.Errorf("a wrong passphrase in the environment: exit %d, %q", code, errb)
	}
}
