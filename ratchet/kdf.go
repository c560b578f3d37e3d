package ratchet

import (
	"crypto/sha256"
	"encoding"
	"hash"
)

// The ratchet's KDFs run on every message, so they avoid the generic
// crypto/hmac and crypto/hkdf (which allocate a few hash objects per call) and
// reuse SHA-256 midstates instead: an HMAC key's ipad and opad blocks are
// absorbed once (two compressions) and each HMAC under that key then costs
// one compression per block of message plus one for the outer hash. KDF_CK
// uses one key for two HMACs, HKDF-Expand one key for two blocks, and the
// message-key HKDF-Extract a constant all-zero salt whose midstates are
// computed at start-up. The results are plain HMAC-SHA256 (RFC 2104) and
// HKDF-SHA256 (RFC 5869), checked against crypto/hmac and crypto/hkdf in
// TestKDFMatchesStandardLibrary and pinned by the test vectors.
//
// Measured, so this stays only while it pays (issue 10 keeps it only if the
// same-chain benchmark loses more than 10% without it): the alternative was
// kdfCK = hmac.New(sha256.New, ck), Write/Sum, Reset (which keeps the pad
// states), Write/Sum; kdfRK and messageKeys = hkdf.Key(sha256.New, …). Run
// interleaved (6 rounds, alternating which binary went first) on the 2-core
// VM shared with other jobs, go1.26:
//
//	go test -c -o mid.test ./ratchet   # with this file
//	go test -c -o std.test ./ratchet   # with the alternative
//	X.test -test.run '^$' -test.bench '^BenchmarkSameChain$' -test.benchmem -test.count 1 >> X.txt
//	benchstat mid=mid.txt std=std.txt
//
//	SameChain/64B     3.20 µs → 9.48 µs   +196% (p=0.002 n=6)
//	SameChain/1024B   5.15 µs → 11.73 µs  +128% (p=0.002 n=6)
//	allocs per op     4 → 69
//
// An earlier interleaved run under heavier load agreed (+114%, +105%).
//
// A kdf is scratch space owned by one Session (not safe for concurrent use).
// All buffers passed to the hash live in it, so nothing escapes to the heap
// per call.
type kdf struct {
	d      hash.Hash
	load   encoding.BinaryUnmarshaler // d, to restore a midstate
	save   encoding.BinaryAppender    // d, to record a midstate
	pad    [64]byte
	inner  [sha256StateMax]byte // midstate after key⊕ipad
	outer  [sha256StateMax]byte // midstate after key⊕opad
	ni, no int
	in     [32]byte // a copy of the input keying material
	t      [32]byte // last HMAC output
}

// sha256StateMax bounds the size of a marshalled SHA-256 state (108 bytes in
// Go's implementation).
const sha256StateMax = 128

var (
	oneByte = []byte{0x01}
	twoByte = []byte{0x02}
	// KDF_CK inputs.
	chainMessageInput = []byte{chainMessageKeyByte}
	chainNextInput    = []byte{chainNextKeyByte}
	labelRootKDF      = []byte(LabelRootKDF)
	labelMessageKeys  = []byte(LabelMessageKeys)
	zeroSalt          [32]byte
	// Midstates of the all-zero 32-byte HMAC key (HKDF's default salt).
	zeroSaltInner, zeroSaltOuter []byte
)

func init() {
	k := newKDF()
	k.setKey(&zeroSalt)
	zeroSaltInner = append([]byte(nil), k.inner[:k.ni]...)
	zeroSaltOuter = append([]byte(nil), k.outer[:k.no]...)
}

func newKDF() *kdf {
	d := sha256.New()
	load, ok1 := d.(encoding.BinaryUnmarshaler)
	save, ok2 := d.(encoding.BinaryAppender)
	if !ok1 || !ok2 {
		panic("ratchet: crypto/sha256 cannot save and restore its state")
	}
	return &kdf{d: d, load: load, save: save}
}

