package cluster

// The relay's secrets in the shared directory (its Ed25519 seed, the recovery and
// blob-capability HMAC keys: everything the relay keeps under meta) are sealed with
// XChaCha20-Poly1305 under the relay key every node of the cluster is given
// (--relay-key-file, or the environment variable PFSCHAT_RELAY_KEY), never stored in
// the clear in a bucket. The key, its file and the sealing are storage's (RelaySealer),
// shared with the SQLite relay store; a cluster's values are bound to its bucket.

import (
	"errors"
	"fmt"

	"pfschat/storage"
)

// SealKeyEnv is the environment variable that may hold the seal key (64 hex digits)
// instead of a file.
const SealKeyEnv = storage.RelayKeyEnv

// SealKeySize is the size of the key that seals the relay's secrets in the directory.
const SealKeySize = storage.RelayKeySize

// ErrSealKey: the seal key is missing, malformed, or not the one the cluster's
// secrets were sealed with.
var ErrSealKey = storage.ErrRelayKey

// sealDomain separates this use of the key.
const sealDomain = "pfschat/v2/relay/cluster-meta"

// LoadSealKey reads the seal key from path, or when path is "" from the environment
// variable PFSCHAT_RELAY_KEY (storage.LoadRelayKey); a cluster cannot run without one.
func LoadSealKey(path string) ([]byte, error) {
	k, err := storage.LoadRelayKey(path)
	if err == nil && k == nil {
		err = fmt.Errorf("%w: a relay cluster needs the key that seals its secrets: give --relay-key-file FILE or set %s", ErrSealKey, SealKeyEnv)
	}
	return k, err
}

// sealer seals meta values, bound to the bucket and the meta key.
type sealer struct {
	key    []byte
	bucket string
}

func (s sealer) relaySealer() storage.RelaySealer {
	return storage.NewRelaySealer(s.key, sealDomain+"\x00"+s.bucket)
}

func (s sealer) seal(name string, v []byte) ([]byte, error) {
	b, err := s.relaySealer().Seal(name, v)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return b, nil
}

func (s sealer) open(name string, b []byte) ([]byte, error) {
	v, err := s.relaySealer().Open(name, b)
	switch {
	case errors.Is(err, storage.ErrRelayKey):
		return nil, fmt.Errorf("%w: the cluster's secret %q does not open with this key: every relay node needs the same --relay-key-file", ErrSealKey, name)
	case err != nil:
		return nil, fmt.Errorf("%w: sealed meta %q: not a sealed value", ErrDamaged, name)
	}
	return v, nil
}
