package storage

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// kindUpTo returns kind restricted to its first v migrations (plus extra files).
func kindUpTo(t *testing.T, kind storeKind, v int, extra map[string]string) storeKind {
	t.Helper()
	migs, err := loadMigrations(kind)
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	for _, mg := range migs[:v] {
		m["migrations/"+kind.name+"/"+mg.name] = &fstest.MapFile{Data: []byte(mg.sql)}
	}
	for name, body := range extra {
		m["migrations/"+kind.name+"/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	if len(m) == 0 {
		m["migrations/"+kind.name] = &fstest.MapFile{Mode: fs.ModeDir}
	}
	kind.fsys = m
	return kind
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	d.SetMaxOpenConns(1)
	t.Cleanup(func() { d.Close() })
	return d
}

// schemaOf lists the schema objects of a file, sorted, to compare migrated and fresh files.
func schemaOf(t *testing.T, path string) string {
	t.Helper()
	d := rawDB(t, path)
	rows, err := d.Query("SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, q string
		if err := rows.Scan(&typ, &name, &q); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s\n", typ, name, q)
	}
	var v int
	if err := d.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "user_version %d\n", v)
	d.Close()
	return b.String()
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestMigrationsFromEveryVersion builds a file at every earlier schema version (0 = an
// empty file), opens it with the current program and checks it ends up with exactly the
// schema of a fresh file, keeping its data.
func TestMigrationsFromEveryVersion(t *testing.T) {
	ctx := t.Context()
	for _, kind := range []storeKind{clientKind, relayKind} {
		migs, err := loadMigrations(kind)
		if err != nil {
			t.Fatal(err)
		}
		fresh := filepath.Join(t.TempDir(), "fresh.db")
		d, _, err := openDB(ctx, fresh, kind, "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.close()
		want := schemaOf(t, fresh)
		if !strings.Contains(want, fmt.Sprintf("user_version %d", len(migs))) {
			t.Fatalf("%s: fresh file not at version %d:\n%s", kind.name, len(migs), want)
		}
		for v := 0; v < len(migs); v++ {
			t.Run(fmt.Sprintf("%s/from%d", kind.name, v), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "old.db")
				if v == 0 {
					if err := os.WriteFile(path, nil, 0o600); err != nil {
						t.Fatal(err)
					}
				} else {
					old, found, err := openDB(ctx, path, kindUpTo(t, kind, v, nil), "", true, nil)
					if err != nil || found != 0 {
						t.Fatalf("build version %d: %v (found %d)", v, err, found)
					}
					if err := setMeta(ctx, old, "kept", []byte("from v"+fmt.Sprint(v))); err != nil {
						t.Fatal(err)
					}
					if seed := clientSeeds[v]; kind.name == "client" && seed != nil {
						seed(t, old)
					}
					old.close()
				}
				d, found, err := openDB(ctx, path, kind, "", true, nil)
				if err != nil {
					t.Fatalf("migrate from %d: %v", v, err)
				}
				defer d.close()
				if found != v {
					t.Fatalf("found version %d, want %d", found, v)
				}
				if v > 0 {
					got, err := getMeta(ctx, d, "kept")
					if err != nil || string(got) != "from v"+fmt.Sprint(v) {
						t.Fatalf("data lost in migration: %q %v", got, err)
					}
				}
				d.close()
				if kind.name == "client" && clientSeeds[v] != nil {
					checkClientSeed(t, path)
				}
				if check := clientSeedChecks[v]; kind.name == "client" && check != nil {
					check(t, path)
				}
				if got := schemaOf(t, path); got != want {
					t.Fatalf("schema after migrating from %d differs from fresh:\n got %s\nwant %s", v, got, want)
				}
			})
		}
	}
}

// TestMigrationUpgradeAndFailure runs the machinery past the real migrations: a newer
// migration upgrades a populated store; a failing one leaves it at its old version.
func TestMigrationUpgradeAndFailure(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	path := c.Path()
	c.Close()
	migs, _ := loadMigrations(clientKind)
	next := fmt.Sprintf("%04d_", len(migs)+1)

	bad := kindUpTo(t, clientKind, len(migs), map[string]string{next + "bad.sql": "ALTER TABLE contacts ADD COLUMN nick TEXT; THIS IS NOT SQL;"})
	if _, _, err := openDB(ctx, path, bad, "", false, nil); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("failing migration: err = %v", err)
	}
	c, err := OpenClient(ctx, path, []byte("pw"))
	if err != nil {
		t.Fatalf("store unusable after failed migration: %v", err)
	}
	if _, err := c.Contact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	good := kindUpTo(t, clientKind, len(migs), map[string]string{next + "nick.sql": "ALTER TABLE contacts ADD COLUMN nick TEXT NOT NULL DEFAULT 'none';"})
	d, found, err := openDB(ctx, path, good, "", false, nil)
	if err != nil || found != len(migs) {
		t.Fatalf("upgrade: found %d, %v", found, err)
	}
	var nick string
	if err := d.r.QueryRow("SELECT nick FROM contacts WHERE name = 'bob'").Scan(&nick); err != nil || nick != "none" {
		t.Fatalf("nick = %q, %v", nick, err)
	}
	d.close()
	// The current program now refuses the upgraded file, without touching it.
	before := fileHash(t, path)
	if _, err := OpenClient(ctx, path, []byte("pw")); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open upgraded file: %v, want ErrNewerSchema", err)
	}
	if fileHash(t, path) != before {
		t.Fatal("refused file was modified")
	}
}

