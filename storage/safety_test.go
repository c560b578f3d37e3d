package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSessionGenerationCAS: two handles on one file (as two processes that bypassed the
// profile lock): both read the session at one generation; the first commit wins, the
// second is refused with a *StaleSessionError and writes nothing, so the older writer
// can never put back a state whose chain keys the newer one already used.
func TestSessionGenerationCAS(t *testing.T) {
	ctx := t.Context()
	a := newClient(t, []byte("pw"))
	addPeer(t, a, "bob")
	if err := a.PutSession(ctx, Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("g1")}); err != nil {
		t.Fatal(err)
	}
	b, err := OpenClientWith(ctx, a.Path(), []byte("pw"), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	read := func(c *Client) Session {
		t.Helper()
		ss, err := c.Sessions(ctx, "card-bob")
		if err != nil || len(ss) != 1 {
			t.Fatalf("sessions: %v %v", ss, err)
		}
		return ss[0]
	}
	sa, sb := read(a), read(b)
	if sa.Generation != 1 || sb.Generation != 1 {
		t.Fatalf("generations %d %d, want 1", sa.Generation, sb.Generation)
	}
	sa.State = []byte("a's step")
	if _, err := a.CommitSend(ctx, SendTx{Session: sa, Message: &Message{Contact: "bob", Body: []byte("from a")}, Outbox: OutboxItem{ClientID: "a1", To: "bob", Payload: []byte("wire a")}}); err != nil {
		t.Fatal(err)
	}
	sb.State = []byte("b's stale step")
	_, err = b.CommitSend(ctx, SendTx{Session: sb, Message: &Message{Contact: "bob", Body: []byte("from b")}, Outbox: OutboxItem{ClientID: "b1", To: "bob", Payload: []byte("wire b")}})
	var stale *StaleSessionError
	if !errors.Is(err, ErrStaleSession) || !errors.As(err, &stale) || stale.Read != 1 || stale.Current != 2 || !stale.Exists {
		t.Fatalf("stale send: %v", err)
	}
	if _, err := b.CommitReceive(ctx, ReceiveTx{Session: &sb, RelayID: "r1", Message: &Message{Contact: "bob", Body: []byte("in")}}); !errors.Is(err, ErrStaleSession) {
		t.Fatalf("stale receive: %v", err)
	}
	if err := b.PutSession(ctx, sb); !errors.Is(err, ErrStaleSession) {
		t.Fatalf("stale put: %v", err)
	}
	if got := read(b); string(got.State) != "a's step" || got.Generation != 2 {
		t.Fatalf("state after the refused writes: %q at %d", got.State, got.Generation)
	}
	if ob, _ := b.Outbox(ctx); len(ob) != 1 || ob[0].ClientID != "a1" {
		t.Fatalf("a refused send left an outbox item: %+v", ob)
	}
	if seen, _ := b.SeenRelayID(ctx, "r1"); seen {
		t.Fatal("a refused receive recorded its relay id")
	}
	// Re-reading gives the writer the current generation: then it may go on.
	sb = read(b)
	sb.State = []byte("b after reload")
	if err := b.PutSession(ctx, sb); err != nil {
		t.Fatal(err)
	}
	// A session deleted meanwhile is not brought back by a stale writer.
	sa = read(a)
	if err := b.DeleteSessions(ctx, "card-bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.PutSession(ctx, sa); !errors.As(err, &stale) || stale.Exists {
		t.Fatalf("write to a deleted session: %v", err)
	}

	// Below the API: an older sealed state copied back into the row (with the row's
	// generation) no longer opens, because the seal binds the generation.
	if err := a.PutSession(ctx, Session{ID: "t", PeerCardID: "card-bob", State: []byte("t1")}); err != nil {
		t.Fatal(err)
	}
	old := rawColumn(t, a, "SELECT state_sealed FROM sessions WHERE id = 't'")
	st := read(a)
	st.State = []byte("t2")
	if err := a.PutSession(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.w.Exec("UPDATE sessions SET state_sealed = ? WHERE id = 't'", old); err != nil {
		t.Fatal(err)
	}
	if ss, err := a.Sessions(ctx, "card-bob"); err != nil || len(ss) != 0 || a.CorruptRowsSkipped() != 1 {
		t.Fatalf("rolled-back state: %+v %v (skipped %d)", ss, err, a.CorruptRowsSkipped())
	}
}

// TestFirstMessageReplay: a first message is recorded with the session it created; a
// copy is refused even when that session is gone, and nothing of it is committed.
func TestFirstMessageReplay(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	if err := c.PutPreKeys(ctx, []PreKey{{Kind: 2, ID: 5, Private: []byte("otk")}}); err != nil {
		t.Fatal(err)
	}
	fm := &FirstMessage{SignedPreKeyID: 1, KEMKind: 3, KEMPreKeyID: 2, Ephemeral: []byte("ek-1")}
	first := ReceiveTx{RelayID: "1", FirstMessage: fm, ConsumedPreKeys: []PreKeyRef{{2, 5}},
		Session: &Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("st")},
		Message: &Message{Contact: "bob", Body: []byte("hello")}}
	if _, err := c.CommitReceive(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PreKey(ctx, 2, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("consumed one-time prekey kept: %v", err)
	}
	if seen, err := c.FirstMessageSeen(ctx, *fm); err != nil || !seen {
		t.Fatalf("first message not recorded: %v %v", seen, err)
	}
	if err := c.DeleteSessions(ctx, "card-bob"); err != nil {
		t.Fatal(err)
	}
	replay := first
	replay.RelayID = "2" // relabelled by the relay
	if _, err := c.CommitReceive(ctx, replay); !errors.Is(err, ErrReplayedFirstMessage) {
		t.Fatalf("replayed first message: %v", err)
	}
	if ss, _ := c.Sessions(ctx, "card-bob"); len(ss) != 0 {
		t.Fatal("the replay re-created the session")
	}
	if page, _, _ := c.Messages(ctx, "bob", Cursor{}, 10); len(page) != 1 {
		t.Fatalf("the replay stored a message: %d", len(page))
	}
	// Another ephemeral key to the same prekeys is a new first message.
	other := first
	other.RelayID, other.FirstMessage = "3", &FirstMessage{SignedPreKeyID: 1, KEMKind: 3, KEMPreKeyID: 2, Ephemeral: []byte("ek-2")}
	other.Session = &Session{ID: "s2", PeerCardID: "card-bob", Active: true, State: []byte("st")}
	if _, err := c.CommitReceive(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := c.ForgetFirstMessages(ctx, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if seen, _ := c.FirstMessageSeen(ctx, *fm); seen {
		t.Fatal("record of a deleted signed prekey kept")
	}
}

// TestPrivateFilesWhateverUmask: a store and its -wal and -shm files are 0600 even
// under umask 0.
func TestPrivateFilesWhateverUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(c.Path() + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(c.Path()+suffix), fi.Mode().Perm())
		}
	}
}

// TestCorruptRowSkipped: one prekey and one message whose ciphertext is damaged in the
// file are skipped (counted, logged); the store opens and everything else works.
func TestCorruptRowSkipped(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	if err := c.PutPreKeys(ctx, []PreKey{{Kind: 2, ID: 1, Private: []byte("k1")}, {Kind: 2, ID: 2, Private: []byte("k2")}}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 3 {
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte(fmt.Sprint("m", i))}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	path := c.Path()
	c.Close()
	// Flip one byte of a message's ciphertext and zero a prekey's, in the file.
	d := rawDB(t, path)
	var body []byte
	if err := d.QueryRow("SELECT body_sealed FROM messages WHERE id = ?", ids[1]).Scan(&body); err != nil {
		t.Fatal(err)
	}
	body[30] ^= 1
	if _, err := d.Exec("UPDATE messages SET body_sealed = ? WHERE id = ?", body, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec("UPDATE prekeys SET private_sealed = zeroblob(length(private_sealed)) WHERE kind = 2 AND id = 1"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	c, err := OpenClientWith(ctx, path, []byte("pw"), ClientOptions{})
	if err != nil {
		t.Fatalf("a damaged row bricked the store: %v", err)
	}
	defer c.Close()
	page, _, err := c.Messages(ctx, "bob", Cursor{}, 10)
	if err != nil || len(page) != 2 || string(page[0].Body) != "m2" || string(page[1].Body) != "m0" {
		t.Fatalf("messages: %+v %v", page, err)
	}
	keys, err := c.PreKeys(ctx, 2)
	if err != nil || len(keys) != 1 || keys[0].ID != 2 {
		t.Fatalf("prekeys: %+v %v", keys, err)
	}
	if c.CorruptRowsSkipped() != 2 {
		t.Fatalf("skipped %d, want 2", c.CorruptRowsSkipped())
	}
	if _, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte("after")}}); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedProfileFile: an empty, foreign or garbage file where a store should be is
// ErrDamaged ("restore from a backup"), never ErrNotFound, and is left untouched.
func TestDamagedProfileFile(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	foreign := filepath.Join(dir, "foreign.db")
	d := rawDB(t, foreign)
	if _, err := d.Exec("CREATE TABLE notes (x)"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 300), 0o600)
	for _, p := range []string{empty, garbage, foreign} {
		before, _ := os.ReadFile(p)
		_, err := OpenClient(ctx, p, []byte("pw"))
		if !errors.Is(err, ErrDamaged) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "backup") {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
		if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
			t.Errorf("%s: changed by the refused open", filepath.Base(p))
		}
	}
}

