package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

var t0 = time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)

// dirStore is what these tests ask of a directory: the SQLite store and Directory
// both must pass them with the same assertions.
type dirStore interface {
	server.Directory
	CreateAccountInvited(ctx context.Context, a storage.Account, inviteHash []byte, now time.Time) error
	CreateInvite(ctx context.Context, inv storage.Invite) error
	ReplacedCard(ctx context.Context, cardID string) (storage.Account, error)
	SetRecovery(ctx context.Context, name, cardID string, verifier []byte) error
	HasRecovery(ctx context.Context, name string) (bool, error)
	RecoverAccount(ctx context.Context, name string, check func(stored []byte) bool, newAcc storage.Account) (string, error)
	DeleteAccount(ctx context.Context, name, cardID string) (int, error)
	TouchLogins(ctx context.Context, logins map[string]time.Time) error
	LastActive(ctx context.Context, name string) (time.Time, error)
	IdleAccounts(ctx context.Context, cutoff time.Time, limit int) ([]storage.IdleAccount, error)
	Block(ctx context.Context, blocker, blocked string, at time.Time, max int) error
	Unblock(ctx context.Context, blocker, blocked string) error
	Blocks(ctx context.Context) (map[string][]string, error)
}

var (
	_ dirStore = (*storage.Relay)(nil)
	_ dirStore = (*Directory)(nil)
)

// testSealKey is a fixed seal key for tests.
var testSealKey = bytes.Repeat([]byte{7}, SealKeySize)

