package payload_test

// TestVectorsFollowSpec is a second, deliberately separate reading of chat/PAYLOAD.md:
// it uses only the standard library (not package payload), takes the limits from the
// document's §3 table, and decodes every vector in testdata/payload_vectors.json, checks
// its fields, rebuilds the bytes a sender produces (with §6's buckets) and refuses every
// rejection with the §7 error. If PAYLOAD.md and the code drift apart, this test says where.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var specLimitRow = regexp.MustCompile("^\\| `(\\w+)` \\| (\\d+) \\|")

func specLimits(t *testing.T) map[string]int {
	t.Helper()
	doc, err := os.ReadFile("../PAYLOAD.md")
	if err != nil {
		t.Fatal(err)
	}
	lim := map[string]int{}
	for _, line := range strings.Split(string(doc), "\n") {
		if m := specLimitRow.FindStringSubmatch(line); m != nil {
			lim[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	for _, k := range []string{"MaxPayload", "MinBucket", "MaxText", "MaxID", "MaxIDs", "MaxFileName", "MaxMediaType", "MaxThumbnail"} {
		if lim[k] == 0 {
			t.Fatalf("PAYLOAD.md §3 has no %s", k)
		}
	}
	return lim
}

// specIdentityChangeDomain is the signature domain §4.4 names.
func specIdentityChangeDomain(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../PAYLOAD.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("domain `(pfschat/[a-z0-9/-]*identity-changed)`").FindSubmatch(doc)
	if m == nil {
		t.Fatal("PAYLOAD.md §4.4 names no identity-changed signature domain")
	}
	return string(m[1])
}

// specErr is a rejection with the §7 name of its error.
type specErr string

func (e specErr) Error() string { return string(e) }

type specReader struct {
	b   []byte
	err error
}

func (r *specReader) fail(name, format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{specErr(name)}, a...)...)
	}
}

func (r *specReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("ErrMalformed", "need %d bytes, have %d", n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *specReader) uint(n int) uint64 {
	var v uint64
	for _, c := range r.take(n) {
		v = v<<8 | uint64(c)
	}
	return v
}

// str reads an lw-byte length, checks it against limit (ErrOversize, or ErrMalformed
// for ids, §7), then the bytes.
func (r *specReader) str(lw, limit int, oversize string) string {
	n := int(r.uint(lw))
	if r.err == nil && n > limit {
		r.fail(oversize, "length %d over %d", n, limit)
	}
	return string(r.take(n))
}

func (r *specReader) utf8(s, what string) {
	if r.err == nil && !utf8.ValidString(s) {
		r.fail("ErrMalformed", "%s not UTF-8", what)
	}
}

func (r *specReader) id(lim map[string]int, mayBeEmpty bool) string {
	s := r.str(1, lim["MaxID"], "ErrMalformed")
	if r.err == nil && s == "" && !mayBeEmpty {
		r.fail("ErrMalformed", "empty id")
	}
	for i := 0; r.err == nil && i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			r.fail("ErrMalformed", "id byte %#x", s[i])
		}
	}
	return s
}

func (r *specReader) seq() uint64 {
	s := r.uint(8)
	if r.err == nil && s == 0 {
		r.fail("ErrMalformed", "seq 0")
	}
	return s
}

func (r *specReader) ids(lim map[string]int) []string {
	n := int(r.uint(2))
	if r.err == nil && (n == 0 || n > lim["MaxIDs"]) {
		r.fail("ErrOversize", "%d ids", n)
	}
	var out []string
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.id(lim, false))
	}
	return out
}

