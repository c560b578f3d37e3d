package ratchet

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"slices"
)

// Limits of the receiving side. They bound the work and memory an attacker (or
// a lossy network) can cause:
//
//   - MaxSkip: the furthest a message may jump ahead within one receiving
//     chain (and the most old-chain keys one ratchet step may store). A jump
//     costs two HMACs per skipped key (~0.5 µs here), and runs before the AEAD
//     can reject a forgery, so it is kept at 2000 (≈1 ms worst case), not
//     Signal's 25000.
//   - MaxSkippedKeys: message keys kept for late messages, over all chains.
//     When more are stored, the oldest are evicted first (their messages then
//     fail with ErrReplay). 2000 as in libsignal.
//   - MaxPreviousChains: how many earlier receiving ratchet keys (public
//     keys only) are remembered so a late or duplicated message from a chain
//     whose keys are gone fails fast with ErrReplay instead of costing an
//     X25519 and failing as ErrDecrypt. 5 as libsignal's receiving chains.
const (
	MaxSkip           = 2000
	MaxSkippedKeys    = 2000
	MaxPreviousChains = 5
)

// Session is one Double Ratchet conversation with a peer card, created by
// StartSession (initiator) or AcceptSession (responder). It is not safe for
// concurrent use. Persist it (MarshalBinary) after every Encrypt and every
// successful Decrypt.
type Session struct {
	id         [32]byte
	selfCard   [32]byte
	peerCard   [32]byte
	ad         [64]byte // initiator card ID ‖ responder card ID
	initiator  bool
	acked      bool // initiator: has decrypted a reply
	usedOPK    bool // the handshake included a one-time prekey
	initialHdr []byte

	rk      [32]byte
	hasDHs  bool     // false: generate a new ratchet key at the next Encrypt
	dhsPriv [32]byte // X25519 private scalar of DHs
	dhsPub  [32]byte
	// dhsKey caches dhsPriv parsed. It is built lazily because parsing an X25519
	// private key computes its public key (a scalar multiplication), and most
	// loads of a persisted session never need the private key: only a DH
	// ratchet step on receive does.
	dhsKey  *ecdh.PrivateKey
	dhr     [32]byte
	hasDHr  bool
	dhrKey  *ecdh.PublicKey // cache of dhr parsed; built on first use
	cks     [32]byte
	hasCKs  bool
	ckr     [32]byte
	hasCKr  bool
	ns, nr  uint32
	pn      uint32
	skipped []skippedKey // oldest first
	prevDHr [][32]byte   // earlier receiving ratchet keys, oldest first

	sendCount, recvCount uint32
	padding              uint16

	rand io.Reader

	// Scratch space reused across calls (not state).
	adBuf      []byte
	newSkipped []skippedKey
	nonce      [12]byte
	seed       [32]byte
	kdfState   *kdf
}

type skippedKey struct {
	dh [32]byte
	n  uint32
	mk [32]byte
}

// ID is the session's hex ID, equal on both sides (see InitialHeader.SessionID).
func (s *Session) ID() string { return hex.EncodeToString(s.id[:]) }

// PeerCardID is the hex ID of the peer's card.
func (s *Session) PeerCardID() string { return hex.EncodeToString(s.peerCard[:]) }

// SelfCardID is the hex ID of our own card in this session.
func (s *Session) SelfCardID() string { return hex.EncodeToString(s.selfCard[:]) }

// Initiator reports whether this side started the session.
func (s *Session) Initiator() bool { return s.initiator }

// Acknowledged reports whether the peer has proven it holds the session: always
// true for the responder; for the initiator, true once it decrypted a reply.
// Until then the initiator's Encrypt emits initial messages.
func (s *Session) Acknowledged() bool { return !s.initiator || s.acked }

// UsedOneTimePreKey reports whether the handshake included a one-time X25519
// prekey (DH4). Without one, the session's first messages lack that extra
// protection against a compromised signed prekey; callers may warn.
func (s *Session) UsedOneTimePreKey() bool { return s.usedOPK }

// SendCount is the number of messages this side has encrypted.
func (s *Session) SendCount() uint32 { return s.sendCount }

// ReceiveCount is the number of messages this side has decrypted.
func (s *Session) ReceiveCount() uint32 { return s.recvCount }

// SetRand sets the random source for new ratchet keys (default crypto/rand).
// Tests and vectors set a seeded one. It is not persisted.
func (s *Session) SetRand(r io.Reader) {
	if r == nil {
		r = rand.Reader
	}
	s.rand = r
}

