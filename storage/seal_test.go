package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

func TestPassphrase(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("first passphrase"))
	path := c.Path()
	if err := c.SaveIdentity(ctx, Identity{Name: "alice", CardID: "x", PrivateKey: []byte("identity secret")}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	before := fileHash(t, path)
	for _, pass := range [][]byte{[]byte("wrong"), nil, []byte("first passphrasf")} {
		if _, err := OpenClient(ctx, path, pass); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("OpenClient(%q) = %v, want ErrWrongPassphrase", pass, err)
		}
	}
	if _, err := OpenClient(ctx, path, []byte{}); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty passphrase: %v", err)
	}
	if fileHash(t, path) != before {
		t.Fatal("a failed unlock modified the file")
	}

	c, err := OpenClient(ctx, path, []byte("first passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	c.db.r.QueryRow("SELECT count(*) FROM identity").Scan(&rows)
	sealedBefore := rawColumn(t, c, "SELECT private_key_sealed FROM identity")
	if err := c.ChangePassphraseWith(ctx, []byte("second passphrase"), testKDF); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealedBefore, rawColumn(t, c, "SELECT private_key_sealed FROM identity")) {
		t.Fatal("ChangePassphrase rewrote sealed data; it should re-wrap only the key")
	}
	if err := c.ChangePassphrase(ctx, []byte{}); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("change to empty: %v", err)
	}
	c.Close()
	if _, err := OpenClient(ctx, path, []byte("first passphrase")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after change: %v", err)
	}
	c, err = OpenClient(ctx, path, []byte("second passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Identity(ctx)
	if err != nil || string(id.PrivateKey) != "identity secret" {
		t.Fatalf("identity after change = %q, %v", id.PrivateKey, err)
	}
	c.Close()
}

func TestDemoMode(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	if !c.Demo() {
		t.Fatal("nil passphrase did not make a demo store")
	}
	var mode string
	c.db.r.QueryRow("SELECT mode FROM keyring").Scan(&mode)
	if mode != "none" {
		t.Fatalf("demo store marked %q, want none", mode)
	}
	path := c.Path()
	c.Close()
	if _, err := OpenClient(ctx, path, []byte("anything")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("passphrase on a demo store: %v (a passphrase must not silently be ignored)", err)
	}
	c, err := OpenClient(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A demo profile can be protected later.
	if err := c.ChangePassphraseWith(ctx, []byte("now protected"), testKDF); err != nil || c.Demo() {
		t.Fatalf("protect demo: %v demo=%v", err, c.Demo())
	}
	c.Close()
	if _, err := OpenClient(ctx, path, nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("nil on protected store: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	if _, err := CreateClientWith(ctx, bad, []byte("pw"), ClientOptions{KDF: KDFParams{Time: 1000, MemoryKiB: 64, Threads: 1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("absurd KDF: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := CreateClientWith(cancelled, bad, []byte("pw"), ClientOptions{KDF: testKDF}); err == nil {
		t.Fatal("create with a cancelled context succeeded")
	}
	if _, err := os.Stat(bad); err == nil {
		t.Fatal("a failed create left a file behind")
	}
	if _, err := CreateClient(ctx, filepath.Join(t.TempDir(), "x.db"), []byte{}); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("create with empty passphrase: %v", err)
	}
}

// TestDefaultKDF unlocks once with the production parameters.
func TestDefaultKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB Argon2id; BenchmarkUnlock measures it")
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "c.db")
	c, err := CreateClient(ctx, path, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.KDF(ctx)
	if err != nil || p != DefaultKDF {
		t.Fatalf("KDF = %+v, %v; want %+v", p, err, DefaultKDF)
	}
	c.Close()
	c, err = OpenClient(ctx, path, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func rawColumn(t *testing.T, c *Client, q string, args ...any) []byte {
	t.Helper()
	var b []byte
	if err := c.db.r.QueryRow(q, args...).Scan(&b); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return b
}

// TestSealedValuesBoundToRow copies sealed values between rows (what an attacker with
// write access to the file could do) and checks they no longer open.
func TestSealedValuesBoundToRow(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	var ids []int64
	for _, body := range []string{"first", "second"} {
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte(body)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	first := rawColumn(t, c, "SELECT body_sealed FROM messages WHERE id = ?", ids[0])
	if _, err := c.db.w.Exec("UPDATE messages SET body_sealed = ? WHERE id = ?", first, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Message(ctx, ids[1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped body opened: %v", err)
	}
	// Moved into another table/column: a message body as a session state.
	if err := c.PutSession(ctx, Session{ID: "s", PeerCardID: "card-bob", State: []byte("st")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.db.w.Exec("UPDATE sessions SET state_sealed = ?", first); err != nil {
		t.Fatal(err)
	}
	// A row that does not open is skipped (logged and counted), never returned.
	if ss, err := c.Sessions(ctx, "card-bob"); err != nil || len(ss) != 0 || c.CorruptRowsSkipped() != 1 {
		t.Fatalf("moved value: sessions %v, %v, %d skipped", ss, err, c.CorruptRowsSkipped())
	}
	// One flipped bit.
	first[len(first)-1] ^= 1
	if _, err := c.db.w.Exec("UPDATE messages SET body_sealed = ? WHERE id = ?", first, ids[0]); err != nil {
		t.Fatal(err)
	}
	if page, _, err := c.Messages(ctx, "bob", Cursor{}, 10); err != nil || len(page) != 0 || c.CorruptRowsSkipped() != 3 {
		t.Fatalf("tampered bodies: page %v, %v, %d skipped", page, err, c.CorruptRowsSkipped())
	}
}

// TestNothingInTheClear writes known secrets through the API and scans the database
// file and its WAL for them, with the WAL still full and again after close.
func TestNothingInTheClear(t *testing.T) {
	ctx := t.Context()
	secret := func(label string) []byte {
		b := make([]byte, 24)
		rand.Read(b)
		return append([]byte("SECRET-"+label+"-"), b...)
	}
	secrets := map[string][]byte{}
	for _, l := range []string{"identity", "prekey", "session", "body", "outbox", "body2", "session2", "passphrase"} {
		secrets[l] = secret(l)
	}
	path := filepath.Join(t.TempDir(), "c.db")
	c, err := CreateClientWith(ctx, path, secrets["passphrase"], ClientOptions{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.SaveIdentity(ctx, Identity{Name: "alice", CardID: "ca", Card: []byte("public card"), PrivateKey: secrets["identity"]}))
	addPeer(t, c, "bob")
	must(c.PutPreKeys(ctx, []PreKey{{Kind: 2, ID: 7, Private: secrets["prekey"]}}))
	must(c.PutSession(ctx, Session{ID: "s1", PeerCardID: "card-bob", Active: true, State: secrets["session"]}))
	_, err = c.CommitSend(ctx, SendTx{
		Session: Session{ID: "s1", PeerCardID: "card-bob", Active: true, State: secrets["session2"], Generation: 1},
		Message: &Message{Contact: "bob", Body: secrets["body"]},
		Outbox:  OutboxItem{ClientID: "o1", To: "bob", Payload: secrets["outbox"]},
	})
	must(err)
	_, err = c.CommitReceive(ctx, ReceiveTx{RelayID: "9", Message: &Message{Contact: "bob", Body: secrets["body2"]}})
	must(err)
	key := append([]byte(nil), c.storageKey()...)
	secrets["storage key"] = key

	scan := func(when string) {
		t.Helper()
		scanned := 0
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil {
				continue
			}
			scanned += len(b)
			for label, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s: %s found in the clear in %s", when, label, filepath.Base(path+suffix))
				}
			}
		}
		if scanned == 0 {
			t.Fatalf("%s: nothing scanned", when)
		}
	}
	walInfo, err := os.Stat(path + "-wal")
	if err != nil || walInfo.Size() == 0 {
		t.Fatalf("expected a non-empty WAL while open: %v", err)
	}
	scan("open")
	// Sanity: the secrets do come back through the API.
	if id, err := c.Identity(ctx); err != nil || !bytes.Equal(id.PrivateKey, secrets["identity"]) {
		t.Fatalf("identity: %v", err)
	}
	must(c.Close())
	scan("closed")
}

func FuzzOpenSealed(f *testing.F) {
	key := make([]byte, 32)
	k := &keyring{key: key}
	good, _ := k.seal("t", "c", "1", []byte("hello"))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(append([]byte{2}, good[1:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := k.open("t", "c", "1", b)
		if err == nil && !bytes.Equal(pt, []byte("hello")) {
			t.Fatalf("forged value opened: %q", pt)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

func FuzzUnwrapKey(f *testing.F) {
	w, _ := wrapKey(make([]byte, 32), []byte("pw"), testKDF)
	f.Add(w.wrapped, w.salt, uint32(1), uint32(64), uint8(1), false)
	f.Add([]byte{}, []byte{}, uint32(0), uint32(0), uint8(0), true)
	f.Add(make([]byte, 32), []byte{}, uint32(0), uint32(0), uint8(0), true)
	f.Fuzz(func(t *testing.T, wrappedKey, salt []byte, tm, mem uint32, th uint8, demo bool) {
		if mem > 1024 || tm > 2 { // keep each run cheap; bounds above that are tested by validate
			return
		}
		ww := &wrapped{demo: demo, params: KDFParams{Time: tm, MemoryKiB: mem, Threads: th}, salt: salt, wrapped: wrappedKey}
		var pass []byte
		if !demo {
			pass = []byte("pw")
		}
		key, err := ww.unwrap(pass)
		if err == nil && len(key) != 32 {
			t.Fatalf("unwrapped a %d-byte key", len(key))
		}
		if err != nil && !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

// TestFormatAsDocumented opens a sealed column and the wrapped key by hand, following
// the package documentation, so the documentation stays true.
func TestFormatAsDocumented(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte("documented")}})
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	var tm, mem, th int
	var salt, wrapped []byte
	if err := c.db.r.QueryRow("SELECT mode, kdf_time, kdf_memory, kdf_threads, salt, wrapped FROM keyring").Scan(&mode, &tm, &mem, &th, &salt, &wrapped); err != nil {
		t.Fatal(err)
	}
	kek := argon2.IDKey([]byte("pw"), salt, uint32(tm), uint32(mem), uint8(th), 32)
	ad := []byte("pfschat/storage-key/v1\x00")
	ad = binary.BigEndian.AppendUint32(ad, uint32(tm))
	ad = binary.BigEndian.AppendUint32(ad, uint32(mem))
	ad = append(append(ad, byte(th)), salt...)
	aead, _ := chacha20poly1305.NewX(kek)
	if mode != "argon2id" || len(salt) != 16 || wrapped[0] != 1 {
		t.Fatalf("keyring mode %q salt %d version %d", mode, len(salt), wrapped[0])
	}
	key, err := aead.Open(nil, wrapped[1:25], wrapped[25:], ad)
	if err != nil || len(key) != 32 {
		t.Fatalf("wrapped key does not open as documented: %v", err)
	}
	sealed := rawColumn(t, c, "SELECT body_sealed FROM messages WHERE id = ?", id)
	if len(sealed) != 1+24+len("documented")+16 || sealed[0] != 1 {
		t.Fatalf("sealed layout: %d bytes, version %d", len(sealed), sealed[0])
	}
	aead, _ = chacha20poly1305.NewX(key)
	body, err := aead.Open(nil, sealed[1:25], sealed[25:], []byte(fmt.Sprintf("pfschat/storage/v1\x00messages\x00body\x00%d", id)))
	if err != nil || string(body) != "documented" {
		t.Fatalf("body does not open as documented: %q %v", body, err)
	}
}

// A program built with go build, not a test binary, is refused cheap Argon2id
// parameters for a new store and for a new passphrase, and neither is written; a test
// binary (this one) may use them, which every suite's cheap profiles rely on.
func TestWeakKDFRefusedOutsideTests(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to build the program:", err)
	}
	bin := filepath.Join(t.TempDir(), "weakkdf")
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, "./testdata/weakkdf")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/weakkdf: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("weakkdf: %v\n%s", err, out)
	}
	if want := "create: weak=true created=false\nchange: weak=true kept=true\n"; string(out) != want {
		t.Fatalf("a program built with go build answered\n%s\nwant\n%s", out, want)
	}

	cheap := KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	if err := cheap.strongEnough(); err != nil {
		t.Fatalf("a test binary was refused cheap parameters: %v", err)
	}
}
