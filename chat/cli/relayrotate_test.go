package cli_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/storage"
)

func TestRelayRotateKey(t *testing.T) {
	db := filepath.Join(t.TempDir(), "relay.db")
	url, stop := runRelay(t, "--db", db, "--min-free-mib", "0")
	alice := loggedIn(t, url, "alice")
	old := alice.RelayKey()
	alice.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st, err := storage.OpenRelay(t.Context(), db, storage.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldSeed, err := st.Meta(t.Context(), "relay_ed25519_seed")
	st.Close()
	if err != nil || len(oldSeed) != 32 {
		t.Fatalf("the relay's seed: %d bytes, %v", len(oldSeed), err)
	}
	var out strings.Builder
	if err := cli.RunRelay(t.Context(), []string{"rotate-key", "--db", db}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 card re-signed") {
		t.Fatalf("rotate-key said %q", out.String())
	}
	// The old key is gone from the files: a copy of them taken later cannot sign a
	// rotation of its own for the clients still pinned to it.
	for _, sfx := range []string{"", "-wal", "-shm", "-journal"} {
		if b, err := os.ReadFile(db + sfx); err == nil && bytes.Contains(b, oldSeed) {
			t.Errorf("the old relay key is still in %s after rotate-key", filepath.Base(db+sfx))
		}
	}
	url, stop = runRelay(t, "--db", db, "--min-free-mib", "0")
	defer stop()
	rotated := false
	c := client.New(client.Config{URL: url, PinnedRelayKey: old, OnRelayKeyRotated: func([]relay.KeyRotation) { rotated = true }})
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatalf("a client pinned to the old key: %v", err)
	}
	if !rotated || c.RelayKey().Equal(old) {
		t.Fatal("the client did not follow the rotation")
	}
	if err := cli.RunRelay(t.Context(), []string{"rotate-key", "--db", filepath.Join(t.TempDir(), "none.db")}, io.Discard, io.Discard); err == nil {
		t.Fatal("rotate-key on a missing database")
	}
}

// TestRelayRotateKeyRefusesWhileRunning: rotate-key refuses while a relay serves the
// database (it would go on serving the old key), names the relay and changes nothing;
// a second relay on the same database is refused too.
func TestRelayRotateKeyRefusesWhileRunning(t *testing.T) {
	db := filepath.Join(t.TempDir(), "relay.db")
	url, stop := runRelay(t, "--db", db, "--min-free-mib", "0")
	alice := loggedIn(t, url, "alice")
	old := alice.RelayKey()
	alice.Close()

	err := cli.RunRelay(t.Context(), []string{"rotate-key", "--db", db}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("rotate-key rotated the key of a running relay")
	}
	if msg := err.Error(); !strings.Contains(msg, "in use by pfschat relay (pid ") || !strings.Contains(msg, "stop it first") {
		t.Fatalf("rotate-key while the relay runs: %v", err)
	}
	err = cli.RunRelay(t.Context(), []string{"--db", db, "--addr", "127.0.0.1:0", "--admin-addr", "", "--min-free-mib", "0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cannot start the relay") {
		t.Fatalf("a second relay on the same database: %v", err)
	}
	// The same again on the same port, as one starts a relay twice: the port is taken,
	// and the error still names the relay that runs, not only the port.
	hostPort := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/v2/ws")
	err = cli.RunRelay(t.Context(), []string{"--db", db, "--addr", hostPort, "--admin-addr", "", "--min-free-mib", "0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by pfschat relay (pid ") {
		t.Fatalf("a second relay on the same database and port: %v", err)
	}
	// Nothing changed: a client pinned to the key connects with no rotation.
	rotated := false
	c := client.New(client.Config{URL: url, PinnedRelayKey: old, OnRelayKeyRotated: func([]relay.KeyRotation) { rotated = true }})
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if rotated || !c.RelayKey().Equal(old) {
		t.Fatal("the refused rotate-key changed the key")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Stopped, the same command rotates.
	if err := cli.RunRelay(t.Context(), []string{"rotate-key", "--db", db}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
}
