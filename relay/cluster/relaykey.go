package cluster

// The relay's secrets in the shared directory (its Ed25519 seed, the recovery and
// blob-capability HMAC keys: everything the relay keeps under meta) are sealed with
// XChaCha20-Poly1305 under a 32-byte key every node of the cluster is given
// (--relay-key-file, or the environment variable PFSCHAT_RELAY_KEY), never stored in
// the clear in a bucket. The key file holds the key as 64 hex digits; make one with
// GenerateSealKey.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"pfschat/storage"
)

// SealKeyEnv is the environment variable that may hold the seal key (64 hex digits)
// instead of a file.
const SealKeyEnv = "PFSCHAT_RELAY_KEY"

// SealKeySize is the size of the key that seals the relay's secrets in the directory.
const SealKeySize = chacha20poly1305.KeySize

// ErrSealKey: the seal key is missing, malformed, or not the one the cluster's
// secrets were sealed with.
var ErrSealKey = errors.New("relay/cluster: relay key file")

// sealVersion is the first byte of a sealed value.
const sealVersion byte = 1

// sealDomain separates this use of the key.
const sealDomain = "pfschat/v2/relay/cluster-meta"

// GenerateSealKey returns a fresh seal key as the 64 hex digits a key file holds.
func GenerateSealKey() string {
	k := make([]byte, SealKeySize)
	rand.Read(k)
	return hex.EncodeToString(k)
}

// ParseSealKey parses a seal key given as 64 hex digits (surrounding white space
// ignored).
func ParseSealKey(text string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(k) != SealKeySize {
		return nil, fmt.Errorf("%w: want %d hex digits (make one with: head -c 32 /dev/urandom | xxd -p -c 64)", ErrSealKey, 2*SealKeySize)
	}
	return k, nil
}

// LoadSealKey reads the seal key from path, or when path is "" from the environment
// variable PFSCHAT_RELAY_KEY. A key file readable by group or others is refused: it
// opens the relay's identity key.
func LoadSealKey(path string) ([]byte, error) {
	if path == "" {
		v, ok := os.LookupEnv(SealKeyEnv)
		if !ok {
			return nil, fmt.Errorf("%w: a relay cluster needs the key that seals its secrets: give --relay-key-file FILE or set %s", ErrSealKey, SealKeyEnv)
		}
		k, err := ParseSealKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", SealKeyEnv, err)
		}
		return k, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealKey, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by others (mode %v): chmod 600 it", ErrSealKey, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealKey, err)
	}
	k, err := ParseSealKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// sealer seals meta values, bound to the bucket and the meta key.
type sealer struct {
	key    []byte
	bucket string
}

func (s sealer) ad(name string) []byte {
	return []byte(sealDomain + "\x00" + s.bucket + "\x00" + name)
}

func (s sealer) seal(name string, v []byte) ([]byte, error) {
	b, err := storage.Seal(s.key, v, s.ad(name))
	if err != nil {
		return nil, fmt.Errorf("cluster: sealing %q: %w", name, err)
	}
	return b, nil
}

func (s sealer) open(name string, b []byte) ([]byte, error) {
	v, err := storage.Open(s.key, b, s.ad(name))
	if err != nil {
		if len(b) < 1+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || b[0] != sealVersion {
			return nil, fmt.Errorf("%w: sealed meta %q: not a sealed value", ErrDamaged, name)
		}
		return nil, fmt.Errorf("%w: the cluster's secret %q does not open with this key: every relay node needs the same --relay-key-file", ErrSealKey, name)
	}
	return v, nil
}