// connect connects to url with a test deadline on every request.
func connect(t testing.TB, urls ...string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{URLs: urls, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newTestDirectory(t testing.TB, c *Conn) *Directory {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := NewDirectory(ctx, c, DirOptions{SealKey: testSealKey})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// eachStore runs f against a fresh SQLite store and a fresh Directory on a
// single in-process JetStream server.
func eachStore(t *testing.T, f func(t *testing.T, d dirStore)) {
	t.Run("sqlite", func(t *testing.T) {
		r, err := storage.OpenRelay(t.Context(), filepath.Join(t.TempDir(), "relay.db"), storage.RelayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		f(t, r)
	})
	t.Run("jetstream", func(t *testing.T) {
		ns := natstest.Single(t)
		f(t, newTestDirectory(t, connect(t, ns.URL())))
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDirectoryAccountsAndPreKeys is storage's TestRelayAccountsAndPreKeys over both
// stores.
func TestDirectoryAccountsAndPreKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, r dirStore) {
		ctx := testCtx(t)
		if err := r.CreateAccount(ctx, storage.Account{Name: "bob", CardID: "c1", Card: []byte("card1"), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := r.CreateAccount(ctx, storage.Account{Name: "bob", CardID: "c9"}); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("name twice: %v", err)
		}
		if err := r.CreateAccount(ctx, storage.Account{Name: "robert", CardID: "c1"}); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("card twice: %v", err)
		}
		if err := r.CreateAccount(ctx, storage.Account{Name: "carol", CardID: "c3", Card: []byte("card3")}); err != nil {
			t.Fatal(err)
		}
		if a, err := r.AccountByCardID(ctx, "c1"); err != nil || a.Name != "bob" || !a.CreatedAt.Equal(t0) || string(a.Card) != "card1" {
			t.Fatalf("by card %+v %v", a, err)
		}
		if _, err := r.AccountByName(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := r.AccountByCardID(ctx, "c404"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}

		keys := []storage.StoredPreKey{{Kind: 1, ID: 1, Data: []byte("spk1")}, {Kind: 3, ID: 1, Data: []byte("kem1")}}
		for i := 1; i <= 10; i++ {
			keys = append(keys, storage.StoredPreKey{Kind: 2, ID: uint32(i), Data: []byte("opk")})
		}
		var full *storage.TooManyPreKeysError
		if n, err := r.PutPreKeys(ctx, "c1", keys, 8); !errors.As(err, &full) || !errors.Is(err, storage.ErrTooManyPreKeys) || n != 0 || *full != (storage.TooManyPreKeysError{Kind: 2, Stored: 0, Adding: 10, Max: 8}) {
			t.Fatalf("10 one-time keys over a cap of 8: stored %d, %v", n, err)
		}
		if c, _ := r.CountPreKeys(ctx, "c1", 1); c != 0 {
			t.Fatalf("an upload refused whole stored its signed prekey")
		}
		n, err := r.PutPreKeys(ctx, "c1", keys[:10], 8)
		if err != nil || n != 10 {
			t.Fatalf("stored %d (want 2 + 8 one-time), %v", n, err)
		}
		if n, err := r.PutPreKeys(ctx, "c1", []storage.StoredPreKey{{Kind: 1, ID: 2, Data: []byte("spk2")}, {Kind: 2, ID: 5}}, 8); !errors.Is(err, storage.ErrTooManyPreKeys) || n != 0 {
			t.Fatalf("a stored id over the cap: stored %d, %v (it counts, as PROTOCOL.md says)", n, err)
		}
		if n, err := r.PutPreKeys(ctx, "c1", []storage.StoredPreKey{{Kind: 1, ID: 2, Data: []byte("spk2")}}, 8); err != nil || n != 1 {
			t.Fatalf("stored %d: signed replaced, %v", n, err)
		}
		if n, _ := r.PutPreKeys(ctx, "c1", []storage.StoredPreKey{{Kind: 4, ID: 7, Data: []byte("k7")}, {Kind: 4, ID: 7, Data: []byte("again")}, {Kind: 4, ID: 3, Data: []byte("k3")}}, 0); n != 2 {
			t.Fatalf("stored %d KEM one-time keys, want 2 (a repeated id is skipped)", n)
		}
		if k, err := r.LatestPreKey(ctx, "c1", 1); err != nil || k.ID != 2 || string(k.Data) != "spk2" || k.Kind != 1 {
			t.Fatalf("latest %+v %v", k, err)
		}
		if _, err := r.LatestPreKey(ctx, "c3", 1); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("latest of none: %v", err)
		}
		if c, _ := r.CountPreKeys(ctx, "c1", 1); c != 1 {
			t.Fatalf("%d signed prekeys kept", c)
		}
		ids, _ := r.PreKeyIDs(ctx, "c1", 2)
		if fmt.Sprint(ids) != "[1 2 3 4 5 6 7 8]" {
			t.Fatalf("ids %v", ids)
		}
		if ids, err := r.PreKeyIDs(ctx, "c3", 2); err != nil || len(ids) != 0 || ids == nil {
			t.Fatalf("ids of none: %#v %v", ids, err)
		}
		if k, _ := r.TakePreKey(ctx, "c1", 4); k.ID != 3 || string(k.Data) != "k3" {
			t.Fatalf("took %+v, want the lowest KEM key", k)
		}
		if k, _ := r.TakePreKey(ctx, "c1", 2); k.ID != 1 || k.Kind != 2 || string(k.Data) != "opk" {
			t.Fatalf("took %+v, want lowest", k)
		}
		if _, err := r.TakePreKey(ctx, "c1", 1); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("took the signed prekey: %v", err)
		}
		if _, err := r.TakePreKey(ctx, "c3", 2); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("take from empty: %v", err)
		}

		if err := r.ReplaceCard(ctx, "bob", "", storage.Account{CardID: "c3"}); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("replace with carol's card: %v", err)
		}
		if err := r.ReplaceCard(ctx, "nobody", "", storage.Account{CardID: "c7"}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		// From a card that is not the account's: nothing changes.
		if err := r.ReplaceCard(ctx, "bob", "c9", storage.Account{CardID: "c8"}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("replace from a card bob does not have: %v", err)
		}
		if err := r.ReplaceCard(ctx, "bob", "c1", storage.Account{CardID: "c2", Card: []byte("card2")}); err != nil {
			t.Fatal(err)
		}
		a, _ := r.AccountByName(ctx, "bob")
		if a.CardID != "c2" || string(a.Card) != "card2" || !a.CreatedAt.Equal(t0) {
			t.Fatalf("after replace %+v", a)
		}
		for kind := uint8(1); kind <= 4; kind++ {
			if c, _ := r.CountPreKeys(ctx, "c1", kind); c != 0 {
				t.Fatalf("old card's prekeys of kind %d kept", kind)
			}
		}
		if _, err := r.AccountByCardID(ctx, "c1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal("old card still resolves")
		}
		if old, err := r.ReplacedCard(ctx, "c1"); err != nil || old.Name != "bob" || string(old.Card) != "card1" {
			t.Fatalf("replaced card %+v %v", old, err)
		}
		if _, err := r.ReplacedCard(ctx, "c2"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("current card as replaced: %v", err)
		}
		if a, err := r.AccountByCardID(ctx, "c2"); err != nil || a.Name != "bob" {
			t.Fatalf("new card %+v %v", a, err)
		}
		if err := r.SetMeta(ctx, "relay-key", []byte{1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := r.SetMeta(ctx, "relay-key", []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if v, _ := r.Meta(ctx, "relay-key"); len(v) != 3 {
			t.Fatal("meta")
		}
		if _, err := r.Meta(ctx, "unset"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
	})
}

// TestDirectoryInvites is storage's TestRelayInvites over both stores.
func TestDirectoryInvites(t *testing.T) {
	eachStore(t, func(t *testing.T, r dirStore) {
		ctx := testCtx(t)
		h := sha256.Sum256([]byte("code"))
		now := time.Unix(1_800_000_000, 0)
		if err := r.CreateInvite(ctx, storage.Invite{Hash: h[:], UsesLeft: 2, ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := r.CreateInvite(ctx, storage.Invite{Hash: h[:], UsesLeft: 2}); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("invite twice: %v", err)
		}
		if err := r.CreateInvite(ctx, storage.Invite{Hash: h[:4], UsesLeft: 2}); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("short hash: %v", err)
		}
		acc := func(name string) storage.Account {
			return storage.Account{Name: name, CardID: "card-" + name, Card: []byte("c"), CreatedAt: now}
		}
		other := sha256.Sum256([]byte("other"))
		if err := r.CreateAccountInvited(ctx, acc("a"), other[:], now); !errors.Is(err, storage.ErrBadInvite) {
			t.Fatalf("unknown invite: %v", err)
		}
		if err := r.CreateAccountInvited(ctx, acc("a"), h[:], now.Add(2*time.Hour)); !errors.Is(err, storage.ErrBadInvite) {
			t.Fatalf("expired invite: %v", err)
		}
		if err := r.CreateAccountInvited(ctx, acc("a"), h[:], now); err != nil {
			t.Fatal(err)
		}
		if err := r.CreateAccountInvited(ctx, acc("a"), h[:], now); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("taken name: %v", err)
		}
		if err := r.CreateAccountInvited(ctx, acc("b"), h[:], now); err != nil {
			t.Fatalf("second use (the taken name kept it): %v", err)
		}
		if err := r.CreateAccountInvited(ctx, acc("c"), h[:], now); !errors.Is(err, storage.ErrBadInvite) {
			t.Fatalf("used-up invite: %v", err)
		}
		if _, err := r.AccountByName(ctx, "c"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("refused registration stored: %v", err)
		}
		// A used-up invite is gone: the same code may be issued again.
		if err := r.CreateInvite(ctx, storage.Invite{Hash: h[:], UsesLeft: 1}); err != nil {
			t.Fatalf("re-issue a used-up code: %v", err)
		}
	})
}

// TestDirectoryBlocks is storage's TestRelayBlocks over both stores.
func TestDirectoryBlocks(t *testing.T) {
	eachStore(t, func(t *testing.T, r dirStore) {
		ctx := testCtx(t)
		for _, b := range []string{"mallory", "mallory", "eve"} {
			if err := r.Block(ctx, "alice", b, t0, 2); err != nil {
				t.Fatalf("block %s: %v", b, err)
			}
		}
		if err := r.Block(ctx, "alice", "trent", t0, 2); !errors.Is(err, storage.ErrTooManyBlocks) {
			t.Fatalf("third block over a cap of 2: %v", err)
		}
		if err := r.Block(ctx, "bob", "mallory", t0, 2); err != nil {
			t.Fatal(err)
		}
		if err := r.Block(ctx, "dave", "eve", t0, 2); err != nil {
			t.Fatal(err)
		}
		if err := r.Unblock(ctx, "alice", "eve"); err != nil {
			t.Fatal(err)
		}
		if err := r.Unblock(ctx, "alice", "nobody"); err != nil {
			t.Fatal(err)
		}
		if err := r.Unblock(ctx, "dave", "eve"); err != nil {
			t.Fatal(err)
		}
		got, err := r.Blocks(ctx)
		if err != nil || len(got) != 2 || strings.Join(got["alice"], ",") != "mallory" || strings.Join(got["bob"], ",") != "mallory" {
			t.Fatalf("blocks %v, %v", got, err)
		}
	})
}

// TestDirectoryRecoveryAndDeletion: recovery verifiers, recover, delete and the
// idle-account listing behave the same on both stores.
func TestDirectoryRecoveryAndDeletion(t *testing.T) {
	eachStore(t, func(t *testing.T, r dirStore) {
		ctx := testCtx(t)
		if err := r.CreateAccount(ctx, storage.Account{Name: "ann", CardID: "a1", Card: []byte("ann1"), CreatedAt: t0, Recovery: []byte("v1")}); err != nil {
			t.Fatal(err)
		}
		if err := r.CreateAccount(ctx, storage.Account{Name: "ben", CardID: "b1", Card: []byte("ben1"), CreatedAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if ok, err := r.HasRecovery(ctx, "ben"); err != nil || ok {
			t.Fatalf("ben has recovery: %v %v", ok, err)
		}
		if _, err := r.HasRecovery(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if err := r.SetRecovery(ctx, "ben", "a1", []byte("x")); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("set recovery with another card: %v", err)
		}
		if err := r.SetRecovery(ctx, "ben", "b1", []byte("vb")); err != nil {
			t.Fatal(err)
		}
		if ok, _ := r.HasRecovery(ctx, "ben"); !ok {
			t.Fatal("ben's recovery not set")
		}
		eq := func(want string) func([]byte) bool { return func(b []byte) bool { return string(b) == want } }
		newAcc := storage.Account{Name: "ann", CardID: "a2", Card: []byte("ann2"), CreatedAt: t0.Add(2 * time.Hour), Recovery: []byte("v2")}
		if _, err := r.RecoverAccount(ctx, "ann", eq("wrong"), newAcc); !errors.Is(err, storage.ErrRecoveryRefused) {
			t.Fatalf("wrong code: %v", err)
		}
		if _, err := r.RecoverAccount(ctx, "nobody", eq("v1"), newAcc); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("no account: %v", err)
		}
		if _, err := r.RecoverAccount(ctx, "ann", eq("v1"), storage.Account{CardID: "b1", Card: []byte("x")}); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("ben's card: %v", err)
		}
		if a, _ := r.AccountByName(ctx, "ann"); a.CardID != "a1" {
			t.Fatalf("a refused recovery changed the card: %+v", a)
		}
		if _, err := r.PutPreKeys(ctx, "a1", []storage.StoredPreKey{{Kind: 2, ID: 1, Data: []byte("k")}}, 0); err != nil {
			t.Fatal(err)
		}
		old, err := r.RecoverAccount(ctx, "ann", eq("v1"), newAcc)
		if err != nil || old != "a1" {
			t.Fatalf("recover: %q %v", old, err)
		}
		if a, _ := r.AccountByName(ctx, "ann"); a.CardID != "a2" || string(a.Card) != "ann2" || !a.CreatedAt.Equal(newAcc.CreatedAt) {
			t.Fatalf("after recovery %+v", a)
		}
		if n, _ := r.CountPreKeys(ctx, "a1", 2); n != 0 {
			t.Fatal("the old card's prekeys were kept")
		}
		if _, err := r.RecoverAccount(ctx, "ann", eq("v1"), newAcc); !errors.Is(err, storage.ErrRecoveryRefused) {
			t.Fatalf("the used code again: %v", err)
		}
		if rc, err := r.ReplacedCard(ctx, "a1"); err != nil || rc.Name != "ann" || string(rc.Card) != "ann1" {
			t.Fatalf("replaced %+v %v", rc, err)
		}

		// Idle accounts: ann recovered at t0+2h, ben registered at t0+1h.
		if err := r.TouchLogins(ctx, map[string]time.Time{"ben": t0.Add(3 * time.Hour), "nobody": t0}); err != nil {
			t.Fatal(err)
		}
		if err := r.TouchLogins(ctx, map[string]time.Time{"ben": t0.Add(2 * time.Hour)}); err != nil { // earlier: kept later
			t.Fatal(err)
		}
		if at, err := r.LastActive(ctx, "ben"); err != nil || !at.Equal(t0.Add(3*time.Hour)) {
			t.Fatalf("ben last active %v %v", at, err)
		}
		idle, err := r.IdleAccounts(ctx, t0.Add(4*time.Hour), 10)
		if err != nil || len(idle) != 2 || idle[0].Name != "ann" || idle[0].CardID != "a2" || idle[1].Name != "ben" || !idle[1].LastActive.Equal(t0.Add(3*time.Hour)) {
			t.Fatalf("idle %+v %v", idle, err)
		}
		if idle, _ := r.IdleAccounts(ctx, t0.Add(4*time.Hour), 1); len(idle) != 1 || idle[0].Name != "ann" {
			t.Fatalf("idle limit 1: %+v", idle)
		}
		if idle, _ := r.IdleAccounts(ctx, t0.Add(150*time.Minute), 10); len(idle) != 1 || idle[0].Name != "ann" {
			t.Fatalf("idle before t0+2.5h: %+v", idle)
		}

		// Deletion takes the account, its card, prekeys, replaced cards and blocks.
		if err := r.Block(ctx, "ann", "ben", t0, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PutPreKeys(ctx, "a2", []storage.StoredPreKey{{Kind: 2, ID: 1, Data: []byte("k")}}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := r.DeleteAccount(ctx, "ann", "a1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete with the old card: %v", err)
		}
		if _, err := r.DeleteAccount(ctx, "ann", "a2"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AccountByName(ctx, "ann"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := r.AccountByCardID(ctx, "a2"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := r.ReplacedCard(ctx, "a1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if n, _ := r.CountPreKeys(ctx, "a2", 2); n != 0 {
			t.Fatal("deleted card's prekeys kept")
		}
		if b, _ := r.Blocks(ctx); len(b["ann"]) != 0 {
			t.Fatalf("deleted account's blocks kept: %v", b)
		}
		// The name is free again, for a new card.
		if err := r.CreateAccount(ctx, storage.Account{Name: "ann", CardID: "a3", Card: []byte("ann3")}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.DeleteAccount(ctx, "ann", "a3"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.DeleteAccount(ctx, "ann", "a3"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})
}

// TestTakePreKeyAcrossNodes: two relay nodes (two NATS connections, each with many
// goroutines) taking one card's 100 one-time prekeys at once hand out each key
// exactly once; the rest find none.
func TestTakePreKeyAcrossNodes(t *testing.T) {
	ns := natstest.Single(t)
	a := newTestDirectory(t, connect(t, ns.URL()))
	b := newTestDirectory(t, connect(t, ns.URL()))
	ctx := testCtx(t)
	const n = 100
	keys := make([]storage.StoredPreKey, n)
	for i := range keys {
		keys[i] = storage.StoredPreKey{Kind: 2, ID: uint32(i + 1), Data: []byte(fmt.Sprint("opk", i+1))}
	}
	if stored, err := a.PutPreKeys(ctx, "card", keys, 0); err != nil || stored != n {
		t.Fatalf("stored %d, %v", stored, err)
	}
	const takers = 16 // per node
	var wg sync.WaitGroup
	got := make(chan uint32, n)
	errs := make(chan error, 2*takers)
	start := make(chan struct{})
	for _, d := range []*Directory{a, b} {
		for range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					k, err := d.TakePreKey(ctx, "card", 2)
					if errors.Is(err, storage.ErrNotFound) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					if string(k.Data) != fmt.Sprint("opk", k.ID) {
						errs <- fmt.Errorf("key %d has data %q", k.ID, k.Data)
						return
					}
					got <- k.ID
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(got)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for id := range got {
		if seen[id] {
			t.Fatalf("key %d handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct keys, want %d", len(seen), n)
	}
}

// TestNameRegisteredOnceAcrossNodes: nodes registering one name (each with its own
// card) at once: exactly one wins, the others get ErrExists, and the card index
// holds only the winner.
func TestNameRegisteredOnceAcrossNodes(t *testing.T) {
	ns := natstest.Single(t)
	dirs := []*Directory{newTestDirectory(t, connect(t, ns.URL())), newTestDirectory(t, connect(t, ns.URL()))}
	ctx := testCtx(t)
	const tries = 16
	var wg sync.WaitGroup
	won := make(chan string, tries)
	errs := make(chan error, tries)
	start := make(chan struct{})
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			card := fmt.Sprint("card", i)
			err := dirs[i%2].CreateAccount(ctx, storage.Account{Name: "popular", CardID: card, Card: []byte(card)})
			switch {
			case err == nil:
				won <- card
			case !errors.Is(err, storage.ErrExists):
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(won)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var winners []string
	for c := range won {
		winners = append(winners, c)
	}
	if len(winners) != 1 {
		t.Fatalf("%d registrations of one name won: %v", len(winners), winners)
	}
	for i := range tries {
		card := fmt.Sprint("card", i)
		a, err := dirs[0].AccountByCardID(ctx, card)
		if card == winners[0] {
			if err != nil || a.Name != "popular" {
				t.Fatalf("winner's card: %+v %v", a, err)
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("loser's card %s resolves: %+v %v", card, a, err)
		}
	}
}

// TestMetaSealed: meta values are sealed in the bucket (the relay's seed is not
// there in the clear), open on another node with the same key, and do not open with
// another key.
func TestMetaSealed(t *testing.T) {
	ns := natstest.Single(t)
	c := connect(t, ns.URL())
	d := newTestDirectory(t, c)
	ctx := testCtx(t)
	secret := bytes.Repeat([]byte("S"), 32)
	if err := d.CreateMeta(ctx, "relay_ed25519_seed", secret); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateMeta(ctx, "relay_ed25519_seed", []byte("other")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	e, err := d.b.get(ctx, keyMeta("relay_ed25519_seed"))
	if err != nil || !e.exists() {
		t.Fatal(err)
	}
	if bytes.Contains(e.val, secret) {
		t.Fatal("the secret is in the bucket in the clear")
	}
	d2 := newTestDirectory(t, connect(t, ns.URL()))
	if v, err := d2.Meta(ctx, "relay_ed25519_seed"); err != nil || !bytes.Equal(v, secret) {
		t.Fatalf("other node: %x %v", v, err)
	}
	wrong, err := NewDirectory(ctx, c, DirOptions{SealKey: bytes.Repeat([]byte{8}, SealKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Meta(ctx, "relay_ed25519_seed"); !errors.Is(err, ErrSealKey) {
		t.Fatalf("wrong key: %v", err)
	}
	// A value moved to another meta key does not open there.
	if _, err := d.b.put(ctx, kvOp{key: keyMeta("blob_capability_key"), val: e.val}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Meta(ctx, "blob_capability_key"); !errors.Is(err, ErrSealKey) {
		t.Fatalf("moved value: %v", err)
	}
}

// TestRegistrationLeftHalfway: a registration whose node died between its two writes
// left the card's index entry without an account: the card does not resolve, the
// same registration goes through later, and the card stays its name's.
func TestRegistrationLeftHalfway(t *testing.T) {
	ns := natstest.Single(t)
	d := newTestDirectory(t, connect(t, ns.URL()))
	ctx := testCtx(t)
	if _, err := d.b.put(ctx, kvOp{key: keyCard("c-zoe"), val: encodeCard("zoe")}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AccountByCardID(ctx, "c-zoe"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a card without its account: %v", err)
	}
	if err := d.CreateAccount(ctx, storage.Account{Name: "yan", CardID: "c-zoe"}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("zoe's card for another name: %v", err)
	}
	if err := d.CreateAccount(ctx, storage.Account{Name: "zoe", CardID: "c-zoe", Card: []byte("zoe")}); err != nil {
		t.Fatal(err)
	}
	if a, err := d.AccountByCardID(ctx, "c-zoe"); err != nil || a.Name != "zoe" {
		t.Fatalf("after the registration: %+v %v", a, err)
	}
}

// TestManyTransactionsAtOnce: 120 transactions started at once from one node (more
// than the 50 JetStream keeps open per stream; one it refuses for that is tried
// again) all go through.
func TestManyTransactionsAtOnce(t *testing.T) {
	ns := natstest.Single(t)
	// 120 transactions at once wait in line for the server's syncs: under -race on a
	// loaded 2-core machine one took longer than connect's 5 s per request. The test
	// asserts what commits, not how fast.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(cctx, Options{URLs: []string{ns.URL()}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	d := newTestDirectory(t, c)
	ctx, cancelAll := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancelAll()
	const n = 120
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			card := fmt.Sprint("card", i)
			_, err := d.PutPreKeys(ctx, card, []storage.StoredPreKey{{Kind: 1, ID: 1, Data: []byte("s")}, {Kind: 2, ID: 1, Data: []byte("o")}}, 0)
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if c, err := d.CountPreKeys(ctx, fmt.Sprint("card", i), 2); err != nil || c != 1 {
			t.Fatalf("card %d: %d one-time keys, %v", i, c, err)
		}
	}
}

// TestPreKeysOverMaxPayload: prekeys that would not fit one NATS message are refused
// with a message naming the limit, and nothing is stored.
func TestPreKeysOverMaxPayload(t *testing.T) {
	ns := natstest.Single(t)
	c := connect(t, ns.URL())
	d := newTestDirectory(t, c)
	ctx := testCtx(t)
	big := make([]byte, c.NATS().MaxPayload()/4)
	keys := []storage.StoredPreKey{{Kind: 4, ID: 1, Data: big}, {Kind: 4, ID: 2, Data: big}, {Kind: 4, ID: 3, Data: big}, {Kind: 4, ID: 4, Data: big}}
	_, err := d.PutPreKeys(ctx, "card", keys, 0)
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("over max_payload: %v", err)
	}
	if n, _ := d.CountPreKeys(ctx, "card", 4); n != 0 {
		t.Fatalf("%d keys stored", n)
	}
}

// TestStoredCapsAcrossNodes: the caps on what an account stores hold when two nodes
// write at once: one-time prekeys of a kind (max_one_time_prekeys), uploaded by both
// nodes in frames each under the cap, are judged frame by frame: a frame is stored
// whole or refused ErrTooManyPreKeys, and they stop at the cap; blocks (max_blocks),
// added by both nodes at once, stop at the cap, the rest refused ErrTooManyBlocks.
func TestStoredCapsAcrossNodes(t *testing.T) {
	ns := natstest.Single(t)
	dirs := []*Directory{newTestDirectory(t, connect(t, ns.URL())), newTestDirectory(t, connect(t, ns.URL()))}
	ctx := testCtx(t)
	const max, per, writers = 10, 4, 8 // 8 writers × 4 keys, 8 blocks: far over 10 and 4
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 2*writers)
	var refused, stored sync.Map
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			keys := make([]storage.StoredPreKey, per)
			for i := range keys {
				id := uint32(w*per + i + 1)
				keys[i] = storage.StoredPreKey{Kind: 2, ID: id, Data: []byte(fmt.Sprint("opk", id))}
			}
			switch n, err := dirs[w%2].PutPreKeys(ctx, "card", keys, max); {
			case errors.Is(err, storage.ErrTooManyPreKeys):
			case err != nil:
				errs <- err
			case n != per:
				errs <- fmt.Errorf("writer %d: %d of its %d keys stored", w, n, per)
			default:
				stored.Store(w, keys)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			err := dirs[w%2].Block(ctx, "mallory", fmt.Sprint("name", w), t0, per)
			switch {
			case errors.Is(err, storage.ErrTooManyBlocks):
				refused.Store(w, true)
			case err != nil:
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ids, err := dirs[0].PreKeyIDs(ctx, "card", 2)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint32]bool{}
	for _, id := range ids {
		have[id] = true
	}
	whole := 0
	stored.Range(func(w, keys any) bool {
		whole++
		for _, k := range keys.([]storage.StoredPreKey) {
			if !have[k.ID] {
				t.Errorf("writer %d was told its keys were stored; key %d is not", w, k.ID)
			}
		}
		return true
	})
	if len(ids) != whole*per || len(ids) != max/per*per {
		t.Fatalf("%d one-time prekeys stored after %d uploads of %d went through, want %d", len(ids), whole, per, max/per*per)
	}
	all, err := dirs[1].Blocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	refused.Range(func(any, any) bool { n++; return true })
	if len(all["mallory"]) != per || n != writers-per {
		t.Fatalf("%d blocks stored, %d refused: want the cap, %d, and %d refused", len(all["mallory"]), n, per, writers-per)
	}
}
