package cli_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// A failed `pfschat init` changes nothing in its --home: a directory that was not
// there is not there afterwards (nor the parents made for it), and one that was keeps
// exactly what it held, with its permissions — a lock file left by an earlier pfschat
// too. Then init with good input succeeds in
// the same home. Each way to fail runs against a real relay: one that is gone, one
// where the name is taken, one closed to registration.
func TestFailedInitLeavesTheHomeAsItWas(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	good := relaytest.Start(t)
	initIn(t, good, t.TempDir(), "taken") // the name the taken case asks for

	gone := relaytest.Start(t)
	gone.Close()
	closed := relaytest.StartWith(t, relaytest.Options{Registration: server.RegistrationClosed})

	for i, tc := range []struct {
		name  string
		relay string // the failing init's relay
		user  string
		says  string // in the error
	}{
		{"unreachable relay", gone.URL, "ann", "cannot reach the relay"},
		{"taken name", good.URL, "taken", "name already registered"},
		{"closed registration", closed.URL, "ann", "takes no new registrations\nask the relay's operator whether it will take you, or register on another relay with --relay URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for j, home := range []struct {
				name    string
				prepare func(t *testing.T) string
			}{
				{"new directory", func(t *testing.T) string {
					return filepath.Join(t.TempDir(), "not", "yet", "home")
				}},
				{"existing directory", func(t *testing.T) string {
					dir := filepath.Join(t.TempDir(), "home")
					if err := os.Mkdir(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(dir, 0o755|os.ModeSetgid); err != nil { // whatever the umask; setgid as for a shared group
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
						t.Fatal(err)
					}
					return dir
				}},
				{"directory with a lock file", func(t *testing.T) string {
					// Left by an earlier pfschat: not this init's to remove.
					dir := t.TempDir()
					if err := os.WriteFile(filepath.Join(dir, profile.LockFile), nil, 0o600); err != nil {
						t.Fatal(err)
					}
					return dir
				}},
			} {
				t.Run(home.name, func(t *testing.T) {
					dir := home.prepare(t)
					before := snapshot(t, dir)
					code, out, errb := runInRelay(t, tc.relay, dir, "init", "--name", tc.user)
					if code != 1 || !strings.Contains(errb, tc.says) {
						t.Fatalf("init: exit %d, %q %q; want exit 1 saying %q", code, out, errb, tc.says)
					}
					if after := snapshot(t, dir); !slices.Equal(after, before) {
						t.Fatalf("the failed init changed the home:\nbefore %q\nafter  %q", before, after)
					}
					if home.name == "new directory" {
						// Nor the parents it made for it.
						if _, err := os.Stat(filepath.Dir(filepath.Dir(dir))); !os.IsNotExist(err) {
							t.Fatalf("the failed init left the parents of the new home: %v", err)
						}
					}
					code, out, errb = runIn(t, good, dir, "init", "--name", fmt.Sprintf("user%d%d", i, j))
					if code != 0 {
						t.Fatalf("init with good input after the failure: exit %d, %q %q", code, out, errb)
					}
				})
			}
		})
	}
}

// snapshot is what dir holds, one line a file (name, mode, content) after a line for
// dir itself; "absent" when there is no dir.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return []string{"absent"}
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"dir " + fi.Mode().String()}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		line := rel + " " + info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			line += " " + string(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}
