package relay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
)

// Fast paths for the frames that carry messages. Each recognises only the exact
// canonical layout that this package's encoders write (fields in order, no white
// space, strings of plain printable ASCII, standard base64) and gives up on anything
// else, in which case the caller uses the full decoder. Whatever a fast path accepts,
// the full decoder accepts with the same result (FuzzFastDecoders checks this), so the
// fast paths change speed, never behaviour.

type scanner struct {
	b []byte
	i int
}

func (s *scanner) lit(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// uint reads a JSON unsigned integer without leading zeros, exponent or fraction.
func (s *scanner) uint() (uint64, bool) {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	digits := s.b[start:s.i]
	if len(digits) == 0 || len(digits) > 18 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	var n uint64
	for _, d := range digits {
		n = n*10 + uint64(d-'0')
	}
	return n, true
}

// str reads a JSON string of printable ASCII without escapes.
func (s *scanner) str() (string, bool) {
	b, ok := s.strBytes()
	if !ok {
		return "", false
	}
	return string(b), true
}

// strBytes is str without the copy: the bytes are a view into the frame.
func (s *scanner) strBytes() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			s.i = j + 1
			return s.b[start:j], true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, false
		}
	}
	return nil, false
}

// b64 reads a JSON string of standard base64 and decodes it as encoding/json does,
// into a new slice of exactly the decoded length.
func (s *scanner) b64() ([]byte, bool) {
	return s.b64Append(nil)
}

// b64Append is b64 appending to dst (which it may reuse). The result is never nil, as
// encoding/json's is not for "".
func (s *scanner) b64Append(dst []byte) ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	end := bytes.IndexByte(s.b[start:], '"')
	if end < 0 {
		return nil, false
	}
	enc := s.b[start : start+end]
	// The decoder refuses every byte outside the alphabet but skips CR and LF, which a
	// JSON string cannot hold raw: refuse those here (IndexByte is vectorised; a loop
	// over a 43 KB blob chunk was most of its decoding).
	if bytes.IndexByte(enc, '\n') >= 0 || bytes.IndexByte(enc, '\r') >= 0 {
		return nil, false
	}
	out, err := base64.StdEncoding.AppendDecode(dst, enc)
	if err != nil {
		return nil, false
	}
	if out == nil {
		out = []byte{}
	}
	s.i = start + end + 1
	return out, true
}

func (s *scanner) end() bool { return s.i == len(s.b) }

// fastDecodeSend recognises {"type":"send","id":N,"to":S,"body":B,"client_id":S[,"ttl":N]}.
func fastDecodeSend(b []byte) (Frame, bool) {
	s := scanner{b: b}
	var f Frame
	var ok bool
	if !s.lit(SendPrefix) {
		return f, false
	}
	if f.ID, ok = s.uint(); !ok || !s.lit(`,"to":`) {
		return f, false
	}
	if f.To, ok = s.str(); !ok || !s.lit(`,"body":`) {
		return f, false
	}
	if f.Body, ok = s.b64(); !ok || !s.lit(`,"client_id":`) {
		return f, false
	}
	if f.ClientID, ok = s.str(); !ok {
		return f, false
	}
	if s.lit(`,"ttl":`) {
		ttl, ok := s.uint()
		if !ok {
			return f, false
		}
		f.TTL = int64(ttl)
	}
	if !s.lit("}") || !s.end() {
		return f, false
	}
	f.Type = TypeSend
	return f, true
}

// Prefixes of the canonical layouts of the frames a relay reads most: a frame without
// one never takes a fast path.
const (
	SendPrefix = `{"type":"send","id":`
	AckPrefix  = `{"type":"ack",` // then "id":N, unless the ack is quiet
)

// SendFrame is a send frame as DecodeSendInto reads it: To and ClientID are views into
// the frame, Body is in the buffer the caller handed over.
type SendFrame struct {
	ID           uint64
	To, ClientID []byte
	Body         []byte
	TTL          int64
}

