package ratchet

import (
	"encoding/binary"
)

// Session state flags (one byte).
const (
	flagInitiator = 1 << iota
	flagAcked
	flagUsedOPK
	flagDHs
	flagDHr
	flagCKs
	flagCKr
	flagsKnown = flagInitiator | flagAcked | flagUsedOPK | flagDHs | flagDHr | flagCKs | flagCKr
)

// MarshalBinary encodes the whole session state, secrets included (storage
// must seal it):
//
//	u8 version (1) ‖ u8 flags ‖ fixed[32] session ID ‖ fixed[32] own card ID
//	‖ fixed[32] peer card ID ‖ fixed[32] RK
//	[‖ fixed[32] DHs private ‖ fixed[32] DHs public]  (flag DHs)
//	[‖ fixed[32] DHr]  (flag DHr)
//	[‖ fixed[32] CKs]          (flag CKs)   [‖ fixed[32] CKr]  (flag CKr)
//	‖ u32 Ns ‖ u32 Nr ‖ u32 PN ‖ u32 sent ‖ u32 received ‖ u16 padding block
//	‖ bytes16 initial header (empty unless an unacknowledged initiator)
//	‖ u16 n ‖ n × (fixed[32] ratchet key ‖ u32 N ‖ fixed[32] message key), oldest first
//	‖ u8 m ‖ m × fixed[32] earlier receiving ratchet key, oldest first (m ≤ MaxPreviousChains)
//
// flags: 1 initiator, 2 acknowledged, 4 used one-time prekey, 8 has DHs,
// 16 has DHr, 32 has CKs, 64 has CKr.
//
// The DHs public key is stored, not recomputed, and the private key is only
// parsed when a DH ratchet step needs it: Go's X25519 private-key parsing
// computes the public key, a scalar multiplication (~35 µs), and most loads
// never need it. The state is trusted (it comes from the sealed store), so the
// pair is not cross-checked.
func (s *Session) MarshalBinary() ([]byte, error) {
	return s.appendBinary(make([]byte, 0, s.marshalSize())), nil
}

func (s *Session) marshalSize() int {
	return 2 + 4*32 + 5*32 + 5*4 + 2 + 2 + len(s.initialHdr) + 2 + len(s.skipped)*68 + 1 + len(s.prevDHr)*32
}

// AppendBinary appends MarshalBinary's encoding to b (encoding.BinaryAppender).
func (s *Session) AppendBinary(b []byte) ([]byte, error) { return s.appendBinary(b), nil }

func (s *Session) appendBinary(b []byte) []byte {
	var flags byte
	if s.initiator {
		flags |= flagInitiator
	}
	if s.acked {
		flags |= flagAcked
	}
	if s.usedOPK {
		flags |= flagUsedOPK
	}
	if s.hasDHs {
		flags |= flagDHs
	}
	if s.hasDHr {
		flags |= flagDHr
	}
	if s.hasCKs {
		flags |= flagCKs
	}
	if s.hasCKr {
		flags |= flagCKr
	}
	b = append(b, sessionVersion, flags)
	b = append(b, s.id[:]...)
	b = append(b, s.selfCard[:]...)
	b = append(b, s.peerCard[:]...)
	b = append(b, s.rk[:]...)
	if s.hasDHs {
		b = append(b, s.dhsPriv[:]...)
		b = append(b, s.dhsPub[:]...)
	}
	if s.hasDHr {
		b = append(b, s.dhr[:]...)
	}
	if s.hasCKs {
		b = append(b, s.cks[:]...)
	}
	if s.hasCKr {
		b = append(b, s.ckr[:]...)
	}
	b = appendU32(b, s.ns)
	b = appendU32(b, s.nr)
	b = appendU32(b, s.pn)
	b = appendU32(b, s.sendCount)
	b = appendU32(b, s.recvCount)
	b = appendU16(b, s.padding)
	b = appendBytes16(b, s.initialHdr)
	b = appendU16(b, uint16(len(s.skipped)))
	for i := range s.skipped {
		k := &s.skipped[i]
		b = append(b, k.dh[:]...)
		b = appendU32(b, k.n)
		b = append(b, k.mk[:]...)
	}
	b = append(b, byte(len(s.prevDHr)))
	for i := range s.prevDHr {
		b = append(b, s.prevDHr[i][:]...)
	}
	return b
}