// specDecode returns the version, type and fields of a payload, or its §7 error name.
// ignored reports a valid payload of an unknown type.
func specDecode(lim map[string]int, b []byte) (version, typ int, f fields, ignored bool, err error) {
	if len(b) > lim["MaxPayload"] {
		return 0, 0, f, false, specErr("ErrOversize")
	}
	r := &specReader{b: b}
	version = int(r.uint(1))
	if r.err == nil && version != 1 && version != 2 {
		return 0, 0, f, false, specErr("ErrUnknownVersion")
	}
	typ = int(r.uint(1))
	f.AtMS = int64(r.uint(8))
	if version == 1 { // §8
		switch typ {
		case 1:
			f.ID = r.id(lim, false)
			f.Text = r.str(4, 40960, "ErrOversize")
			r.utf8(f.Text, "text")
		case 2, 3:
			f.IDs = r.ids(lim)
		default:
			r.fail("ErrMalformed", "v1 type %d", typ)
		}
		l := len(b) - len(r.b)
		pad := r.take(int(r.uint(2)))
		if r.err == nil && len(pad) != (64-(l+2)%64)%64 {
			r.fail("ErrMalformed", "v1 padding length")
		}
		if r.err == nil && bytes.Count(pad, []byte{0}) != len(pad) {
			r.fail("ErrPadding", "v1 padding")
		}
		if r.err == nil && len(r.b) > 0 {
			r.fail("ErrMalformed", "trailing bytes")
		}
		return version, typ, f, false, r.err
	}
	n := int(r.uint(4))
	body := r.take(n)
	if r.err != nil {
		return 0, 0, f, false, r.err
	}
	if bytes.Count(r.b, []byte{0}) != len(r.b) {
		return 0, 0, f, false, specErr("ErrPadding")
	}
	r = &specReader{b: body} // §5: bytes after the known fields are ignored
	switch typ {
	case 1:
		f.ID, f.Seq = r.id(lim, false), r.seq()
		f.Text = r.str(4, lim["MaxText"], "ErrOversize")
		if r.err == nil && f.Text == "" {
			r.fail("ErrMalformed", "empty text")
		}
		r.utf8(f.Text, "text")
		if r.err == nil && len(r.b) >= 8 { // §4.1: resend of
			f.ResendOf = r.uint(8)
		}
	case 2, 3:
		f.IDs = r.ids(lim)
	case 4:
		f.Reason = int(r.uint(1))
		f.ID = r.id(lim, true)
		f.RelayMsgID = r.uint(8)
		if r.err == nil && (f.Reason < 1 || f.Reason > 2 || f.ID == "" && f.RelayMsgID == 0) {
			r.fail("ErrMalformed", "retry")
		}
	case 5:
		f.OldCardID, f.NewCardID = hex.EncodeToString(r.take(32)), hex.EncodeToString(r.take(32))
		f.Signature = hex.EncodeToString(r.take(int(r.uint(1))))
		if r.err == nil && len(f.Signature) != 0 && len(f.Signature) != 128 {
			r.fail("ErrMalformed", "signature length")
		}
	case 6:
		f.ID, f.Seq = r.id(lim, false), r.seq()
		f.BlobID = r.id(lim, false)
		f.Capability = hex.EncodeToString(r.take(32))
		f.Key, f.Digest = hex.EncodeToString(r.take(32)), hex.EncodeToString(r.take(32))
		f.Size = r.uint(8)
		f.FileName = r.str(2, lim["MaxFileName"], "ErrOversize")
		r.utf8(f.FileName, "file name")
		if r.err == nil && (strings.ContainsAny(f.FileName, "/\\") || f.FileName == "." || f.FileName == ".." ||
			strings.ContainsFunc(f.FileName, func(c rune) bool { return c < 0x20 || c >= 0x7f && c < 0xa0 })) {
			r.fail("ErrMalformed", "file name")
		}
		f.MediaType = r.str(1, lim["MaxMediaType"], "ErrOversize")
		if r.err == nil && strings.ContainsFunc(f.MediaType, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
			r.fail("ErrMalformed", "media type")
		}
		f.Caption = r.str(4, lim["MaxText"], "ErrOversize")
		r.utf8(f.Caption, "caption")
		f.Thumbnail = hex.EncodeToString([]byte(r.str(4, lim["MaxThumbnail"], "ErrOversize")))
	case 7:
		f.ID, f.Seq = r.id(lim, false), r.seq()
	default:
		return version, typ, f, true, nil
	}
	return version, typ, f, false, r.err
}