// DecodeSendInto is the relay's fast path for send frames: fastDecodeSend's layout,
// with the body decoded into body (appended from its start, which the caller may
// reuse) and the checks DecodeFrame would make. It accepts only what DecodeFrame
// accepts, with the same values (FuzzFastDecoders checks this); anything else, valid
// or not, is left to DecodeFrame.
func DecodeSendInto(b, body []byte) (f SendFrame, ok bool) {
	s := scanner{b: b}
	if len(b) > MaxFrameSize || !s.lit(SendPrefix) {
		return SendFrame{}, false
	}
	if f.ID, ok = s.uint(); !ok || f.ID == 0 || !s.lit(`,"to":`) {
		return SendFrame{}, false
	}
	if f.To, ok = s.strBytes(); !ok || len(f.To) == 0 || len(f.To) > maxNameLen || !s.lit(`,"body":`) {
		return SendFrame{}, false
	}
	if f.Body, ok = s.b64Append(body[:0]); !ok || len(f.Body) == 0 || len(f.Body) > MaxBodySize || !s.lit(`,"client_id":`) {
		return SendFrame{}, false
	}
	if f.ClientID, ok = s.strBytes(); !ok || len(f.ClientID) == 0 || len(f.ClientID) > maxClientIDLen {
		return SendFrame{}, false
	}
	if s.lit(`,"ttl":`) {
		n, ok := s.uint()
		if !ok {
			return SendFrame{}, false
		}
		f.TTL = int64(n)
	}
	if !s.lit("}") || !s.end() {
		return SendFrame{}, false
	}
	return f, true
}

// AppendSend writes a send frame in the layout fastDecodeSend recognises, falling
// back to encoding/json when a string needs escaping.
func AppendSend(b []byte, f *Frame) []byte {
	if !plainASCII(f.To) || !plainASCII(f.ClientID) {
		return append(b, encodeFrameCopy(*f)...)
	}
	b = append(b, `{"type":"send","id":`...)
	b = strconv.AppendUint(b, f.ID, 10)
	b = append(b, `,"to":"`...)
	b = append(b, f.To...)
	b = append(b, `","body":"`...)
	b = base64.StdEncoding.AppendEncode(b, f.Body)
	b = append(b, `","client_id":"`...)
	b = append(b, f.ClientID...)
	b = append(b, '"')
	if f.TTL > 0 {
		b = append(b, `,"ttl":`...)
		b = strconv.AppendInt(b, f.TTL, 10)
	}
	return append(b, '}')
}

// plainASCII: printable ASCII that encoding/json writes without escapes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// encodeFrameCopy encodes a copy of a frame, so the caller's frame does not escape.
//
//go:noinline
func encodeFrameCopy(f Frame) []byte { return EncodeFrame(&f) }

// DeliverFrame is a deliver push as DecodeDeliverInto reads it: From and FromCardID
// are views into the frame, Body is in the buffer the caller handed over.
type DeliverFrame struct {
	MsgID            int64
	From, FromCardID []byte
	ReceivedAtMS     int64
	Body             []byte
}

// DecodeDeliverInto recognises what AppendDeliver writes, decoding the body into body
// (appended from its start). It copies nothing else, so a load generator can read
// deliveries without allocating.
func DecodeDeliverInto(b, body []byte) (f DeliverFrame, ok bool) {
	s := scanner{b: b}
	var n uint64
	if !s.lit(`{"type":"deliver","msg_id":`) {
		return DeliverFrame{}, false
	}
	if n, ok = s.uint(); !ok || !s.lit(`,"from":`) {
		return DeliverFrame{}, false
	}
	f.MsgID = int64(n)
	if f.From, ok = s.strBytes(); !ok || !s.lit(`,"from_card_id":`) {
		return DeliverFrame{}, false
	}
	if f.FromCardID, ok = s.strBytes(); !ok || !s.lit(`,"received_at":`) {
		return DeliverFrame{}, false
	}
	if n, ok = s.uint(); !ok || !s.lit(`,"body":`) {
		return DeliverFrame{}, false
	}
	f.ReceivedAtMS = int64(n)
	if f.Body, ok = s.b64Append(body[:0]); !ok || !s.lit("}") || !s.end() {
		return DeliverFrame{}, false
	}
	return f, true
}

