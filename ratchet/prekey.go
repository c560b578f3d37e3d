package ratchet

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/subtle"
	"io"
	"slices"
	"time"
)

// PreKeyKind says what a prekey is and how it is used in the handshake.
type PreKeyKind uint8

const (
	SignedPreKey  PreKeyKind = 1 // X25519, signed; rotated, old ones kept a while
	OneTimePreKey PreKeyKind = 2 // X25519, unsigned; used once
	KEMLastResort PreKeyKind = 3 // ML-KEM-768, signed; reused when one-time KEM keys run out
	KEMOneTime    PreKeyKind = 4 // ML-KEM-768, signed; used once
)

// String names the kind for messages and logs.
func (k PreKeyKind) String() string {
	switch k {
	case SignedPreKey:
		return "signed prekey"
	case OneTimePreKey:
		return "one-time prekey"
	case KEMLastResort:
		return "last-resort KEM prekey"
	case KEMOneTime:
		return "one-time KEM prekey"
	}
	return "unknown prekey kind"
}

func (k PreKeyKind) valid() bool  { return k >= SignedPreKey && k <= KEMOneTime }
func (k PreKeyKind) isKEM() bool  { return k == KEMLastResort || k == KEMOneTime }
func (k PreKeyKind) signed() bool { return k != OneTimePreKey }

// publicSize is the public key length of the kind: 32 (X25519) or 1184
// (ML-KEM-768 encapsulation key).
func (k PreKeyKind) publicSize() int {
	if k.isKEM() {
		return mlkem.EncapsulationKeySize768
	}
	return 32
}

// privateSize is the private key length of the kind: 32 (X25519 scalar) or 64
// (ML-KEM-768 seed d ‖ z).
func (k PreKeyKind) privateSize() int {
	if k.isKEM() {
		return mlkem.SeedSize
	}
	return 32
}

// PublicPreKey is the public half of a prekey, as uploaded to the relay.
type PublicPreKey struct {
	Kind      PreKeyKind
	ID        uint32 // > 0, unique per kind and owner
	CreatedAt time.Time
	Key       []byte // 32 (X25519) or 1184 (ML-KEM-768 encapsulation key)
	Signature []byte // by the owner's identity key; empty for OneTimePreKey
}

// signedBytes is what the identity key signs under DomainPreKey:
// u8 kind ‖ u32 id ‖ i64 created-at ‖ key.
func (p PublicPreKey) signedBytes() []byte {
	b := make([]byte, 0, 1+4+8+len(p.Key))
	b = append(b, byte(p.Kind))
	b = appendU32(b, p.ID)
	b = appendI64(b, p.CreatedAt.Unix())
	return append(b, p.Key...)
}

func (p PublicPreKey) checkShape() error {
	if !p.Kind.valid() {
		return errf(ErrMalformed, "prekey kind %d", p.Kind)
	}
	if p.ID == 0 {
		return errf(ErrMalformed, "%s: id 0 is reserved", p.Kind)
	}
	if len(p.Key) != p.Kind.publicSize() {
		return errf(ErrMalformed, "%s %d: key is %d bytes, want %d", p.Kind, p.ID, len(p.Key), p.Kind.publicSize())
	}
	if p.Kind.signed() && len(p.Signature) != ed25519.SignatureSize {
		return errf(ErrBadSignature, "%s %d: signature is %d bytes, want 64", p.Kind, p.ID, len(p.Signature))
	}
	if !p.Kind.signed() && len(p.Signature) != 0 {
		return errf(ErrMalformed, "%s %d: carries a signature", p.Kind, p.ID)
	}
	return nil
}

// Verify checks the kind, the key size and, for signed kinds, the signature by
// card's identity key. Errors wrap ErrMalformed or ErrBadSignature.
func (p PublicPreKey) Verify(card *Card) error {
	if err := p.checkShape(); err != nil {
		return err
	}
	if !p.Kind.signed() {
		return nil
	}
	if err := VerifySignature(card.SigningKey, DomainPreKey, p.signedBytes(), p.Signature); err != nil {
		return errf(err, "%s %d of card %s", p.Kind, p.ID, card.Identity)
	}
	return nil
}

// MarshalBinary encodes the public prekey:
//
//	u8 version (1) ‖ u8 kind ‖ u32 id ‖ i64 created-at ‖ bytes16 key ‖ bytes8 signature
func (p PublicPreKey) MarshalBinary() ([]byte, error) {
	if err := p.checkShape(); err != nil {
		return nil, err
	}
	return p.appendTo(make([]byte, 0, 16+len(p.Key)+len(p.Signature))), nil
}

func (p PublicPreKey) appendTo(b []byte) []byte {
	b = append(b, preKeyVersion, byte(p.Kind))
	b = appendU32(b, p.ID)
	b = appendI64(b, p.CreatedAt.Unix())
	b = appendBytes16(b, p.Key)
	return appendBytes8(b, p.Signature)
}

const maxPublicPreKeyLen = 1 + 1 + 4 + 8 + 2 + mlkem.EncapsulationKeySize768 + 1 + ed25519.SignatureSize

