package cli_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
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

// unsealedWarning is what the relay logs at start when its key is stored unsealed.
const unsealedWarning = "the relay's private key is stored unsealed"

// newKeyFile makes a relay key file with `pfschat relay new-key-file`.
func newKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.key")
	if err := cli.RunRelay(t.Context(), []string{"new-key-file", path}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	return path
}

// relaySeed reads the relay's Ed25519 seed from the database at db (with key, when
// the database is sealed).
func relaySeed(t *testing.T, db string, key []byte) []byte {
	t.Helper()
	st, err := storage.OpenRelay(t.Context(), db, storage.RelayOptions{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seed, err := st.Meta(t.Context(), "relay_ed25519_seed")
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("the relay's seed: %x %v", seed, err)
	}
	return seed
}

// keyOf is the relay key in the key file at path.
func keyOf(t *testing.T, path string) []byte {
	t.Helper()
	k, err := storage.LoadRelayKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// inFiles reports whether the database at db or its WAL holds secret's bytes.
func inFiles(t *testing.T, db string, secret []byte) bool {
	t.Helper()
	for _, f := range []string{db, db + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, secret) {
			return true
		}
	}
	return false
}

// logOf is the relay's log file's text.
func logOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// connectPinned connects a client pinned to key: it refuses a relay with another key.
func connectPinned(t *testing.T, url string, key ed25519.PublicKey) {
	t.Helper()
	c := client.New(client.Config{URL: url, PinnedRelayKey: key})
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatalf("a client pinned to the relay's key: %v", err)
	}
	if !c.RelayKey().Equal(key) {
		t.Fatal("the relay presents another key")
	}
}

// TestRelaySealsItsKeyInPlace: a relay that kept its key unsealed warns once at
// start; started with --relay-key-file it seals its secrets in place, the clear seed
// is no longer in the database file or its WAL, it warns no more, and clients pinned
// to its key still connect.
func TestRelaySealsItsKeyInPlace(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "relay.db")
	clearLog := filepath.Join(dir, "clear.log")
	url, stop := runRelay(t, "--db", db, "--min-free-mib", "0", "--admin-addr", "", "--log", clearLog)
	alice := loggedIn(t, url, "alice")
	pinned := alice.RelayKey()
	alice.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logOf(t, clearLog), unsealedWarning); n != 1 {
		t.Fatalf("the unsealed relay warned %d times, want once:\n%s", n, logOf(t, clearLog))
	}
	seed := relaySeed(t, db, nil)
	if !inFiles(t, db, seed) {
		t.Fatal("the clear relay's files do not hold its seed: the scan below would prove nothing")
	}

	keyFile := newKeyFile(t)
	sealedLog := filepath.Join(dir, "sealed.log")
	url, stop = runRelay(t, "--db", db, "--min-free-mib", "0", "--admin-addr", "", "--relay-key-file", keyFile, "--log", sealedLog)
	connectPinned(t, url, pinned)
	if inFiles(t, db, seed) {
		t.Error("the running sealed relay's database or WAL holds the clear seed")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if inFiles(t, db, seed) {
		t.Error("the stopped sealed relay's database holds the clear seed")
	}
	if strings.Contains(logOf(t, sealedLog), unsealedWarning) {
		t.Errorf("the sealed relay warned that its key is unsealed:\n%s", logOf(t, sealedLog))
	}
	// The start line says which it is, so an operator sees the seal took.
	const sealedBanner = "its secrets sealed under the relay key"
	if !strings.Contains(logOf(t, sealedLog), sealedBanner) || strings.Contains(logOf(t, clearLog), sealedBanner) {
		t.Errorf("the start lines do not tell the sealed relay from the clear one:\nsealed:\n%s\nclear:\n%s", logOf(t, sealedLog), logOf(t, clearLog))
	}
	if got := relaySeed(t, db, keyOf(t, keyFile)); !bytes.Equal(got, seed) {
		t.Fatal("sealing changed the relay's seed")
	}
	// The key may come from the environment instead of a file.
	t.Setenv(storage.RelayKeyEnv, strings.TrimSpace(string(must(os.ReadFile(keyFile)))))
	url, stop = runRelay(t, "--db", db, "--min-free-mib", "0", "--admin-addr", "")
	connectPinned(t, url, pinned)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSealedRelayRefusesWithoutItsKey: a relay made with --relay-key-file keeps its
// secrets sealed from the start; started (or rotate-key, invite run) without the key
// or with another one, it is refused with a sentence naming --relay-key-file and
// $PFSCHAT_RELAY_KEY, exits non-zero and changes nothing, never making a new key. A
// backup needs no key and stays sealed.
func TestSealedRelayRefusesWithoutItsKey(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "relay.db")
	keyFile := newKeyFile(t)
	log := filepath.Join(dir, "relay.log")
	url, stop := runRelay(t, "--db", db, "--min-free-mib", "0", "--admin-addr", "", "--relay-key-file", keyFile, "--log", log)
	alice := loggedIn(t, url, "alice")
	pinned := alice.RelayKey()
	alice.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logOf(t, log), unsealedWarning) {
		t.Errorf("a relay sealed from the start warned that its key is unsealed:\n%s", logOf(t, log))
	}
	if _, err := storage.OpenRelay(t.Context(), db, storage.RelayOptions{}); !errors.Is(err, storage.ErrRelayKeyNeeded) {
		t.Fatalf("the new relay's database opened without its key: %v", err)
	}
	seed := relaySeed(t, db, keyOf(t, keyFile))
	if inFiles(t, db, seed) {
		t.Fatal("the relay's database holds its seed in the clear")
	}

	t.Setenv(storage.RelayKeyEnv, "") // restored after the test
	os.Unsetenv(storage.RelayKeyEnv)
	otherKey := newKeyFile(t)
	before := must(os.ReadFile(db))
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"relay, no key", []string{"relay", "--db", db, "--addr", "127.0.0.1:0", "--admin-addr", ""}, "no relay key was given"},
		{"relay --init, no key", []string{"relay", "--db", db, "--addr", "127.0.0.1:0", "--admin-addr", "", "--init"}, "no relay key was given"},
		{"relay, another key", []string{"relay", "--db", db, "--addr", "127.0.0.1:0", "--admin-addr", "", "--relay-key-file", otherKey}, "does not open the relay's secrets"},
		{"rotate-key, no key", []string{"relay", "rotate-key", "--db", db}, "no relay key was given"},
		{"rotate-key, another key", []string{"relay", "rotate-key", "--db", db, "--relay-key-file", otherKey}, "does not open the relay's secrets"},
		{"invite, no key", []string{"relay", "invite", "--db", db}, "no relay key was given"},
	} {
		var stderr bytes.Buffer
		if code := cli.Main(t.Context(), tc.args, strings.NewReader(""), io.Discard, &stderr); code == 0 {
			t.Errorf("%s: exit 0", tc.name)
			continue
		}
		msg := stderr.String()
		if !strings.Contains(msg, tc.says) || !strings.Contains(msg, "--relay-key-file") || !strings.Contains(msg, storage.RelayKeyEnv) || !strings.Contains(msg, "Nothing was changed") {
			t.Errorf("%s: %q, want a sentence saying %q and naming --relay-key-file and $%s", tc.name, msg, tc.says, storage.RelayKeyEnv)
		}
		if after := must(os.ReadFile(db)); !bytes.Equal(after, before) {
			t.Fatalf("%s changed the database", tc.name)
		}
	}

	var code bytes.Buffer
	if err := cli.RunRelay(t.Context(), []string{"invite", "--db", db, "--relay-key-file", keyFile}, &code, io.Discard); err != nil || !strings.HasPrefix(code.String(), "pfsinv-") {
		t.Fatalf("invite with the key: %q %v", code.String(), err)
	}
	backup := filepath.Join(dir, "backup.db")
	if err := cli.RunRelay(t.Context(), []string{"backup", "--db", db, backup}, io.Discard, io.Discard); err != nil {
		t.Fatalf("backup of a sealed relay without its key: %v", err)
	}
	if inFiles(t, backup, seed) {
		t.Fatal("the backup holds the seed in the clear")
	}
	if _, err := storage.OpenRelay(t.Context(), backup, storage.RelayOptions{}); !errors.Is(err, storage.ErrRelayKeyNeeded) {
		t.Fatalf("the backup opened without the key: %v", err)
	}
	if got := relaySeed(t, backup, keyOf(t, keyFile)); !bytes.Equal(got, seed) {
		t.Fatal("the backup's seed differs")
	}
	url, stop = runRelay(t, "--db", db, "--min-free-mib", "0", "--admin-addr", "", "--relay-key-file", keyFile)
	defer stop()
	connectPinned(t, url, pinned)
}

