package storage

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The meta keys the relay keeps its secrets under (relay/server).
const (
	testSeedKey     = "relay_ed25519_seed"
	testRecoveryKey = "recovery_hmac_key"
	testBlobKey     = "blob_capability_key"
	testRotationLog = "relay_key_rotations"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func testRelayKey() []byte { return randomBytes(RelayKeySize) }

// rawMeta is the meta row as stored in the file.
func rawMeta(t *testing.T, r *Relay, key string) []byte {
	t.Helper()
	var v []byte
	if err := r.db.w.QueryRowContext(t.Context(), "SELECT value FROM meta WHERE key = ?", key).Scan(&v); err != nil {
		t.Fatalf("raw meta %q: %v", key, err)
	}
	return v
}

// filesHolding names the files of the store at path (the database file, its WAL)
// that hold secret's bytes anywhere.
func filesHolding(t *testing.T, path string, secret []byte) []string {
	t.Helper()
	var found []string
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, secret) {
			found = append(found, filepath.Base(f))
		}
	}
	return found
}

// clearRelaySecrets fills a relay store at path that keeps its secrets in the clear,
// as every relay did before sealing: a seed replaced once by a rotation, the recovery
// and blob keys, with queue traffic around them. It returns the store still open and
// the secrets, the replaced seed among them.
func clearRelaySecrets(t *testing.T, path string) (*Relay, map[string][]byte) {
	t.Helper()
	ctx := t.Context()
	r, err := OpenRelay(ctx, path, RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"old seed": randomBytes(32), testSeedKey: randomBytes(32), testRecoveryKey: randomBytes(32), testBlobKey: randomBytes(32)}
	for _, k := range []string{testRecoveryKey, testBlobKey} {
		if err := r.SetMeta(ctx, k, secrets[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SetMeta(ctx, testSeedKey, secrets["old seed"]); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		msgs := []QueuedMessage{{To: "bob", From: "alice", ClientID: string(rune('a'+i%26)) + strings.Repeat("x", i), Body: randomBytes(3000), ExpiresAt: t0.Add(time.Hour)}}
		if _, err := r.Enqueue(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.ReplaceRelayKey(ctx, testSeedKey, secrets["old seed"], secrets[testSeedKey], testRotationLog, randomBytes(137), func(c []byte) ([]byte, error) { return c, nil }); err != nil {
		t.Fatal(err)
	}
	return r, secrets
}

// copyStore copies the files of the open store at src to dst, as a crash leaves them:
// the WAL not checkpointed.
func copyStore(t *testing.T, src, dst string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelaySealInPlace: a relay store that keeps its secrets in the clear, opened with
// a relay key and SealInPlace, is sealed in place: the values read back the same, the
// rows hold sealed values, and no clear secret (nor the seed a rotation replaced) is
// left in the database file or its WAL, whether the relay had stopped cleanly or
// crashed with its WAL full of the meta page's clear copies.
func TestRelaySealInPlace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash bool
	}{{"stopped", false}, {"crashed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			path := filepath.Join(dir, "relay.db")
			r, secrets := clearRelaySecrets(t, filepath.Join(dir, "clear.db"))
			if tc.crash {
				copyStore(t, r.Path(), path)
				r.Close()
			} else {
				r.Close()
				b, _ := os.ReadFile(r.Path())
				os.WriteFile(path, b, 0o600)
			}
			for name, s := range secrets {
				if name != "old seed" && len(filesHolding(t, path, s)) == 0 {
					t.Fatalf("the clear store's files do not hold %s: the scan would prove nothing", name)
				}
			}
			if tc.crash && len(filesHolding(t, path, secrets[testSeedKey])) == 0 {
				t.Fatal("the crashed store's WAL does not hold the seed")
			}

			key := testRelayKey()
			r, err := OpenRelay(ctx, path, RelayOptions{SealKey: key, SealInPlace: true})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Sealed() {
				t.Fatal("not sealed")
			}
			for _, k := range []string{testSeedKey, testRecoveryKey, testBlobKey} {
				if v, err := r.Meta(ctx, k); err != nil || !bytes.Equal(v, secrets[k]) {
					t.Fatalf("%s after sealing: %x, %v", k, v, err)
				}
				if raw := rawMeta(t, r, k); bytes.Contains(raw, secrets[k]) || len(raw) != 1+24+32+16 {
					t.Fatalf("%s stored as %x", k, raw)
				}
			}
			if v, err := r.Meta(ctx, testRotationLog); err != nil || len(v) != 137 {
				t.Fatalf("the rotation statements after sealing: %d bytes, %v", len(v), err)
			}
			for name, s := range secrets {
				if in := filesHolding(t, path, s); len(in) > 0 {
					t.Errorf("after sealing, the open store's %v hold the clear %s", in, name)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			for name, s := range secrets {
				if in := filesHolding(t, path, s); len(in) > 0 {
					t.Errorf("after sealing, the closed store's %v hold the clear %s", in, name)
				}
			}
			r, err = OpenRelay(ctx, path, RelayOptions{SealKey: key})
			if err != nil {
				t.Fatalf("opening the sealed store again: %v", err)
			}
			defer r.Close()
			if v, err := r.Meta(ctx, testSeedKey); err != nil || !bytes.Equal(v, secrets[testSeedKey]) {
				t.Fatalf("the seed, opened again: %v", err)
			}
		})
	}
}

// TestRelaySealedStoreRefusals: a store whose secrets are sealed opens only with its
// relay key (without one: ErrRelayKeyNeeded, with another: ErrRelayKey), a store in
// the clear given a key without SealInPlace is refused (ErrRelayNotSealed), a key of
// the wrong size is refused; each time the file is left as it was.
func TestRelaySealedStoreRefusals(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	key := testRelayKey()
	sealedPath := filepath.Join(dir, "sealed.db")
	r, err := OpenRelay(ctx, sealedPath, RelayOptions{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetMeta(ctx, testSeedKey, randomBytes(32)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	clear, _ := clearRelaySecrets(t, filepath.Join(dir, "clear.db"))
	clearPath := clear.Path()
	clear.Close()

	for _, tc := range []struct {
		name string
		path string
		opts RelayOptions
		want error
	}{
		{"sealed, no key", sealedPath, RelayOptions{}, ErrRelayKeyNeeded},
		{"sealed, another key", sealedPath, RelayOptions{SealKey: testRelayKey(), SealInPlace: true}, ErrRelayKey},
		{"sealed, a short key", sealedPath, RelayOptions{SealKey: key[:16]}, ErrRelayKey},
		{"clear, a key but not in place", clearPath, RelayOptions{SealKey: key}, ErrRelayNotSealed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := OpenRelay(ctx, tc.path, tc.opts)
			if err == nil {
				r.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(tc.path)
			if !bytes.Equal(before, after) {
				t.Fatal("the refused open changed the database file")
			}
			if _, err := os.Stat(tc.path + "-wal"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a WAL was left beside the file: %v", err)
			}
		})
	}
	// The clear store is still in the clear: opened without a key it reads as before.
	r, err = OpenRelay(ctx, clearPath, RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, err := r.Meta(ctx, testSeedKey); err != nil || len(v) != 32 || r.Sealed() {
		t.Fatalf("the clear store after the refusal: %x %v sealed=%v", v, err, r.Sealed())
	}
}

// TestRelaySealInPlaceWhileRead: when another process reads the store as it is sealed
// in place, the WAL that held the clear copies cannot be truncated: the open fails
// with ErrBusy, the secrets are sealed already (a keyless open is refused), and the
// next open with SealInPlace finishes: the clear copies are gone.
func TestRelaySealInPlaceWhileRead(t *testing.T) {
	ctx := t.Context()
	old := busyTimeout
	busyTimeout = 200 * time.Millisecond
	t.Cleanup(func() { busyTimeout = old })
	r, secrets := clearRelaySecrets(t, filepath.Join(t.TempDir(), "relay.db"))
	path := r.Path()
	r.Close()

	reader, err := sql.Open(driverName, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM meta").Scan(&n); err != nil {
		t.Fatal(err)
	}
	key := testRelayKey()
	if r, err := OpenRelay(ctx, path, RelayOptions{SealKey: key, SealInPlace: true}); !errors.Is(err, ErrBusy) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("sealing under a reader: %v, want ErrBusy", err)
	}
	if r, err := OpenRelay(ctx, path, RelayOptions{}); !errors.Is(err, ErrRelayKeyNeeded) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("after the interrupted sealing, a keyless open: %v, want ErrRelayKeyNeeded", err)
	}
	if len(filesHolding(t, path, secrets[testSeedKey])) == 0 {
		t.Fatal("the clear seed is gone already: the test does not test the second open")
	}
	tx.Rollback()
	reader.Close()

	r, err = OpenRelay(ctx, path, RelayOptions{SealKey: key, SealInPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, s := range secrets {
		if in := filesHolding(t, path, s); len(in) > 0 {
			t.Errorf("after the second open, %v hold the clear %s", in, name)
		}
	}
	if v, err := r.Meta(ctx, testSeedKey); err != nil || !bytes.Equal(v, secrets[testSeedKey]) {
		t.Fatalf("the seed: %v", err)
	}
}

// TestRelaySealedMeta: in a sealed store every value of Meta is stored sealed and
// bound to its name (a sealed value copied under another name does not open), a key
// rotation writes the new seed and the statements sealed, and the store's own meta
// rows are not values of Meta.
func TestRelaySealedMeta(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{SealKey: testRelayKey()})
	if !r.Sealed() {
		t.Fatal("a new store with a key is not sealed")
	}
	seed, recovery := randomBytes(32), randomBytes(32)
	if err := r.SetMeta(ctx, testSeedKey, seed); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMeta(ctx, testRecoveryKey, recovery); err != nil {
		t.Fatal(err)
	}
	if raw := rawMeta(t, r, testSeedKey); bytes.Contains(raw, seed) {
		t.Fatal("the seed is stored in the clear")
	}
	if _, err := r.db.w.ExecContext(ctx, "UPDATE meta SET value = ? WHERE key = ?", rawMeta(t, r, testSeedKey), testRecoveryKey); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Meta(ctx, testRecoveryKey); !errors.Is(err, ErrRelayKey) {
		t.Fatalf("the sealed seed copied as the recovery key: %v, want ErrRelayKey", err)
	}

	var seeds [][]byte
	var log []byte
	for range 2 {
		next, stmt := randomBytes(32), randomBytes(137)
		if _, err := r.ReplaceRelayKey(ctx, testSeedKey, seed, next, testRotationLog, stmt, func(c []byte) ([]byte, error) { return c, nil }); err != nil {
			t.Fatal(err)
		}
		seeds, seed, log = append(seeds, seed), next, append(log, stmt...)
	}
	if v, err := r.Meta(ctx, testSeedKey); err != nil || !bytes.Equal(v, seed) {
		t.Fatalf("the rotated seed: %v", err)
	}
	if raw := rawMeta(t, r, testSeedKey); bytes.Contains(raw, seed) {
		t.Fatal("the rotated seed is stored in the clear")
	}
	if v, err := r.Meta(ctx, testRotationLog); err != nil || !bytes.Equal(v, log) {
		t.Fatalf("the rotation statements: %d bytes, %v", len(v), err)
	}
	if raw := rawMeta(t, r, testRotationLog); bytes.Contains(raw, log[:137]) {
		t.Fatal("the rotation statements are stored in the clear")
	}
	if _, err := r.ReplaceRelayKey(ctx, testSeedKey, seeds[0], randomBytes(32), testRotationLog, nil, func(c []byte) ([]byte, error) { return c, nil }); !errors.Is(err, ErrExists) {
		t.Fatalf("a rotation from a seed that is not the current one: %v, want ErrExists", err)
	}
	if _, err := r.ReplaceRelayKey(ctx, testSeedKey, seed, randomBytes(32), testRotationLog, nil, func(c []byte) ([]byte, error) { return c, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Meta(ctx, testRotationLog); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the statements after a compromised key's replacement: %v, want ErrNotFound", err)
	}
	for _, k := range []string{sealCheckKey, idCeilingKey} {
		if err := r.SetMeta(ctx, k, []byte("x")); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetMeta(%q): %v, want ErrInvalid", k, err)
		}
		if _, err := r.Meta(ctx, k); !errors.Is(err, ErrInvalid) {
			t.Errorf("Meta(%q): %v, want ErrInvalid", k, err)
		}
	}
}

// TestLoadRelayKey: a key file of 64 hex digits (white space around it ignored) loads;
// one readable by others, a malformed one and a missing one are refused naming what
// to do; without a file the environment variable is read, and without either there
// is no key.
func TestLoadRelayKey(t *testing.T) {
	dir := t.TempDir()
	text := GenerateRelayKey()
	if len(text) != 64 || text == GenerateRelayKey() {
		t.Fatalf("generated %q", text)
	}
	good := filepath.Join(dir, "key")
	if err := os.WriteFile(good, []byte("  "+text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadRelayKey(good)
	if err != nil || len(k) != RelayKeySize {
		t.Fatalf("load: %x %v", k, err)
	}
	again, _ := ParseRelayKey(text)
	if !bytes.Equal(k, again) {
		t.Fatal("file and text differ")
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte(text), 0o644)
	if _, err := LoadRelayKey(open); !errors.Is(err, ErrRelayKey) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file: %v", err)
	}
	// A systemd credential: 0440 through the ACL systemd adds, in the service's own
	// directory (README: a sealed systemd unit). Only there, and only read access.
	creds := t.TempDir()
	cred := filepath.Join(creds, "relay.key")
	os.WriteFile(cred, []byte(text), 0o440)
	if _, err := LoadRelayKey(cred); !errors.Is(err, ErrRelayKey) {
		t.Fatalf("a group-readable key file outside a credentials directory: %v", err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	if k, err := LoadRelayKey(cred); err != nil || !bytes.Equal(k, again) {
		t.Fatalf("a systemd credential (0440): %v", err)
	}
	for _, mode := range []os.FileMode{0o460, 0o444} {
		os.Chmod(cred, mode)
		if _, err := LoadRelayKey(cred); !errors.Is(err, ErrRelayKey) {
			t.Fatalf("a credential of mode %04o: %v, want refused", mode, err)
		}
	}
	os.Chmod(open, 0o440)
	if _, err := LoadRelayKey(open); !errors.Is(err, ErrRelayKey) {
		t.Fatalf("a 0440 key file outside $CREDENTIALS_DIRECTORY: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(text[:60]), 0o600)
	if _, err := LoadRelayKey(bad); !errors.Is(err, ErrRelayKey) {
		t.Fatalf("a short key: %v", err)
	}
	if _, err := LoadRelayKey(filepath.Join(dir, "missing")); !errors.Is(err, ErrRelayKey) {
		t.Fatalf("a missing file: %v", err)
	}
	t.Setenv(RelayKeyEnv, text)
	if k, err := LoadRelayKey(""); err != nil || !bytes.Equal(k, again) {
		t.Fatalf("from the environment: %v", err)
	}
	t.Setenv(RelayKeyEnv, "nope")
	if _, err := LoadRelayKey(""); !errors.Is(err, ErrRelayKey) || !strings.Contains(err.Error(), RelayKeyEnv) {
		t.Fatalf("a malformed key in the environment: %v", err)
	}
	os.Unsetenv(RelayKeyEnv)
	if k, err := LoadRelayKey(""); k != nil || err != nil {
		t.Fatalf("neither: %x %v", k, err)
	}
}
