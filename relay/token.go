package relay

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"time"
)

// Access tokens let a client resume a logged-in session on a new connection without a
// fresh key proof. A token is the relay's Ed25519 signature over
// tokenDomain ‖ 0x00 ‖ payload, appended to the payload:
//
//	payload = 0x01 ‖ expires (8 bytes, unix seconds, big endian) ‖ len(name) (1) ‖ name ‖ card id (64 hex chars)
//
// Tokens are short-lived and bound to one card on one relay: a token from another
// relay fails the signature, a token for a replaced card fails the card check.
const tokenDomain = "pfschat/v1/relay/token"

// LoginDomain is the domain string of the login key proof: the client signs
// LoginDomain ‖ 0x00 ‖ relay public key (32) ‖ challenge (32) with its identity key
// (ratchet.IdentityKey.Sign(LoginDomain, relayKey‖challenge)).
const LoginDomain = "pfschat/v1/relay/login"

// ChallengeSize is the length of the login challenge in the relay's hello.
const ChallengeSize = 32

var errBadToken = errors.New("relay: invalid access token")

// IssueToken makes an access token for name's card, signed with the relay's key.
func IssueToken(priv ed25519.PrivateKey, name, cardID string, expires time.Time) []byte {
	p := make([]byte, 0, 1+8+1+len(name)+len(cardID)+ed25519.SignatureSize)
	p = append(p, 1)
	p = binary.BigEndian.AppendUint64(p, uint64(expires.Unix()))
	p = append(p, byte(len(name)))
	p = append(p, name...)
	p = append(p, cardID...)
	sig := ed25519.Sign(priv, domainMessage(tokenDomain, p))
	return append(p, sig...)
}

// ParseToken checks the token's signature and expiry and returns what it names.
func ParseToken(pub ed25519.PublicKey, tok []byte, now time.Time) (name, cardID string, err error) {
	const fixed = 1 + 8 + 1
	if len(tok) < fixed+ed25519.SignatureSize || len(tok) > 256 {
		return "", "", errBadToken
	}
	payload, sig := tok[:len(tok)-ed25519.SignatureSize], tok[len(tok)-ed25519.SignatureSize:]
	if !ed25519.Verify(pub, domainMessage(tokenDomain, payload), sig) {
		return "", "", errBadToken
	}
	if payload[0] != 1 {
		return "", "", errBadToken
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0)
	n := int(payload[9])
	if len(payload) != fixed+n+64 {
		return "", "", errBadToken
	}
	if !now.Before(expires) {
		return "", "", errors.New("relay: access token expired")
	}
	return string(payload[fixed : fixed+n]), string(payload[fixed+n:]), nil
}

func domainMessage(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(domain)+1+len(msg))
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// LoginMessage is what a client signs (under LoginDomain) to prove its identity:
// relay key ‖ challenge.
func LoginMessage(relayKey ed25519.PublicKey, challenge []byte) []byte {
	b := make([]byte, 0, len(relayKey)+len(challenge))
	b = append(b, relayKey...)
	return append(b, challenge...)
}