func TestVectorsFollowSpec(t *testing.T) {
	lim := specLimits(t)
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	if vf.MaxPayload != lim["MaxPayload"] || vf.MinBucket != lim["MinBucket"] || vf.MaxText != lim["MaxText"] {
		t.Fatalf("vector file limits %d/%d/%d, PAYLOAD.md §3 says %d/%d/%d", vf.MaxPayload, vf.MinBucket, vf.MaxText,
			lim["MaxPayload"], lim["MinBucket"], lim["MaxText"])
	}
	if lim["MaxText"] != lim["MaxPayload"]-(14+1+lim["MaxID"]+8+4) {
		t.Errorf("§4.1: MaxText is not MaxPayload − 91")
	}
	if lim["MaxPayload"]+1262 > 48000 {
		t.Errorf("§6: an initial message of MaxPayload does not fit max_body_bytes")
	}
	types := map[int]bool{}
	for _, v := range vf.Vectors {
		b := v.bytes(t)
		ver, typ, f, ignored, err := specDecode(lim, b)
		if err != nil || ignored || ver != v.Version || typ != v.Type {
			t.Errorf("%s: version %d type %d ignored %v: %v", v.Name, ver, typ, ignored, err)
			continue
		}
		types[typ] = true
		want := v.Fields
		want.SignerKey = "" // beside the payload, not in it
		if !reflect.DeepEqual(f, want) {
			t.Errorf("%s: spec decoding gives\n %+v\nwant %+v", v.Name, f, want)
		}
		if v.Fields.SignerKey != "" {
			// §4.4: Ed25519 over domain ‖ 0x00 ‖ old raw card ID ‖ new raw card ID.
			msg := append([]byte(specIdentityChangeDomain(t)+"\x00"), mustHex(t, f.OldCardID)...)
			msg = append(msg, mustHex(t, f.NewCardID)...)
			if !ed25519.Verify(mustHex(t, v.Fields.SignerKey), msg, mustHex(t, f.Signature)) {
				t.Errorf("%s: the signature does not verify under signer_key as §4.4 says", v.Name)
			}
		}
		if v.Unpadded == "" {
			continue
		}
		// A sender's bytes: the §2 layout of the fields, then §6 padding.
		un := specEncode(t, typ, f)
		if hex.EncodeToString(un) != v.Unpadded {
			t.Errorf("%s: spec encoding\n %x\nwant %s", v.Name, un, v.Unpadded)
		}
		bucket := lim["MinBucket"]
		for bucket < len(un) {
			bucket *= 2
		}
		if len(un) > 32768 {
			bucket = lim["MaxPayload"]
		}
		if len(b) != bucket || !bytes.Equal(b[:len(un)], un) {
			t.Errorf("%s: %d bytes, want the %d-byte bucket", v.Name, len(b), bucket)
		}
	}
	for typ := 1; typ <= 7; typ++ {
		if !types[typ] {
			t.Errorf("no vector of type %d", typ)
		}
	}
	for _, r := range vf.Ignored {
		if _, _, _, ignored, err := specDecode(lim, r.bytes(t)); !ignored || err != nil {
			t.Errorf("%s: not ignored: %v", r.Name, err)
		}
	}
	for _, r := range vf.Rejections {
		_, _, _, _, err := specDecode(lim, r.bytes(t))
		var name specErr
		if err == nil || !errorsAs(err, &name) || string(name) != r.Error {
			t.Errorf("%s: spec decoding says %v, want %s", r.Name, err, r.Error)
		}
	}
}

func errorsAs(err error, target *specErr) bool {
	for err != nil {
		if e, ok := err.(specErr); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// specEncode lays out a version-2 payload of fields f as §2 and §4 say, unpadded.
func specEncode(t *testing.T, typ int, f fields) []byte {
	t.Helper()
	s8 := func(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }
	s32 := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...) }
	var body []byte
	switch typ {
	case 1:
		body = s32(binary.BigEndian.AppendUint64(s8(nil, f.ID), f.Seq), f.Text)
		if f.ResendOf != 0 {
			body = binary.BigEndian.AppendUint64(body, f.ResendOf)
		}
	case 2, 3:
		body = binary.BigEndian.AppendUint16(nil, uint16(len(f.IDs)))
		for _, id := range f.IDs {
			body = s8(body, id)
		}
	case 4:
		body = binary.BigEndian.AppendUint64(s8([]byte{byte(f.Reason)}, f.ID), f.RelayMsgID)
	case 7:
		body = binary.BigEndian.AppendUint64(s8(nil, f.ID), f.Seq)
	case 5:
		sig := mustHex(t, f.Signature)
		body = append(append(append(mustHex(t, f.OldCardID), mustHex(t, f.NewCardID)...), byte(len(sig))), sig...)
	case 6:
		body = binary.BigEndian.AppendUint64(s8(nil, f.ID), f.Seq)
		body = s8(body, f.BlobID)
		body = append(body, mustHex(t, f.Capability)...)
		body = append(append(body, mustHex(t, f.Key)...), mustHex(t, f.Digest)...)
		body = binary.BigEndian.AppendUint64(body, f.Size)
		body = append(binary.BigEndian.AppendUint16(body, uint16(len(f.FileName))), f.FileName...)
		body = s8(body, f.MediaType)
		body = s32(body, f.Caption)
		body = s32(body, string(mustHex(t, f.Thumbnail)))
	}
	b := binary.BigEndian.AppendUint64([]byte{2, byte(typ)}, uint64(f.AtMS))
	return append(binary.BigEndian.AppendUint32(b, uint32(len(body))), body...)
}
