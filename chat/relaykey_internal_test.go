package chat

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"testing"

	"pfschat/ratchet"
	"pfschat/relay/relaytest"
)

// fixedCard is a cardLooker that answers with one card.
type fixedCard struct{ card *ratchet.Card }

func (f fixedCard) LookupCard(context.Context, string) (*ratchet.Card, error) { return f.card, nil }

// TestRepinFailureLeavesOldPin: a re-pin stores the own card as the relay's new key
// signed it and pins that key in one transaction. When the pin's write fails, the old
// pin and the old card are both still there (two transactions left the new card beside
// the old pin), and a retry succeeds.
func TestRepinFailureLeavesOldPin(t *testing.T) {
	r := relaytest.Start(t)
	alice := newUser(t, r, "alice")
	ctx := t.Context()
	oldPin, err := alice.c.store.Meta(ctx, metaRelayKey)
	must(t, err)
	oldID, err := alice.c.store.Identity(ctx)
	must(t, err)

	newPub, newPriv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	resigned, err := ratchet.ImportCard(alice.card.Export())
	must(t, err)
	must(t, resigned.SignAsRelay(newPriv))

	// The pin's write fails inside SQLite (a trigger added from another connection).
	// A busy timeout: alice's own connections may hold the write lock for a moment.
	db, err := sql.Open("sqlite", "file:"+alice.p.StorePath()+"?_pragma=busy_timeout(10000)")
	must(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER fail_pin_update BEFORE UPDATE ON meta WHEN NEW.key = 'relay_key'
		BEGIN SELECT RAISE(ABORT, 'injected: pin write fails'); END`)
	must(t, err)

	if err := alice.c.repin(ctx, fixedCard{resigned}, newPub); err == nil {
		t.Fatal("repin succeeded with the pin's write failing")
	}
	pin, err := alice.c.store.Meta(ctx, metaRelayKey)
	must(t, err)
	id, err := alice.c.store.Identity(ctx)
	must(t, err)
	if !bytes.Equal(pin, oldPin) {
		t.Fatal("the failed repin changed the pin")
	}
	if !bytes.Equal(id.Card, oldID.Card) {
		t.Fatal("the failed repin stored the card the new key signed beside the old pin")
	}

	_, err = db.Exec(`DROP TRIGGER fail_pin_update`)
	must(t, err)
	must(t, alice.c.repin(ctx, fixedCard{resigned}, newPub))
	pin, err = alice.c.store.Meta(ctx, metaRelayKey)
	must(t, err)
	id, err = alice.c.store.Identity(ctx)
	must(t, err)
	if !bytes.Equal(pin, newPub) || string(id.Card) != resigned.Export() {
		t.Fatal("the retried repin did not pin the new key and store the re-signed card")
	}
}
