package ratchet

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"io"
)

// The handshake is Signal's PQXDH with X25519 and ML-KEM-768:
//
//	DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
//	DH4 = DH(EK_A, OPK_B)   (only when the bundle had a one-time prekey)
//	(CT, SS) = ML-KEM-768.Encaps(PQPK_B)
//	SK = HKDF-SHA256(salt = 32 zero bytes, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS,
//	                 info = LabelPQXDH, L = 32)
//	AD = initiator card ID ‖ responder card ID (32 raw bytes each)
//
// The card IDs hash both parties' identity keys, so AD binds the identities as
// PQXDH's Encode(IK_A) ‖ Encode(IK_B) does. Then the Double Ratchet starts as in
// Signal's spec: the initiator's first receiving ratchet key is SPK_B, the
// responder's first sending ratchet key pair is SPK_B.

func deriveSK(dhs [][]byte, ss []byte) ([32]byte, error) {
	ikm := make([]byte, 0, 32+32*len(dhs)+len(ss))
	for i := 0; i < 32; i++ {
		ikm = append(ikm, 0xFF)
	}
	for _, d := range dhs {
		ikm = append(ikm, d...)
	}
	ikm = append(ikm, ss...)
	sk, err := hkdf.Key(sha256.New, ikm, zeroSalt[:], LabelPQXDH, 32)
	clear(ikm)
	var out [32]byte
	if err != nil {
		return out, err
	}
	copy(out[:], sk)
	clear(sk)
	return out, nil
}

func dh(priv *ecdh.PrivateKey, pub *ecdh.PublicKey, what string) ([]byte, error) {
	s, err := priv.ECDH(pub)
	if err != nil {
		return nil, errf(ErrMalformed, "handshake %s: %v", what, err)
	}
	return s, nil
}

func parseX25519(b []byte, what string) (*ecdh.PublicKey, error) {
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, errf(ErrMalformed, "%s: %v", what, err)
	}
	return k, nil
}

// checkOwnCard makes sure card describes k.
func checkOwnCard(k *IdentityKey, card *Card) error {
	if card == nil {
		return errf(ErrWrongCard, "own card missing")
	}
	if subtle.ConstantTimeCompare(card.SigningKey, k.SigningPublicKey()) != 1 ||
		subtle.ConstantTimeCompare(card.AgreementKey, k.AgreementPublicKey()) != 1 {
		return errf(ErrWrongCard, "own card %s does not hold this identity key", card.Identity)
	}
	return nil
}

// encapsulateFrom, when set, replaces ML-KEM's Encapsulate in StartSession
// under a caller-supplied random source: the test vectors need the
// derandomized ML-KEM.Encaps_internal fed with 32 bytes read from that source
// (crypto/mlkem/mlkemtest, whose documentation reserves it for known-answer
// tests). Only _test.go files set it; in production it is nil and every
// encapsulation draws its randomness from the operating system.
var encapsulateFrom func(ek *mlkem.EncapsulationKey768, rnd io.Reader) (sharedKey, ciphertext []byte, err error)

