package server_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

func TestRelayKeyRotationIsFollowed(t *testing.T) {
	r := relaytest.Start(t)
	ctx := testCtx(t)
	alice := register(t, r, "alice")
	k0 := r.Server.RelayKey()

	// Two planned rotations while the client is away.
	rot1, err := server.RotateKey(ctx, r.Store, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rot2, err := server.RotateKey(ctx, r.Store, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !rot1.Old.Equal(k0) || !rot2.Old.Equal(rot1.New) || rot1.Cards != 1 {
		t.Fatalf("rotations %+v %+v", rot1, rot2)
	}
	r.Restart(t)
	if !r.Server.RelayKey().Equal(rot2.New) {
		t.Fatal("the restarted relay does not use the new key")
	}

	var got []relay.KeyRotation
	c := client.New(client.Config{URL: r.URL, Identity: alice.key, Card: alice.card, PinnedRelayKey: k0,
		OnRelayKeyRotated: func(chain []relay.KeyRotation) { got = chain }})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("a client pinned to the old key: %v", err)
	}
	if len(got) != 2 || !got[0].Old.Equal(k0) || !got[1].New.Equal(rot2.New) {
		t.Fatalf("rotation chain reported: %+v", got)
	}
	if !c.RelayKey().Equal(rot2.New) {
		t.Fatal("the client did not re-pin")
	}
	// Cards carry the new key's signature, under the same ID.
	card, err := c.LookupCard(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if card.ID() != alice.card.ID() || card.VerifyWithRelay(rot2.New) != nil {
		t.Fatal("alice's card was not re-signed with the new key")
	}
	if err := r.Store.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRelayKeyChangeWithoutStatementIsRefused(t *testing.T) {
	r := relaytest.Start(t)
	other := relaytest.Start(t) // another relay: another key, no statement from r's
	ctx := testCtx(t)
	if _, err := server.RotateKey(ctx, other.Store, time.Now()); err != nil { // a statement, but not by r's key
		t.Fatal(err)
	}
	other.Restart(t)
	for _, pinned := range []ed25519.PublicKey{r.Server.RelayKey()} {
		c := client.New(client.Config{URL: other.URL, PinnedRelayKey: pinned,
			OnRelayKeyRotated: func([]relay.KeyRotation) { t.Error("followed a rotation the pinned key never signed") }})
		err := c.Connect(ctx)
		c.Close()
		if !errorsIs(err, client.ErrRelayKeyMismatch) {
			t.Fatalf("connect to a relay with an unvouched key: %v, want ErrRelayKeyMismatch", err)
		}
	}
}

// TestSealedRelayKeepsItsKey: a relay restarted with a relay key (its secrets sealed
// in place) serves the same key: a client pinned to it logs in as before, its card
// still verifies; replacing a compromised key of the sealed relay works as on a clear
// one.
func TestSealedRelayKeepsItsKey(t *testing.T) {
	r := relaytest.Start(t)
	ctx := testCtx(t)
	alice := register(t, r, "alice")
	k0 := r.Server.RelayKey()
	if r.Store.Sealed() {
		t.Fatal("a relay started without a key is sealed")
	}
	r.RestartWith(t, relaytest.Options{SealKey: bytes.Repeat([]byte{5}, storage.RelayKeySize)})
	if !r.Store.Sealed() || !r.Server.RelayKey().Equal(k0) {
		t.Fatalf("restarted with a relay key: sealed %v, the same key %v", r.Store.Sealed(), r.Server.RelayKey().Equal(k0))
	}
	c := alice.login(t, r)
	card, err := c.LookupCard(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !c.RelayKey().Equal(k0) || card.VerifyWithRelay(k0) != nil {
		t.Fatal("after sealing, the relay presents another key or alice's card does not verify")
	}
	c.Close()
	rot := r.ReplaceKeyCompromised(t)
	if !rot.Old.Equal(k0) || !r.Server.RelayKey().Equal(rot.New) || !r.Store.Sealed() {
		t.Fatalf("replacing the sealed relay's key: %+v", rot)
	}
}
