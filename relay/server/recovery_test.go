package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// registerWithCode registers name with a recovery code and returns the user and code.
func registerWithCode(t *testing.T, r *relaytest.Relay, name string) (*user, relay.RecoveryCode) {
	t.Helper()
	code, err := relay.NewRecoveryCode(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, card := newIdentity(t, name)
	anon := client.New(client.Config{URL: r.URL, RecoveryProof: code.Proof(name)})
	defer anon.Close()
	ctx := testCtx(t)
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	return &user{name: name, key: k, card: signed}, code
}

func anonClient(t *testing.T, r *relaytest.Relay) *client.Client {
	t.Helper()
	c := client.New(client.Config{URL: r.URL, PinnedRelayKey: r.Server.RelayKey()})
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

func newCode(t *testing.T) relay.RecoveryCode {
	t.Helper()
	c, err := relay.NewRecoveryCode(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A user who lost the identity key registers a new card under the same name with the
// recovery code: the old card can no longer log in, its connections are told, the new
// one logs in, the code is used up (the new code replaces it), and a wrong code gets
// recovery_failed and changes nothing.
func TestRecoverWithCode(t *testing.T) { eachStore(t, testRecoverWithCode) }

func testRecoverWithCode(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{RecoveryPerNamePerHour: 100, RecoveryPerAddressPerHour: 100}})
	alice, code := registerWithCode(t, r, "alice")
	old := alice.login(t, r)
	ctx := testCtx(t)
	anon := anonClient(t, r)

	_, card2 := newIdentity(t, "alice")
	if _, err := anon.Recover(ctx, card2, newCode(t).Proof("alice"), newCode(t).Proof("alice")); err == nil {
		t.Fatal("recovery with a wrong code succeeded")
	} else {
		wantCode(t, err, relay.CodeRecoveryFailed)
	}
	if got, err := anon.LookupCard(ctx, "alice"); err != nil || got.ID() != alice.card.ID() {
		t.Fatalf("after a refused recovery the name has card %v (%v), want the old one", got, err)
	}
	// A proof for another name does not work either: proofs are bound to the name.
	if _, err := anon.Recover(ctx, card2, code.Proof("bob"), newCode(t).Proof("alice")); err == nil {
		t.Fatal("a proof made for another name recovered the account")
	}

	next := newCode(t)
	k3, card3 := newIdentity(t, "alice")
	signed, err := anon.Recover(ctx, card3, code.Proof("alice"), next.Proof("alice"))
	if err != nil {
		t.Fatalf("recovery with the right code: %v", err)
	}
	if signed.ID() != card3.ID() || signed.VerifyWithRelay(r.Server.RelayKey()) != nil {
		t.Fatal("the relay did not return the new card, signed")
	}
	// The old card's connection is closed with card_replaced; it cannot log in again.
	if err := old.Run(ctx); err == nil {
		t.Fatal("the old card's connection survived the recovery")
	}
	oldAgain := client.New(client.Config{URL: r.URL, Identity: alice.key, Card: alice.card, PinnedRelayKey: r.Server.RelayKey()})
	defer oldAgain.Close()
	// The device with the old key is told its card was replaced, not "login failed".
	wantCode(t, oldAgain.Connect(ctx), relay.CodeCardReplaced)
	recovered := &user{name: "alice", key: k3, card: signed}
	recovered.login(t, r)

	// The used code is spent: the next one works, the old one no longer does.
	_, card4 := newIdentity(t, "alice")
	if _, err := anon.Recover(ctx, card4, code.Proof("alice"), newCode(t).Proof("alice")); err == nil {
		t.Fatal("a used recovery code worked twice")
	}
	// set_recovery (logged in) replaces the code.
	rotated := newCode(t)
	if err := recovered.c.SetRecovery(ctx, rotated.Proof("alice")); err != nil {
		t.Fatalf("set_recovery: %v", err)
	}
	if _, err := anon.Recover(ctx, card4, next.Proof("alice"), newCode(t).Proof("alice")); err == nil {
		t.Fatal("the code replaced by set_recovery still worked")
	}
	if _, err := anon.Recover(ctx, card4, rotated.Proof("alice"), newCode(t).Proof("alice")); err != nil {
		t.Fatalf("the code set by set_recovery: %v", err)
	}
}

// An account registered without a code cannot be recovered; an unknown name is
// not_found.
func TestRecoverWithoutCode(t *testing.T) { eachStore(t, testRecoverWithoutCode) }

func testRecoverWithoutCode(t *testing.T, bk store) {
	r := bk.Start(t)
	register(t, r, "bob")
	anon := anonClient(t, r)
	_, card := newIdentity(t, "bob")
	_, err := anon.Recover(testCtx(t), card, newCode(t).Proof("bob"), newCode(t).Proof("bob"))
	wantCode(t, err, relay.CodeRecoveryFailed)
	_, card = newIdentity(t, "nobody")
	_, err = anon.Recover(testCtx(t), card, newCode(t).Proof("nobody"), newCode(t).Proof("nobody"))
	wantCode(t, err, relay.CodeNotFound)
}

// Recovery attempts are limited per name (from any address) and per address (for
// any name), with rate_limited naming the limit, counted in /metrics; the right code
// is refused too while the name is over its limit.
func TestRecoveryAttemptsLimited(t *testing.T) { eachStore(t, testRecoveryAttemptsLimited) }

func testRecoveryAttemptsLimited(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{RecoveryPerNamePerHour: 3, RecoveryPerAddressPerHour: 5}})
	_, code := registerWithCode(t, r, "alice")
	ctx := testCtx(t)
	anon := anonClient(t, r)
	_, card := newIdentity(t, "alice")
	for i := range 3 {
		_, err := anon.Recover(ctx, card, newCode(t).Proof("alice"), newCode(t).Proof("alice"))
		if err == nil {
			t.Fatalf("attempt %d with a wrong code succeeded", i+1)
		}
		wantCode(t, err, relay.CodeRecoveryFailed)
	}
	_, err := anon.Recover(ctx, card, code.Proof("alice"), newCode(t).Proof("alice"))
	wantCode(t, err, relay.CodeRateLimited)
	var pe *relay.ProtocolError
	if !errorsAs(err, &pe) || pe.Limit != server.LimitRecoveryPerName {
		t.Fatalf("limit %v, want %s", err, server.LimitRecoveryPerName)
	}
	if n := limited(t, r, server.LimitRecoveryPerName); n != 1 {
		t.Fatalf("%s counted %d times, want 1", server.LimitRecoveryPerName, n)
	}
	// Other names from the same address: the address's limit (5) is reached after one
	// more attempt (4 so far).
	_, bobCard := newIdentity(t, "bob")
	_, err = anon.Recover(ctx, bobCard, newCode(t).Proof("bob"), newCode(t).Proof("bob"))
	wantCode(t, err, relay.CodeNotFound)
	_, err = anon.Recover(ctx, bobCard, newCode(t).Proof("bob"), newCode(t).Proof("bob"))
	wantCode(t, err, relay.CodeRateLimited)
	if !errorsAs(err, &pe) || pe.Limit != server.LimitRecoveryPerAddress {
		t.Fatalf("limit %v, want %s", err, server.LimitRecoveryPerAddress)
	}
	if n := limited(t, r, server.LimitRecoveryPerAddress); n != 1 {
		t.Fatalf("%s counted %d times, want 1", server.LimitRecoveryPerAddress, n)
	}
}

// The relay stores a keyed hash, never the proof or the code: neither appears in the
// files its store writes (storedFiles: the SQLite database, or the JetStream server's
// store).
func TestRecoveryVerifierIsKeyed(t *testing.T) { eachStore(t, testRecoveryVerifierIsKeyed) }

func testRecoveryVerifierIsKeyed(t *testing.T, bk store) {
	r := bk.Start(t)
	alice, code := registerWithCode(t, r, "alice")
	has, err := dirOf(r).(interface {
		HasRecovery(context.Context, string) (bool, error)
	}).HasRecovery(testCtx(t), "alice")
	if err != nil || !has {
		t.Fatalf("HasRecovery: %v, %v", has, err)
	}
	r.Close()
	files := storedFiles(t, r)
	if !bytes.Contains(files, []byte(alice.card.Export())) {
		t.Fatal("alice's card is in none of the files read: they are not the store's")
	}
	if bytes.Contains(files, code.Proof("alice")) || bytes.Contains(files, code[:]) {
		t.Fatal("the relay's store holds the recovery proof or code itself")
	}
}