// StartSession is the initiator's side of the handshake. It verifies b against
// peerCard and relayKey (Bundle.Verify), runs PQXDH and returns a session whose
// Encrypt emits initial messages until the first reply is decrypted. It reads
// 32 bytes (ephemeral key) from rand; the ML-KEM encapsulation takes its
// randomness from crypto/rand whatever rand is, so a seeded rand does not make
// a handshake reproducible. The session keeps rand for its ratchet keys (see
// SetRand). Whether a one-time prekey was used: Session.UsedOneTimePreKey.
func StartSession(rnd io.Reader, self *IdentityKey, selfCard, peerCard *Card, relayKey ed25519.PublicKey, b *Bundle) (*Session, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := checkOwnCard(self, selfCard); err != nil {
		return nil, err
	}
	if err := b.Verify(peerCard, relayKey); err != nil {
		return nil, errf(err, "start session")
	}
	ikB, err := parseX25519(peerCard.AgreementKey, "peer identity key")
	if err != nil {
		return nil, err
	}
	spkB, err := parseX25519(b.SignedPreKey.Key, "signed prekey")
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, errf(err, "start session: read random")
	}
	ek, err := ecdh.X25519().NewPrivateKey(seed[:])
	clear(seed[:])
	if err != nil {
		return nil, errf(ErrMalformed, "ephemeral key: %v", err)
	}
	dh1, err := dh(self.agreement, spkB, "DH1")
	if err != nil {
		return nil, err
	}
	dh2, err := dh(ek, ikB, "DH2")
	if err != nil {
		return nil, err
	}
	dh3, err := dh(ek, spkB, "DH3")
	if err != nil {
		return nil, err
	}
	dhs := [][]byte{dh1, dh2, dh3}
	var opkID uint32
	if b.OneTimePreKey != nil {
		opk, err := parseX25519(b.OneTimePreKey.Key, "one-time prekey")
		if err != nil {
			return nil, err
		}
		dh4, err := dh(ek, opk, "DH4")
		if err != nil {
			return nil, err
		}
		dhs = append(dhs, dh4)
		opkID = b.OneTimePreKey.ID
	}
	ekKEM, err := mlkem.NewEncapsulationKey768(b.KEMPreKey.Key)
	if err != nil {
		return nil, errf(ErrMalformed, "KEM prekey: %v", err)
	}
	var ss, ct []byte
	if encapsulateFrom != nil && rnd != rand.Reader {
		if ss, ct, err = encapsulateFrom(ekKEM, rnd); err != nil {
			return nil, errf(err, "start session: KEM encapsulation")
		}
	} else {
		ss, ct = ekKEM.Encapsulate()
	}
	sk, err := deriveSK(dhs, ss)
	for _, d := range dhs {
		clear(d)
	}
	clear(ss)
	if err != nil {
		return nil, err
	}

	s := &Session{initiator: true, usedOPK: opkID != 0, rand: rnd}
	s.selfCard = selfCard.rawID()
	s.peerCard = b.Card.rawID()
	copy(s.ad[:32], s.selfCard[:])
	copy(s.ad[32:], s.peerCard[:])
	ekPub := ek.PublicKey().Bytes()
	s.id = sessionID(s.selfCard[:], s.peerCard[:], ekPub)
	h := InitialHeader{
		InitiatorCardID: selfCard.ID(),
		ResponderCardID: peerCard.ID(),
		EphemeralKey:    ekPub,
		SignedPreKeyID:  b.SignedPreKey.ID,
		OneTimePreKeyID: opkID,
		KEMPreKeyID:     b.KEMPreKey.ID,
		KEMPreKeyKind:   b.KEMPreKey.Kind,
		KEMCiphertext:   ct,
	}
	if s.initialHdr, err = h.appendTo(make([]byte, 0, initialHeaderSize)); err != nil {
		return nil, err
	}
	s.rk = sk
	copy(s.dhr[:], b.SignedPreKey.Key)
	s.hasDHr = true
	s.dhrKey = spkB
	return s, nil
}

// ResponderKeys are the private prekeys an initial message names (look them up
// by the IDs in Envelope.Initial).
type ResponderKeys struct {
	SignedPreKey  *PrivatePreKey
	OneTimePreKey *PrivatePreKey // nil if the header names none
	KEMPreKey     *PrivatePreKey
}

func checkPrivate(p *PrivatePreKey, kind PreKeyKind, id uint32, what string) error {
	if p == nil {
		return errf(ErrMissingPreKey, "%s %d not available", what, id)
	}
	if p.pub.Kind != kind || p.pub.ID != id {
		return errf(ErrMissingPreKey, "%s: have %s %d, message names %s %d", what, p.pub.Kind, p.pub.ID, kind, id)
	}
	return nil
}