// TestDiskFullNamed: a full disk is ErrDiskFull naming the directory, not SQLite's
// "database or disk is full" or "disk I/O error (4874)"; nothing is written.
func TestDiskFullNamed(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	// Cap the file at its current size: the next pages cannot be had (SQLITE_FULL).
	var pages int
	if err := c.db.w.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := c.db.w.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: bytes.Repeat([]byte("x"), 4000)}})
	}
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), filepath.Dir(c.Path())) {
		t.Fatalf("full: %v", err)
	}
	// An I/O error on a disk with no space left is a full disk too.
	restore := freeSpace
	defer func() { freeSpace = restore }()
	play := func(d diskFree) { freeSpace = func(string) (diskFree, error) { return d, nil } }
	play(diskFree{bytes: 0, inodes: 1000, totalInodes: 5000})
	ioErr := fmt.Errorf("wrapped: %w", syscall.ENOSPC)
	if got := diskFull(c.Path(), ioErr); !errors.Is(got, ErrDiskFull) || !strings.Contains(got.Error(), "is full (0 bytes free)") {
		t.Fatalf("ENOSPC: %v", got)
	}
	if got := diskFull(c.Path(), errors.New("other")); errors.Is(got, ErrDiskFull) {
		t.Fatalf("other error mapped: %v", got)
	}
	// Out of inodes with bytes to spare: the message says so, not "full (N bytes free)".
	play(diskFree{bytes: 1 << 30, inodes: 0, totalInodes: 5000})
	if got := diskFull(c.Path(), ioErr); !errors.Is(got, ErrDiskFull) || !strings.Contains(got.Error(), "no free inodes") || strings.Contains(got.Error(), "is full (") {
		t.Fatalf("ENOSPC without inodes: %v", got)
	}
	// A file system without an inode count (btrfs) is never out of inodes.
	play(diskFree{bytes: 1 << 30})
	if got := diskFull(c.Path(), ioErr); !errors.Is(got, ErrDiskFull) || strings.Contains(got.Error(), "inodes") {
		t.Fatalf("ENOSPC on btrfs: %v", got)
	}
}
