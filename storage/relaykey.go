package storage

// The relay key: 32 bytes kept outside the relay's state (a key file given as
// --relay-key-file, or $PFSCHAT_RELAY_KEY) that seal the relay's secrets (its Ed25519
// seed, the recovery and blob-capability HMAC keys: the values the relay keeps in
// meta) with XChaCha20-Poly1305. The SQLite relay store (RelayOptions.SealKey) and a
// relay cluster's directory in JetStream (relay/cluster) both seal with a
// RelaySealer, each under its own context, so that what one holds never opens as the
// other's. A key file holds the key as 64 hex digits; make one with GenerateRelayKey.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// RelayKeyEnv is the environment variable that may hold the relay key (64 hex
// digits) instead of a key file.
const RelayKeyEnv = "PFSCHAT_RELAY_KEY"

// RelayKeySize is the size of the relay key.
const RelayKeySize = chacha20poly1305.KeySize

// GenerateRelayKey returns a fresh relay key as the 64 hex digits a key file holds.
func GenerateRelayKey() string {
	k := make([]byte, RelayKeySize)
	rand.Read(k)
	return hex.EncodeToString(k)
}

// ParseRelayKey parses a relay key given as 64 hex digits (surrounding white space
// ignored). A refusal wraps ErrRelayKey.
func ParseRelayKey(text string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(k) != RelayKeySize {
		return nil, fmt.Errorf("%w: want %d hex digits (make a key file with 'pfschat relay new-key-file FILE')", ErrRelayKey, 2*RelayKeySize)
	}
	return k, nil
}

// LoadRelayKey reads the relay key from the key file at path, or when path is "" from
// $PFSCHAT_RELAY_KEY; it returns nil and no error when neither is given. A key file
// readable by group or others is refused: it opens the relay's identity key. Every
// refusal wraps ErrRelayKey.
func LoadRelayKey(path string) ([]byte, error) {
	if path == "" {
		v, ok := os.LookupEnv(RelayKeyEnv)
		if !ok {
			return nil, nil
		}
		k, err := ParseRelayKey(v)
		if err != nil {
			return nil, fmt.Errorf("%w: $%s: want %d hex digits (make a key file with 'pfschat relay new-key-file FILE' and give it as --relay-key-file FILE, or put what it holds in $%s)",
				ErrRelayKey, RelayKeyEnv, 2*RelayKeySize, RelayKeyEnv)
		}
		return k, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRelayKey, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && !(systemdCredential(path) && perm&0o027 == 0) {
		return nil, fmt.Errorf("%w: %s is readable or writable by group or others (mode %04o), and it holds a secret; run chmod 600 %s", ErrRelayKey, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRelayKey, err)
	}
	k, err := ParseRelayKey(string(b))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: want %d hex digits (make a new key file with 'pfschat relay new-key-file FILE')", ErrRelayKey, path, 2*RelayKeySize)
	}
	return k, nil
}

// RelaySealer seals the relay's meta values under the relay key. A sealed value is
// bound to the sealer's context (what holds it: a SQLite relay store, one cluster's
// bucket) and to its name, so that a value copied under another name, or into
// another relay's state, no longer opens.
type RelaySealer struct {
	key     []byte
	context string
}

// NewRelaySealer seals under key (RelayKeySize bytes) in context. The associated data
// of a value named name is context ‖ 0x00 ‖ name.
func NewRelaySealer(key []byte, context string) RelaySealer {
	return RelaySealer{key: key, context: context}
}

func (s RelaySealer) ad(name string) []byte {
	return []byte(s.context + "\x00" + name)
}

// Seal seals the value named name.
func (s RelaySealer) Seal(name string, v []byte) ([]byte, error) {
	b, err := sealWith(s.key, v, s.ad(name))
	if err != nil {
		return nil, fmt.Errorf("sealing %q: %w", name, err)
	}
	return b, nil
}

// Open opens the value named name: ErrCorrupt when b is not a sealed value at all,
// ErrRelayKey when it does not open (another relay key, or moved from another name
// or context).
func (s RelaySealer) Open(name string, b []byte) ([]byte, error) {
	if len(b) < 1+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || b[0] != sealVersion {
		return nil, fmt.Errorf("%w: sealed %q: not a sealed value", ErrCorrupt, name)
	}
	v, err := openWith(s.key, b, s.ad(name))
	if err != nil {
		return nil, fmt.Errorf("%w: the relay's secret %q does not open with this key", ErrRelayKey, name)
	}
	return v, nil
}

// systemdCredential reports whether path is in the directory systemd gives a service
// its credentials in (LoadCredential=, $CREDENTIALS_DIRECTORY). systemd writes each
// credential 0400 and then grants the service's user read access with an ACL, whose
// mask shows in the group bits (0440); the directory is the service's alone. So there a
// file readable by its group — but not writable by it, nor open to others — is kept as
// private as a 0600 one elsewhere.
func systemdCredential(path string) bool {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return false
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), abs)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel)
}
