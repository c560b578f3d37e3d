package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// clientFrame is one masked client WebSocket frame with any payload length.
func clientFrame(opcode byte, fin bool, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	frame := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xffff:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	frame = append(frame, mask[:]...)
	for i, c := range payload {
		frame = append(frame, c^mask[i%4])
	}
	return frame
}

func (rc *raw) writeBytes(b []byte) {
	rc.t.Helper()
	if _, err := rc.ws.NetConn().Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// A message may come in up to 256 frames (PROTOCOL.md, frames_per_message), pings
// between them not counted; its 257th frame ends the connection with bad_frame. Before
// the limit, a message of endless empty continuation frames kept a core busy until the
// message deadline: gorilla reads them inside one Read, where the frame rate never saw
// them.
func TestFramesPerMessage(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[tls], func(t *testing.T) { testFramesPerMessage(t, tls) })
	}
}

func testFramesPerMessage(t *testing.T, tls bool) {
	r := relaytest.StartWith(t, relaytest.Options{TLS: tls})
	rc := dialRaw(t, r)
	if l := rc.hello.Limits; l == nil || l.FramesPerMessage != server.MaxMessageFrames {
		t.Fatalf("hello limits %+v: want frames_per_message %d", l, server.MaxMessageFrames)
	}
	var msg bytes.Buffer
	msg.Write(clientFrame(0x1, false, []byte(`{"type":"ping",`)))
	for i := range server.MaxMessageFrames - 2 {
		msg.Write(clientFrame(0x0, false, nil))
		if i%100 == 0 {
			msg.Write(clientFrame(0x9, true, []byte("between"))) // control frames do not count
		}
	}
	msg.Write(clientFrame(0x0, true, []byte(`"id":7}`)))
	rc.writeBytes(msg.Bytes())
	if f := rc.answer(7); f.Type != relay.TypePong {
		t.Fatalf("a ping in %d frames: %+v, want its pong", server.MaxMessageFrames, f)
	}

	msg.Reset()
	msg.Write(clientFrame(0x1, false, []byte(`{"type":"ping",`)))
	for range 10 * server.MaxMessageFrames {
		msg.Write(clientFrame(0x0, false, nil))
	}
	go rc.ws.NetConn().Write(msg.Bytes()) // the relay may close before it reads it all
	if f := rc.expectClosed(relay.CodeBadFrame); f.Limit != server.LimitFramesPerMessage {
		t.Fatalf("a message in endless frames: limit %q, want %q", f.Limit, server.LimitFramesPerMessage)
	}
	if n := limited(t, r, server.LimitFramesPerMessage); n != 1 {
		t.Fatalf("frames_per_message counted %d times, want 1", n)
	}
}

// Unasked-for pongs count in the frame rate as pings do: a flood of them is closed
// with rate_limited (each one moved the idle deadline, a timer update, for free).
func TestPongFloodIsClosed(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 10, FrameBurst: 10}})
	rc := dialRaw(t, r)
	var flood bytes.Buffer
	for range 200 {
		flood.Write(clientFrame(0xA, true, nil))
	}
	go rc.ws.NetConn().Write(flood.Bytes())
	rc.expectClosedAfterRateLimited()
	if n := limited(t, r, server.LimitFramesPerSecond); n <= 4*10 {
		t.Fatalf("frames_per_second counted %d times, want every pong over the rate (over 40)", n)
	}
}

// Text frames have a byte rate besides the frame rate (text_bytes_per_second): a
// frame over it is dropped with rate_limited, its id and a retry_after_ms, before its
// JSON is decoded (which costs about 20 µs a KiB: 200 padded 64 KiB frames a second
// kept a third of a core busy), and it takes none of the allowance.
func TestTextBytesPerSecond(t *testing.T) {
	clock := &frozenClock{t: time.Now()} // no refill: the burst is all there is
	r := relaytest.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{TextBytesPerSecond: 1000, TextBytesBurst: 1}})
	rc := dialRaw(t, r)
	if l := rc.hello.Limits; l == nil || l.TextBytesPerSecond != 1000 || l.TextByteBurst != 65536 {
		t.Fatalf("hello limits %+v: want text_bytes_per_second 1000, text_byte_burst 65536 (the frame limit)", l)
	}
	padded := func(id string) []byte { // 40,000 bytes of JSON; the burst is max_frame_bytes
		pad := strings.Repeat(" ", 40000-len(`{"type":"ping","id":}`)-len(id))
		return []byte(`{"type":"ping",` + pad + `"id":` + id + `}`)
	}
	rc.sendText(padded("1"))
	if f := rc.read(); f.Type != relay.TypePong || f.ID != 1 {
		t.Fatalf("a 40,000-byte frame within the burst: %+v", f)
	}
	rc.sendText(padded("2"))
	f := rc.read()
	if f.Type != relay.TypeError || f.Code != relay.CodeRateLimited || f.Limit != server.LimitTextBytesPerSecond || f.ID != 2 {
		t.Fatalf("a second 40,000-byte frame: %+v, want rate_limited, limit %s, id 2", f, server.LimitTextBytesPerSecond)
	}
	// 40,000 − 25,536 bytes short, at 1,000 a second.
	if f.RetryAfterMS < 14464 || f.RetryAfterMS > 14466 {
		t.Fatalf("retry_after_ms %d, want 14,465", f.RetryAfterMS)
	}
	rc.sendText([]byte(`{"type":"ping","id":3}`))
	if f := rc.read(); f.Type != relay.TypePong || f.ID != 3 {
		t.Fatalf("a small frame after the refused one: %+v, want a pong (the refused frame took nothing)", f)
	}
	if n := limited(t, r, server.LimitTextBytesPerSecond); n != 1 {
		t.Fatalf("text_bytes_per_second counted %d times, want 1", n)
	}
}

