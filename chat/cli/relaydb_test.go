package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"pfschat/chat/cli"
	"pfschat/storage"
)

// runRelay starts `pfschat relay` with args, waits until it listens and returns its
// URL and a stop function that waits for it to exit.
func runRelay(t *testing.T, args ...string) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	// No admin port unless a test asks for one (a later --admin-addr wins): two
	// packages' tests running at once would both take the default 127.0.0.1:7879.
	args = append([]string{"--addr", "127.0.0.1:0", "--admin-addr", "", "--log", filepath.Join(t.TempDir(), "relay.log")}, args...)
	go func() {
		done <- cli.RunRelay(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "pfschat relay listening on "); ok {
			url = u
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		cancel()
		t.Fatalf("relay did not start: %v", <-done)
	}
	return url, func() error { cancel(); return <-done }
}

func TestRunRelayRefusesEmptyAndForeignDatabases(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "notes.txt")
	junk := bytes.Repeat([]byte("not a database\n"), 400)
	if err := os.WriteFile(garbage, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	fdb, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdb.Exec("CREATE TABLE invoices (id INTEGER)"); err != nil {
		t.Fatal(err)
	}
	fdb.Close()
	foreignBytes, _ := os.ReadFile(foreign)
	keyless := filepath.Join(dir, "keyless.db")
	st, err := storage.OpenRelay(t.Context(), keyless, storage.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	for _, tc := range []struct {
		name, path, want string
		init             bool
	}{
		{"empty", empty, "is empty (0 bytes)", false},
		{"garbage", garbage, "is not a SQLite database at all", false}, // not "damaged: restore it from a backup"
		{"garbage with --init", garbage, "never overwrites", true},
		{"foreign sqlite", foreign, "never overwrites", false},
		{"foreign sqlite with --init", foreign, "never overwrites", true},
		{"relay schema without a key", keyless, "no relay key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--addr", "127.0.0.1:0", "--admin-addr", "", "--db", tc.path} // no fixed port: another relay may hold 7879
			if tc.init {
				args = append(args, "--init")
			}
			err := cli.RunRelay(t.Context(), args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not a pfschat relay database") {
				t.Fatalf("RunRelay on %s: %v, want a refusal saying %q", tc.name, err, tc.want)
			}
			if strings.Contains(err.Error(), "profile") {
				t.Fatalf("RunRelay on %s: %v: a relay's refusal speaks of a profile", tc.name, err)
			}
		})
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Error("the empty file was written to")
	}
	if b, _ := os.ReadFile(garbage); !bytes.Equal(b, junk) {
		t.Error("the garbage file was modified")
	}
	if b, _ := os.ReadFile(foreign); !bytes.Equal(b, foreignBytes) {
		t.Error("the foreign database was modified")
	}

	// --init makes a new relay in the empty file and in the key-less one; after that
	// they are relay databases and start without it.
	for _, path := range []string{empty, keyless} {
		_, stop := runRelay(t, "--db", path, "--init", "--min-free-mib", "0")
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		_, stop = runRelay(t, "--db", path, "--min-free-mib", "0")
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	// A missing file is created, as always.
	_, stop := runRelay(t, "--db", filepath.Join(dir, "new.db"), "--min-free-mib", "0")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