func TestNewerSchemaRefusedUntouched(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, kind := range []string{"client", "relay"} {
		path := filepath.Join(dir, kind+".db")
		var err error
		if kind == "client" {
			var c *Client
			c, err = CreateClientWith(ctx, path, nil, ClientOptions{})
			if err == nil {
				c.Close()
			}
		} else {
			var r *Relay
			r, err = OpenRelay(ctx, path, RelayOptions{})
			if err == nil {
				r.Close()
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		d := rawDB(t, path)
		if _, err := d.Exec("PRAGMA user_version = 999"); err != nil {
			t.Fatal(err)
		}
		d.Close()
		before := fileHash(t, path)
		if kind == "client" {
			_, err = OpenClient(ctx, path, nil)
		} else {
			_, err = OpenRelay(ctx, path, RelayOptions{})
		}
		if !errors.Is(err, ErrNewerSchema) {
			t.Fatalf("%s: err = %v, want ErrNewerSchema", kind, err)
		}
		if fileHash(t, path) != before {
			t.Fatalf("%s: newer file was modified", kind)
		}
	}
}

func TestOpenRefusesWrongFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenClient(ctx, missing, []byte("pw")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("OpenClient created a file")
	}

	r, err := OpenRelay(ctx, filepath.Join(dir, "relay.db"), RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := OpenClient(ctx, filepath.Join(dir, "relay.db"), nil); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("relay as client: %v", err)
	}

	foreign := filepath.Join(dir, "foreign.db")
	d := rawDB(t, foreign)
	if _, err := d.Exec("CREATE TABLE x (y)"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := OpenRelay(ctx, foreign, RelayOptions{}); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("foreign: %v", err)
	}

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o600)
	if _, err := OpenClient(ctx, garbage, nil); err == nil {
		t.Fatal("garbage file opened")
	}

	c, err := CreateClientWith(ctx, filepath.Join(dir, "c.db"), nil, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	before := fileHash(t, filepath.Join(dir, "c.db"))
	if _, err := CreateClientWith(ctx, filepath.Join(dir, "c.db"), nil, ClientOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("create twice: %v", err)
	}
	if fileHash(t, filepath.Join(dir, "c.db")) != before {
		t.Fatal("create over an existing store modified it")
	}
	if _, err := OpenRelay(ctx, filepath.Join(dir, "r.db"), RelayOptions{Synchronous: "OFF"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("synchronous OFF: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	ctx := t.Context()
	for _, sync := range []struct {
		opt  string
		want int
	}{{"", 2}, {"NORMAL", 1}, {"full", 2}} {
		r, err := OpenRelay(ctx, filepath.Join(t.TempDir(), "r.db"), RelayOptions{Synchronous: sync.opt})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			pool *sql.DB
			name string
		}{{r.db.w, "writer"}, {r.db.r, "reader"}} {
			var mode string
			var fk, syn, busy int
			if err := q.pool.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			q.pool.QueryRow("PRAGMA foreign_keys").Scan(&fk)
			q.pool.QueryRow("PRAGMA synchronous").Scan(&syn)
			q.pool.QueryRow("PRAGMA busy_timeout").Scan(&busy)
			if mode != "wal" || fk != 1 || syn != sync.want || busy != 5000 {
				t.Errorf("%s %q: journal=%s fk=%d sync=%d busy=%d", q.name, sync.opt, mode, fk, syn, busy)
			}
		}
		if _, err := r.db.r.Exec("INSERT INTO meta (key, value) VALUES ('x', x'')"); err == nil {
			t.Error("reader pool accepted a write")
		}
		r.Close()
	}
}

// TestDamagedFile: a store cut short or scribbled over fails with an error, never a panic.
func TestDamagedFile(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	for i := 0; i < 200; i++ {
		c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: make([]byte, 500)}})
	}
	path := c.Path()
	c.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"header":    func(b []byte) []byte { b = append([]byte(nil), b...); copy(b[16:], "xxxxxxxx"); return b },
		"middle":    func(b []byte) []byte { b = append([]byte(nil), b...); copy(b[len(b)/2:], make([]byte, 8192)); return b },
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.db")
			if err := os.WriteFile(p, damage(good), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := OpenClient(ctx, p, []byte("pw"))
			if err != nil {
				return // refused: fine
			}
			defer c.Close()
			_, _, perr := c.Messages(ctx, "bob", Cursor{}, MaxPage)
			if c.IntegrityCheck(ctx) == nil && perr != nil {
				t.Fatalf("integrity ok but reading failed: %v", perr)
			}
		})
	}
}