// ParseSession decodes MarshalBinary output strictly. The session's random
// source is crypto/rand (see SetRand).
func ParseSession(b []byte) (*Session, error) {
	r := reader{b: b}
	r.version(sessionVersion, "session")
	flags := r.u8("session flags")
	if r.err == nil && flags&^flagsKnown != 0 {
		return nil, errf(ErrMalformed, "session flags %#x", flags)
	}
	s := &Session{}
	s.initiator = flags&flagInitiator != 0
	s.acked = flags&flagAcked != 0
	s.usedOPK = flags&flagUsedOPK != 0
	copy(s.id[:], r.take(32, "session ID"))
	copy(s.selfCard[:], r.take(32, "session own card ID"))
	copy(s.peerCard[:], r.take(32, "session peer card ID"))
	copy(s.rk[:], r.take(32, "session root key"))
	var dhsBytes, dhsPub, dhrBytes []byte
	if flags&flagDHs != 0 {
		dhsBytes = r.take(32, "session DHs")
		dhsPub = r.take(32, "session DHs public key")
	}
	if flags&flagDHr != 0 {
		dhrBytes = r.take(32, "session DHr")
	}
	if flags&flagCKs != 0 {
		copy(s.cks[:], r.take(32, "session CKs"))
		s.hasCKs = true
	}
	if flags&flagCKr != 0 {
		copy(s.ckr[:], r.take(32, "session CKr"))
		s.hasCKr = true
	}
	s.ns = r.u32("session Ns")
	s.nr = r.u32("session Nr")
	s.pn = r.u32("session PN")
	s.sendCount = r.u32("session sent")
	s.recvCount = r.u32("session received")
	s.padding = r.u16("session padding")
	if r.err == nil && s.padding > MaxPaddingBlock {
		return nil, errf(ErrOversize, "session padding %d, limit %d", s.padding, MaxPaddingBlock)
	}
	hdr := r.bytes16(initialHeaderSize, "session initial header")
	n := int(r.u16("session skipped count"))
	if r.err == nil && n > MaxSkippedKeys {
		return nil, errf(ErrOversize, "session: %d skipped keys, limit %d", n, MaxSkippedKeys)
	}
	if r.err == nil && n > 0 {
		const entry = 32 + 4 + 32
		raw := r.take(n*entry, "session skipped keys")
		if raw != nil {
			s.skipped = make([]skippedKey, n)
			for i := range s.skipped {
				e, k := raw[i*entry:(i+1)*entry], &s.skipped[i]
				copy(k.dh[:], e[:32])
				k.n = binary.BigEndian.Uint32(e[32:36])
				copy(k.mk[:], e[36:])
			}
		}
	}
	m := int(r.u8("session earlier ratchet key count"))
	if r.err == nil && m > MaxPreviousChains {
		return nil, errf(ErrOversize, "session: %d earlier ratchet keys, limit %d", m, MaxPreviousChains)
	}
	if m > 0 {
		s.prevDHr = make([][32]byte, 0, MaxPreviousChains)
	}
	for i := 0; i < m && r.err == nil; i++ {
		if k := r.take(32, "session earlier ratchet key"); k != nil {
			s.prevDHr = append(s.prevDHr, [32]byte(k))
		}
	}
	if err := r.done("session"); err != nil {
		return nil, err
	}
	// Consistency: an unacknowledged initiator carries its initial header, no
	// one else does; a sending chain needs its key.
	wantHdr := s.initiator && !s.acked
	if wantHdr != (len(hdr) > 0) || (len(hdr) > 0 && len(hdr) != initialHeaderSize) {
		return nil, errf(ErrMalformed, "session initial header does not match its flags")
	}
	if !s.initiator && s.acked {
		return nil, errf(ErrMalformed, "session: responder marked acknowledged")
	}
	if s.hasCKs && dhsBytes == nil {
		return nil, errf(ErrMalformed, "session: sending chain without ratchet key")
	}
	if s.hasCKr && dhrBytes == nil {
		return nil, errf(ErrMalformed, "session: receiving chain without peer ratchet key")
	}
	if len(hdr) > 0 {
		s.initialHdr = append([]byte(nil), hdr...)
	}
	if dhsBytes != nil {
		s.hasDHs = true
		copy(s.dhsPriv[:], dhsBytes)
		copy(s.dhsPub[:], dhsPub)
	}
	if dhrBytes != nil {
		// Parsed lazily (Encrypt), like DHs: most loads never need it.
		s.hasDHr = true
		copy(s.dhr[:], dhrBytes)
	}
	if s.initiator {
		copy(s.ad[:32], s.selfCard[:])
		copy(s.ad[32:], s.peerCard[:])
	} else {
		copy(s.ad[:32], s.peerCard[:])
		copy(s.ad[32:], s.selfCard[:])
	}
	return s, nil
}

// UnmarshalBinary replaces s with the decoded state (encoding.BinaryUnmarshaler);
// on error s is unchanged. The random source is kept.
func (s *Session) UnmarshalBinary(b []byte) error {
	n, err := ParseSession(b)
	if err != nil {
		return err
	}
	r := s.rand
	*s = *n
	s.rand = r
	return nil
}
