// Package payload is the application payload of pfschat: the plaintext inside every
// ratchet message (chat/PAYLOAD.md). Encode builds a version-2 payload, padded to its
// size bucket; Decode reads versions 2 and 1 strictly, with typed errors and no panics.
//
//	b, err := payload.Encode(&payload.Payload{Type: payload.Text, At: now, ID: id, Seq: 7, Text: "hi"})
//	p, err := payload.Decode(b)
//	if errors.Is(err, payload.ErrUnknownType) { /* a newer client's type: ignore it */ }
//
// The sizes follow from the relay's body limit: MaxPayload is the largest padded
// payload, MaxText the longest text one message carries (PAYLOAD.md §6).
package payload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Versions this package reads; Encode writes Version.
const (
	Version   = 2
	VersionV1 = 1
)

// Limits (PAYLOAD.md §3 and §6).
const (
	// MaxPayload is the largest payload, padding included, a receiver accepts and a
	// sender produces: encrypted as an initial ratchet message it is MaxPayload + 1262
	// bytes, within the relay's 48000-byte body limit.
	MaxPayload = 45 << 10
	// MinBucket is the smallest padded size; buckets double from it up to MaxPayload.
	MinBucket = 256
	// MaxID is the longest message id; MaxIDs the most ids one receipt names.
	MaxID  = 64
	MaxIDs = 1000
	// headerSize is version, type, at and the body length.
	headerSize = 1 + 1 + 8 + 4
	// textOverhead is a text payload's size without its text, with the longest id.
	textOverhead = headerSize + 1 + MaxID + 8 + 4
	// MaxText is the longest text (bytes of UTF-8) a text payload carries: what is left
	// of MaxPayload with the longest id. UI, CLI and chat refuse longer text.
	MaxText = MaxPayload - textOverhead
	// MaxFileName, MaxMediaType and MaxThumbnail bound an attachment's fields.
	MaxFileName  = 255
	MaxMediaType = 127
	MaxThumbnail = 16 << 10
	// maxTextV1 is version 1's text limit.
	maxTextV1 = 40 << 10
)

// Type of a payload. The values are on the wire: never renumber them.
type Type uint8

const (
	Text            Type = 1 // a message shown in the conversation
	Delivered       Type = 2 // delivery receipt for message ids
	Read            Type = 3 // read receipt for message ids
	RetryRequest    Type = 4 // asks the sender's client to send a message again
	IdentityChanged Type = 5 // the sender replaced its identity card
	Attachment      Type = 6 // a file stored as an encrypted blob (PAYLOAD.md §4.5)
	Withdrawn       Type = 7 // the relay refused the sender's message (ID, Seq): it never comes
)

func (t Type) String() string {
	switch t {
	case Text:
		return "text"
	case Delivered:
		return "delivered"
	case Read:
		return "read"
	case RetryRequest:
		return "retry"
	case IdentityChanged:
		return "identity-changed"
	case Attachment:
		return "attachment"
	case Withdrawn:
		return "withdrawn"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Known reports whether this package knows the type's body.
func (t Type) Known() bool { return t >= Text && t <= Withdrawn }

// Sequenced reports whether payloads of the type are shown as messages and so carry
// (and consume) a per-conversation sequence number.
func (t Type) Sequenced() bool { return t == Text || t == Attachment }

// RetryReason says why a retry is requested.
type RetryReason uint8

const (
	RetryUndecryptable RetryReason = 1 // the ratchet message could not be decrypted
	RetryUnreadable    RetryReason = 2 // it decrypted, but its payload was rejected
)

// Payload is one decoded payload. Which fields are set depends on Type.
type Payload struct {
	Version uint8     // set by Decode (1 or 2); Encode always writes 2
	Type    Type      //
	At      time.Time // the sender's clock, Unix milliseconds: sent, delivered, read, ...
	ID      string    // text, attachment: the message id the sender chose; withdrawn: the refused one's
	Seq     uint64    // text, attachment: per-conversation sequence number (0 in version 1); withdrawn: the refused one's
	Text    string    // text: the text; attachment: the optional caption
	IDs     []string  // delivered, read: the message ids acknowledged
	// ResendOf, in a text, is the relay msg_id a retry request named when this text is
	// the resend answering it (PAYLOAD.md §4.1, §4.3): the receiver puts it in the place
	// of the placeholder it recorded for that delivery. 0: not such a resend.
	ResendOf uint64

	Retry      Retry          // retry request
	Identity   IdentityChange // identity-changed
	Attachment AttachmentRef  // attachment
}

// Retry is a retry request's body: the message to send again, by its message id when
// the receiver knows it, else by the relay's msg_id it arrived under.
type Retry struct {
	Reason     RetryReason
	ID         string
	RelayMsgID uint64
}

// IdentityChange is an identity-changed body: the sender's previous and new card (raw
// IDs) and, when the old key was available, its signature (PAYLOAD.md §4.4).
type IdentityChange struct {
	OldCardID, NewCardID [32]byte
	Signature            []byte // empty or 64 bytes
}

// AttachmentRef is an attachment body; the caption is Payload.Text.
type AttachmentRef struct {
	BlobID     string
	Capability [32]byte // the relay's capability to fetch the blob (relay/PROTOCOL.md "Blobs")
	Key        [32]byte
	Digest     [32]byte
	Size       uint64
	FileName   string
	MediaType  string
	Thumbnail  []byte
}

// Typed errors: every Decode and Encode error wraps exactly one.
var (
	ErrMalformed      = errors.New("payload: malformed")
	ErrOversize       = errors.New("payload: over a size limit")
	ErrUnknownVersion = errors.New("payload: unknown version")
	ErrPadding        = errors.New("payload: non-zero padding")
	// ErrUnknownType is a well-formed payload of a type this code does not know; the
	// receiver ignores it (a newer client sent it).
	ErrUnknownType = errors.New("payload: unknown type")
)

func errf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{kind}, args...)...)
}

