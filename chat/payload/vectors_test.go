package payload_test

// TestVectors regenerates chat/testdata/payload_vectors.json from the code and compares
// it byte for byte; then it decodes every vector and refuses every rejection with its
// error. Rewrite the file after a deliberate change of PAYLOAD.md with
//
//	go test ./chat/payload -run TestVectors -update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
)

var updateVectors = flag.Bool("update", false, "rewrite chat/testdata/payload_vectors.json from the current code")

const vectorsPath = "../testdata/payload_vectors.json"

// vectorFile is the layout of payload_vectors.json (PAYLOAD.md §9).
type vectorFile struct {
	Comment    string      `json:"comment"`
	MaxPayload int         `json:"max_payload"`
	MinBucket  int         `json:"min_bucket"`
	MaxText    int         `json:"max_text"`
	Vectors    []vector    `json:"vectors"`
	Ignored    []rejection `json:"ignored"`
	Rejections []rejection `json:"rejections"`
}

type vector struct {
	Name     string `json:"name"`
	Version  int    `json:"version"`
	Type     int    `json:"type"`
	Fields   fields `json:"fields"`
	Unpadded string `json:"unpadded,omitempty"` // hex, version 2 only
	Payload  string `json:"payload"`            // hex, as encrypted (then PadZeros zero bytes)
	PadZeros int    `json:"pad_zeros,omitempty"`
}

// fields: byte fields are hex; text fields are JSON strings.
type fields struct {
	AtMS       int64    `json:"at_ms"`
	ID         string   `json:"id,omitempty"`
	Seq        uint64   `json:"seq,omitempty"`
	Text       string   `json:"text,omitempty"`
	IDs        []string `json:"ids,omitempty"`
	Reason     int      `json:"reason,omitempty"`
	RelayMsgID uint64   `json:"relay_msg_id,omitempty"`
	ResendOf   uint64   `json:"resend_of,omitempty"`
	OldCardID  string   `json:"old_card_id,omitempty"`
	NewCardID  string   `json:"new_card_id,omitempty"`
	Signature  string   `json:"signature,omitempty"`
	SignerKey  string   `json:"signer_key,omitempty"` // hex: the old card's Ed25519 key, for a signed identity change
	BlobID     string   `json:"blob_id,omitempty"`
	Capability string   `json:"capability,omitempty"`
	Key        string   `json:"key,omitempty"`
	Digest     string   `json:"digest,omitempty"`
	Size       uint64   `json:"size,omitempty"`
	FileName   string   `json:"file_name,omitempty"`
	MediaType  string   `json:"media_type,omitempty"`
	Caption    string   `json:"caption,omitempty"`
	Thumbnail  string   `json:"thumbnail,omitempty"`
}

type rejection struct {
	Name     string `json:"name"`
	Payload  string `json:"payload"`
	PadZeros int    `json:"pad_zeros,omitempty"` // zero bytes that follow payload
	Error    string `json:"error,omitempty"`     // PAYLOAD.md §7 error name; none for ignored payloads
}

func (v vector) bytes(t *testing.T) []byte {
	return append(mustHex(t, v.Payload), make([]byte, v.PadZeros)...)
}

func (r rejection) bytes(t *testing.T) []byte {
	return append(mustHex(t, r.Payload), make([]byte, r.PadZeros)...)
}

var vectorAt = time.Date(2026, 1, 1, 12, 0, 0, 123e6, time.UTC)

// det returns n deterministic bytes for label (SHA-256 counter stream).
func det(label string, n int) []byte {
	var out []byte
	for i := uint64(0); len(out) < n; i++ {
		h := sha256.New()
		h.Write([]byte("pfschat/payload/test-vectors\x00" + label))
		h.Write(binary.BigEndian.AppendUint64(nil, i))
		out = h.Sum(out)
	}
	return out[:n]
}

func det32(label string) (a [32]byte) { copy(a[:], det(label, 32)); return }

// identityChangeDomain is PAYLOAD.md §4.4's signature domain.
const identityChangeDomain = "pfschat/v2/payload/identity-changed"

// identityChangeKey is the old identity's signing key of the signed identity-changed
// vector; its public half is the vector's signer_key.
func identityChangeKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(det("old identity key", 32))
}

// identityChangeSignature signs old ‖ new card ID as ratchet/SPEC.md §4 signs: the
// domain, 0x00, the message.
func identityChangeSignature() []byte {
	old, next := det32("old card"), det32("new card")
	msg := append(append([]byte(identityChangeDomain+"\x00"), old[:]...), next[:]...)
	return ed25519.Sign(identityChangeKey(), msg)
}

