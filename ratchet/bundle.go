package ratchet

import (
	"crypto/ed25519"
	"crypto/subtle"
)

// Bundle is what the relay hands out to someone who wants to start a session
// with a card: the relay-signed card and one key of each handshake role.
type Bundle struct {
	Card          *Card         // relay-signed
	SignedPreKey  PublicPreKey  // kind SignedPreKey
	OneTimePreKey *PublicPreKey // kind OneTimePreKey; nil when the relay ran out
	KEMPreKey     PublicPreKey  // kind KEMOneTime if available, else KEMLastResort
}

// Verify checks that the bundle is for expected (same card ID), that its card
// carries valid self and relay signatures, and that every prekey has the right
// kind and size and (signed kinds) a valid signature by the card. Errors wrap
// ErrWrongCard, ErrBadSignature, ErrMissingPreKey or ErrMalformed.
func (b *Bundle) Verify(expected *Card, relayKey ed25519.PublicKey) error {
	if b.Card == nil {
		return errf(ErrMalformed, "bundle has no card")
	}
	if expected == nil {
		return errf(ErrMalformed, "bundle verify: no expected card")
	}
	// Compare snapshots and self signatures before spending time on signatures:
	// a bundle for another card is the cheap and common failure.
	gotID, wantID := b.Card.rawID(), expected.rawID()
	if subtle.ConstantTimeCompare(gotID[:], wantID[:]) != 1 {
		return errf(ErrWrongCard, "bundle is for card %s (%s), want %s (%s)", b.Card.ID()[:16], b.Card.Identity, expected.ID()[:16], expected.Identity)
	}
	if err := b.Card.VerifyWithRelay(relayKey); err != nil {
		return errf(err, "bundle")
	}
	if b.SignedPreKey.Kind != SignedPreKey {
		return errf(ErrMissingPreKey, "bundle: signed prekey slot holds %s", b.SignedPreKey.Kind)
	}
	if err := b.SignedPreKey.Verify(b.Card); err != nil {
		return errf(err, "bundle")
	}
	if b.OneTimePreKey != nil {
		if b.OneTimePreKey.Kind != OneTimePreKey {
			return errf(ErrMalformed, "bundle: one-time prekey slot holds %s", b.OneTimePreKey.Kind)
		}
		if err := b.OneTimePreKey.Verify(b.Card); err != nil {
			return errf(err, "bundle")
		}
	}
	if !b.KEMPreKey.Kind.isKEM() {
		return errf(ErrMissingPreKey, "bundle: KEM prekey slot holds %s", b.KEMPreKey.Kind)
	}
	if err := b.KEMPreKey.Verify(b.Card); err != nil {
		return errf(err, "bundle")
	}
	return nil
}

const maxBundleLen = 1 + 2 + maxCardLen + 3*(2+maxPublicPreKeyLen) + 1

// MarshalBinary encodes the bundle:
//
//	u8 version (1) ‖ bytes16 card (Card.MarshalBinary) ‖ bytes16 signed prekey
//	‖ u8 has-one-time (0|1) [‖ bytes16 one-time prekey] ‖ bytes16 KEM prekey
//
// with each prekey as PublicPreKey.MarshalBinary.
func (b *Bundle) MarshalBinary() ([]byte, error) {
	if b.Card == nil {
		return nil, errf(ErrMalformed, "bundle has no card")
	}
	card, err := b.Card.MarshalBinary()
	if err != nil {
		return nil, err
	}
	spk, err := b.SignedPreKey.MarshalBinary()
	if err != nil {
		return nil, err
	}
	kem, err := b.KEMPreKey.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 16+len(card)+len(spk)+len(kem)+120)
	out = append(out, bundleVersion)
	out = appendBytes16(out, card)
	out = appendBytes16(out, spk)
	if b.OneTimePreKey != nil {
		opk, err := b.OneTimePreKey.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append(out, 1)
		out = appendBytes16(out, opk)
	} else {
		out = append(out, 0)
	}
	out = appendBytes16(out, kem)
	return out, nil
}

// ParseBundle decodes MarshalBinary output (structure only; call Verify).
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > maxBundleLen {
		return nil, errf(ErrOversize, "bundle: %d bytes, limit %d", len(data), maxBundleLen)
	}
	r := reader{b: data}
	r.version(bundleVersion, "bundle")
	cardBytes := r.bytes16(maxCardLen, "bundle card")
	spkBytes := r.bytes16(maxPublicPreKeyLen, "bundle signed prekey")
	has := r.u8("bundle one-time flag")
	var opkBytes []byte
	switch {
	case r.err != nil:
	case has == 1:
		opkBytes = r.bytes16(maxPublicPreKeyLen, "bundle one-time prekey")
	case has != 0:
		r.fail(errf(ErrMalformed, "bundle one-time flag %d", has))
	}
	kemBytes := r.bytes16(maxPublicPreKeyLen, "bundle KEM prekey")
	if err := r.done("bundle"); err != nil {
		return nil, err
	}
	b := &Bundle{}
	var err error
	if b.Card, err = ParseCard(cardBytes); err != nil {
		return nil, errf(err, "bundle")
	}
	if b.SignedPreKey, err = ParsePublicPreKey(spkBytes); err != nil {
		return nil, errf(err, "bundle signed prekey")
	}
	if has == 1 {
		opk, err := ParsePublicPreKey(opkBytes)
		if err != nil {
			return nil, errf(err, "bundle one-time prekey")
		}
		b.OneTimePreKey = &opk
	}
	if b.KEMPreKey, err = ParsePublicPreKey(kemBytes); err != nil {
		return nil, errf(err, "bundle KEM prekey")
	}
	return b, nil
}