// fastDecodeDeliver recognises what AppendDeliver writes.
func fastDecodeDeliver(b []byte) (Frame, bool) {
	d, ok := DecodeDeliverInto(b, nil)
	if !ok {
		return Frame{}, false
	}
	return Frame{Type: TypeDeliver, MsgID: d.MsgID, From: string(d.From), FromCardID: string(d.FromCardID),
		ReceivedAt: d.ReceivedAtMS, Body: d.Body}, true
}

// fastDecodeAccepted recognises what AppendAccepted writes.
func fastDecodeAccepted(b []byte) (Frame, bool) {
	s := scanner{b: b}
	var f Frame
	var ok bool
	var n uint64
	if !s.lit(`{"type":"accepted","id":`) {
		return f, false
	}
	if f.ID, ok = s.uint(); !ok || !s.lit(`,"msg_id":`) {
		return f, false
	}
	if n, ok = s.uint(); !ok {
		return f, false
	}
	f.MsgID = int64(n)
	f.Duplicate = s.lit(`,"duplicate":true`)
	if !s.lit("}") || !s.end() {
		return f, false
	}
	f.Type = TypeAccepted
	return f, true
}

// PeekID finds the request id an error about frame b carries (PROTOCOL.md, Errors)
// without decoding it, so that a frame refused before or while decoding (a rate, a
// field) can still be answered by id: the value of the object's last top-level key
// that is "id" in any ASCII case and with any escapes (encoding/json sets Frame.ID
// from each of them in turn), with white space wherever JSON allows it. It returns 0
// when b is not a JSON object through its closing brace, has no such key, or the last
// one's value is not an integer in 0…2⁶⁴−1 (null included, which encoding/json would
// skip, keeping an earlier id). Beyond what it needs to find the keys it does not
// check the JSON. It reads each byte at most once and allocates only for a key with
// escapes.
func PeekID(b []byte) uint64 {
	i := skipJSONSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return 0
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return 0
	}
	var id uint64
	for {
		i = skipJSONSpace(b, i)
		start := i
		if i = skipJSONString(b, i); i < 0 {
			return 0
		}
		key := b[start:i]
		if i = skipJSONSpace(b, i); i == len(b) || b[i] != ':' {
			return 0
		}
		i = skipJSONSpace(b, i+1)
		valueStart := i
		if i = skipJSONValue(b, i); i < 0 {
			return 0
		}
		if isIDKey(key) {
			id = parseID(b[valueStart:i])
		}
		if i = skipJSONSpace(b, i); i == len(b) {
			return 0
		}
		switch b[i] {
		case '}':
			return id
		case ',':
			i++
		default:
			return 0
		}
	}
}

