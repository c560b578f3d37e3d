package ratchet

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// seeded returns a deterministic random source.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i] = byte(seed >> (8 * i))
	}
	return mrand.NewChaCha8(s)
}

// derandomizedEncapsulate is ML-KEM's derandomized ML-KEM.Encaps_internal
// with 32 bytes of randomness read from rnd, for the encapsulateFrom hook.
// Production code never does this (StartSession calls Encapsulate), so it
// lives in a test file.
func derandomizedEncapsulate(ek *mlkem.EncapsulationKey768, rnd io.Reader) ([]byte, []byte, error) {
	var m [32]byte
	defer clear(m[:])
	if _, err := io.ReadFull(rnd, m[:]); err != nil {
		return nil, nil, fmt.Errorf("read KEM randomness: %w", err)
	}
	return mlkemtest.Encapsulate768(ek, m[:])
}

// derandomizeEncapsulation makes StartSession encapsulate with
// derandomizedEncapsulate until t ends, so a handshake under a seeded source
// is reproducible: the vectors record the KEM randomness so another
// implementation can reproduce the ciphertext.
func derandomizeEncapsulation(t testing.TB) {
	t.Cleanup(func() { encapsulateFrom = nil })
	encapsulateFrom = derandomizedEncapsulate
}

var testNow = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// relayFixture is a relay key pair.
type relayFixture struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newRelay(t testing.TB, seed uint64) relayFixture {
	t.Helper()
	var s [32]byte
	io.ReadFull(seeded(seed), s[:])
	priv := ed25519.NewKeyFromSeed(s[:])
	return relayFixture{pub: priv.Public().(ed25519.PublicKey), priv: priv}
}

// party is a user with a relay-signed card and a full set of prekeys.
type party struct {
	key  *IdentityKey
	card *Card
	spk  *PrivatePreKey
	opk  *PrivatePreKey
	kem  *PrivatePreKey // one-time KEM
	lr   *PrivatePreKey // last resort KEM
}

func newParty(t testing.TB, name string, seed uint64, relay relayFixture) *party {
	t.Helper()
	r := seeded(seed)
	k, err := GenerateIdentityKey(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCard(k, name, "username", "laptop", testNow, map[string]string{"app": "pfschat"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SignAsRelay(relay.priv); err != nil {
		t.Fatal(err)
	}
	p := &party{key: k, card: c}
	gen := func(kind PreKeyKind, id uint32) *PrivatePreKey {
		pk, err := GeneratePreKey(r, k, kind, id, testNow)
		if err != nil {
			t.Fatal(err)
		}
		return pk
	}
	p.spk = gen(SignedPreKey, 1)
	p.opk = gen(OneTimePreKey, 7)
	p.kem = gen(KEMOneTime, 9)
	p.lr = gen(KEMLastResort, 3)
	return p
}

func (p *party) bundle(withOPK, oneTimeKEM bool) *Bundle {
	b := &Bundle{Card: p.card, SignedPreKey: p.spk.Public(), KEMPreKey: p.lr.Public()}
	if withOPK {
		o := p.opk.Public()
		b.OneTimePreKey = &o
	}
	if oneTimeKEM {
		b.KEMPreKey = p.kem.Public()
	}
	return b
}

func (p *party) responderKeys(env *Envelope) ResponderKeys {
	k := ResponderKeys{SignedPreKey: p.spk, KEMPreKey: p.lr}
	if env.Initial.OneTimePreKeyID != 0 {
		k.OneTimePreKey = p.opk
	}
	if env.Initial.KEMPreKeyKind == KEMOneTime {
		k.KEMPreKey = p.kem
	}
	return k
}

// pair starts a session from alice to bob and delivers one message, so both
// sides hold a session.
func pair(t testing.TB, seed uint64) (alice, bob *Session, a, b *party) {
	t.Helper()
	relay := newRelay(t, seed)
	a = newParty(t, "alice", seed+1, relay)
	b = newParty(t, "bob", seed+2, relay)
	alice, err := StartSession(seeded(seed+3), a.key, a.card, b.card, relay.pub, b.bundle(true, true))
	if err != nil {
		t.Fatal(err)
	}
	wire, err := alice.Encrypt([]byte("hello bob"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(wire)
	if err != nil {
		t.Fatal(err)
	}
	bob, pt, err := AcceptSession(b.key, b.card, a.card, b.responderKeys(env), env)
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != "hello bob" {
		t.Fatalf("got %q", pt)
	}
	bob.SetRand(seeded(seed + 4))
	return alice, bob, a, b
}

func mustMarshal(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pairAcked is pair plus one reply, so alice sends normal messages.
func pairAcked(t testing.TB, seed uint64) (alice, bob *Session) {
	t.Helper()
	alice, bob, _, _ = pair(t, seed)
	w, err := bob.Encrypt([]byte("ack"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Decrypt(w); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}
