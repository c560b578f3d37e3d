package ratchet

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
)

// IdentityKey is a user's long-term key pair: an Ed25519 key that signs (cards,
// prekeys, relay logins) and an X25519 key that takes part in the handshake.
// The X25519 key is kept parsed so each Diffie-Hellman costs one scalar
// multiplication.
type IdentityKey struct {
	signing   ed25519.PrivateKey
	agreement *ecdh.PrivateKey
}

// identityKeySize is the length of IdentityKey.MarshalBinary:
// version (1) ‖ Ed25519 seed (32) ‖ X25519 private scalar (32).
const identityKeySize = 1 + ed25519.SeedSize + 32

// GenerateIdentityKey reads 64 bytes from rand: the Ed25519 seed, then the
// X25519 private key. The result is a deterministic function of those bytes.
func GenerateIdentityKey(rand io.Reader) (*IdentityKey, error) {
	var buf [64]byte
	defer clear(buf[:])
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return nil, errf(err, "generate identity key: read random")
	}
	return identityFromSecrets(buf[:32], buf[32:])
}

func identityFromSecrets(seed, x []byte) (*IdentityKey, error) {
	agreement, err := ecdh.X25519().NewPrivateKey(x)
	if err != nil {
		return nil, errf(ErrMalformed, "identity key: X25519 private key: %v", err)
	}
	return &IdentityKey{signing: ed25519.NewKeyFromSeed(seed), agreement: agreement}, nil
}

// MarshalBinary returns the private key: version ‖ Ed25519 seed ‖ X25519
// scalar. It is secret; storage must seal it.
func (k *IdentityKey) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, identityKeySize)
	b = append(b, identityKeyVersion)
	b = append(b, k.signing.Seed()...)
	b = append(b, k.agreement.Bytes()...)
	return b, nil
}

// ParseIdentityKey decodes MarshalBinary output.
func ParseIdentityKey(b []byte) (*IdentityKey, error) {
	r := reader{b: b}
	r.version(identityKeyVersion, "identity key")
	seed := r.take(ed25519.SeedSize, "identity key: Ed25519 seed")
	x := r.take(32, "identity key: X25519 key")
	if err := r.done("identity key"); err != nil {
		return nil, err
	}
	return identityFromSecrets(seed, x)
}

// SigningPublicKey returns the Ed25519 public key.
func (k *IdentityKey) SigningPublicKey() ed25519.PublicKey {
	return k.signing.Public().(ed25519.PublicKey)
}

// AgreementPublicKey returns the 32-byte X25519 public key.
func (k *IdentityKey) AgreementPublicKey() []byte {
	return k.agreement.PublicKey().Bytes()
}

// Sign signs domain ‖ 0x00 ‖ msg with the Ed25519 key (pure Ed25519, no
// prehash). The domains this package uses are the Domain* constants; other
// packages (the relay login) pass their own.
func (k *IdentityKey) Sign(domain string, msg []byte) []byte {
	return ed25519.Sign(k.signing, signedBytes(domain, msg))
}

// VerifySignature checks a signature made by Sign (or by any Ed25519 key over
// the same domain-separated input). It returns an error wrapping ErrBadSignature.
func VerifySignature(pub ed25519.PublicKey, domain string, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return errf(ErrBadSignature, "%s: public key is %d bytes", domain, len(pub))
	}
	if len(sig) != ed25519.SignatureSize {
		return errf(ErrBadSignature, "%s: signature is %d bytes", domain, len(sig))
	}
	if !ed25519.Verify(pub, signedBytes(domain, msg), sig) {
		return errf(ErrBadSignature, "%s", domain)
	}
	return nil
}

// signRelay signs like IdentityKey.Sign with a bare Ed25519 key.
func signWith(priv ed25519.PrivateKey, domain string, msg []byte) []byte {
	return ed25519.Sign(priv, signedBytes(domain, msg))
}

func signedBytes(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(domain)+1+len(msg))
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// ValidateName checks a user name: 1 to 32 characters of a-z, 0-9, '.', '_', '-'.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > 32 {
		return errf(ErrInvalidName, "%q has %d characters", name, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errf(ErrInvalidName, "%q: character %q at %d", name, c, i)
		}
	}
	return nil
}

// Fingerprint is a short human-comparable digest of a public key: the first 10
// bytes of SHA-256(LabelFingerprint ‖ 0x00 ‖ key), hex, in groups of four,
// e.g. "3f2a 9c01 77de 0b45 e210". It is for eyeballing (relay key, card key),
// not for safety numbers.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte(LabelFingerprint))
	h.Write([]byte{0})
	h.Write(pub)
	sum := h.Sum(nil)
	x := hex.EncodeToString(sum[:10])
	var sb strings.Builder
	for i := 0; i < len(x); i += 4 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(x[i : i+4])
	}
	return sb.String()
}
