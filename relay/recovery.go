package relay

// Recovery codes (PROTOCOL.md "Identity replacement and recovery"): 128 random bits
// shown to the user once, with a 32-bit checksum, in Crockford base32; the relay
// keeps only a keyed hash of a proof derived from them, and a user who lost their
// identity key registers a new card under the same name by presenting the code.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"io"
	"strings"
)

const (
	// RecoverySecretSize is the recovery code's secret: 128 bits.
	RecoverySecretSize = 16
	// recoveryCheckSize is the checksum appended before encoding.
	recoveryCheckSize = 4
	// RecoveryProofSize is the proof a client sends (register, recover, set_recovery).
	RecoveryProofSize = 32
	// RecoveryCodeLen is the length of a formatted code: 32 symbols in 8 groups of 4.
	RecoveryCodeLen = 39
	// maxRecoveryInput bounds what ParseRecoveryCode looks at.
	maxRecoveryInput = 128

	// RecoveryCheckDomain, RecoveryProofDomain and RecoveryVerifierDomain separate
	// the three hashes of a recovery code.
	RecoveryCheckDomain    = "pfschat/v1/recovery-code"
	RecoveryProofDomain    = "pfschat/v1/recovery-proof"
	RecoveryVerifierDomain = "pfschat/v1/recovery-verifier"
)

// recoveryAlphabet is Crockford's base32: digits and upper-case letters without I, L,
// O and U, so that a code read aloud or copied by hand is hard to get wrong.
const recoveryAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var recoveryEncoding = base32.NewEncoding(recoveryAlphabet).WithPadding(base32.NoPadding)

// Errors of ParseRecoveryCode.
var (
	// ErrRecoveryCodeMalformed: not 32 symbols of the code's alphabet (after
	// separators are dropped and the look-alikes mapped).
	ErrRecoveryCodeMalformed = errors.New("recovery code: not a recovery code (want 32 letters and digits, e.g. 1A2B-3C4D-…)")
	// ErrRecoveryCodeChecksum: the symbols are valid but the checksum does not match:
	// a typo.
	ErrRecoveryCodeChecksum = errors.New("recovery code: the checksum does not match (a typo?)")
)

// RecoveryCode is a recovery code's secret.
type RecoveryCode [RecoverySecretSize]byte

// NewRecoveryCode draws a code's 128 bits from rand (crypto/rand in production).
func NewRecoveryCode(rand io.Reader) (RecoveryCode, error) {
	var c RecoveryCode
	if _, err := io.ReadFull(rand, c[:]); err != nil {
		return RecoveryCode{}, err
	}
	return c, nil
}

func recoveryCheck(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte(RecoveryCheckDomain))
	h.Write([]byte{0})
	h.Write(secret)
	return h.Sum(nil)[:recoveryCheckSize]
}

// String formats the code: Crockford base32 of secret ‖ checksum, 8 groups of 4
// symbols joined by '-'.
func (c RecoveryCode) String() string {
	raw := append(c[:len(c):len(c)], recoveryCheck(c[:])...)
	s := recoveryEncoding.EncodeToString(raw)
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

// ParseRecoveryCode reads a code as a user types it: ASCII spaces, tabs, line ends and
// '-' are ignored, lower case is upper case, O is 0, I and L are 1. What remains must
// be 32 symbols of the alphabet (ErrRecoveryCodeMalformed) whose last 4 bytes are the
// checksum of the first 16 (ErrRecoveryCodeChecksum). It never panics.
func ParseRecoveryCode(s string) (RecoveryCode, error) {
	if len(s) > maxRecoveryInput {
		return RecoveryCode{}, ErrRecoveryCodeMalformed
	}
	buf := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '-':
			continue
		case ch >= 'a' && ch <= 'z':
			ch -= 'a' - 'A'
		}
		switch ch {
		case 'O':
			ch = '0'
		case 'I', 'L':
			ch = '1'
		}
		if !strings.ContainsRune(recoveryAlphabet, rune(ch)) {
			return RecoveryCode{}, ErrRecoveryCodeMalformed
		}
		buf = append(buf, ch)
	}
	if len(buf) != 32 {
		return RecoveryCode{}, ErrRecoveryCodeMalformed
	}
	raw, err := recoveryEncoding.DecodeString(string(buf))
	if err != nil || len(raw) != RecoverySecretSize+recoveryCheckSize {
		return RecoveryCode{}, ErrRecoveryCodeMalformed
	}
	if !hmac.Equal(raw[RecoverySecretSize:], recoveryCheck(raw[:RecoverySecretSize])) {
		return RecoveryCode{}, ErrRecoveryCodeChecksum
	}
	var c RecoveryCode
	copy(c[:], raw)
	return c, nil
}

// Proof is what a client sends for the code: SHA-256(RecoveryProofDomain ‖ 0x00 ‖
// name ‖ 0x00 ‖ secret), so the code itself never leaves the client and a proof is
// good for one name only.
func (c RecoveryCode) Proof(name string) []byte {
	h := sha256.New()
	h.Write([]byte(RecoveryProofDomain))
	h.Write([]byte{0})
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(c[:])
	return h.Sum(nil)
}

// RecoveryVerifier is what the relay stores for a proof: HMAC-SHA256 under the relay's
// recovery key of RecoveryVerifierDomain ‖ 0x00 ‖ name ‖ 0x00 ‖ proof.
func RecoveryVerifier(key []byte, name string, proof []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(RecoveryVerifierDomain))
	m.Write([]byte{0})
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(proof)
	return m.Sum(nil)
}
