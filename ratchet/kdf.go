package ratchet

import (
	"crypto/sha256"
)

// The ratchet's KDFs run on every message, so they are written against
// sha256.Sum256 with fixed-size stack buffers: no allocations and no hash.Hash
// interfaces. Every key here is 32 bytes; messages are short and bounded. The
// results are plain HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869), checked
// against crypto/hmac and crypto/hkdf in kdf_test.go.

const hmacMaxMsg = 160 // longest HMAC message used here: 32 + len(label) + 1

// hmacSHA256 computes HMAC-SHA256(key, a ‖ b ‖ c) into out. len(a)+len(b)+len(c)
// must not exceed hmacMaxMsg (callers pass constants and 32-byte values).
func hmacSHA256(out *[32]byte, key *[32]byte, a, b, c []byte) {
	var inner [64 + hmacMaxMsg]byte
	for i := 0; i < 32; i++ {
		inner[i] = key[i] ^ 0x36
	}
	for i := 32; i < 64; i++ {
		inner[i] = 0x36
	}
	n := 64
	n += copy(inner[n:], a)
	n += copy(inner[n:], b)
	n += copy(inner[n:], c)
	if n-64 != len(a)+len(b)+len(c) {
		panic("ratchet: internal HMAC message too long")
	}
	ih := sha256.Sum256(inner[:n])
	var outer [64 + 32]byte
	for i := 0; i < 32; i++ {
		outer[i] = key[i] ^ 0x5c
	}
	for i := 32; i < 64; i++ {
		outer[i] = 0x5c
	}
	copy(outer[64:], ih[:])
	*out = sha256.Sum256(outer[:])
	clear(inner[:])
	clear(outer[:64])
}

var (
	oneByte = []byte{0x01}
	twoByte = []byte{0x02}
	// Precomputed KDF_CK inputs.
	chainMessageInput = []byte{chainMessageKeyByte}
	chainNextInput    = []byte{chainNextKeyByte}
	labelRootKDF      = []byte(LabelRootKDF)
	labelMessageKeys  = []byte(LabelMessageKeys)
	zeroSalt          [32]byte
)

// hkdf64 is HKDF-SHA256(salt, ikm, info) with L = 64 (two expand blocks).
// ikm must be 32 bytes.
func hkdf64(out *[64]byte, salt *[32]byte, ikm *[32]byte, info []byte) {
	var prk, t [32]byte
	hmacSHA256(&prk, salt, ikm[:], nil, nil)
	hmacSHA256(&t, &prk, info, oneByte, nil)
	copy(out[:32], t[:])
	hmacSHA256(&t, &prk, t[:], info, twoByte)
	copy(out[32:], t[:])
	clear(prk[:])
	clear(t[:])
}

// kdfRK is KDF_RK: (RK', CK) = HKDF-SHA256(salt = RK, ikm = dh, info = LabelRootKDF, 64).
func kdfRK(rk *[32]byte, dh *[32]byte) (newRK, ck [32]byte) {
	var out [64]byte
	hkdf64(&out, rk, dh, labelRootKDF)
	copy(newRK[:], out[:32])
	copy(ck[:], out[32:])
	clear(out[:])
	return
}

// kdfCK is KDF_CK: MK = HMAC(CK, 0x01), CK' = HMAC(CK, 0x02).
func kdfCK(ck *[32]byte) (mk, next [32]byte) {
	hmacSHA256(&mk, ck, chainMessageInput, nil, nil)
	hmacSHA256(&next, ck, chainNextInput, nil, nil)
	return
}

// messageKeys expands a message key into an AEAD key (32) and nonce (12):
// HKDF-SHA256(salt = 32 zero bytes, ikm = MK, info = LabelMessageKeys, L = 44).
func messageKeys(mk *[32]byte) (key [32]byte, nonce [12]byte) {
	var out [64]byte
	hkdf64(&out, &zeroSalt, mk, labelMessageKeys)
	copy(key[:], out[:32])
	copy(nonce[:], out[32:44])
	clear(out[:])
	return
}