// SetPadding makes Encrypt pad plaintexts (plus a 1-byte marker) to a multiple
// of block bytes so lengths leak less; 0 turns padding off. block must be at
// most MaxPaddingBlock. The setting is persisted with the session.
func (s *Session) SetPadding(block int) error {
	if block < 0 || block > MaxPaddingBlock {
		return errf(ErrOversize, "padding block %d, limit %d", block, MaxPaddingBlock)
	}
	s.padding = uint16(block)
	return nil
}

// Padding returns the padding block size (0 = off).
func (s *Session) Padding() int { return int(s.padding) }

// kdf returns the session's KDF scratch space, made on first use.
func (s *Session) kdf() *kdf {
	if s.kdfState == nil {
		s.kdfState = newKDF()
	}
	return s.kdfState
}

func (s *Session) randReader() io.Reader {
	if s.rand == nil {
		return rand.Reader
	}
	return s.rand
}

// paddedLen is the encrypted length of an n-byte plaintext: n plus the 0x80
// marker, rounded up to the padding block.
func (s *Session) paddedLen(n int) int {
	n++
	if b := int(s.padding); b > 1 {
		n = (n + b - 1) / b * b
	}
	return n
}

// Encrypt encrypts plaintext (at most MaxPlaintext bytes) into wire bytes: an
// initial message while the initiator is unacknowledged, else a normal one.
// On error the session is unchanged.
func (s *Session) Encrypt(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, errf(ErrPlaintextTooLarge, "%d bytes, limit %d", len(plaintext), MaxPlaintext)
	}
	if s.ns == ^uint32(0) {
		return nil, errf(ErrTooManySkipped, "sending chain exhausted after %d messages; start a new session", s.ns)
	}
	// Lazy DH ratchet step: a new sending chain after each received ratchet key.
	var (
		newDHs  *ecdh.PrivateKey
		rk, cks = s.rk, s.cks
	)
	if !s.hasDHs || !s.hasCKs {
		if !s.hasDHr {
			return nil, ErrNoSendingChain
		}
		if s.dhrKey == nil {
			k, err := ecdh.X25519().NewPublicKey(s.dhr[:])
			if err != nil {
				return nil, errf(ErrMalformed, "peer ratchet key: %v", err)
			}
			s.dhrKey = k // a cache, not state
		}
		if _, err := io.ReadFull(s.randReader(), s.seed[:]); err != nil {
			return nil, errf(err, "encrypt: read random for ratchet key")
		}
		k, err := ecdh.X25519().NewPrivateKey(s.seed[:])
		clear(s.seed[:])
		if err != nil {
			return nil, errf(ErrMalformed, "encrypt: ratchet key: %v", err)
		}
		shared, err := k.ECDH(s.dhrKey)
		if err != nil {
			return nil, errf(ErrDecrypt, "encrypt: DH with peer ratchet key: %v", err)
		}
		rk, cks = s.kdf().kdfRK(&s.rk, (*[32]byte)(shared))
		clear(shared)
		newDHs = k
	}
	mk, nextCK := s.kdf().kdfCK(&cks)

	dhPub := s.dhsPub[:]
	if newDHs != nil {
		dhPub = newDHs.PublicKey().Bytes()
	}
	typ := MessageNormal
	if s.initiator && !s.acked {
		typ = MessageInitial
	}
	ptLen := s.paddedLen(len(plaintext))
	size := 2 + ratchetHeaderSize + 4 + ptLen + aeadOverhead
	if typ == MessageInitial {
		size += len(s.initialHdr)
	}
	out := make([]byte, 0, size)
	out = append(out, envelopeVersion, byte(typ))
	if typ == MessageInitial {
		out = append(out, s.initialHdr...)
	}
	out = append(out, dhPub...)
	out = appendU32(out, s.pn)
	out = appendU32(out, s.ns)
	out = appendU32(out, uint32(ptLen+aeadOverhead))
	prefix := len(out)
	out = append(out, plaintext...)
	out = append(out, 0x80)
	out = out[:prefix+ptLen]
	clear(out[prefix+len(plaintext)+1:])

	s.adBuf = append(append(s.adBuf[:0], s.ad[:]...), out[:prefix]...)
	out = sealMessage(s.kdf(), &mk, &s.nonce, out[:prefix], out[prefix:], s.adBuf)
	clear(mk[:])

	// Commit.
	if newDHs != nil {
		s.hasDHs = true
		copy(s.dhsPriv[:], newDHs.Bytes())
		s.dhsKey = newDHs
		copy(s.dhsPub[:], dhPub)
		s.rk = rk
		s.hasCKs = true
	}
	s.cks = nextCK
	s.ns++
	s.sendCount++
	return out, nil
}