// parseID reads a JSON value as a request id: an integer in 0…2⁶⁴−1 without a
// fraction, exponent or leading zero; anything else is 0.
func parseID(v []byte) uint64 {
	if len(v) == 0 || (len(v) > 1 && v[0] == '0') {
		return 0
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// isIDKey reports whether key, a JSON string with its quotes, is "id" in any ASCII
// case, escaped or not.
func isIDKey(key []byte) bool {
	if len(key) == 4 {
		return key[0] == '"' && key[1]|0x20 == 'i' && key[2]|0x20 == 'd' && key[3] == '"'
	}
	if bytes.IndexByte(key, '\\') < 0 {
		return false
	}
	var k string
	return json.Unmarshal(key, &k) == nil && strings.EqualFold(k, "id")
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONString returns the index after the string at b[i], or -1.
func skipJSONString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipJSONValue returns the index after the value at b[i], or -1. It checks only
// what it needs to find the value's end: strings, and brackets that nest (by depth:
// a frame whose brackets do not pair is refused by its decoder anyway).
func skipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipJSONString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = skipJSONString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i // a number or a literal
	for i < len(b) && !endsJSONScalar(b[i]) {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

func endsJSONScalar(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// fastDecodeAck recognises {"type":"ack","id":N,"ids":[N,N,...]} and the quiet ack
// {"type":"ack","ids":[N,N,...]} (what AppendAck and encoding/json write for an ack).
func fastDecodeAck(b []byte) (Frame, bool) {
	s := scanner{b: b}
	var f Frame
	var ok bool
	if !s.lit(AckPrefix) {
		return f, false
	}
	if s.lit(`"id":`) {
		// "id":0 (a quiet ack, but not in the compact layout) is the general decoder's.
		if f.ID, ok = s.uint(); !ok || f.ID == 0 || !s.lit(",") {
			return f, false
		}
	}
	if !s.lit(`"ids":[`) {
		return f, false
	}
	f.IDs = make([]int64, 0, bytes.Count(b[s.i:], []byte{','})+1)
	if !s.lit("]") {
		for {
			n, ok := s.uint()
			if !ok {
				return Frame{}, false
			}
			f.IDs = append(f.IDs, int64(n))
			if s.lit("]") {
				break
			}
			if !s.lit(",") {
				return Frame{}, false
			}
		}
	}
	if !s.lit("}") || !s.end() {
		return Frame{}, false
	}
	f.Type = TypeAck
	return f, true
}

// DecodeAckInto is the relay's fast path for ack frames: fastDecodeAck's layout, with
// the ids appended to ids[:0] and the checks DecodeFrame would make. id is 0 for a
// quiet ack (no "id": PROTOCOL.md "ack"). It accepts only what DecodeFrame accepts,
// with the same values; anything else is left to DecodeFrame. It returns the ids
// buffer, grown or not, even when it refuses.
func DecodeAckInto(b []byte, ids []int64) (id uint64, _ []int64, ok bool) {
	ids = ids[:0]
	s := scanner{b: b}
	if len(b) > MaxFrameSize || !s.lit(AckPrefix) {
		return 0, ids, false
	}
	if s.lit(`"id":`) {
		// "id":0 is a quiet ack too, but not in the compact layout: DecodeFrame reads it.
		if id, ok = s.uint(); !ok || id == 0 || !s.lit(",") {
			return 0, ids, false
		}
	}
	if !s.lit(`"ids":[`) {
		return 0, ids, false
	}
	if !s.lit("]") {
		for {
			n, ok := s.uint()
			if !ok || n == 0 || len(ids) == MaxAckIDs {
				return 0, ids, false
			}
			ids = append(ids, int64(n))
			if s.lit("]") {
				break
			}
			if !s.lit(",") {
				return 0, ids, false
			}
		}
	}
	if !s.lit("}") || !s.end() {
		return 0, ids, false
	}
	return id, ids, true
}

// AppendAck writes an ack frame in the layout fastDecodeAck recognises; with id 0, a
// quiet ack, which the relay does not answer (PROTOCOL.md "ack").
func AppendAck(b []byte, id uint64, ids []int64) []byte {
	b = append(b, AckPrefix...)
	if id != 0 {
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, ',')
	}
	b = append(b, `"ids":[`...)
	for i, x := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return append(b, "]}"...)
}

// fastDecodeOK recognises {"type":"ok","id":N}, the answer to an ack.
func fastDecodeOK(b []byte) (Frame, bool) {
	s := scanner{b: b}
	var f Frame
	var ok bool
	if !s.lit(`{"type":"ok","id":`) {
		return f, false
	}
	if f.ID, ok = s.uint(); !ok || !s.lit("}") || !s.end() {
		return Frame{}, false
	}
	f.Type = TypeOK
	return f, true
}

// AppendOK writes {"type":"ok","id":N}, the answer to an ack.
func AppendOK(b []byte, id uint64) []byte {
	b = append(b, `{"type":"ok","id":`...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, '}')
}