// Bucket returns the padded size of an n-byte payload: the smallest power of two from
// MinBucket that holds it, or MaxPayload above the largest such power; -1 over MaxPayload.
func Bucket(n int) int {
	if n > MaxPayload {
		return -1
	}
	b := MinBucket
	for b < n {
		b *= 2
	}
	return min(b, MaxPayload)
}

// Encode returns p as a version-2 payload, zero-padded to Bucket of its length. It
// refuses (ErrMalformed, ErrOversize) anything Decode would refuse.
func Encode(p *Payload) ([]byte, error) {
	b, err := AppendUnpadded(make([]byte, 0, MinBucket), p)
	if err != nil {
		return nil, err
	}
	n := Bucket(len(b))
	if n < 0 {
		return nil, errf(ErrOversize, "%s payload of %d bytes, at most %d", p.Type, len(b), MaxPayload)
	}
	return append(b, make([]byte, n-len(b))...), nil
}

// ReceiptFit is how many of ids, from the first, one receipt holds: at most MaxIDs,
// and no more than fit in MaxPayload (1000 ids of MaxID bytes do not: about 708 do).
// A sender splits a longer list into receipts of this many (PAYLOAD.md §4.2). It is at
// least 1 when ids is not empty; an id that is not valid is Encode's to refuse.
func ReceiptFit(ids []string) int {
	const fixed = 2 + 8 + 4 + 2 // version, type, at, body length, id count
	n, size := 0, fixed
	for n < len(ids) && n < MaxIDs && size+1+len(ids[n]) <= MaxPayload {
		size += 1 + len(ids[n])
		n++
	}
	return max(n, min(1, len(ids)))
}

