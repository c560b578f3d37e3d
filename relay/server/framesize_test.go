package server_test

import (
	"testing"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/relaytest"
)

// discardBytes is PROTOCOL.md's "up to 1 MiB more": how far over its limit a message
// may be and still be answered (frame_too_large) without closing the connection.
const discardBytes = 1 << 20

// TestFrameSizeBoundaries checks PROTOCOL.md's sizes to the byte ("Transport",
// "Limits"): a text frame of 65536 bytes is read; one of 65537 to 65536 + 1 MiB bytes is
// answered frame_too_large (no id) and the connection stays; one byte more is the
// error frame and a close frame (1008). Whatever the relay read before (its buffers are
// pooled), the boundaries do not move.
func TestFrameSizeBoundaries(t *testing.T) {
	r := relaytest.Start(t)
	frame := func(n int) []byte { // a lookup frame of exactly n bytes
		b := []byte(`{"type":"lookup","id":7,"name":"`)
		for len(b) < n-2 {
			b = append(b, 'a')
		}
		return append(b, '"', '}')
	}
	rc := dialRaw(t, r)
	// Grow the relay's pooled read buffers first: a frame just under the limit.
	for range 4 {
		rc.sendText(frame(relay.MaxFrameSize))
		if f := rc.read(); f.Type != relay.TypeError || f.Code != relay.CodeBadField || f.ID != 7 {
			t.Fatalf("a frame of %d bytes: got %+v, want bad_field (name too long) for id 7", relay.MaxFrameSize, f)
		}
	}
	for _, n := range []int{relay.MaxFrameSize + 1, relay.MaxFrameSize + discardBytes} {
		rc.sendText(frame(n))
		if f := rc.read(); f.Type != relay.TypeError || f.Code != relay.CodeFrameTooLarge || f.Limit != relay.LimitMaxFrameBytes || f.ID != 0 {
			t.Fatalf("a frame of %d bytes: got %+v, want frame_too_large, limit max_frame_bytes, no id", n, f)
		}
		if f := rc.request(map[string]any{"type": "ping", "id": 2}); f.Type != relay.TypePong {
			t.Fatalf("after a frame of %d bytes: %+v, want the connection kept", n, f)
		}
	}
	n := relay.MaxFrameSize + discardBytes + 1
	go rc.ws.WriteMessage(websocket.TextMessage, frame(n))
	if f := rc.expectClosed(relay.CodeFrameTooLarge); f.Limit != relay.LimitMaxFrameBytes {
		t.Fatalf("a frame of %d bytes: error frame names limit %q", n, f.Limit)
	}
}