// setKey records the midstates of HMAC key key (32 bytes, so one block with
// zero padding).
func (k *kdf) setKey(key *[32]byte) {
	for i := 0; i < 32; i++ {
		k.pad[i] = key[i] ^ 0x36
	}
	for i := 32; i < 64; i++ {
		k.pad[i] = 0x36
	}
	k.d.Reset()
	k.d.Write(k.pad[:])
	b, _ := k.save.AppendBinary(k.inner[:0])
	k.ni = len(b)
	for i := 0; i < 32; i++ {
		k.pad[i] = key[i] ^ 0x5c
	}
	for i := 32; i < 64; i++ {
		k.pad[i] = 0x5c
	}
	k.d.Reset()
	k.d.Write(k.pad[:])
	b, _ = k.save.AppendBinary(k.outer[:0])
	k.no = len(b)
	clear(k.pad[:])
}

// mac computes HMAC(key, a ‖ b ‖ c) into k.t, the key given by its midstates.
// a may be k.t itself.
func (k *kdf) mac(inner, outer []byte, a, b, c []byte) {
	if err := k.load.UnmarshalBinary(inner); err != nil {
		panic("ratchet: restoring a SHA-256 midstate: " + err.Error())
	}
	k.d.Write(a)
	k.d.Write(b)
	k.d.Write(c)
	k.d.Sum(k.t[:0])
	if err := k.load.UnmarshalBinary(outer); err != nil {
		panic("ratchet: restoring a SHA-256 midstate: " + err.Error())
	}
	k.d.Write(k.t[:])
	k.d.Sum(k.t[:0])
}

// macKeyed is mac under the key last given to setKey.
func (k *kdf) macKeyed(a, b, c []byte) { k.mac(k.inner[:k.ni], k.outer[:k.no], a, b, c) }

// hkdf64 is HKDF-SHA256(salt, ikm, info) with L = 64 (two expand blocks); a
// nil salt is the all-zero default.
func (k *kdf) hkdf64(out *[64]byte, salt *[32]byte, ikm *[32]byte, info []byte) {
	k.in = *ikm
	if salt == nil {
		k.mac(zeroSaltInner, zeroSaltOuter, k.in[:], nil, nil)
	} else {
		k.setKey(salt)
		k.macKeyed(k.in[:], nil, nil)
	}
	clear(k.in[:])
	prk := k.t
	k.setKey(&prk)
	clear(prk[:])
	k.macKeyed(info, oneByte, nil)
	copy(out[:32], k.t[:])
	k.macKeyed(k.t[:], info, twoByte)
	copy(out[32:], k.t[:])
	k.wipe()
}

// wipe clears the key-dependent scratch.
func (k *kdf) wipe() {
	clear(k.t[:])
	clear(k.inner[:])
	clear(k.outer[:])
}

// kdfRK is KDF_RK: (RK', CK) = HKDF-SHA256(salt = RK, ikm = dh, info = LabelRootKDF, 64).
func (k *kdf) kdfRK(rk *[32]byte, dh *[32]byte) (newRK, ck [32]byte) {
	var out [64]byte
	k.hkdf64(&out, rk, dh, labelRootKDF)
	copy(newRK[:], out[:32])
	copy(ck[:], out[32:])
	clear(out[:])
	return
}

// kdfCK is KDF_CK: MK = HMAC(CK, 0x01), CK' = HMAC(CK, 0x02).
func (k *kdf) kdfCK(ck *[32]byte) (mk, next [32]byte) {
	k.setKey(ck)
	k.macKeyed(chainMessageInput, nil, nil)
	mk = k.t
	k.macKeyed(chainNextInput, nil, nil)
	next = k.t
	k.wipe()
	return
}

// messageKeys expands a message key into an AEAD key (32) and nonce (12):
// HKDF-SHA256(salt = 32 zero bytes, ikm = MK, info = LabelMessageKeys, L = 44).
func (k *kdf) messageKeys(mk *[32]byte) (key [32]byte, nonce [12]byte) {
	var out [64]byte
	k.hkdf64(&out, nil, mk, labelMessageKeys)
	copy(key[:], out[:32])
	copy(nonce[:], out[32:44])
	clear(out[:])
	return
}
