package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// With the default paths a profile and `pfschat relay`'s database share one folder
// ($XDG_DATA_HOME/pfschat): here a real relay's, its database beside the profile.

func runIn(t *testing.T, r *relaytest.Relay, home string, args ...string) (int, string, string) {
	t.Helper()
	return runInRelay(t, r.URL, home, args...)
}

// initIn makes the profile name in home with 'pfschat init' (the passphrase from the
// environment), failing the test if it does not.
func initIn(t *testing.T, r *relaytest.Relay, home, name string) {
	t.Helper()
	if code, out, errb := runIn(t, r, home, "init", "--name", name); code != 0 {
		t.Fatalf("init %s: exit %d, %q %q", name, code, out, errb)
	}
}

// runInRelay runs pfschat with --home home --relay url and args.
func runInRelay(t *testing.T, url, home string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(t.Context(), append([]string{"--home", home, "--relay", url}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// delete-account does not tell the user to remove a folder that holds a relay's
// database (its key): it names the profile's own files instead. A folder that holds
// the profile alone may go as a whole.
func TestDeleteAccountKeepsTheRelaysFiles(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	r := relaytest.Start(t)
	shared := filepath.Dir(r.Path)
	if code, out, errb := runIn(t, r, shared, "init", "--name", "carol"); code != 0 {
		t.Fatalf("init: exit %d, %q %q", code, out, errb)
	}
	code, out, errb := runIn(t, r, shared, "delete-account", "--yes")
	if code != 0 {
		t.Fatalf("delete-account: exit %d, %q %q", code, out, errb)
	}
	if strings.Contains(out, "remove that folder") || !strings.Contains(out, "relay's database") ||
		!strings.Contains(out, "relay.db") || !strings.Contains(out, "do not remove the folder") ||
		!strings.Contains(out, "remove only its own files there: pfschat.db") {
		t.Errorf("delete-account beside a relay's database says %q", out)
	}

	alone := t.TempDir()
	if code, out, errb := runIn(t, r, alone, "init", "--name", "dave"); code != 0 {
		t.Fatalf("init: exit %d, %q %q", code, out, errb)
	}
	code, out, errb = runIn(t, r, alone, "delete-account", "--yes")
	if code != 0 || !strings.Contains(out, "The local profile stays in "+alone+", which holds nothing else: remove that folder") {
		t.Errorf("delete-account of a profile alone in its folder: exit %d, %q %q", code, out, errb)
	}
}

// restore goes into the default folder when it holds a relay's database and no
// profile, and leaves the relay's files as they were; anything else there is refused.
func TestRestoreBesideARelaysDatabase(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	r := relaytest.Start(t)
	home := t.TempDir()
	initIn(t, r, home, "erin")
	bak := filepath.Join(t.TempDir(), "erin.bak")
	if code, out, errb := runIn(t, r, home, "backup", bak); code != 0 {
		t.Fatalf("backup: exit %d, %q %q", code, out, errb)
	}
	shared := filepath.Dir(r.Path)
	before := relayFiles(t, shared)
	if code, out, errb := runIn(t, r, shared, "restore", bak); code != 0 || !strings.Contains(out, "restored the profile") {
		t.Fatalf("restore beside a relay's database: exit %d, %q %q", code, out, errb)
	}
	if after := relayFiles(t, shared); after != before || !strings.Contains(after, "relay.db ") {
		t.Errorf("the relay's files were %q before the restore, %q after", before, after)
	}
	if code, out, errb := runIn(t, r, shared, "contacts"); code != 0 {
		t.Errorf("the restored profile does not open: exit %d, %q %q", code, out, errb)
	}

	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "relay.db"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o600)
	if code, _, errb := runIn(t, r, other, "restore", bak); code != 1 || !strings.Contains(errb, "holds notes.txt") {
		t.Errorf("restore into a folder with notes.txt: exit %d, %q", code, errb)
	}
}

// relayFiles are the names of the relay's files in dir.
func relayFiles(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names string
	for _, e := range entries {
		if profile.IsRelayFile(e.Name()) {
			names += e.Name() + " "
		}
	}
	return names
}
