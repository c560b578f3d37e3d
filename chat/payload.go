package chat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// The plaintext inside every ratchet message is a small versioned record:
//
//	version u8 (=1) ‖ kind u8 ‖ at i64 (Unix ms, big endian)
//	text:     idLen u8 ‖ clientID ‖ textLen u32 ‖ UTF-8 text
//	receipts: count u16 (1..maxReceiptIDs) ‖ count × (idLen u8 ‖ clientID)
//	‖ padLen u16 ‖ padLen zero bytes
//
// The client ID of a text is the sender's own id for that message; receipts name the
// client IDs they acknowledge. Padding rounds every payload up to a multiple of
// payloadBlock so the relay learns only a coarse length.
const (
	payloadVersion = 1
	payloadBlock   = 64
	maxClientID    = 64
	maxReceiptIDs  = 1000
	// MaxTextBytes is the longest text one message can carry.
	MaxTextBytes = 40 << 10 // the relay caps frames at 64 KiB of JSON; base64 and the PQXDH header must fit
)

type payloadKind uint8

const (
	kindText            payloadKind = 1
	kindDeliveryReceipt payloadKind = 2
	kindReadReceipt     payloadKind = 3
)

// payload is the decoded plaintext of a ratchet message.
type payload struct {
	Kind      payloadKind
	At        time.Time // text: sent at; receipt: when delivered/read
	ClientID  string    // text only
	Text      string    // text only
	ClientIDs []string  // receipts only
}

// Typed payload errors.
var (
	ErrPayloadMalformed = errors.New("chat: malformed message payload")
	ErrPayloadVersion   = errors.New("chat: unknown message payload version")
	ErrPayloadKind      = errors.New("chat: unknown message payload kind")
	ErrTextTooLong      = errors.New("chat: text too long")
)

func (p *payload) marshal() ([]byte, error) {
	b := make([]byte, 0, 64+len(p.Text))
	b = append(b, payloadVersion, byte(p.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(p.At.UnixMilli()))
	switch p.Kind {
	case kindText:
		if len(p.Text) > MaxTextBytes {
			return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTextTooLong, len(p.Text), MaxTextBytes)
		}
		if !utf8.ValidString(p.Text) {
			return nil, fmt.Errorf("%w: text is not valid UTF-8", ErrPayloadMalformed)
		}
		if len(p.ClientID) == 0 || len(p.ClientID) > maxClientID {
			return nil, fmt.Errorf("%w: client id length %d", ErrPayloadMalformed, len(p.ClientID))
		}
		b = append(b, byte(len(p.ClientID)))
		b = append(b, p.ClientID...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p.Text)))
		b = append(b, p.Text...)
	case kindDeliveryReceipt, kindReadReceipt:
		if len(p.ClientIDs) == 0 || len(p.ClientIDs) > maxReceiptIDs {
			return nil, fmt.Errorf("%w: %d receipt ids", ErrPayloadMalformed, len(p.ClientIDs))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.ClientIDs)))
		for _, id := range p.ClientIDs {
			if len(id) == 0 || len(id) > maxClientID {
				return nil, fmt.Errorf("%w: client id length %d", ErrPayloadMalformed, len(id))
			}
			b = append(b, byte(len(id)))
			b = append(b, id...)
		}
	default:
		return nil, fmt.Errorf("%w: %d", ErrPayloadKind, p.Kind)
	}
	pad := (payloadBlock - (len(b)+2)%payloadBlock) % payloadBlock
	b = binary.BigEndian.AppendUint16(b, uint16(pad))
	return append(b, make([]byte, pad)...), nil
}

// parsePayload decodes a plaintext strictly: unknown versions and kinds, short or oversize
// fields, invalid UTF-8, non-zero padding and trailing bytes are all rejected.
func parsePayload(b []byte) (*payload, error) {
	r := reader{b: b}
	ver, kind := r.u8(), r.u8()
	at := r.u64()
	if r.err != nil {
		return nil, r.err
	}
	if ver != payloadVersion {
		return nil, fmt.Errorf("%w: %d", ErrPayloadVersion, ver)
	}
	p := &payload{Kind: payloadKind(kind), At: time.UnixMilli(int64(at)).UTC()}
	switch p.Kind {
	case kindText:
		p.ClientID = r.shortString()
		n := r.u32()
		if r.err == nil && n > MaxTextBytes {
			return nil, fmt.Errorf("%w: %d bytes", ErrTextTooLong, n)
		}
		p.Text = string(r.bytes(int(n)))
		if r.err == nil && !utf8.ValidString(p.Text) {
			return nil, fmt.Errorf("%w: text is not valid UTF-8", ErrPayloadMalformed)
		}
	case kindDeliveryReceipt, kindReadReceipt:
		n := int(r.u16())
		if r.err == nil && (n == 0 || n > maxReceiptIDs) {
			return nil, fmt.Errorf("%w: %d receipt ids", ErrPayloadMalformed, n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			p.ClientIDs = append(p.ClientIDs, r.shortString())
		}
	default:
		return nil, fmt.Errorf("%w: %d", ErrPayloadKind, kind)
	}
	body := len(b) - len(r.b)
	padLen := int(r.u16())
	pad := r.bytes(padLen)
	if r.err != nil {
		return nil, r.err
	}
	if padLen != (payloadBlock-(body+2)%payloadBlock)%payloadBlock {
		return nil, fmt.Errorf("%w: padding of %d bytes", ErrPayloadMalformed, padLen)
	}
	for _, c := range pad {
		if c != 0 {
			return nil, fmt.Errorf("%w: non-zero padding", ErrPayloadMalformed)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrPayloadMalformed, len(r.b))
	}
	return p, nil
}

// reader consumes big-endian fields and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: field of %d bytes, %d left", ErrPayloadMalformed, n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}
func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}
func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}
func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) shortString() string {
	n := int(r.u8())
	if r.err == nil && (n == 0 || n > maxClientID) {
		r.err = fmt.Errorf("%w: client id length %d", ErrPayloadMalformed, n)
		return ""
	}
	return string(r.bytes(n))
}