// vectorPayloads are the version-2 vectors, one or more per type.
func vectorPayloads() []struct {
	name string
	p    payload.Payload
} {
	at := vectorAt
	id := "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	return []struct {
		name string
		p    payload.Payload
	}{
		{"text", payload.Payload{Type: payload.Text, At: at, ID: id, Seq: 1, Text: "hello, bob"}},
		{"text with every kind of character", payload.Payload{Type: payload.Text, At: at, ID: "a", Seq: 2,
			Text: "tab\there\r\nCRLF, NUL\x00, ESC\x1b[31m, family 👨\u200d👩\u200d👧, skin 👍🏽, RTL שלום עליכם, CJK 漢字, combining e\u0301, U+FFFF \uffff"}},
		{"text filling the 256-byte bucket", payload.Payload{Type: payload.Text, At: at, ID: id, Seq: 3,
			Text: strings.Repeat("x", 256-27-len(id))}},
		{"text one byte into the 512-byte bucket", payload.Payload{Type: payload.Text, At: at, ID: id, Seq: 4,
			Text: strings.Repeat("y", 257-27-len(id))}},
		{"text with the largest sequence number", payload.Payload{Type: payload.Text, At: at, ID: id, Seq: 1<<64 - 1, Text: "last"}},
		{"delivered", payload.Payload{Type: payload.Delivered, At: at, IDs: []string{id, "c-0002"}}},
		{"read", payload.Payload{Type: payload.Read, At: at, IDs: []string{id}}},
		{"retry request by message id", payload.Payload{Type: payload.RetryRequest, At: at,
			Retry: payload.Retry{Reason: payload.RetryUnreadable, ID: id}}},
		{"retry request by relay msg_id", payload.Payload{Type: payload.RetryRequest, At: at,
			Retry: payload.Retry{Reason: payload.RetryUndecryptable, RelayMsgID: 1234}}},
		{"identity-changed, signed by the old key", payload.Payload{Type: payload.IdentityChanged, At: at,
			Identity: payload.IdentityChange{OldCardID: det32("old card"), NewCardID: det32("new card"), Signature: identityChangeSignature()}}},
		{"identity-changed, unsigned", payload.Payload{Type: payload.IdentityChanged, At: at,
			Identity: payload.IdentityChange{OldCardID: det32("old card"), NewCardID: det32("new card")}}},
		{"attachment", payload.Payload{Type: payload.Attachment, At: at, ID: id, Seq: 5, Text: "the plan 📎",
			Attachment: payload.AttachmentRef{BlobID: "b-7f3a", Capability: det32("blob capability"), Key: det32("blob key"), Digest: det32("blob digest"),
				Size: 1 << 20, FileName: "plan v2.pdf", MediaType: "application/pdf", Thumbnail: det("thumbnail", 40)}}},
		{"withdrawn", payload.Payload{Type: payload.Withdrawn, At: at, ID: id, Seq: 7}},
		{"attachment without name, type, caption or thumbnail", payload.Payload{Type: payload.Attachment, At: at, ID: id, Seq: 6,
			Attachment: payload.AttachmentRef{BlobID: "b", Capability: det32("blob capability"), Key: det32("blob key"), Digest: det32("blob digest"), Size: 0}}},
		{"text re-sent on a retry request", payload.Payload{Type: payload.Text, At: at, ID: id, Seq: 3, Text: "again", ResendOf: 1234}},
	}
}

func toFields(p *payload.Payload) fields {
	f := fields{AtMS: p.At.UnixMilli(), ID: p.ID, Seq: p.Seq, IDs: p.IDs}
	switch p.Type {
	case payload.Text:
		f.Text, f.ResendOf = p.Text, p.ResendOf
	case payload.RetryRequest:
		f.ID, f.Reason, f.RelayMsgID = p.Retry.ID, int(p.Retry.Reason), p.Retry.RelayMsgID
	case payload.IdentityChanged:
		f.OldCardID, f.NewCardID = hex.EncodeToString(p.Identity.OldCardID[:]), hex.EncodeToString(p.Identity.NewCardID[:])
		f.Signature = hex.EncodeToString(p.Identity.Signature)
	case payload.Attachment:
		a := p.Attachment
		f.BlobID, f.Key, f.Digest, f.Size = a.BlobID, hex.EncodeToString(a.Key[:]), hex.EncodeToString(a.Digest[:]), a.Size
		f.Capability = hex.EncodeToString(a.Capability[:])
		f.FileName, f.MediaType, f.Caption, f.Thumbnail = a.FileName, a.MediaType, p.Text, hex.EncodeToString(a.Thumbnail)
	}
	return f
}