// AcceptSession is the responder's side: it runs PQXDH from an initial message,
// decrypts the message's payload and returns the new session with it. Nothing
// is returned unless the payload authenticates. peerCard must be the card the
// caller verified (VerifyWithRelay) for the initiator; its ID must match the
// header. Delete the one-time prekeys the header names after committing the
// session (env.Initial.OneTimePreKeyID, and KEMPreKeyID when its kind is
// KEMOneTime).
//
// Replays: AcceptSession itself keeps no memory. Look up env.Initial.SessionID()
// among the stored sessions first (Session.Decrypt then rejects a replay with
// ErrReplay). An initial message that used no one-time prekey can, as in
// X3DH/PQXDH, be replayed to AcceptSession after its session was deleted; keep
// a record of seen session IDs if that matters.
func AcceptSession(self *IdentityKey, selfCard, peerCard *Card, keys ResponderKeys, env *Envelope) (*Session, []byte, error) {
	if env == nil || env.Type != MessageInitial || env.raw == nil {
		return nil, nil, ErrNotInitial
	}
	if err := checkOwnCard(self, selfCard); err != nil {
		return nil, nil, err
	}
	if peerCard == nil {
		return nil, nil, errf(ErrWrongCard, "peer card missing")
	}
	h := &env.rawIn
	selfID, peerID := selfCard.rawID(), peerCard.rawID()
	if subtle.ConstantTimeCompare(h.responder, selfID[:]) != 1 {
		return nil, nil, errf(ErrWrongCard, "initial message is for another card")
	}
	if subtle.ConstantTimeCompare(h.initiator, peerID[:]) != 1 {
		return nil, nil, errf(ErrWrongCard, "initial message is from another card than %s", peerCard.Identity)
	}
	if err := checkPrivate(keys.SignedPreKey, SignedPreKey, h.spk, "signed prekey"); err != nil {
		return nil, nil, err
	}
	if h.opk != 0 {
		if err := checkPrivate(keys.OneTimePreKey, OneTimePreKey, h.opk, "one-time prekey"); err != nil {
			return nil, nil, err
		}
	}
	if err := checkPrivate(keys.KEMPreKey, h.kemKind, h.kemID, "KEM prekey"); err != nil {
		return nil, nil, err
	}
	ikA, err := parseX25519(peerCard.AgreementKey, "peer identity key")
	if err != nil {
		return nil, nil, err
	}
	ekA, err := parseX25519(h.ek, "ephemeral key")
	if err != nil {
		return nil, nil, err
	}
	dh1, err := dh(keys.SignedPreKey.x, ikA, "DH1")
	if err != nil {
		return nil, nil, err
	}
	dh2, err := dh(self.agreement, ekA, "DH2")
	if err != nil {
		return nil, nil, err
	}
	dh3, err := dh(keys.SignedPreKey.x, ekA, "DH3")
	if err != nil {
		return nil, nil, err
	}
	dhs := [][]byte{dh1, dh2, dh3}
	if h.opk != 0 {
		dh4, err := dh(keys.OneTimePreKey.x, ekA, "DH4")
		if err != nil {
			return nil, nil, err
		}
		dhs = append(dhs, dh4)
	}
	ss, err := keys.KEMPreKey.kem.Decapsulate(h.kemCT)
	if err != nil {
		return nil, nil, errf(ErrMalformed, "KEM ciphertext: %v", err)
	}
	sk, err := deriveSK(dhs, ss)
	for _, d := range dhs {
		clear(d)
	}
	clear(ss)
	if err != nil {
		return nil, nil, err
	}
	s := &Session{usedOPK: h.opk != 0}
	s.selfCard, s.peerCard = selfID, peerID
	copy(s.ad[:32], peerID[:])
	copy(s.ad[32:], selfID[:])
	s.id = sessionID(peerID[:], selfID[:], h.ek)
	s.rk = sk
	s.hasDHs = true
	s.dhsKey = keys.SignedPreKey.x
	copy(s.dhsPriv[:], keys.SignedPreKey.secret)
	copy(s.dhsPub[:], keys.SignedPreKey.pub.Key)
	pt, err := s.decrypt(env)
	if err != nil {
		return nil, nil, errf(err, "accept session")
	}
	return s, pt, nil
}
