package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrBadName is returned for a recipient name that cannot be a subject token (the
// relay validates names before they get here: a-z 0-9 . _ -).
var ErrBadName = errors.New("cluster: name is not a-z 0-9 . _ -")

// nameToken maps a relay name to one subject token: '.' (a token separator in NATS)
// becomes '~', which names never contain, so the map is one-to-one.
func nameToken(name string) (string, error) {
	if name == "" || len(name) > 64 {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	return strings.ReplaceAll(name, ".", "~"), nil
}

// dedupID is a send's Nats-Msg-Id: a hash of (from, from_card, client_id), so that
// none is visible in the stream's headers and its length is fixed. The card is in it
// because Nats-Msg-Id entries cannot be deleted: a new account under a deleted one's
// name must not inherit its sends' window. A resend under a replaced card of the same
// account passes the window and is caught by its marker (markerID), which has no card
// in it and is deleted with the account.
func dedupID(from, fromCard, clientID string) string { return hashID(from, fromCard, clientID) }

// markerID names a send's beyond-the-window marker: a hash of (from, client_id). The
// sender a client_id is remembered for is the name, whichever of its cards sent it
// (PROTOCOL.md, send), as in the SQLite relay.
func markerID(from, clientID string) string { return hashID(from, clientID) }

// hashID is the first 20 bytes of SHA-256 over parts joined by 0x00, in hex.
func hashID(parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:20])
}