// Decrypt decrypts a wire message of this session: a normal message, or an
// initial message for THIS session (a repeat from an initiator that had not
// yet seen our reply). Out-of-order messages within MaxSkip decrypt once each.
// On any error the session is unchanged: errors wrap ErrMalformed (and the
// other decoder errors), ErrWrongSession, ErrReplay, ErrTooManySkipped or
// ErrDecrypt.
func (s *Session) Decrypt(wire []byte) ([]byte, error) {
	var env Envelope
	if err := decodeEnvelope(&env, wire); err != nil {
		return nil, err
	}
	return s.decrypt(&env)
}

func (s *Session) decrypt(env *Envelope) ([]byte, error) {
	if env.Type == MessageInitial {
		if s.initiator {
			return nil, errf(ErrWrongSession, "initial message sent to the initiator")
		}
		id := sessionID(env.rawIn.initiator, env.rawIn.responder, env.rawIn.ek)
		if subtle.ConstantTimeCompare(id[:], s.id[:]) != 1 {
			return nil, ErrWrongSession
		}
	}
	s.adBuf = append(append(s.adBuf[:0], s.ad[:]...), env.authenticatedPrefix()...)
	h := &env.Header
	dh := (*[32]byte)(h.DH)

	// 1. A key stored for a late message.
	if len(s.skipped) > 0 && !(s.hasCKr && *dh == s.dhr && h.N >= s.nr) {
		for i := range s.skipped {
			sk := &s.skipped[i]
			if sk.n == h.N && sk.dh == *dh {
				pt, err := s.open(&sk.mk, env)
				if err != nil {
					return nil, err
				}
				copy(s.skipped[i:], s.skipped[i+1:])
				s.skipped[len(s.skipped)-1] = skippedKey{}
				s.skipped = s.skipped[:len(s.skipped)-1]
				s.received()
				return pt, nil
			}
		}
	}

	// 2. The current receiving chain.
	if s.hasCKr && *dh == s.dhr {
		if h.N < s.nr {
			return nil, errf(ErrReplay, "message %d of the current chain", h.N)
		}
		if h.N-s.nr > MaxSkip {
			return nil, errf(ErrTooManySkipped, "message %d is %d ahead (limit %d)", h.N, h.N-s.nr, MaxSkip)
		}
		s.newSkipped = s.newSkipped[:0]
		ck := s.skipChain(s.ckr, s.dhr, s.nr, h.N)
		mk, next := s.kdf().kdfCK(&ck)
		pt, err := s.open(&mk, env)
		clear(mk[:])
		if err != nil {
			clear(s.newSkipped)
			return nil, err
		}
		s.ckr = next
		s.nr = h.N + 1
		s.storeSkipped()
		s.received()
		return pt, nil
	}

	// 3. A new ratchet key from the peer: DH ratchet step.
	if slices.Contains(s.prevDHr, *dh) {
		return nil, errf(ErrReplay, "message %d of an earlier chain whose keys are gone", h.N)
	}
	if !s.hasDHs {
		// We have not sent since our last step, so the peer cannot have a new key
		// of ours to answer: this is an old chain whose keys are gone, or a forgery.
		return nil, errf(ErrReplay, "unknown ratchet key and no pending one of ours")
	}
	s.newSkipped = s.newSkipped[:0]
	if s.hasCKr {
		if h.PN < s.nr {
			// Nothing to skip; a PN below what we already received is harmless.
		} else if h.PN-s.nr > MaxSkip {
			return nil, errf(ErrTooManySkipped, "previous chain: %d ahead (limit %d)", h.PN-s.nr, MaxSkip)
		} else {
			s.skipChain(s.ckr, s.dhr, s.nr, h.PN)
		}
	}
	if h.N > MaxSkip {
		clear(s.newSkipped)
		return nil, errf(ErrTooManySkipped, "message %d of a new chain (limit %d)", h.N, MaxSkip)
	}
	peer, err := ecdh.X25519().NewPublicKey(h.DH)
	if err != nil {
		clear(s.newSkipped)
		return nil, errf(ErrMalformed, "ratchet key: %v", err)
	}
	if s.dhsKey == nil {
		k, err := ecdh.X25519().NewPrivateKey(s.dhsPriv[:])
		if err != nil {
			clear(s.newSkipped)
			return nil, errf(ErrMalformed, "own ratchet key: %v", err)
		}
		s.dhsKey = k // a cache, not state: kept even if this message fails
	}
	shared, err := s.dhsKey.ECDH(peer)
	if err != nil {
		clear(s.newSkipped)
		return nil, errf(ErrDecrypt, "DH with ratchet key: %v", err)
	}
	rk, ckr := s.kdf().kdfRK(&s.rk, (*[32]byte)(shared))
	clear(shared)
	ck := s.skipChain(ckr, *dh, 0, h.N)
	mk, next := s.kdf().kdfCK(&ck)
	pt, err := s.open(&mk, env)
	clear(mk[:])
	if err != nil {
		clear(s.newSkipped)
		return nil, err
	}
	// Commit the step.
	if s.hasDHr {
		if len(s.prevDHr) == MaxPreviousChains {
			s.prevDHr = append(s.prevDHr[:0], s.prevDHr[1:]...)
		}
		s.prevDHr = append(s.prevDHr, s.dhr)
	}
	s.pn = s.ns
	s.ns = 0
	s.dhr = *dh
	s.hasDHr = true
	s.dhrKey = peer
	s.rk = rk
	s.ckr = next
	s.hasCKr = true
	s.nr = h.N + 1
	s.hasDHs = false
	s.dhsKey = nil
	clear(s.dhsPriv[:])
	s.dhsPub = [32]byte{}
	s.hasCKs = false
	s.cks = [32]byte{}
	s.storeSkipped()
	s.received()
	return pt, nil
}