// seedKey is the storage key of the seeded old-version client files (demo mode).
var seedKey = []byte("0123456789abcdef0123456789abcdef")

// clientSeeds fill a client file at schema version v with rows written in that
// version's schema, frozen here as SQL, so migrations are tested on real data. A
// migration that changes columns adds the seed for the version before it.
var clientSeeds = map[int]func(*testing.T, *db){
	1: func(t *testing.T, d *db) {
		k := &keyring{key: seedKey}
		body, _ := k.seal("messages", "body", "7", []byte("written by v1"))
		state, _ := k.seal("sessions", "state", "s1", []byte("v1 state"))
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO keyring (id, mode, wrapped) VALUES (1, 'none', ?)", []any{seedKey}},
			{"INSERT INTO cards (id, name, data, first_seen, verified) VALUES ('cb', 'bob', x'00', 1, 1)", nil},
			{"INSERT INTO contacts (name, card_id, added_at, unread, last_message_at) VALUES ('bob', 'cb', 1, 1, 2)", nil},
			{"INSERT INTO messages (id, contact, direction, body_sealed, state, client_id) VALUES (7, 'bob', 2, ?, 2, 'c7')", []any{body}},
			{"INSERT INTO sessions (id, peer_card_id, active, state_sealed, created_at, updated_at) VALUES ('s1', 'cb', 1, ?, 1, 1)", []any{state}},
		} {
			if _, err := d.w.Exec(q.sql, q.args...); err != nil {
				t.Fatalf("seed v1: %s: %v", q.sql, err)
			}
		}
	},
}

func init() {
	// Version 3: the v1 rows, and the outbox as version 3 wrote it while a message
	// waited for its session: a payload prefix, and after the handshake a second item
	// "<id>.e" with the ciphertext.
	clientSeeds[3] = func(t *testing.T, d *db) {
		clientSeeds[1](t, d)
		k := &keyring{key: seedKey}
		body8, _ := k.seal("messages", "body", "8", []byte("waits for its session"))
		body9, _ := k.seal("messages", "body", "9", []byte("encrypted before a crash"))
		ordinary, _ := k.seal("outbox", "payload", "o1", []byte("ciphertext o1"))
		waiting, _ := k.seal("outbox", "payload", "w1", []byte(legacyAwaitingPrefix+"plain w1"))
		waiting2, _ := k.seal("outbox", "payload", "w2", []byte(legacyAwaitingPrefix+"plain w2"))
		encrypted2, _ := k.seal("outbox", "payload", "w2.e", []byte("ciphertext w2"))
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO messages (id, contact, direction, body_sealed, state, client_id) VALUES (8, 'bob', 2, ?, 0, 'w1')", []any{body8}},
			{"INSERT INTO messages (id, contact, direction, body_sealed, state, client_id) VALUES (9, 'bob', 2, ?, 0, 'w2')", []any{body9}},
			{"INSERT INTO outbox (seq, client_id, recipient, payload_sealed, message_id, created_at) VALUES (1, 'w2', 'bob', ?, 9, 1)", []any{waiting2}},
			{"INSERT INTO outbox (seq, client_id, recipient, payload_sealed, message_id, created_at) VALUES (2, 'o1', 'bob', ?, 0, 1)", []any{ordinary}},
			{"INSERT INTO outbox (seq, client_id, recipient, payload_sealed, message_id, created_at) VALUES (3, 'w1', 'bob', ?, 8, 1)", []any{waiting}},
			{"INSERT INTO outbox (seq, client_id, recipient, payload_sealed, message_id, created_at) VALUES (4, 'w2.e', 'bob', ?, 0, 1)", []any{encrypted2}},
		} {
			if _, err := d.w.Exec(q.sql, q.args...); err != nil {
				t.Fatalf("seed v3: %s: %v", q.sql, err)
			}
		}
	}
}