// v1Payload builds a version-1 payload as clients before version 2 did.
func v1Payload(kind byte, at time.Time, body []byte) []byte {
	b := []byte{1, kind}
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixMilli()))
	b = append(b, body...)
	pad := (64 - (len(b)+2)%64) % 64
	b = binary.BigEndian.AppendUint16(b, uint16(pad))
	return append(b, make([]byte, pad)...)
}

func str8(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func buildVectors(t *testing.T) vectorFile {
	t.Helper()
	vf := vectorFile{
		Comment:    "pfschat application payload vectors; see chat/PAYLOAD.md §9. Regenerate: go test ./chat/payload -run TestVectors -update",
		MaxPayload: payload.MaxPayload, MinBucket: payload.MinBucket, MaxText: payload.MaxText,
	}
	for _, v := range vectorPayloads() {
		un, err := payload.AppendUnpadded(nil, &v.p)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		enc, err := payload.Encode(&v.p)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		f := toFields(&v.p)
		if len(v.p.Identity.Signature) > 0 {
			f.SignerKey = hex.EncodeToString(identityChangeKey().Public().(ed25519.PublicKey))
		}
		vf.Vectors = append(vf.Vectors, vector{Name: v.name, Version: 2, Type: int(v.p.Type), Fields: f,
			Unpadded: hex.EncodeToString(un), Payload: hex.EncodeToString(enc)})
	}
	id := "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	v1text := v1Payload(1, vectorAt, append(append(str8(id), 0, 0, 0, 5), "hello"...))
	v1rcpt := v1Payload(2, vectorAt, append([]byte{0, 1}, str8(id)...))
	v1read := v1Payload(3, vectorAt, append([]byte{0, 1}, str8(id)...))
	v1empty := v1Payload(1, vectorAt, append(str8(id), 0, 0, 0, 0))
	vf.Vectors = append(vf.Vectors,
		vector{Name: "version 1 text", Version: 1, Type: 1, Fields: fields{AtMS: vectorAt.UnixMilli(), ID: id, Text: "hello"}, Payload: hex.EncodeToString(v1text)},
		vector{Name: "version 1 delivered", Version: 1, Type: 2, Fields: fields{AtMS: vectorAt.UnixMilli(), IDs: []string{id}}, Payload: hex.EncodeToString(v1rcpt)},
		vector{Name: "version 1 read", Version: 1, Type: 3, Fields: fields{AtMS: vectorAt.UnixMilli(), IDs: []string{id}}, Payload: hex.EncodeToString(v1read)},
		vector{Name: "version 1 empty text (version 2 has none)", Version: 1, Type: 1, Fields: fields{AtMS: vectorAt.UnixMilli(), ID: id}, Payload: hex.EncodeToString(v1empty)},
	)

	text := mustHex(t, vf.Vectors[0].Payload)
	unpadded := mustHex(t, vf.Vectors[0].Unpadded)
	header := func(typ byte, body []byte) []byte {
		b := []byte{2, typ}
		b = binary.BigEndian.AppendUint64(b, uint64(vectorAt.UnixMilli()))
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		return append(b, body...)
	}
	vf.Ignored = []rejection{
		{Name: "unknown type 8, padded", Payload: hex.EncodeToString(append(header(8, []byte("a later type")), make([]byte, 100)...))},
		{Name: "unknown type 255, empty body, no padding", Payload: hex.EncodeToString(header(255, nil))},
	}
	// Texts the receiver accepts although no pfschat sender makes them.
	withTail := header(1, append(append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 2), "hi..."...))
	vf.Vectors = append(vf.Vectors,
		vector{Name: "text without padding", Version: 2, Type: 1, Fields: vf.Vectors[0].Fields, Payload: hex.EncodeToString(unpadded)},
		vector{Name: "text padded to the cap", Version: 2, Type: 1, Fields: vf.Vectors[0].Fields,
			Payload: hex.EncodeToString(unpadded), PadZeros: payload.MaxPayload - len(unpadded)},
		vector{Name: "text with 3 body bytes after its fields (a later revision's field)", Version: 2, Type: 1,
			Fields: fields{AtMS: vectorAt.UnixMilli(), ID: id, Seq: 1, Text: "hi"}, Payload: hex.EncodeToString(withTail)},
	)
	// Other payloads the receiver accepts, unpadded: each as valid as the rules make it,
	// though pfschat never sends it.
	for _, v := range []struct {
		name string
		p    payload.Payload
	}{
		{"delivered naming one id twice", payload.Payload{Type: payload.Delivered, At: vectorAt, IDs: []string{id, "c-0002", id}}},
		{"retry request naming both a message id and a relay msg_id", payload.Payload{Type: payload.RetryRequest, At: vectorAt,
			Retry: payload.Retry{Reason: payload.RetryUnreadable, ID: id, RelayMsgID: 1234}}},
		{"identity-changed with the same old and new card ID", payload.Payload{Type: payload.IdentityChanged, At: vectorAt,
			Identity: payload.IdentityChange{OldCardID: det32("old card"), NewCardID: det32("old card")}}},
		{"attachment of 2^62 + 1 bytes (no rule of §7 judges the size)", payload.Payload{Type: payload.Attachment, At: vectorAt, ID: id, Seq: 8,
			Attachment: payload.AttachmentRef{BlobID: "b", Capability: det32("blob capability"), Key: det32("blob key"), Digest: det32("blob digest"), Size: 1<<62 + 1}}},
	} {
		un, err := payload.AppendUnpadded(nil, &v.p)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		vf.Vectors = append(vf.Vectors, vector{Name: v.name, Version: 2, Type: int(v.p.Type), Fields: toFields(&v.p), Payload: hex.EncodeToString(un)})
	}

	flip := func(b []byte, i int, x byte) []byte { c := append([]byte(nil), b...); c[i] ^= x; return c }
	bodyLen := func(b []byte, n uint32) []byte {
		c := append([]byte(nil), b...)
		binary.BigEndian.PutUint32(c[10:], n)
		return c
	}
	rej := func(name string, b []byte, err string) {
		vf.Rejections = append(vf.Rejections, rejection{Name: name, Payload: hex.EncodeToString(b), Error: err})
	}
	vf.Rejections = append(vf.Rejections, rejection{Name: "over the cap by one zero byte", Payload: hex.EncodeToString(unpadded),
		PadZeros: payload.MaxPayload - len(unpadded) + 1, Error: "ErrOversize"})
	rej("empty", nil, "ErrMalformed")
	rej("unknown version 3", flip(text, 0, 1), "ErrUnknownVersion")
	rej("unknown version 0", flip(text, 0, 2), "ErrUnknownVersion")
	rej("non-zero padding byte", flip(text, len(text)-1, 1), "ErrPadding")
	rej("body length past the end", bodyLen(text, uint32(len(text))), "ErrMalformed")
	rej("body length one short (last text byte read as padding)", bodyLen(unpadded, uint32(len(unpadded)-14-1)), "ErrPadding")
	rej("truncated header", text[:9], "ErrMalformed")
	rej("text: sequence number 0", header(1, append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 0), 0, 0, 0, 1, 'x')), "ErrMalformed")
	rej("text: empty id", header(1, append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1}, 0, 0, 0, 1, 'x')), "ErrMalformed")
	rej("text: id with a space", header(1, append(append(str8("a b"), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 1, 'x')), "ErrMalformed")
	rej("text: id of 65 bytes", header(1, append(append(str8(strings.Repeat("i", 65)), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 1, 'x')), "ErrMalformed")
	rej("text: empty text", header(1, append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 0)), "ErrMalformed")
	rej("text: invalid UTF-8", header(1, append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 2, 0xc3, 0x28)), "ErrMalformed")
	rej("text: a surrogate encoded in UTF-8", header(1, append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 3, 0xed, 0xa0, 0x80)), "ErrMalformed")
	over := binary.BigEndian.AppendUint32(nil, uint32(payload.MaxText+1))
	rej("text: length over max_text", header(1, append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 1), over...)), "ErrOversize")
	rej("text: truncated text", header(1, append(append(str8(id), 0, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0, 9, 'x')), "ErrMalformed")
	rej("delivered: no ids", header(2, []byte{0, 0}), "ErrOversize")
	rej("delivered: 1001 ids", header(2, []byte{0x03, 0xe9}), "ErrOversize")
	rej("read: second id truncated", header(3, append(append([]byte{0, 2}, str8(id)...), 5, 'a')), "ErrMalformed")
	rej("retry: reason 3", header(4, append(append([]byte{3}, str8(id)...), 0, 0, 0, 0, 0, 0, 0, 0)), "ErrMalformed")
	rej("retry: id with a space", header(4, append(append([]byte{1}, str8("a b")...), 0, 0, 0, 0, 0, 0, 0, 1)), "ErrMalformed")
	rej("retry: id of 65 bytes", header(4, append(append([]byte{1}, str8(strings.Repeat("i", 65))...), 0, 0, 0, 0, 0, 0, 0, 1)), "ErrMalformed")
	rej("retry: names no message", header(4, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}), "ErrMalformed")
	rej("identity-changed: signature of 63 bytes", header(5, append(append(det("old card", 32), det("new card", 32)...), append([]byte{63}, det("signature", 63)...)...)), "ErrMalformed")
	rej("identity-changed: signature of 65 bytes (ErrMalformed, not ErrOversize)", header(5, append(append(det("old card", 32), det("new card", 32)...), append([]byte{65}, det("signature", 65)...)...)), "ErrMalformed")
	att := vf.Vectors[11]
	attB := mustHex(t, att.Unpadded)
	name := bytes.Index(attB, []byte("plan v2.pdf"))
	rej("attachment: file name with '/'", flip(attB, name+4, ' '^'/'), "ErrMalformed")
	rej("attachment: file name with a control character", flip(attB, name+4, ' '^'\n'), "ErrMalformed")
	// The rules of §7 and §8 that the rejections above leave out.
	seq1 := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	attach := func(blobID string, tail []byte) []byte {
		b := append(append(str8(id), seq1...), str8(blobID)...)
		b = append(b, det("capability", 96)...) // capability, key, digest
		return header(6, append(append(b, 0, 0, 0, 0, 0, 0, 0, 9), tail...))
	}
	// tail: file name (u16), media type (str8), caption (str32), thumbnail (u32 length)
	attachTail := func(name, media, caption string, thumb uint32) []byte {
		b := append(binary.BigEndian.AppendUint16(nil, uint16(len(name))), name...)
		b = append(append(b, str8(media)...), binary.BigEndian.AppendUint32(nil, uint32(len(caption)))...)
		return binary.BigEndian.AppendUint32(append(b, caption...), thumb)
	}
	rej("withdrawn: sequence number 0", header(7, append(str8(id), 0, 0, 0, 0, 0, 0, 0, 0)), "ErrMalformed")
	rej("withdrawn: truncated seq", header(7, append(str8(id), 0, 0, 0, 1)), "ErrMalformed")
	rej("retry: truncated relay msg id", header(4, append(append([]byte{1}, str8(id)...), 0, 0, 0, 1)), "ErrMalformed")
	rej("identity-changed: truncated new card ID", header(5, det("old card", 40)), "ErrMalformed")
	rej("attachment: empty blob id", attach("", attachTail("a", "", "", 0)), "ErrMalformed")
	rej("attachment: blob id with a space (ids are 0x21–0x7E)", attach("b 1", attachTail("a", "", "", 0)), "ErrMalformed")
	rej("attachment: file name \"..\"", attach("b", attachTail("..", "", "", 0)), "ErrMalformed")
	rej("attachment: file name with '\\'", attach("b", attachTail("a\\b", "", "", 0)), "ErrMalformed")
	rej("attachment: file name with U+0085 (a C1 control)", attach("b", attachTail("a\u0085", "", "", 0)), "ErrMalformed")
	rej("attachment: file name of 256 bytes (the limit before the bytes)", attach("b", binary.BigEndian.AppendUint16(nil, 256)), "ErrOversize")
	rej("attachment: media type of 128 bytes", attach("b", append(binary.BigEndian.AppendUint16(nil, 0), 128)), "ErrOversize")
	rej("attachment: media type with a tab", attach("b", attachTail("", "text/plain;\tx", "", 0)), "ErrMalformed")
	rej("attachment: caption not UTF-8", attach("b", attachTail("", "", "\xff", 0)), "ErrMalformed")
	rej("attachment: caption over max_text", attach("b", append(append(binary.BigEndian.AppendUint16(nil, 0), 0), binary.BigEndian.AppendUint32(nil, uint32(payload.MaxText+1))...)), "ErrOversize")
	rej("attachment: thumbnail over 16384 bytes", attach("b", attachTail("", "", "", payload.MaxThumbnail+1)), "ErrOversize")
	rej("attachment: thumbnail past the end", attach("b", attachTail("", "", "", 5)), "ErrMalformed")
	rej("attachment: seq 0 before an oversize file name (fields in order)", header(6, append(str8(id), 0, 0, 0, 0, 0, 0, 0, 0)), "ErrMalformed")
	rej("non-zero padding before a malformed body (padding first)", append(header(1, []byte{0}), 1), "ErrPadding")
	rej("over the cap with an unknown version (the size is checked first)", append([]byte{9}, make([]byte, payload.MaxPayload)...), "ErrOversize")
	v1 := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	rej("version 1: type 4", v1(v1rcpt, func(b []byte) []byte { b[1] = 4; return b }), "ErrMalformed")
	rej("version 1: padding shorter than its length", v1(v1text, func(b []byte) []byte { return b[:len(b)-1] }), "ErrMalformed")
	rej("version 1: one padding byte more than the rule (length and bytes agree)", v1(v1text, func(b []byte) []byte {
		at := len(str8(id)) + 4 + 5 + 10 // header, id, text length, text
		binary.BigEndian.PutUint16(b[at:], binary.BigEndian.Uint16(b[at:])+1)
		return append(b, 0)
	}), "ErrMalformed")
	rej("version 1: a trailing byte", append(append([]byte(nil), v1text...), 0), "ErrMalformed")
	rej("version 1: non-zero padding", v1(v1text, func(b []byte) []byte { b[len(b)-1] = 1; return b }), "ErrPadding")
	rej("version 1: text over 40960 bytes", v1Payload(1, vectorAt, append(str8(id), 0, 0, 0xa0, 1)), "ErrOversize")
	rej("version 1: text not UTF-8", v1Payload(1, vectorAt, append(str8(id), 0, 0, 0, 2, 0xc3, 0x28)), "ErrMalformed")
	rej("version 1: id with a space", v1Payload(1, vectorAt, append(str8("a b"), 0, 0, 0, 1, 'x')), "ErrMalformed")
	rej("version 1: no receipt ids", v1Payload(2, vectorAt, []byte{0, 0}), "ErrOversize")
	return vf
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errorsByName = map[string]error{
	"ErrMalformed": payload.ErrMalformed, "ErrOversize": payload.ErrOversize,
	"ErrUnknownVersion": payload.ErrUnknownVersion, "ErrPadding": payload.ErrPadding,
	"ErrUnknownType": payload.ErrUnknownType,
}