// ParsePublicPreKey decodes MarshalBinary output (structure, kind and sizes; the
// signature is checked by Verify).
func ParsePublicPreKey(b []byte) (PublicPreKey, error) {
	r := reader{b: b}
	p := readPublicPreKey(&r)
	if err := r.done("prekey"); err != nil {
		return PublicPreKey{}, err
	}
	if err := p.checkShape(); err != nil {
		return PublicPreKey{}, err
	}
	return p, nil
}

func readPublicPreKey(r *reader) PublicPreKey {
	r.version(preKeyVersion, "prekey")
	var p PublicPreKey
	p.Kind = PreKeyKind(r.u8("prekey kind"))
	p.ID = r.u32("prekey id")
	p.CreatedAt = time.Unix(r.i64("prekey created-at"), 0).UTC()
	p.Key = slices.Clone(r.bytes16(mlkem.EncapsulationKeySize768, "prekey key"))
	p.Signature = slices.Clone(r.bytes8(ed25519.SignatureSize, "prekey signature"))
	if len(p.Signature) == 0 {
		p.Signature = nil
	}
	return p
}

// PrivatePreKey is a prekey with its private half, kept by the owner until the
// key is used (one-time) or retired (signed, last resort).
type PrivatePreKey struct {
	pub    PublicPreKey
	x      *ecdh.PrivateKey           // X25519 kinds
	kem    *mlkem.DecapsulationKey768 // ML-KEM kinds
	secret []byte                     // X25519 scalar or ML-KEM seed, for MarshalBinary
}

// GeneratePreKey makes a prekey of the given kind and id, signed by owner when
// the kind is signed. It reads 32 (X25519) or 64 (ML-KEM seed) bytes from rand.
func GeneratePreKey(rand io.Reader, owner *IdentityKey, kind PreKeyKind, id uint32, createdAt time.Time) (*PrivatePreKey, error) {
	if !kind.valid() {
		return nil, errf(ErrMalformed, "generate prekey: kind %d", kind)
	}
	if id == 0 {
		return nil, errf(ErrMalformed, "generate prekey: id 0 is reserved")
	}
	secret := make([]byte, kind.privateSize())
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, errf(err, "generate %s: read random", kind)
	}
	p, err := newPrivatePreKey(kind, id, time.Unix(createdAt.Unix(), 0).UTC(), secret)
	if err != nil {
		return nil, err
	}
	if kind.signed() {
		p.pub.Signature = owner.Sign(DomainPreKey, p.pub.signedBytes())
	}
	return p, nil
}

func newPrivatePreKey(kind PreKeyKind, id uint32, createdAt time.Time, secret []byte) (*PrivatePreKey, error) {
	p := &PrivatePreKey{pub: PublicPreKey{Kind: kind, ID: id, CreatedAt: createdAt}, secret: secret}
	if kind.isKEM() {
		dk, err := mlkem.NewDecapsulationKey768(secret)
		if err != nil {
			return nil, errf(ErrMalformed, "%s: %v", kind, err)
		}
		p.kem = dk
		p.pub.Key = dk.EncapsulationKey().Bytes()
	} else {
		x, err := ecdh.X25519().NewPrivateKey(secret)
		if err != nil {
			return nil, errf(ErrMalformed, "%s: %v", kind, err)
		}
		p.x = x
		p.pub.Key = x.PublicKey().Bytes()
	}
	return p, nil
}

// Public returns the public half (with its signature).
func (p *PrivatePreKey) Public() PublicPreKey {
	q := p.pub
	q.Key = slices.Clone(p.pub.Key)
	q.Signature = slices.Clone(p.pub.Signature)
	return q
}

// MarshalBinary encodes the prekey with its secret half; storage must seal it:
//
//	u8 version (1) ‖ bytes16 public prekey (PublicPreKey.MarshalBinary) ‖ bytes8 secret
//
// The secret is the X25519 scalar (32) or the ML-KEM-768 seed (64).
func (p *PrivatePreKey) MarshalBinary() ([]byte, error) {
	pub, err := p.pub.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 4+len(pub)+len(p.secret))
	b = append(b, preKeyVersion)
	b = appendBytes16(b, pub)
	return appendBytes8(b, p.secret), nil
}

// ParsePrivatePreKey decodes MarshalBinary output and checks that the secret
// matches the public key.
func ParsePrivatePreKey(b []byte) (*PrivatePreKey, error) {
	r := reader{b: b}
	r.version(preKeyVersion, "private prekey")
	pubBytes := r.bytes16(maxPublicPreKeyLen, "private prekey public half")
	secret := r.bytes8(mlkem.SeedSize, "private prekey secret")
	if err := r.done("private prekey"); err != nil {
		return nil, err
	}
	pub, err := ParsePublicPreKey(pubBytes)
	if err != nil {
		return nil, errf(err, "private prekey")
	}
	if len(secret) != pub.Kind.privateSize() {
		return nil, errf(ErrMalformed, "private %s: secret is %d bytes, want %d", pub.Kind, len(secret), pub.Kind.privateSize())
	}
	p, err := newPrivatePreKey(pub.Kind, pub.ID, pub.CreatedAt, slices.Clone(secret))
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(p.pub.Key, pub.Key) != 1 {
		return nil, errf(ErrMalformed, "private %s %d: secret does not match the public key", pub.Kind, pub.ID)
	}
	p.pub.Signature = pub.Signature
	return p, nil
}
