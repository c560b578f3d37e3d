package ratchet

import (
	"crypto/aes"
	"crypto/cipher"
)

// The AEAD is AES-256-GCM. Why not ChaCha20-Poly1305: every machine we target
// (amd64 with AES-NI+PCLMULQDQ, arm64 with the crypto extensions) runs GCM in
// hardware, it is in the standard library (no x/crypto on the hot path), and
// the measured per-message cost including key setup is lower here (see
// BenchmarkAEAD*). Each message key is used for exactly one message, and its
// nonce is derived together with the key, so nonce reuse cannot happen.
const aeadOverhead = 16

func newAEAD(key *[32]byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealMessage encrypts plaintext in place: dst[:len(pt)] must hold the padded
// plaintext and have room for the tag. It returns dst[:len(pt)+16].
func sealMessage(mk *[32]byte, dst, plaintext, ad []byte) []byte {
	key, nonce := messageKeys(mk)
	aead, err := newAEAD(&key)
	clear(key[:])
	if err != nil {
		panic("ratchet: AES-256-GCM setup: " + err.Error()) // 32-byte key: cannot happen
	}
	return aead.Seal(dst, nonce[:], plaintext, ad)
}

// openMessage decrypts ciphertext into dst (appending).
func openMessage(mk *[32]byte, dst, ciphertext, ad []byte) ([]byte, error) {
	key, nonce := messageKeys(mk)
	aead, err := newAEAD(&key)
	clear(key[:])
	if err != nil {
		return nil, err
	}
	return aead.Open(dst, nonce[:], ciphertext, ad)
}
