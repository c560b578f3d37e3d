package payload

import (
	"encoding/binary"
	"time"
	"unicode/utf8"
)

// Decode reads a version-2 or version-1 payload strictly. A well-formed payload of an
// unknown type returns ErrUnknownType (with its Version, Type and At set): the receiver
// ignores it. Every other error means the payload must be rejected.
func Decode(b []byte) (*Payload, error) {
	if len(b) == 0 {
		return nil, errf(ErrMalformed, "empty payload")
	}
	if len(b) > MaxPayload {
		return nil, errf(ErrOversize, "payload of %d bytes, at most %d", len(b), MaxPayload)
	}
	switch b[0] {
	case Version:
		return decodeV2(b)
	case VersionV1:
		return decodeV1(b)
	}
	return nil, errf(ErrUnknownVersion, "%d", b[0])
}

func decodeV2(b []byte) (*Payload, error) {
	r := reader{b: b[1:]}
	typ := Type(r.u8())
	at := int64(r.u64())
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if int64(n) > int64(len(r.b)) {
		return nil, errf(ErrMalformed, "body of %d bytes, %d left", n, len(r.b))
	}
	body, pad := r.b[:n], r.b[n:]
	for _, c := range pad {
		if c != 0 {
			return nil, errf(ErrPadding, "%d padding bytes, not all zero", len(pad))
		}
	}
	p := &Payload{Version: Version, Type: typ, At: time.UnixMilli(at).UTC()}
	if !typ.Known() {
		return p, errf(ErrUnknownType, "%d", uint8(typ))
	}
	// Bytes after the fields a type defines are ignored (PAYLOAD.md §5: later revisions
	// append fields).
	r = reader{b: body}
	switch typ {
	case Text:
		p.ID, p.Seq = r.id(false), r.seq()
		p.Text = r.text("text", MaxText)
		if r.err == nil && p.Text == "" {
			return nil, errf(ErrMalformed, "empty text")
		}
		if r.err == nil && len(r.b) >= 8 { // the optional resend-of field (PAYLOAD.md §4.1)
			p.ResendOf = r.u64()
		}
	case Delivered, Read:
		p.IDs = r.ids()
	case RetryRequest:
		p.Retry.Reason = RetryReason(r.u8())
		p.Retry.ID = r.id(true)
		p.Retry.RelayMsgID = r.u64()
		if r.err == nil && p.Retry.Reason != RetryUndecryptable && p.Retry.Reason != RetryUnreadable {
			return nil, errf(ErrMalformed, "retry reason %d", p.Retry.Reason)
		}
		if r.err == nil && p.Retry.ID == "" && p.Retry.RelayMsgID == 0 {
			return nil, errf(ErrMalformed, "retry request names no message")
		}
	case Withdrawn:
		p.ID, p.Seq = r.id(false), r.seq()
	case IdentityChanged:
		copy(p.Identity.OldCardID[:], r.bytes(32))
		copy(p.Identity.NewCardID[:], r.bytes(32))
		sig := r.bytes(int(r.u8()))
		if r.err == nil && len(sig) != 0 && len(sig) != 64 {
			return nil, errf(ErrMalformed, "identity-changed signature of %d bytes, 0 or 64", len(sig))
		}
		if len(sig) > 0 {
			p.Identity.Signature = append([]byte(nil), sig...)
		}
	case Attachment:
		a := &p.Attachment
		p.ID, p.Seq = r.id(false), r.seq()
		a.BlobID = r.id(false)
		copy(a.Capability[:], r.bytes(32))
		copy(a.Key[:], r.bytes(32))
		copy(a.Digest[:], r.bytes(32))
		a.Size = r.u64()
		a.FileName = r.limited("file name", int(r.u16()), MaxFileName)
		if r.err == nil {
			r.check(checkFileName(a.FileName))
		}
		a.MediaType = r.limited("media type", int(r.u8()), MaxMediaType)
		if r.err == nil {
			r.check(checkMediaType(a.MediaType))
		}
		p.Text = r.text("caption", MaxText)
		if m := r.u32(); r.err == nil && m > MaxThumbnail {
			r.check(errf(ErrOversize, "thumbnail of %d bytes, at most %d", m, MaxThumbnail))
		} else if r.err == nil {
			a.Thumbnail = append([]byte(nil), r.bytes(int(m))...)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}

// decodeV1 reads a version-1 payload (PAYLOAD.md §8): what clients before payload
// version 2 send. It is as strict as those clients were.
func decodeV1(b []byte) (*Payload, error) {
	r := reader{b: b[1:]}
	typ := Type(r.u8())
	at := int64(r.u64())
	if r.err != nil {
		return nil, r.err
	}
	p := &Payload{Version: VersionV1, Type: typ, At: time.UnixMilli(at).UTC()}
	switch typ {
	case Text:
		p.ID = r.id(false)
		p.Text = r.text("text", maxTextV1)
	case Delivered, Read:
		p.IDs = r.ids()
	default:
		return nil, errf(ErrMalformed, "version 1 has no type %d", uint8(typ))
	}
	if r.err != nil {
		return nil, r.err
	}
	body := len(b) - len(r.b)
	padLen := int(r.u16())
	pad := r.bytes(padLen)
	if r.err != nil {
		return nil, r.err
	}
	if padLen != (64-(body+2)%64)%64 {
		return nil, errf(ErrMalformed, "version 1 padding of %d bytes", padLen)
	}
	for _, c := range pad {
		if c != 0 {
			return nil, errf(ErrPadding, "version 1 padding not all zero")
		}
	}
	if len(r.b) != 0 {
		return nil, errf(ErrMalformed, "%d trailing bytes", len(r.b))
	}
	return p, nil
}

// reader consumes big-endian fields and keeps the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) check(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errf(ErrMalformed, "field of %d bytes, %d left", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
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

// limited reads n bytes as a string, n checked against limit first.
func (r *reader) limited(what string, n, limit int) string {
	if r.err == nil && n > limit {
		r.err = errf(ErrOversize, "%s of %d bytes, at most %d", what, n, limit)
		return ""
	}
	return string(r.bytes(n))
}

func (r *reader) id(mayBeEmpty bool) string {
	s := string(r.bytes(int(r.u8())))
	if r.err == nil {
		r.check(checkID(s, mayBeEmpty))
	}
	return s
}

func (r *reader) seq() uint64 {
	s := r.u64()
	if r.err == nil && s == 0 {
		r.err = errf(ErrMalformed, "sequence number 0 (they start at 1)")
	}
	return s
}

func (r *reader) ids() []string {
	n := int(r.u16())
	if r.err == nil && (n == 0 || n > MaxIDs) {
		r.err = errf(ErrOversize, "%d receipt ids, 1 to %d", n, MaxIDs)
		return nil
	}
	ids := make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		ids = append(ids, r.id(false))
	}
	return ids
}

func (r *reader) text(what string, limit int) string {
	n := r.u32()
	if r.err == nil && int64(n) > int64(limit) {
		r.err = errf(ErrOversize, "%s of %d bytes, at most %d", what, n, limit)
		return ""
	}
	s := string(r.bytes(int(n)))
	if r.err == nil && !utf8.ValidString(s) {
		r.err = errf(ErrMalformed, "%s is not valid UTF-8", what)
	}
	return s
}
