package storage

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KDFParams are the Argon2id parameters that turn a passphrase into the key that wraps
// the storage key. They are stored in the file beside the wrapped key, so a later version
// can raise them (ChangePassphrase writes the current defaults).
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDF is what new stores use: Argon2id, 3 passes over 64 MiB with 4 lanes, the
// second recommended option of RFC 9106 §4 ("if much less memory is available"). It
// takes 0.16–0.35 s on the shared 2-core development machine depending on its load
// (BenchmarkUnlock), paid once per unlock; every passphrase guess costs an attacker the
// same 64 MiB and time. 4 passes or 128 MiB measured 0.6–0.7 s under load: where to go
// when machines get faster — the parameters are stored per file, and ChangePassphrase
// re-wraps with the current defaults.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds on parameters read back from a file: a tampered file must not make unlocking
// allocate unbounded memory or spin forever.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	saltSize        = 16
	storageKeySize  = 32
	sealVersion     = 1
)

// KDFParams.validate reports parameters that are impossible or absurd.
func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > maxKDFTime || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("Argon2id parameters time=%d memory=%dKiB threads=%d out of range (time 1..%d, memory 8×threads..%d KiB)",
			p.Time, p.MemoryKiB, p.Threads, maxKDFTime, maxKDFMemoryKiB)
	}
	return nil
}

// strongEnough refuses parameters below DefaultKDF for a new wrap, outside a test
// binary. Test suites wrap hundreds of keys and use cheap parameters to stay fast;
// a program built with go build refuses them, so no option, flag or caller's mistake
// can wrap a real user's key under a passphrase that is cheaper to guess than the
// default. Parameters read back from a file are not judged here: a store wrapped with
// stronger or (by a test) weaker ones still opens with the passphrase it was wrapped with.
func (p KDFParams) strongEnough() error {
	if p.Time >= DefaultKDF.Time && p.MemoryKiB >= DefaultKDF.MemoryKiB || testing.Testing() {
		return nil
	}
	return fmt.Errorf("%w: time=%d memory=%dKiB (the least is time=%d memory=%dKiB)",
		ErrWeakKDF, p.Time, p.MemoryKiB, DefaultKDF.Time, DefaultKDF.MemoryKiB)
}

// keyring holds the unwrapped storage key of an open client store.
type keyring struct {
	mu  sync.RWMutex
	key []byte // 32 bytes; every sealed value is XChaCha20-Poly1305 under it; nil once closed
}

// forget zeroes the key; later seal/open calls fail with ErrClosed.
func (k *keyring) forget() {
	k.mu.Lock()
	clear(k.key)
	k.key = nil
	k.mu.Unlock()
}

// wrapped is the keyring row: how the storage key is kept in the file.
type wrapped struct {
	demo    bool // no passphrase: the key is stored as is (throwaway demo profile only)
	params  KDFParams
	salt    []byte
	wrapped []byte // version ‖ nonce ‖ XChaCha20-Poly1305(KEK, storage key, ad)
}

// wrapAD binds the wrapped key to its parameters and salt, so none can be swapped.
func (w *wrapped) ad() []byte {
	ad := make([]byte, 0, 64)
	ad = append(ad, "pfschat/storage-key/v1\x00"...)
	ad = binary.BigEndian.AppendUint32(ad, w.params.Time)
	ad = binary.BigEndian.AppendUint32(ad, w.params.MemoryKiB)
	ad = append(ad, w.params.Threads)
	ad = append(ad, w.salt...)
	return ad
}

func deriveKEK(pass []byte, salt []byte, p KDFParams) []byte {
	prepareKDFMemory(p.MemoryKiB)
	return argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
}

