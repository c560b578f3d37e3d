package relay

// Operations on accounts and relay keys: a card deleting its own account, and the
// statement a relay makes when its key is rotated. PROTOCOL.md, "Accounts and relay
// keys", specifies both byte for byte.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"pfschat/ratchet"
)

// DeleteAccountDomain is the domain of a delete_account signature: the card's identity
// key signs DeleteAccountDomain ‖ 0x00 ‖ relay key (32) ‖ card id (64 ASCII hex) ‖
// time (u64 big endian, unix seconds).
const DeleteAccountDomain = "pfschat/v1/relay/delete-account"

// DeleteAccountSkew is how far a delete_account's time may be from the relay's clock.
const DeleteAccountSkew = 5 * time.Minute

// DeleteAccountMessage is what DeleteAccountDomain signs (after the domain and 0x00).
func DeleteAccountMessage(relayKey ed25519.PublicKey, cardID string, unix int64) []byte {
	b := make([]byte, 0, len(relayKey)+len(cardID)+8)
	b = append(b, relayKey...)
	b = append(b, cardID...)
	return binary.BigEndian.AppendUint64(b, uint64(unix))
}

// KeyRotationDomain is the domain of a key rotation statement: the old relay key signs
// KeyRotationDomain ‖ 0x00 ‖ old key (32) ‖ new key (32) ‖ time (u64 big endian, unix
// seconds).
const KeyRotationDomain = "pfschat/v1/relay/key-rotation"

// KeyRotationSize is the length of an encoded KeyRotation.
const KeyRotationSize = 1 + 32 + 32 + 8 + 64

// MaxKeyRotations is how many statements a hello carries at most (the newest).
const MaxKeyRotations = 16

// ErrBadKeyRotation is wrapped by every refusal of a key rotation statement.
var ErrBadKeyRotation = errors.New("relay: bad key rotation statement")

// KeyRotation says, signed by the old key, that the relay's key changed from Old to
// New at Time. Encoded (MarshalBinary) as
//
//	0x01 ‖ old (32) ‖ new (32) ‖ time (u64 BE, unix seconds) ‖ signature (64)
type KeyRotation struct {
	Old, New  ed25519.PublicKey
	Time      int64
	Signature []byte
}

func keyRotationMessage(old, new ed25519.PublicKey, unix int64) []byte {
	b := make([]byte, 0, len(KeyRotationDomain)+1+32+32+8)
	b = append(b, KeyRotationDomain...)
	b = append(b, 0)
	b = append(b, old...)
	b = append(b, new...)
	return binary.BigEndian.AppendUint64(b, uint64(unix))
}

// SignKeyRotation makes the statement that the relay key oldPriv is replaced by newPub.
func SignKeyRotation(oldPriv ed25519.PrivateKey, newPub ed25519.PublicKey, at time.Time) KeyRotation {
	old := oldPriv.Public().(ed25519.PublicKey)
	unix := at.Unix()
	return KeyRotation{Old: bytes.Clone(old), New: bytes.Clone(newPub), Time: unix,
		Signature: ed25519.Sign(oldPriv, keyRotationMessage(old, newPub, unix))}
}

// MarshalBinary encodes the statement.
func (k KeyRotation) MarshalBinary() ([]byte, error) {
	if len(k.Old) != 32 || len(k.New) != 32 || len(k.Signature) != 64 || k.Time < 0 {
		return nil, fmt.Errorf("%w: wrong field sizes", ErrBadKeyRotation)
	}
	b := make([]byte, 0, KeyRotationSize)
	b = append(b, 1)
	b = append(b, k.Old...)
	b = append(b, k.New...)
	b = binary.BigEndian.AppendUint64(b, uint64(k.Time))
	return append(b, k.Signature...), nil
}

// ParseKeyRotation decodes a statement and checks its signature by the old key.
func ParseKeyRotation(b []byte) (KeyRotation, error) {
	if len(b) != KeyRotationSize {
		return KeyRotation{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadKeyRotation, len(b), KeyRotationSize)
	}
	if b[0] != 1 {
		return KeyRotation{}, fmt.Errorf("%w: version %d", ErrBadKeyRotation, b[0])
	}
	t := binary.BigEndian.Uint64(b[65:73])
	if t > 1<<62 {
		return KeyRotation{}, fmt.Errorf("%w: time out of range", ErrBadKeyRotation)
	}
	k := KeyRotation{Old: bytes.Clone(b[1:33]), New: bytes.Clone(b[33:65]), Time: int64(t), Signature: bytes.Clone(b[73:])}
	if k.Old.Equal(k.New) {
		return KeyRotation{}, fmt.Errorf("%w: old and new key are the same", ErrBadKeyRotation)
	}
	if !ed25519.Verify(k.Old, keyRotationMessage(k.Old, k.New, k.Time), k.Signature) {
		return KeyRotation{}, fmt.Errorf("%w: the old key's signature does not verify", ErrBadKeyRotation)
	}
	return k, nil
}

// FollowKeyRotations finds, among the encoded statements of a hello, a chain of valid
// statements from the pinned key to the presented one (pinned → k1 → … → presented)
// and returns it. It fails (wrapping ErrBadKeyRotation) when there is none: then the
// key change is not vouched for by the pinned key.
func FollowKeyRotations(pinned, presented ed25519.PublicKey, encoded [][]byte) ([]KeyRotation, error) {
	if len(encoded) > MaxKeyRotations {
		encoded = encoded[len(encoded)-MaxKeyRotations:]
	}
	var valid []KeyRotation
	for _, e := range encoded {
		k, err := ParseKeyRotation(e)
		if err != nil {
			return nil, err
		}
		valid = append(valid, k)
	}
	var chain []KeyRotation
	cur := pinned
	for steps := 0; !cur.Equal(presented); steps++ {
		if steps > len(valid) {
			return nil, fmt.Errorf("%w: no chain from the pinned key", ErrBadKeyRotation)
		}
		found := false
		for _, k := range valid {
			if k.Old.Equal(cur) {
				chain = append(chain, k)
				cur = k.New
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: no statement signed by %s", ErrBadKeyRotation, ratchet.Fingerprint(cur))
		}
	}
	return chain, nil
}