// A relay without a frame rate has no text byte rate either, and its hello does not
// announce one.
func TestNoTextByteRateWithoutFrameRate(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}})
	rc := dialRaw(t, r)
	if l := rc.hello.Limits; l == nil || l.TextBytesPerSecond != 0 || l.TextByteBurst != 0 {
		t.Fatalf("hello limits %+v: want no text byte rate", l)
	}
	pad := strings.Repeat(" ", 60000)
	for i := range 100 { // 6 MB, three times the default burst
		rc.sendText([]byte(`{"type":"ping",` + pad + `"id":` + strconv.Itoa(i+1) + `}`))
		if f := rc.read(); f.Type != relay.TypePong || f.ID != uint64(i+1) {
			t.Fatalf("padded ping %d on a relay without a frame rate: %+v, want its pong", i+1, f)
		}
	}
}

// Acks pay for their ids (ack_ids_per_second): one per message delivered on the
// connection, the rest from a rate. Every id costs the committer a deletion, whether
// or not it exists, and compact acks escape text_bytes_per_second: without this, acks
// of 1,024 made-up ids from a few connections kept a core busy. An ack over the rate
// is dropped whole and spends nothing.
func TestAckIDsPerSecond(t *testing.T) {
	clock := &frozenClock{t: time.Now()} // no refill: the burst is all there is
	r := relaytest.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{AckIDsPerSecond: 1000, AckIDBurst: 2048}})
	bobUser, bob := registerLoggedIn(t, r, "bob")
	if l := bob.hello.Limits; l == nil || l.AckIDsPerSecond != 1000 || l.AckIDBurst != 2048 {
		t.Fatalf("hello limits %+v: want ack_ids_per_second 1000, ack_id_burst 2048", l)
	}
	madeUp := func(from, n int) []int64 {
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = int64(1_000_000 + from + i)
		}
		return ids
	}
	ack := func(id int, ids []int64) relay.Frame {
		return bob.request(map[string]any{"type": "ack", "id": id, "ids": ids})
	}
	if f := ack(2, madeUp(0, 1024)); f.Type != relay.TypeOK {
		t.Fatalf("1,024 undelivered ids within the burst: %+v", f)
	}
	if f := ack(3, madeUp(1024, 1024)); f.Type != relay.TypeOK {
		t.Fatalf("1,024 more, the burst's end: %+v", f)
	}
	f := ack(4, madeUp(2048, 1024))
	if f.Type != relay.TypeError || f.Code != relay.CodeRateLimited || f.Limit != server.LimitAckIDsPerSecond || f.ID != 4 {
		t.Fatalf("1,024 ids past the burst: %+v, want rate_limited, limit %s, id 4", f, server.LimitAckIDsPerSecond)
	}
	if f.RetryAfterMS < 1024 || f.RetryAfterMS > 1025 { // 1,024 ids short at 1,000 a second
		t.Fatalf("retry_after_ms %d, want 1,024", f.RetryAfterMS)
	}

	// Delivered messages are acknowledged whatever the rate.
	alice := newUser(t, r, "alice").login(t, r)
	var sent []int64
	for i := range 3 {
		id, err := alice.Send(testCtx(t), "bob", []byte("hi"), "c-"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, id)
	}
	for range sent {
		for f := bob.read(); f.Type != relay.TypeDeliver; f = bob.read() {
		}
	}
	// Three delivered ids and one more: over the rate, so dropped, spending none of
	// the three.
	if f := ack(5, append(slices.Clone(sent), 42)); f.Code != relay.CodeRateLimited {
		t.Fatalf("the delivered ids and one more: %+v, want rate_limited", f)
	}
	if f := ack(6, sent); f.Type != relay.TypeOK {
		t.Fatalf("acking the three delivered messages with the rate spent: %+v, want ok", f)
	}
	if f := ack(7, sent[:1]); f.Code != relay.CodeRateLimited {
		t.Fatalf("acking a delivered message a second time: %+v, want rate_limited (its delivery was spent)", f)
	}
	if n := limited(t, r, server.LimitAckIDsPerSecond); n != 3 {
		t.Fatalf("ack_ids_per_second counted %d times, want 3", n)
	}
	// The deletions were made: a new connection has no backlog.
	again := dialRaw(t, r)
	if f := again.login(bobUser); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	for f := again.read(); f.Type != relay.TypeSynced; f = again.read() {
		if f.Type == relay.TypeDeliver {
			t.Fatalf("after the acks, a new connection got message %d again", f.MsgID)
		}
	}
}
