package peerbench

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"pfschat/ratchet"
)

// PfschatPeer is pfschat's own ratchet package: PQXDH (X25519 + ML-KEM-768) from a
// relay-signed card and signed prekeys, then the Double Ratchet with ChaCha20-Poly1305 or
// AES-256-GCM as the package chooses, binary wire format.
func PfschatPeer() Peer {
	return Peer{
		Name:      "pfschat",
		SameChain: pfschatSameChain,
		PingPong:  pfschatPingPong,
		Handshake: pfschatHandshake,
		SaveLoad:  pfschatSaveLoad,
	}
}

// pfsParty is one user: identity key, relay-signed card and published prekeys.
type pfsParty struct {
	key  *ratchet.IdentityKey
	card *ratchet.Card
	spk  *ratchet.PrivatePreKey
	opk  *ratchet.PrivatePreKey
	kem  *ratchet.PrivatePreKey // one-time ML-KEM-768
}

func newPfsParty(name string, relay ed25519.PrivateKey) (*pfsParty, error) {
	now := time.Now()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	c, err := ratchet.NewCard(k, name, "username", "bench", now, nil)
	if err != nil {
		return nil, err
	}
	if err := c.SignAsRelay(relay); err != nil {
		return nil, err
	}
	p := &pfsParty{key: k, card: c}
	if p.spk, err = ratchet.GeneratePreKey(rand.Reader, k, ratchet.SignedPreKey, 1, now); err != nil {
		return nil, err
	}
	if p.opk, err = ratchet.GeneratePreKey(rand.Reader, k, ratchet.OneTimePreKey, 1, now); err != nil {
		return nil, err
	}
	if p.kem, err = ratchet.GeneratePreKey(rand.Reader, k, ratchet.KEMOneTime, 1, now); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pfsParty) bundle() *ratchet.Bundle {
	opk := p.opk.Public()
	return &ratchet.Bundle{Card: p.card, SignedPreKey: p.spk.Public(), OneTimePreKey: &opk, KEMPreKey: p.kem.Public()}
}

type pfsPair struct {
	relayPub     ed25519.PublicKey
	alice, bob   *pfsParty
	aliceS, bobS *ratchet.Session
}

func newPfsPair() (*pfsPair, error) {
	relayPub, relayPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	p := &pfsPair{relayPub: relayPub}
	if p.alice, err = newPfsParty("alice", relayPriv); err != nil {
		return nil, fmt.Errorf("pfschat party: %w", err)
	}
	if p.bob, err = newPfsParty("bob", relayPriv); err != nil {
		return nil, fmt.Errorf("pfschat party: %w", err)
	}
	return p, nil
}

// handshake is one complete PQXDH session setup plus the first message: Alice verifies
// Bob's bundle (card self and relay signatures, signed prekey and ML-KEM prekey
// signatures), runs PQXDH with a one-time prekey and ML-KEM-768 and encrypts; Bob decodes
// the initial message, runs his side and decrypts.
func (p *pfsPair) handshake(first []byte) error {
	var err error
	p.aliceS, err = ratchet.StartSession(rand.Reader, p.alice.key, p.alice.card, p.bob.card, p.relayPub, p.bob.bundle())
	if err != nil {
		return fmt.Errorf("pfschat start session: %w", err)
	}
	wire, err := p.aliceS.Encrypt(first)
	if err != nil {
		return fmt.Errorf("pfschat encrypt initial: %w", err)
	}
	env, err := ratchet.DecodeEnvelope(wire)
	if err != nil {
		return fmt.Errorf("pfschat decode initial: %w", err)
	}
	keys := ratchet.ResponderKeys{SignedPreKey: p.bob.spk, OneTimePreKey: p.bob.opk, KEMPreKey: p.bob.kem}
	var got []byte
	p.bobS, got, err = ratchet.AcceptSession(p.bob.key, p.bob.card, p.alice.card, keys, env)
	if err != nil {
		return fmt.Errorf("pfschat accept session: %w", err)
	}
	return checkSame(first, got)
}

func pfsSend(from, to *ratchet.Session, pt []byte) error {
	wire, err := from.Encrypt(pt)
	if err != nil {
		return fmt.Errorf("pfschat encrypt: %w", err)
	}
	if len(wire) < 2 || ratchet.MessageType(wire[1]) != ratchet.MessageNormal {
		return fmt.Errorf("pfschat: expected a normal message")
	}
	got, err := to.Decrypt(wire)
	if err != nil {
		return fmt.Errorf("pfschat decrypt: %w", err)
	}
	return checkSame(pt, got)
}

func newPfsAcked() (*pfsPair, error) {
	p, err := newPfsPair()
	if err != nil {
		return nil, err
	}
	if err := p.handshake(Plaintext(64, 0)); err != nil {
		return nil, err
	}
	if err := pfsSend(p.bobS, p.aliceS, Plaintext(64, 1)); err != nil {
		return nil, fmt.Errorf("pfschat first reply: %w", err)
	}
	if !p.aliceS.Acknowledged() {
		return nil, fmt.Errorf("pfschat: initiator not acknowledged after the first reply")
	}
	return p, nil
}

func pfschatSameChain(size int) (Step, error) {
	p, err := newPfsAcked()
	if err != nil {
		return nil, err
	}
	pt := Plaintext(size, 2)
	return func() error { return pfsSend(p.aliceS, p.bobS, pt) }, nil
}

func pfschatPingPong(size int) (Step, error) {
	p, err := newPfsAcked()
	if err != nil {
		return nil, err
	}
	pt := Plaintext(size, 3)
	turn := 0
	return func() error {
		turn++
		if turn%2 == 1 {
			return pfsSend(p.aliceS, p.bobS, pt)
		}
		return pfsSend(p.bobS, p.aliceS, pt)
	}, nil
}

func pfschatHandshake() (Step, error) {
	p, err := newPfsPair()
	if err != nil {
		return nil, err
	}
	first := Plaintext(64, 4)
	return func() error { return p.handshake(first) }, nil
}

func pfschatSaveLoad() (Step, error) {
	p, err := newPfsAcked()
	if err != nil {
		return nil, err
	}
	if err := pfsSend(p.aliceS, p.bobS, Plaintext(64, 5)); err != nil {
		return nil, err
	}
	return func() error {
		b, err := p.aliceS.MarshalBinary()
		if err != nil {
			return fmt.Errorf("pfschat marshal: %w", err)
		}
		s, err := ratchet.ParseSession(b)
		if err != nil {
			return fmt.Errorf("pfschat parse: %w", err)
		}
		if s.ID() != p.aliceS.ID() {
			return fmt.Errorf("pfschat: session changed in a round trip")
		}
		return nil
	}, nil
}
