package ratchet

import (
	"crypto/cipher"

	"golang.org/x/crypto/chacha20poly1305"
)

// The AEAD is ChaCha20-Poly1305 (RFC 8439), 32-byte key, 12-byte nonce,
// 16-byte tag.
//
// Why not AES-256-GCM: in a Double Ratchet every key encrypts exactly one
// message, so key setup is paid per message. ChaCha20 has no key schedule;
// Go's AES-GCM expands the key and precomputes GHASH tables (≈0.5 µs and
// 1.3 KB of allocations here), which made it 3× slower at 64 B and still
// slower at 1 KiB on this AES-NI machine (BenchmarkPrimAEAD), and slower still
// on machines without AES hardware. Its nonce is derived together with the key,
// so nonce reuse cannot happen.
const aeadOverhead = chacha20poly1305.Overhead

func newAEAD(key *[32]byte) (cipher.AEAD, error) {
	return chacha20poly1305.New(key[:])
}

// sealMessage encrypts plaintext (which may alias dst[len(dst):]) and appends
// the result to dst. nonce is scratch space owned by the caller: passing it
// in keeps it off the heap (the AEAD is an interface, so its arguments escape).
func sealMessage(k *kdf, mk *[32]byte, nonce *[12]byte, dst, plaintext, ad []byte) []byte {
	var key [32]byte
	key, *nonce = k.messageKeys(mk)
	aead, err := newAEAD(&key)
	clear(key[:])
	if err != nil {
		panic("ratchet: ChaCha20-Poly1305 setup: " + err.Error()) // 32-byte key: cannot happen
	}
	return aead.Seal(dst, nonce[:], plaintext, ad)
}

// openMessage decrypts ciphertext into dst (appending); nonce as in sealMessage.
func openMessage(k *kdf, mk *[32]byte, nonce *[12]byte, dst, ciphertext, ad []byte) ([]byte, error) {
	var key [32]byte
	key, *nonce = k.messageKeys(mk)
	aead, err := newAEAD(&key)
	clear(key[:])
	if err != nil {
		return nil, err
	}
	return aead.Open(dst, nonce[:], ciphertext, ad)
}