func TestVectors(t *testing.T) {
	vf := buildVectors(t)
	got, err := json.MarshalIndent(vf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *updateVectors {
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./chat/payload -run TestVectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the code produces; if the payload changed on purpose, update PAYLOAD.md and run\n\tgo test ./chat/payload -run TestVectors -update", vectorsPath)
	}
	for _, v := range vf.Vectors {
		p, err := payload.Decode(v.bytes(t))
		if err != nil {
			t.Errorf("%s: %v", v.Name, err)
			continue
		}
		want := v.Fields
		want.SignerKey = "" // not in the payload: the receiver knows the old card
		if int(p.Version) != v.Version || int(p.Type) != v.Type || !reflect.DeepEqual(toFields(p), want) {
			t.Errorf("%s: decoded %+v, want %+v", v.Name, toFields(p), want)
		}
		if v.Fields.SignerKey != "" {
			// The signature is real: ratchet's §4 check accepts it under the old key.
			msg := append(p.Identity.OldCardID[:], p.Identity.NewCardID[:]...)
			if err := ratchet.VerifySignature(mustHex(t, v.Fields.SignerKey), identityChangeDomain, msg, p.Identity.Signature); err != nil {
				t.Errorf("%s: the signature does not verify under signer_key: %v", v.Name, err)
			}
		}
	}
	for _, r := range vf.Ignored {
		if _, err := payload.Decode(r.bytes(t)); !errors.Is(err, payload.ErrUnknownType) {
			t.Errorf("%s: %v, want ErrUnknownType", r.Name, err)
		}
	}
	for _, r := range vf.Rejections {
		p, err := payload.Decode(r.bytes(t))
		if !errors.Is(err, errorsByName[r.Error]) || p != nil {
			t.Errorf("%s: got %v (payload %v), want %s", r.Name, err, p, r.Error)
		}
	}
}
