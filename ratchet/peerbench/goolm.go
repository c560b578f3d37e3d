package peerbench

import (
	"bytes"
	"fmt"

	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"
)

// GoolmPeer is the pure-Go Olm of maunium.net/go/mautrix v0.32.0 (crypto/goolm): Olm's
// 3DH + Double Ratchet, AES-CBC + HMAC-SHA256, messages base64-encoded by the API.
// Its handshake verifies no signature: in Matrix the one-time key's signature is checked
// by the caller, outside goolm, and is not part of this workload.
func GoolmPeer() Peer {
	return Peer{
		Name:      "goolm",
		SameChain: goolmSameChain,
		PingPong:  goolmPingPong,
		Handshake: goolmHandshake,
		SaveLoad:  goolmSaveLoad,
	}
}

type goolmPair struct {
	alice, bob         *account.Account
	bobIdentity, bobOT id.Curve25519
	aliceS, bobS       olm.Session
}

func newGoolmPair() (*goolmPair, error) {
	alice, err := account.NewAccount()
	if err != nil {
		return nil, fmt.Errorf("goolm account: %w", err)
	}
	bob, err := account.NewAccount()
	if err != nil {
		return nil, fmt.Errorf("goolm account: %w", err)
	}
	if err := bob.GenOneTimeKeys(1); err != nil {
		return nil, fmt.Errorf("goolm one-time key: %w", err)
	}
	_, bobIdentity, err := bob.IdentityKeys()
	if err != nil {
		return nil, fmt.Errorf("goolm identity keys: %w", err)
	}
	otks, err := bob.OneTimeKeys()
	if err != nil {
		return nil, fmt.Errorf("goolm one-time keys: %w", err)
	}
	p := &goolmPair{alice: alice, bob: bob, bobIdentity: bobIdentity}
	for _, k := range otks {
		p.bobOT = k
	}
	return p, nil
}

// handshake is one full Olm session setup plus the first message: Alice creates the
// outbound session (3DH) and encrypts a pre-key message; Bob creates the inbound session
// from it and decrypts.
func (p *goolmPair) handshake(first []byte) error {
	var err error
	p.aliceS, err = p.alice.NewOutboundSession(p.bobIdentity, p.bobOT)
	if err != nil {
		return fmt.Errorf("goolm outbound session: %w", err)
	}
	typ, msg, err := p.aliceS.Encrypt(first)
	if err != nil {
		return fmt.Errorf("goolm encrypt initial: %w", err)
	}
	if typ != id.OlmMsgTypePreKey {
		return fmt.Errorf("goolm: initial message has type %d", typ)
	}
	p.bobS, err = p.bob.NewInboundSession(string(msg))
	if err != nil {
		return fmt.Errorf("goolm inbound session: %w", err)
	}
	got, err := p.bobS.Decrypt(string(msg), typ)
	if err != nil {
		return fmt.Errorf("goolm decrypt initial: %w", err)
	}
	return checkSame(first, got)
}

func goolmSend(from, to olm.Session, pt []byte) error {
	typ, msg, err := from.Encrypt(pt)
	if err != nil {
		return fmt.Errorf("goolm encrypt: %w", err)
	}
	if typ != id.OlmMsgTypeMsg {
		return fmt.Errorf("goolm: expected a normal message, got type %d", typ)
	}
	got, err := to.Decrypt(string(msg), typ)
	if err != nil {
		return fmt.Errorf("goolm decrypt: %w", err)
	}
	return checkSame(pt, got)
}

func newGoolmAcked() (*goolmPair, error) {
	p, err := newGoolmPair()
	if err != nil {
		return nil, err
	}
	if err := p.handshake(Plaintext(64, 0)); err != nil {
		return nil, err
	}
	if err := goolmSend(p.bobS, p.aliceS, Plaintext(64, 1)); err != nil {
		return nil, fmt.Errorf("goolm first reply: %w", err)
	}
	return p, nil
}

func goolmSameChain(size int) (Step, error) {
	p, err := newGoolmAcked()
	if err != nil {
		return nil, err
	}
	pt := Plaintext(size, 2)
	return func() error { return goolmSend(p.aliceS, p.bobS, pt) }, nil
}

func goolmPingPong(size int) (Step, error) {
	p, err := newGoolmAcked()
	if err != nil {
		return nil, err
	}
	pt := Plaintext(size, 3)
	turn := 0
	return func() error {
		turn++
		if turn%2 == 1 {
			return goolmSend(p.aliceS, p.bobS, pt)
		}
		return goolmSend(p.bobS, p.aliceS, pt)
	}, nil
}

func goolmHandshake() (Step, error) {
	p, err := newGoolmPair()
	if err != nil {
		return nil, err
	}
	first := Plaintext(64, 4)
	return func() error { return p.handshake(first) }, nil
}

func goolmSaveLoad() (Step, error) {
	p, err := newGoolmAcked()
	if err != nil {
		return nil, err
	}
	if err := goolmSend(p.aliceS, p.bobS, Plaintext(64, 5)); err != nil {
		return nil, err
	}
	alice, ok := p.aliceS.(*session.OlmSession)
	if !ok {
		return nil, fmt.Errorf("goolm: session is %T", p.bobS)
	}
	return func() error {
		b := alice.PickleLibOlm()
		back := session.NewOlmSession()
		if err := back.UnpickleLibOlm(b); err != nil {
			return fmt.Errorf("goolm unpickle: %w", err)
		}
		if !bytes.Equal(back.AliceBaseKey, alice.AliceBaseKey) {
			return fmt.Errorf("goolm: session changed in a round trip")
		}
		return nil
	}, nil
}
