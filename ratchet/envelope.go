package ratchet

import (
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/hex"
)

// MessageType is the second byte of every wire message.
type MessageType uint8

const (
	// MessageInitial carries the handshake fields (InitialHeader) and a ratchet
	// message. The initiator sends this type until it has decrypted a reply, so
	// any one of its first messages can start the session on the responder.
	MessageInitial MessageType = 1
	// MessageNormal carries a ratchet header and ciphertext.
	MessageNormal MessageType = 2
)

// Wire limits.
const (
	// MaxPlaintext is the largest plaintext Encrypt accepts (64 KiB).
	MaxPlaintext = 64 << 10
	// MaxPaddingBlock is the largest padding block SetPadding accepts.
	MaxPaddingBlock = 4096
	// maxCiphertext: padded plaintext (plaintext + 0x80 marker, rounded up to the
	// largest block) + tag.
	maxCiphertext = MaxPlaintext + MaxPaddingBlock + aeadOverhead
	// initialHeaderSize: 3×32 + 3×4 + 1 + 2 + 1088.
	initialHeaderSize = 32 + 32 + 32 + 4 + 4 + 4 + 1 + 2 + mlkem.CiphertextSize768
	// ratchetHeaderSize: DH (32) ‖ PN (4) ‖ N (4).
	ratchetHeaderSize = 32 + 4 + 4
	// MaxMessageSize is the largest valid wire message.
	MaxMessageSize = 2 + initialHeaderSize + ratchetHeaderSize + 4 + maxCiphertext
)

// InitialHeader is the handshake part of an initial message: who talks to
// whom, the initiator's ephemeral key, which prekeys it used and the ML-KEM
// ciphertext. Encoding (all fixed size):
//
//	fixed[32] initiator card ID ‖ fixed[32] responder card ID ‖ fixed[32] ephemeral X25519 key
//	‖ u32 signed prekey id ‖ u32 one-time prekey id (0 = none) ‖ u32 KEM prekey id
//	‖ u8 KEM prekey kind (3|4) ‖ bytes16 KEM ciphertext (exactly 1088)
type InitialHeader struct {
	InitiatorCardID string // hex
	ResponderCardID string // hex
	EphemeralKey    []byte
	SignedPreKeyID  uint32
	OneTimePreKeyID uint32 // 0 = none used
	KEMPreKeyID     uint32
	KEMPreKeyKind   PreKeyKind
	KEMCiphertext   []byte
}

// SessionID is the ID both sides give the session this message starts (the
// same value Session.ID returns).
func (h *InitialHeader) SessionID() string {
	a, _ := hex.DecodeString(h.InitiatorCardID)
	b, _ := hex.DecodeString(h.ResponderCardID)
	id := sessionID(a, b, h.EphemeralKey)
	return hex.EncodeToString(id[:])
}

// sessionID = SHA-256(LabelSessionID ‖ 0x00 ‖ initiator ID ‖ responder ID ‖ EK).
func sessionID(initiator, responder, ek []byte) [32]byte {
	var buf [len(LabelSessionID) + 1 + 96]byte
	n := copy(buf[:], LabelSessionID)
	n++ // 0x00
	n += copy(buf[n:], initiator)
	n += copy(buf[n:], responder)
	n += copy(buf[n:], ek)
	return sha256.Sum256(buf[:n])
}

func (h *InitialHeader) appendTo(b []byte) ([]byte, error) {
	ini, err := hex.DecodeString(h.InitiatorCardID)
	if err != nil || len(ini) != 32 {
		return nil, errf(ErrMalformed, "initial header: initiator card ID")
	}
	res, err := hex.DecodeString(h.ResponderCardID)
	if err != nil || len(res) != 32 {
		return nil, errf(ErrMalformed, "initial header: responder card ID")
	}
	if len(h.EphemeralKey) != 32 || len(h.KEMCiphertext) != mlkem.CiphertextSize768 || !h.KEMPreKeyKind.isKEM() {
		return nil, errf(ErrMalformed, "initial header: field sizes")
	}
	b = append(b, ini...)
	b = append(b, res...)
	b = append(b, h.EphemeralKey...)
	b = appendU32(b, h.SignedPreKeyID)
	b = appendU32(b, h.OneTimePreKeyID)
	b = appendU32(b, h.KEMPreKeyID)
	b = append(b, byte(h.KEMPreKeyKind))
	b = appendBytes16(b, h.KEMCiphertext)
	return b, nil
}

// rawInitial is the decoded initial header, aliasing the wire bytes.
type rawInitial struct {
	initiator, responder, ek []byte
	spk, opk, kemID          uint32
	kemKind                  PreKeyKind
	kemCT                    []byte
}