// TestRelayRotateKeySealed: rotate-key of a sealed relay writes the new key sealed,
// and rotate-key given a key for a relay that kept its key in the clear seals it in
// place first; clients pinned to the old key follow the rotation.
func TestRelayRotateKeySealed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sealedStart bool
	}{{"sealed", true}, {"clear", false}} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "relay.db")
			keyFile := newKeyFile(t)
			args := []string{"--db", db, "--min-free-mib", "0", "--admin-addr", ""}
			if tc.sealedStart {
				args = append(args, "--relay-key-file", keyFile)
			}
			url, stop := runRelay(t, args...)
			alice := loggedIn(t, url, "alice")
			old := alice.RelayKey()
			alice.Close()
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			var key []byte
			if tc.sealedStart {
				key = keyOf(t, keyFile)
			}
			oldSeed := relaySeed(t, db, key)
			var out strings.Builder
			if err := cli.RunRelay(t.Context(), []string{"rotate-key", "--db", db, "--relay-key-file", keyFile}, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "1 card re-signed") {
				t.Fatalf("rotate-key said %q", out.String())
			}
			newSeed := relaySeed(t, db, keyOf(t, keyFile))
			if bytes.Equal(newSeed, oldSeed) {
				t.Fatal("the key did not change")
			}
			for what, seed := range map[string][]byte{"new": newSeed, "old": oldSeed} {
				if inFiles(t, db, seed) {
					t.Errorf("the database holds the %s seed in the clear", what)
				}
			}
			url, stop = runRelay(t, "--db", db, "--min-free-mib", "0", "--admin-addr", "", "--relay-key-file", keyFile)
			defer stop()
			rotated := false
			c := client.New(client.Config{URL: url, PinnedRelayKey: old, OnRelayKeyRotated: func([]relay.KeyRotation) { rotated = true }})
			defer c.Close()
			if err := c.Connect(t.Context()); err != nil {
				t.Fatalf("a client pinned to the old key: %v", err)
			}
			if !rotated || !c.RelayKey().Equal(ed25519.NewKeyFromSeed(newSeed).Public().(ed25519.PublicKey)) {
				t.Fatal("the client did not follow the rotation to the sealed key")
			}
		})
	}
}