// wrapKey seals key under Argon2id(pass) with fresh salt; nil pass = demo mode.
func wrapKey(key, pass []byte, p KDFParams) (*wrapped, error) {
	if pass == nil {
		return &wrapped{demo: true, wrapped: append([]byte(nil), key...)}, nil
	}
	if len(pass) == 0 {
		return nil, ErrEmptyPassphrase
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: new KDF parameters: %v", ErrInvalid, err)
	}
	if err := p.strongEnough(); err != nil {
		return nil, err
	}
	w := &wrapped{params: p, salt: make([]byte, saltSize)}
	if _, err := rand.Read(w.salt); err != nil {
		return nil, fmt.Errorf("storage: salt: %w", err)
	}
	kek := deriveKEK(pass, w.salt, p)
	defer clear(kek)
	sealed, err := sealWith(kek, key, w.ad())
	if err != nil {
		return nil, err
	}
	w.wrapped = sealed
	return w, nil
}

// unwrapKey recovers the storage key; ErrWrongPassphrase if pass does not open it.
func (w *wrapped) unwrap(pass []byte) ([]byte, error) {
	if w.demo {
		if pass != nil {
			return nil, fmt.Errorf("%w: this store has no passphrase (demo profile); open it with none", ErrWrongPassphrase)
		}
		if len(w.wrapped) != storageKeySize {
			return nil, fmt.Errorf("%w: demo storage key has %d bytes", ErrCorrupt, len(w.wrapped))
		}
		return append([]byte(nil), w.wrapped...), nil
	}
	if pass == nil {
		return nil, fmt.Errorf("%w: this store is protected by a passphrase", ErrWrongPassphrase)
	}
	if err := w.params.validate(); err != nil {
		return nil, fmt.Errorf("%w: stored %v", ErrCorrupt, err)
	}
	if len(w.salt) < saltSize {
		return nil, fmt.Errorf("%w: salt of %d bytes", ErrCorrupt, len(w.salt))
	}
	kek := deriveKEK(pass, w.salt, w.params)
	defer clear(kek)
	key, err := openWith(kek, w.wrapped, w.ad())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	if len(key) != storageKeySize {
		return nil, fmt.Errorf("%w: storage key has %d bytes", ErrCorrupt, len(key))
	}
	return key, nil
}

// Seal seals plaintext under a 32-byte key with XChaCha20-Poly1305, bound to ad: a
// version byte, a random 24-byte nonce, the ciphertext. The client store seals its
// columns this way, and relay/cluster the cluster's secrets in JetStream.
func Seal(key, plaintext, ad []byte) ([]byte, error) { return sealWith(key, plaintext, ad) }

// Open opens what Seal sealed under key and ad; ErrCorrupt when it is malformed or
// does not open.
func Open(key, sealed, ad []byte) ([]byte, error) { return openWith(key, sealed, ad) }

func sealWith(key, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("storage: seal: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("storage: nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, ad), nil
}

func openWith(key, sealed, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("storage: open sealed value: %w", err)
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: sealed value malformed", ErrCorrupt)
	}
	pt, err := aead.Open(nil, sealed[1:1+aead.NonceSize()], sealed[1+aead.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed value does not open (tampered, or moved from another row)", ErrCorrupt)
	}
	return pt, nil
}

// sealAD is the associated data of a sealed column: table, column and row key, so a
// value copied into another row, column or table no longer opens.
func sealAD(table, column, rowKey string) []byte {
	ad := make([]byte, 0, 24+len(table)+len(column)+len(rowKey))
	ad = append(ad, "pfschat/storage/v1\x00"...)
	ad = append(ad, table...)
	ad = append(ad, 0)
	ad = append(ad, column...)
	ad = append(ad, 0)
	ad = append(ad, rowKey...)
	return ad
}

// seal encrypts a secret for table.column of the row identified by rowKey.
func (k *keyring) seal(table, column, rowKey string, plaintext []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.key == nil {
		return nil, ErrClosed
	}
	return sealWith(k.key, plaintext, sealAD(table, column, rowKey))
}

// open decrypts what seal produced for the same table, column and row.
func (k *keyring) open(table, column, rowKey string, sealed []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.key == nil {
		return nil, ErrClosed
	}
	pt, err := openWith(k.key, sealed, sealAD(table, column, rowKey))
	if err != nil {
		return nil, fmt.Errorf("%s.%s of %s: %w", table, column, rowKey, err)
	}
	return pt, nil
}

func newStorageKey() ([]byte, error) {
	k := make([]byte, storageKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("storage: new storage key: %w", err)
	}
	return k, nil
}
