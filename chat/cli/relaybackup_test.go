package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/chat/cli"
	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/server"
	"pfschat/storage"
)

// loggedIn registers name on the relay at url and returns a logged-in client.
func loggedIn(t *testing.T, url, name string) *client.Client {
	t.Helper()
	ctx := t.Context()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(k, name, "username", "test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(client.Config{URL: url})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Config{URL: url, Identity: k, Card: signed})
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRelayBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "relay.db")
	url, stop := runRelay(t, "--db", db, "--min-free-mib", "0")
	alice := loggedIn(t, url, "alice")
	loggedIn(t, url, "bob") // bob never acks: alice's messages stay queued

	// Alice writes without pause while the backups run.
	var sent atomic.Int64
	writing := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-writing:
				done <- nil
				return
			default:
			}
			if _, err := alice.Send(ctx, "bob", []byte(strings.Repeat("x", 200)), "m"+strconv.Itoa(i)); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
	}()
	for sent.Load() < 50 { // wait for writes to be under way
		select {
		case err := <-done:
			t.Fatalf("writer stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	var out strings.Builder
	backups := []string{filepath.Join(dir, "b1.db"), filepath.Join(dir, "b2.db")}
	for _, b := range backups {
		if err := cli.RunRelay(t.Context(), []string{"backup", "--db", db, b}, &out, io.Discard); err != nil {
			t.Fatalf("backup: %v", err)
		}
	}
	close(writing)
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if !strings.Contains(out.String(), "integrity ok") {
		t.Errorf("backup output %q", out.String())
	}
	// Never overwrite.
	before, _ := os.ReadFile(backups[0])
	err := cli.RunRelay(t.Context(), []string{"backup", "--db", db, backups[0]}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Fatalf("backup onto an existing file: %v", err)
	}
	if after, _ := os.ReadFile(backups[0]); string(after) != string(before) {
		t.Fatal("an existing file was overwritten")
	}
	// A file that is not a relay database is not backed up.
	notes := filepath.Join(dir, "notes")
	os.WriteFile(notes, []byte("hello"), 0o600)
	if err := cli.RunRelay(t.Context(), []string{"backup", "--db", notes, filepath.Join(dir, "b3.db")}, io.Discard, io.Discard); err == nil {
		t.Fatal("backed up a file that is not a relay database")
	}
	if _, err := os.Stat(filepath.Join(dir, "b3.db")); err == nil {
		t.Fatal("a failed backup left its file behind")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Each copy is a whole relay database: integrity, key, accounts, queued messages.
	var depths []int
	for _, b := range backups {
		if st, err := os.Stat(b); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("backup mode %v (%v), want 0600: it holds the relay key", st.Mode().Perm(), err)
		}
		st, err := storage.OpenRelay(t.Context(), b, storage.RelayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.IntegrityCheck(t.Context()); err != nil {
			t.Fatal(err)
		}
		if has, err := server.HasRelayKey(t.Context(), st); err != nil || !has {
			t.Fatalf("backup without the relay key (%v)", err)
		}
		if _, err := st.AccountByName(t.Context(), "bob"); err != nil {
			t.Fatal(err)
		}
		n, err := st.QueueDepth(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		depths = append(depths, n)
		st.Close()
	}
	t.Logf("sent %d messages; the backups hold %v queued (bob never acked)", sent.Load(), depths)
	if depths[0] == 0 || depths[1] < depths[0] {
		t.Fatalf("queued messages in the backups: %v", depths)
	}
}

// TestRelayBackupIntoMissingDirectory: a DEST whose directory does not exist is
// refused with a message naming the directory and what to do ("open DEST: no such
// file or directory" read like a missing database), and nothing is made.
func TestRelayBackupIntoMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "relay.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "backups")
	err := cli.RunRelay(t.Context(), []string{"backup", "--db", db, filepath.Join(missing, "relay-copy.db")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "its directory "+missing+" does not exist: make it first") {
		t.Fatalf("backup into a missing directory: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the backup made %s (%v)", missing, err)
	}
}

// TestRelayBackupOfAMissingDatabase: a --db that does not exist is named as no relay
// database, and the words a user sees say it once ("pfschat relay: backup: the relay
// database: stat …: no such file or directory" before).
func TestRelayBackupOfAMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	db, dest := filepath.Join(dir, "nope.db"), filepath.Join(dir, "copy.db")
	var stderr bytes.Buffer
	if code := cli.Main(t.Context(), []string{"relay", "backup", "--db", db, dest}, strings.NewReader(""), io.Discard, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := "pfschat relay: backup: there is no relay database at " + db + " (give its path with --db)"; !strings.HasPrefix(stderr.String(), want) || strings.Contains(stderr.String(), "storage:") {
		t.Fatalf("stderr %q, want it to start %q", stderr.String(), want)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("the refused backup made %s (%v)", dest, err)
	}
}
