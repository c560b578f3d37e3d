package chat

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// SafetyNumberIterations is the number of SHA-512 rounds per party, as in Signal.
const SafetyNumberIterations = 5200

// safetyNumberVersion is the fingerprint version prefix hashed in round zero (libsignal's
// "fingerprint version" 0x0000; the displayable digits of its v1 and v2 are identical).
var safetyNumberVersion = [2]byte{0, 0}

// SafetyNumber is what two people compare to be sure no one sits between them: 60 digits,
// the same on both sides, that change when either identity key changes.
type SafetyNumber struct {
	// Contact is the peer's name, CardID the card whose keys were used.
	Contact string
	CardID  string
	// Pending is true when CardID is a new, not yet accepted key of the contact;
	// Rejected, besides, when it is the key the user rejected (RejectKey), which
	// AcceptKey may still accept.
	Pending  bool
	Rejected bool
	digits   string // 60 ASCII digits
}

// Digits returns the 60 digits in 12 space-separated groups of 5.
func (s SafetyNumber) Digits() string { return strings.Join(s.Groups(), " ") }

// String is Digits.
func (s SafetyNumber) String() string { return s.Digits() }

// Groups returns the 12 groups of 5 digits (empty for the zero value).
func (s SafetyNumber) Groups() []string {
	if len(s.digits) != 60 {
		return nil
	}
	g := make([]string, 12)
	for i := range g {
		g[i] = s.digits[i*5 : i*5+5]
	}
	return g
}

// Rows returns the digits as 3 rows of 4 groups, the layout people read aloud.
func (s SafetyNumber) Rows() []string {
	g := s.Groups()
	if g == nil {
		return nil
	}
	return []string{strings.Join(g[0:4], " "), strings.Join(g[4:8], " "), strings.Join(g[8:12], " ")}
}

// Equal reports, in constant time, whether other shows the same digits. Spaces in other
// are ignored so a user may paste either form.
func (s SafetyNumber) Equal(other string) bool {
	o := strings.Join(strings.Fields(other), "")
	return len(s.digits) == 60 && subtle.ConstantTimeCompare([]byte(s.digits), []byte(o)) == 1
}

// ErrFingerprintInput reports unusable input to DisplayableFingerprint.
var ErrFingerprintInput = errors.New("chat: invalid fingerprint input")

// DisplayableFingerprint is Signal's displayable (numeric) fingerprint, byte for byte: for
// each party, hash = SHA-512(version ‖ key ‖ stableID ‖ key), then iterations-1 more rounds
// of hash = SHA-512(hash ‖ key); the first 30 bytes give 6 big-endian 40-bit numbers, each
// reduced mod 100000 and printed as 5 digits; the two 30-digit strings are concatenated in
// sorted order so both sides see the same 60 digits.
func DisplayableFingerprint(iterations int, localID, localKey, remoteID, remoteKey []byte) (string, error) {
	if iterations <= 1 || iterations > 1_000_000 {
		return "", fmt.Errorf("%w: %d iterations", ErrFingerprintInput, iterations)
	}
	if len(localKey) == 0 || len(remoteKey) == 0 {
		return "", fmt.Errorf("%w: empty key", ErrFingerprintInput)
	}
	l := fingerprintDigits(iteratedHash(iterations, localID, localKey))
	r := fingerprintDigits(iteratedHash(iterations, remoteID, remoteKey))
	if l < r {
		return l + r, nil
	}
	return r + l, nil
}

func iteratedHash(iterations int, id, key []byte) [sha512.Size]byte {
	h := sha512.New()
	h.Write(safetyNumberVersion[:])
	h.Write(key)
	h.Write(id)
	h.Write(key)
	var sum [sha512.Size]byte
	h.Sum(sum[:0])
	for i := 1; i < iterations; i++ {
		h.Reset()
		h.Write(sum[:])
		h.Write(key)
		h.Sum(sum[:0])
	}
	return sum
}

func fingerprintDigits(hash [sha512.Size]byte) string {
	var b strings.Builder
	b.Grow(30)
	for i := 0; i < 6; i++ {
		var x uint64
		for _, c := range hash[i*5 : i*5+5] {
			x = x<<8 | uint64(c)
		}
		fmt.Fprintf(&b, "%05d", x%100000)
	}
	return b.String()
}

// identityKeyBytes is the key input of a pfschat safety number: a one-byte encoding tag,
// then the Ed25519 signing key and the X25519 agreement key of the card, so a change of
// either key changes the number.
func identityKeyBytes(signing, agreement []byte) []byte {
	out := make([]byte, 0, 1+len(signing)+len(agreement))
	out = append(out, 0x01)
	out = append(out, signing...)
	return append(out, agreement...)
}

// computeSafetyNumber returns the safety number between two (name, keys) parties.
func computeSafetyNumber(localName string, localSigning, localAgreement []byte, remoteName string, remoteSigning, remoteAgreement []byte) (string, error) {
	return DisplayableFingerprint(SafetyNumberIterations,
		[]byte(localName), identityKeyBytes(localSigning, localAgreement),
		[]byte(remoteName), identityKeyBytes(remoteSigning, remoteAgreement))
}

// ErrBadSafetyNumber is ParseSafetyNumber's refusal of anything but 60 digits.
var ErrBadSafetyNumber = errors.New("chat: a safety number is 60 digits")

// ParseSafetyNumber rebuilds a SafetyNumber from its digits (spaces ignored), as a
// program that received one from pfschat's daemon API does; anything but 60 ASCII
// digits is refused (ErrBadSafetyNumber).
func ParseSafetyNumber(contact, cardID string, pending bool, digits string) (SafetyNumber, error) {
	d := strings.Join(strings.Fields(digits), "")
	if len(d) != 60 || strings.Trim(d, "0123456789") != "" {
		return SafetyNumber{}, fmt.Errorf("%w, got %q", ErrBadSafetyNumber, digits)
	}
	return SafetyNumber{Contact: contact, CardID: cardID, Pending: pending, digits: d}, nil
}
