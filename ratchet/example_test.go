package ratchet_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"pfschat/ratchet"
)

// Example walks through a whole conversation: identities, relay-approved
// cards, prekeys, the handshake on both sides, and replies.
func Example() {
	now := time.Now()
	relayPub, relayPriv, _ := ed25519.GenerateKey(rand.Reader)

	newUser := func(name string) (*ratchet.IdentityKey, *ratchet.Card) {
		id, _ := ratchet.GenerateIdentityKey(rand.Reader)
		card, _ := ratchet.NewCard(id, name, "username", "laptop", now, nil)
		_ = card.SignAsRelay(relayPriv) // what the relay does on registration
		return id, card
	}
	aliceID, aliceCard := newUser("alice")
	bobID, bobCard := newUser("bob")

	// Bob publishes prekeys; the relay hands Alice a bundle.
	spk, _ := ratchet.GeneratePreKey(rand.Reader, bobID, ratchet.SignedPreKey, 1, now)
	opk, _ := ratchet.GeneratePreKey(rand.Reader, bobID, ratchet.OneTimePreKey, 1, now)
	kem, _ := ratchet.GeneratePreKey(rand.Reader, bobID, ratchet.KEMLastResort, 1, now)
	opkPub := opk.Public()
	bundle := &ratchet.Bundle{Card: bobCard, SignedPreKey: spk.Public(), OneTimePreKey: &opkPub, KEMPreKey: kem.Public()}

	// Alice verifies the bundle and starts the session.
	alice, err := ratchet.StartSession(rand.Reader, aliceID, aliceCard, bobCard, relayPub, bundle)
	if err != nil {
		panic(err)
	}
	wire, _ := alice.Encrypt([]byte("hi bob"))

	// Bob receives an initial message and accepts it with the prekeys it names.
	env, _ := ratchet.DecodeEnvelope(wire)
	keys := ratchet.ResponderKeys{SignedPreKey: spk, KEMPreKey: kem}
	if env.Initial.OneTimePreKeyID == opk.Public().ID {
		keys.OneTimePreKey = opk // delete it once the session is stored
	}
	bob, first, err := ratchet.AcceptSession(bobID, bobCard, aliceCard, keys, env)
	if err != nil {
		panic(err)
	}
	fmt.Printf("bob got %q (same session: %v)\n", first, bob.ID() == alice.ID())

	reply, _ := bob.Encrypt([]byte("hi alice"))
	pt, _ := alice.Decrypt(reply)
	fmt.Printf("alice got %q (acknowledged: %v)\n", pt, alice.Acknowledged())

	// Persist after every Encrypt and successful Decrypt.
	state, _ := alice.MarshalBinary()
	alice, _ = ratchet.ParseSession(state)
	wire, _ = alice.Encrypt([]byte("still here"))
	pt, _ = bob.Decrypt(wire)
	fmt.Printf("bob got %q\n", pt)

	// Output:
	// bob got "hi bob" (same session: true)
	// alice got "hi alice" (acknowledged: true)
	// bob got "still here"
}