func init() {
	// Version 11: the v1 rows (their message placed as version 5 placed it), and carol,
	// blocked, with a message that carries a seq.
	clientSeeds[11] = func(t *testing.T, d *db) {
		clientSeeds[1](t, d)
		k := &keyring{key: seedKey}
		body, _ := k.seal("messages", "body", "20", []byte("from carol before the block"))
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE messages SET ord = id * 1048576", nil},
			{"INSERT INTO cards (id, name, data, first_seen) VALUES ('cc', 'carol', x'00', 1)", nil},
			{"INSERT INTO contacts (name, card_id, added_at, blocked, block_synced) VALUES ('carol', 'cc', 1, 1, 1)", nil},
			{"INSERT INTO messages (id, contact, direction, body_sealed, sent_at, received_at, state, client_id, seq, ord) VALUES (20, 'carol', 1, ?, 3, 3, 2, 'k20', 4, 20971520)", []any{body}},
		} {
			if _, err := d.w.Exec(q.sql, q.args...); err != nil {
				t.Fatalf("seed v11: %s: %v", q.sql, err)
			}
		}
	}
}

func init() {
	// Version 12: the version 11 rows, carol unblocked after her message 20 (seq 4),
	// then message 21 (seq 6) from her.
	clientSeeds[12] = func(t *testing.T, d *db) {
		clientSeeds[11](t, d)
		k := &keyring{key: seedKey}
		body, _ := k.seal("messages", "body", "21", []byte("from carol after the unblock"))
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE contacts SET blocked = 0, unblocked_after = 20 WHERE name = 'carol'", nil},
			{"INSERT INTO messages (id, contact, direction, body_sealed, sent_at, received_at, state, client_id, seq, ord) VALUES (21, 'carol', 1, ?, 5, 5, 2, 'k21', 6, 22020096)", []any{body}},
		} {
			if _, err := d.w.Exec(q.sql, q.args...); err != nil {
				t.Fatalf("seed v12: %s: %v", q.sql, err)
			}
		}
	}
}

// clientSeedChecks read back, through the current API, what a seed of that version
// holds beyond the v1 rows checkClientSeed reads.
var clientSeedChecks = map[int]func(*testing.T, string){
	3: func(t *testing.T, path string) {
		c, err := OpenClient(t.Context(), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out, err := c.Outbox(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(out))
		for i, it := range out {
			got[i] = fmt.Sprintf("%s→%s msg=%d awaiting=%v %q", it.ClientID, it.To, it.MessageID, it.AwaitingSession, it.Payload)
		}
		want := []string{
			`w2.e→bob msg=9 awaiting=false "ciphertext w2"`, // the committed ciphertext, in w2's place
			`o1→bob msg=0 awaiting=false "ciphertext o1"`,
			`w1→bob msg=8 awaiting=true "plain w1"`,
		}
		if !slices.Equal(got, want) {
			t.Fatalf("outbox after migrating the awaiting-session state:\n got %q\nwant %q", got, want)
		}
		m, ok, err := c.SettleOutbox(t.Context(), "w2.e", "")
		if err != nil || !ok || m.ID != 9 || m.State != Sent || string(m.Body) != "encrypted before a crash" {
			t.Fatalf("settling the migrated item: %+v %v %v", m, ok, err)
		}
	},
	// A contact blocked before version 12 and unblocked after it: the messages from
	// before the unblock are not marked as after it, the next one is.
	11: func(t *testing.T, path string) {
		ctx := t.Context()
		c, err := OpenClient(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ct, err := c.Contact(ctx, "carol"); err != nil || !ct.Blocked || !ct.BlockSynced {
			t.Fatalf("carol after migration: %+v %v", ct, err)
		}
		if err := c.SetContactBlocked(ctx, "carol", false); err != nil {
			t.Fatal(err)
		}
		if got := unblocksAfterReceiving(t, c, "carol", 9); !maps.Equal(got, map[uint64]int{4: 0, 9: 1}) {
			t.Fatalf("carol's marks after the unblock: %v, want 9 after it and 4 not", got)
		}
	},
	// A contact unblocked under version 12 (unblocked_after) and again after version
	// 13: the first unblock is kept as a point, the second adds one; a contact version
	// 12 never saw unblocked has none.
	12: func(t *testing.T, path string) {
		ctx := t.Context()
		c, err := OpenClient(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, b := range []bool{true, false} {
			if err := c.SetContactBlocked(ctx, "carol", b); err != nil {
				t.Fatal(err)
			}
		}
		got := unblocksAfterReceiving(t, c, "carol", 9)
		if want := map[uint64]int{4: 0, 6: 1, 9: 2}; !maps.Equal(got, want) {
			t.Fatalf("carol's unblocks before each message: %v, want %v", got, want)
		}
		if _, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte("seq 1"), State: Delivered, Seq: 1, SentAt: t0}}); err != nil {
			t.Fatal(err)
		}
		if marks, err := c.IncomingSeqs(ctx, "bob"); err != nil || len(marks) != 1 || marks[0].UnblocksBefore != 0 {
			t.Fatalf("bob, never unblocked: %+v %v", marks, err)
		}
	},
}