func readInitial(r *reader) rawInitial {
	var h rawInitial
	h.initiator = r.take(32, "initial header: initiator card ID")
	h.responder = r.take(32, "initial header: responder card ID")
	h.ek = r.take(32, "initial header: ephemeral key")
	h.spk = r.u32("initial header: signed prekey id")
	h.opk = r.u32("initial header: one-time prekey id")
	h.kemID = r.u32("initial header: KEM prekey id")
	h.kemKind = PreKeyKind(r.u8("initial header: KEM prekey kind"))
	if r.err == nil && !h.kemKind.isKEM() {
		r.fail(errf(ErrMalformed, "initial header: KEM prekey kind %d", h.kemKind))
	}
	h.kemCT = r.exact16(mlkem.CiphertextSize768, "initial header: KEM ciphertext")
	if r.err == nil && (h.spk == 0 || h.kemID == 0) {
		r.fail(errf(ErrMalformed, "initial header: prekey id 0"))
	}
	return h
}

func (h *rawInitial) header() *InitialHeader {
	return &InitialHeader{
		InitiatorCardID: hex.EncodeToString(h.initiator),
		ResponderCardID: hex.EncodeToString(h.responder),
		EphemeralKey:    h.ek,
		SignedPreKeyID:  h.spk,
		OneTimePreKeyID: h.opk,
		KEMPreKeyID:     h.kemID,
		KEMPreKeyKind:   h.kemKind,
		KEMCiphertext:   h.kemCT,
	}
}

// RatchetHeader is the Double Ratchet header of a message:
// fixed[32] sender's ratchet public key ‖ u32 PN ‖ u32 N.
type RatchetHeader struct {
	DH []byte // 32-byte X25519 public key
	PN uint32 // messages in the sender's previous sending chain
	N  uint32 // message number in the current sending chain
}

// Envelope is a decoded wire message:
//
//	u8 version (1) ‖ u8 type (1 initial | 2 normal) [‖ InitialHeader]
//	‖ RatchetHeader ‖ bytes32 ciphertext (17 ≤ len ≤ MaxPlaintext+MaxPaddingBlock+16)
//
// The AEAD's associated data is the session AD (initiator card ID ‖ responder
// card ID, 64 raw bytes) followed by every wire byte before the ciphertext
// itself (version through the ciphertext length), so no header bit can change
// unnoticed. Envelope fields alias the decoded bytes.
type Envelope struct {
	Type       MessageType
	Initial    *InitialHeader // non-nil for initial messages
	Header     RatchetHeader
	Ciphertext []byte

	raw   []byte // the complete wire message
	rawIn rawInitial
}

// DecodeEnvelope parses a wire message strictly. It never panics; errors wrap
// ErrMalformed, ErrTrailingBytes, ErrOversize or ErrUnknownVersion. The
// envelope aliases b.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	e := &Envelope{}
	if err := decodeEnvelope(e, b); err != nil {
		return nil, err
	}
	if e.Type == MessageInitial {
		e.Initial = e.rawIn.header()
	}
	return e, nil
}

// decodeEnvelope fills e without allocating (Initial stays nil).
func decodeEnvelope(e *Envelope, b []byte) error {
	if len(b) > MaxMessageSize {
		return errf(ErrOversize, "message: %d bytes, limit %d", len(b), MaxMessageSize)
	}
	r := reader{b: b}
	r.version(envelopeVersion, "message")
	e.Type = MessageType(r.u8("message type"))
	switch {
	case r.err != nil:
	case e.Type == MessageInitial:
		e.rawIn = readInitial(&r)
	case e.Type == MessageNormal:
	default:
		r.fail(errf(ErrMalformed, "message type %d", e.Type))
	}
	e.Header.DH = r.take(32, "ratchet header: DH key")
	e.Header.PN = r.u32("ratchet header: PN")
	e.Header.N = r.u32("ratchet header: N")
	e.Ciphertext = r.bytes32(maxCiphertext, "ciphertext")
	if err := r.done("message"); err != nil {
		return err
	}
	if len(e.Ciphertext) < aeadOverhead+1 {
		return errf(ErrMalformed, "ciphertext: %d bytes, shorter than a tag and padding", len(e.Ciphertext))
	}
	e.raw = b
	return nil
}

// authenticatedPrefix is every wire byte before the ciphertext.
func (e *Envelope) authenticatedPrefix() []byte {
	return e.raw[:len(e.raw)-len(e.Ciphertext)]
}