// skipChain derives the message keys from..until-1 of a chain into
// s.newSkipped and returns the chain key at until. It does not touch state.
func (s *Session) skipChain(ck [32]byte, dh [32]byte, from, until uint32) [32]byte {
	for n := from; n < until; n++ {
		mk, next := s.kdf().kdfCK(&ck)
		s.newSkipped = append(s.newSkipped, skippedKey{dh: dh, n: n, mk: mk})
		ck = next
	}
	return ck
}

// storeSkipped commits s.newSkipped, evicting the oldest beyond MaxSkippedKeys.
func (s *Session) storeSkipped() {
	if len(s.newSkipped) == 0 {
		return
	}
	s.skipped = append(s.skipped, s.newSkipped...)
	clear(s.newSkipped)
	s.newSkipped = s.newSkipped[:0]
	if over := len(s.skipped) - MaxSkippedKeys; over > 0 {
		clear(s.skipped[:over])
		s.skipped = append(s.skipped[:0], s.skipped[over:]...)
	}
}

func (s *Session) received() {
	s.recvCount++
	if s.initiator && !s.acked {
		s.acked = true
		clear(s.initialHdr)
		s.initialHdr = nil
	}
}

// open authenticates and decrypts env with mk and strips the padding.
func (s *Session) open(mk *[32]byte, env *Envelope) ([]byte, error) {
	pt, err := openMessage(s.kdf(), mk, &s.nonce, make([]byte, 0, len(env.Ciphertext)-aeadOverhead), env.Ciphertext, s.adBuf)
	if err != nil {
		return nil, errf(ErrDecrypt, "message %d", env.Header.N)
	}
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 || pt[i] != 0x80 {
		clear(pt)
		return nil, errf(ErrDecrypt, "message %d: bad padding", env.Header.N)
	}
	return pt[:i:i], nil
}

// SkippedChains returns the distinct receiving ratchet keys (DHr) that stored skipped
// message keys belong to, oldest first. A caller that wants skipped keys to expire by
// time records when it first saw each chain (the state itself holds no times, §13)
// and drops the chains it deems too old with DropSkippedChain.
func (s *Session) SkippedChains() [][32]byte {
	var out [][32]byte
	for i := range s.skipped {
		if !slices.Contains(out, s.skipped[i].dh) {
			out = append(out, s.skipped[i].dh)
		}
	}
	return out
}

// KnowsRatchetKey reports whether the session has received on the chain with ratchet
// key dh: its current receiving chain, one of its previous ones (§11.4 step 3) or one
// it holds skipped keys of. An ErrReplay for a message of such a chain means its key
// was used or is gone; for any other key (a session dropped since, or a forgery) it
// means only that this session cannot answer it.
func (s *Session) KnowsRatchetKey(dh []byte) bool {
	if len(dh) != 32 {
		return false
	}
	k := [32]byte(dh)
	if s.hasCKr && k == s.dhr || slices.Contains(s.prevDHr, k) {
		return true
	}
	for i := range s.skipped {
		if s.skipped[i].dh == k {
			return true
		}
	}
	return false
}

// DropSkippedChain deletes (and zeroes) every stored skipped message key of the chain
// with ratchet key dh and returns how many there were; messages they would have opened
// then fail with ErrReplay.
func (s *Session) DropSkippedChain(dh [32]byte) int {
	kept := s.skipped[:0]
	n := 0
	for _, k := range s.skipped {
		if k.dh == dh {
			n++
			continue
		}
		kept = append(kept, k)
	}
	clear(s.skipped[len(kept):])
	s.skipped = kept
	return n
}