// AppendUnpadded appends p's version-2 encoding without padding to b.
func AppendUnpadded(b []byte, p *Payload) ([]byte, error) {
	start := len(b)
	b = append(b, Version, byte(p.Type))
	b = binary.BigEndian.AppendUint64(b, uint64(p.At.UnixMilli()))
	b = append(b, 0, 0, 0, 0) // body length, set below
	bodyAt := len(b)
	var err error
	switch p.Type {
	case Text:
		if b, err = appendSequenced(b, p.ID, p.Seq); err != nil {
			return nil, err
		}
		if len(p.Text) == 0 {
			return nil, errf(ErrMalformed, "empty text")
		}
		if b, err = appendText(b, "text", p.Text, MaxText); err != nil {
			return nil, err
		}
		if p.ResendOf != 0 {
			b = binary.BigEndian.AppendUint64(b, p.ResendOf)
		}
	case Delivered, Read:
		if len(p.IDs) == 0 || len(p.IDs) > MaxIDs {
			return nil, errf(ErrOversize, "%d receipt ids, 1 to %d", len(p.IDs), MaxIDs)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.IDs)))
		for _, id := range p.IDs {
			if err := checkID(id, false); err != nil {
				return nil, err
			}
			b = appendStr8(b, id)
		}
	case RetryRequest:
		r := p.Retry
		if r.Reason != RetryUndecryptable && r.Reason != RetryUnreadable {
			return nil, errf(ErrMalformed, "retry reason %d", r.Reason)
		}
		if err := checkID(r.ID, true); err != nil {
			return nil, err
		}
		if r.ID == "" && r.RelayMsgID == 0 {
			return nil, errf(ErrMalformed, "retry request names no message")
		}
		b = append(b, byte(r.Reason))
		b = appendStr8(b, r.ID)
		b = binary.BigEndian.AppendUint64(b, r.RelayMsgID)
	case Withdrawn:
		if b, err = appendSequenced(b, p.ID, p.Seq); err != nil {
			return nil, err
		}
	case IdentityChanged:
		ic := p.Identity
		if len(ic.Signature) != 0 && len(ic.Signature) != 64 {
			return nil, errf(ErrMalformed, "identity-changed signature of %d bytes, 0 or 64", len(ic.Signature))
		}
		b = append(b, ic.OldCardID[:]...)
		b = append(b, ic.NewCardID[:]...)
		b = append(b, byte(len(ic.Signature)))
		b = append(b, ic.Signature...)
	case Attachment:
		a := p.Attachment
		if b, err = appendSequenced(b, p.ID, p.Seq); err != nil {
			return nil, err
		}
		if err := checkID(a.BlobID, false); err != nil {
			return nil, err
		}
		if err := checkFileName(a.FileName); err != nil {
			return nil, err
		}
		if err := checkMediaType(a.MediaType); err != nil {
			return nil, err
		}
		if len(a.Thumbnail) > MaxThumbnail {
			return nil, errf(ErrOversize, "thumbnail of %d bytes, at most %d", len(a.Thumbnail), MaxThumbnail)
		}
		b = appendStr8(b, a.BlobID)
		b = append(b, a.Capability[:]...)
		b = append(b, a.Key[:]...)
		b = append(b, a.Digest[:]...)
		b = binary.BigEndian.AppendUint64(b, a.Size)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.FileName)))
		b = append(b, a.FileName...)
		b = appendStr8(b, a.MediaType)
		if b, err = appendText(b, "caption", p.Text, MaxText); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(a.Thumbnail)))
		b = append(b, a.Thumbnail...)
	default:
		return nil, errf(ErrUnknownType, "cannot encode %s", p.Type)
	}
	if len(b)-start > MaxPayload {
		return nil, errf(ErrOversize, "%s payload of %d bytes, at most %d", p.Type, len(b)-start, MaxPayload)
	}
	binary.BigEndian.PutUint32(b[bodyAt-4:], uint32(len(b)-bodyAt))
	return b, nil
}

func appendSequenced(b []byte, id string, seq uint64) ([]byte, error) {
	if err := checkID(id, false); err != nil {
		return nil, err
	}
	if seq == 0 {
		return nil, errf(ErrMalformed, "sequence number 0 (they start at 1)")
	}
	b = appendStr8(b, id)
	return binary.BigEndian.AppendUint64(b, seq), nil
}

func appendText(b []byte, what, s string, limit int) ([]byte, error) {
	if len(s) > limit {
		return nil, errf(ErrOversize, "%s of %d bytes, at most %d", what, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return nil, errf(ErrMalformed, "%s is not valid UTF-8", what)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...), nil
}

func appendStr8(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// checkID: 1 to MaxID bytes of printable ASCII (0x21–0x7E); empty only if allowed.
func checkID(id string, mayBeEmpty bool) error {
	if id == "" && mayBeEmpty {
		return nil
	}
	if len(id) == 0 || len(id) > MaxID {
		return errf(ErrMalformed, "id of %d bytes, 1 to %d", len(id), MaxID)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return errf(ErrMalformed, "id byte 0x%02x is not printable ASCII", id[i])
		}
	}
	return nil
}

// checkFileName: at most MaxFileName bytes of UTF-8 without control characters (Cc),
// '/' or '\'; empty means "no name".
func checkFileName(s string) error {
	if len(s) > MaxFileName {
		return errf(ErrOversize, "file name of %d bytes, at most %d", len(s), MaxFileName)
	}
	if !utf8.ValidString(s) {
		return errf(ErrMalformed, "file name is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '/' || r == '\\' {
			return errf(ErrMalformed, "file name contains %U", r)
		}
	}
	if s == "." || s == ".." {
		return errf(ErrMalformed, "file name %q", s)
	}
	return nil
}

// checkMediaType: at most MaxMediaType bytes of printable ASCII or space; empty means
// unknown.
func checkMediaType(s string) error {
	if len(s) > MaxMediaType {
		return errf(ErrOversize, "media type of %d bytes, at most %d", len(s), MaxMediaType)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return errf(ErrMalformed, "media type byte 0x%02x is not printable ASCII", s[i])
		}
	}
	return nil
}