// checkClientSeed reads the seeded rows back through the current API.
func checkClientSeed(t *testing.T, path string) {
	t.Helper()
	ctx := t.Context()
	c, err := OpenClient(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.MessageByClientID(ctx, "c7")
	if err != nil || string(m.Body) != "written by v1" || m.State != Delivered || m.Contact != "bob" {
		t.Fatalf("seeded message after migration: %+v %v", m, err)
	}
	// Message order (payload version 2): kept, with room between messages, no seq.
	if m.Seq != 0 || m.Order != 7<<20 {
		t.Fatalf("seeded message after migration: seq %d, order %d; want 0, 7<<20", m.Seq, m.Order)
	}
	if n, err := c.NextSendSeq(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("NextSendSeq after migration = %d, %v; want 1", n, err)
	}
	ss, err := c.Sessions(ctx, "cb")
	if err != nil || len(ss) != 1 || string(ss[0].State) != "v1 state" || ss[0].Generation != 0 {
		t.Fatalf("seeded session after migration: %+v %v", ss, err)
	}
	// A session sealed before generations (0) is written back at generation 1.
	ss[0].State = []byte("next state")
	if err := c.PutSession(ctx, ss[0]); err != nil {
		t.Fatalf("writing a pre-generation session: %v", err)
	}
	if ss, err = c.Sessions(ctx, "cb"); err != nil || len(ss) != 1 || string(ss[0].State) != "next state" || ss[0].Generation != 1 {
		t.Fatalf("session written after migration: %+v %v", ss, err)
	}
	if ct, err := c.Contact(ctx, "bob"); err != nil || !ct.Consented {
		t.Fatalf("a contact from before version 5 must keep getting receipts: %+v %v", ct, err)
	}
	ct, err := c.Contact(ctx, "bob")
	if err != nil || !ct.Verified || ct.Unread != 1 {
		t.Fatalf("seeded contact after migration: %+v %v", ct, err)
	}
	if id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte("new")}}); err != nil || id <= 7 {
		t.Fatalf("receive after migration: id %d, %v", id, err)
	}
}

// unblocksAfterReceiving stores a message numbered seq from contact and returns, for
// each number of the contact's incoming messages, the unblocks before it.
func unblocksAfterReceiving(t *testing.T, c *Client, contact string, seq uint64) map[uint64]int {
	t.Helper()
	if _, err := c.CommitReceive(t.Context(), ReceiveTx{Message: &Message{Contact: contact, Body: []byte("after the unblock"), State: Delivered, Seq: seq, SentAt: t0}}); err != nil {
		t.Fatal(err)
	}
	return unblocksBefore(t, c, contact)
}

// unblocksBefore maps each of contact's incoming seqs to its UnblocksBefore.
func unblocksBefore(t *testing.T, c *Client, contact string) map[uint64]int {
	t.Helper()
	marks, err := c.IncomingSeqs(t.Context(), contact)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[uint64]int)
	for _, m := range marks {
		got[m.Seq] = m.UnblocksBefore
	}
	return got
}
