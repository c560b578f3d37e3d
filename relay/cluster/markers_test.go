package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/cluster/natstest"
	"pfschat/storage"
)

// TestDeleteMarkersOfOneTimeKeysExpire: the delete markers an account's deletion, a
// card's replacement and a blob's deletion leave on keys named by a one-time id (a
// blob's record, a card's index entry, its prekeys, a replaced card's record) carry a
// TTL and go once it has run out; those on keys named by the name (the account, its
// blocks, its blob usage) stay, one per name. Before, every such marker stayed for
// good: one per blob ever delivered and a few per card ever retired, each in the
// bucket and read again by every scan of its prefix (the hourly ExpireBlobs). After
// the markers are gone the keys read as never written and the name registers again.
func TestDeleteMarkersOfOneTimeKeysExpire(t *testing.T) {
	old := markerTTL
	markerTTL = 3 * time.Second // long enough to read each marker before it goes
	t.Cleanup(func() { markerTTL = old })
	ns := natstest.Single(t)
	b := newTestBlobs(t, connect(t, ns.URL()))
	d := b.d
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	if err := d.CreateAccount(ctx, storage.Account{Name: "alice", CardID: "c1", Card: []byte("card one")}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutPreKeys(ctx, "c1", []storage.StoredPreKey{{Kind: 1, ID: 1, Data: []byte("spk")}, {Kind: 2, ID: 2, Data: []byte("opk")}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.ReplaceCard(ctx, "alice", "c1", storage.Account{Name: "alice", CardID: "c2", Card: []byte("card two")}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutPreKeys(ctx, "c2", []storage.StoredPreKey{{Kind: 1, ID: 1, Data: []byte("spk")}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Block(ctx, "alice", "mallory", time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bl := storage.Blob{ID: "00aa", Owner: "alice", Size: 1, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, bl, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteBlob(ctx, bl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteAccount(ctx, "alice", "c2"); err != nil {
		t.Fatal(err)
	}

	last := func(key string) (*jetstream.RawStreamMsg, bool) {
		t.Helper()
		m, err := d.b.stream.GetLastMsgForSubject(ctx, d.b.subj+key)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, false
		}
		if err != nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		return m, true
	}
	expiring := []string{keyBlob(bl.ID), keyCard("c1"), keyCard("c2"), keyRepl("c1"), keyPreKeys("c1", 1), keyPreKeys("c1", 2), keyPreKeys("c2", 1)}
	staying := []string{keyAcct("alice"), keyBlocks("alice"), keyUsage("alice")}
	for _, k := range expiring {
		m, ok := last(k)
		if !ok {
			t.Fatalf("%s: no message (a marker gone within %v of being written?)", k, markerTTL)
		}
		if m.Header.Get("KV-Operation") != "DEL" || m.Header.Get("Nats-TTL") != strconv.Itoa(int(markerTTL/time.Second)) {
			t.Errorf("%s: last message %v with headers %v, want a delete marker with a TTL", k, m.Data, m.Header)
		}
	}
	for _, k := range staying {
		if m, ok := last(k); !ok || m.Header.Get("KV-Operation") != "DEL" || m.Header.Get("Nats-TTL") != "" {
			t.Errorf("%s: want a delete marker without a TTL, have %v", k, m)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, k := range expiring {
		for {
			if _, ok := last(k); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the delete marker of %s is still there after its TTL", k)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, k := range staying {
		if _, ok := last(k); !ok {
			t.Errorf("the delete marker of %s went", k)
		}
	}
	// The keys read as never written: the name, and the very same card, register again.
	if err := d.CreateAccount(ctx, storage.Account{Name: "alice", CardID: "c1", Card: []byte("card one")}); err != nil {
		t.Fatalf("registering again after the markers went: %v", err)
	}
	if a, err := d.AccountByCardID(ctx, "c1"); err != nil || a.Name != "alice" {
		t.Fatalf("AccountByCardID after registering again: %+v, %v", a, err)
	}
}

// TestDeleteMarkerOfAUsedUpInviteExpires: the last use of an invite deletes its record
// with a marker that carries a TTL, like the other keys named by a one-time id (the
// code's hash: 128 random bits, never issued again). Before, each used-up invite left
// its marker for good. Once the marker is gone the invite is still refused, and a
// registration that read the invite before its last use (its write expects that
// revision) still conflicts: an invite never becomes usable again.
func TestDeleteMarkerOfAUsedUpInviteExpires(t *testing.T) {
	old := markerTTL
	markerTTL = 3 * time.Second // long enough to read the marker before it goes
	t.Cleanup(func() { markerTTL = old })
	ns := natstest.Single(t)
	d := newTestDirectory(t, connect(t, ns.URL()))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	h := sha256.Sum256([]byte("pfsinv-test"))
	now := time.Now()
	if err := d.CreateInvite(ctx, storage.Invite{Hash: h[:], UsesLeft: 2, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	account := func(name string) storage.Account {
		return storage.Account{Name: name, CardID: "card-" + name, Card: []byte(name)}
	}
	if err := d.CreateAccountInvited(ctx, account("alice"), h[:], now); err != nil {
		t.Fatal(err)
	}
	stale, err := d.b.get(ctx, keyInvite(h[:])) // as a registration reads it
	if err != nil || !stale.exists() {
		t.Fatalf("the invite after its first use: %+v, %v", stale, err)
	}
	if err := d.CreateAccountInvited(ctx, account("bob"), h[:], now); err != nil {
		t.Fatal(err)
	}
	m, err := d.b.stream.GetLastMsgForSubject(ctx, d.b.subj+keyInvite(h[:]))
	if err != nil {
		t.Fatalf("the used-up invite's marker: %v", err)
	}
	if m.Header.Get("KV-Operation") != "DEL" || m.Header.Get("Nats-TTL") != strconv.Itoa(int(markerTTL/time.Second)) {
		t.Fatalf("the used-up invite's last message has headers %v, want a delete marker with a TTL", m.Header)
	}
	if err := d.CreateAccountInvited(ctx, account("carol"), h[:], now); !errors.Is(err, storage.ErrBadInvite) {
		t.Fatalf("registering with the used-up invite: %v, want ErrBadInvite", err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := d.b.stream.GetLastMsgForSubject(ctx, d.b.subj+keyInvite(h[:]))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the used-up invite's marker is still there after its TTL")
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := d.CreateAccountInvited(ctx, account("carol"), h[:], now); !errors.Is(err, storage.ErrBadInvite) {
		t.Fatalf("registering with the invite after its marker went: %v, want ErrBadInvite", err)
	}
	// The write of a registration that read the invite with one use left, committed
	// now: the account and the invite's last use, the invite expected at the revision
	// read.
	err = d.b.commit(ctx, []kvOp{
		{key: keyAcct("carol"), val: (&accountRec{Name: "carol", CardID: "card-carol", Card: []byte("carol")}).encode()},
		{key: keyCard("card-carol"), val: encodeCard("carol")},
		tombstone(keyInvite(h[:]), stale.rev),
	})
	if !errors.Is(err, errConflict) {
		t.Fatalf("a registration's write expecting the invite as read before its last use: %v, want a conflict", err)
	}
	if _, err := d.AccountByName(ctx, "carol"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("carol after the conflicting write: %v, want not found", err)
	}
}
