//go:build !race

// (The race detector makes sync.Pool drop items at random, so pooled paths allocate.)

package relay

import (
	"strings"
	"testing"
	"time"

	"pfschat/storage"
)

// TestHotPathAllocs pins the per-message allocations of the relay's hot paths, so a
// change that brings garbage back shows up here rather than only as a slower p99.
func TestHotPathAllocs(t *testing.T) {
	body := []byte(strings.Repeat("\x01\x02\x03\x04", 64)) // 256 bytes, as the load benchmarks
	send := appendSend(nil, &Frame{Type: TypeSend, ID: 12345, To: "bob", Body: body, ClientID: "c-123"})
	ack := appendAck(nil, 77, []int64{1, 2, 3, 400, 5000})
	deliver := appendDeliver(nil, 99, "alice", strings.Repeat("ab", 32), 1700000000123, body)
	m := &storage.QueuedMessage{ID: 99, From: "alice", FromCardID: strings.Repeat("ab", 32), Body: body, ReceivedAt: time.UnixMilli(1700000000123)}

	q := newOutQueue(1000, func() {}) // no writer: the test drains it
	var reuse []outItem
	for _, c := range []struct {
		name string
		max  float64
		fn   func()
	}{
		{"relay: send frame into a pooled request", 0, func() {
			r, _, _, _, ok := decodeSendReq(send)
			if !ok {
				t.Fatal("send not decoded")
			}
			r.release()
		}},
		{"relay: ack frame into a pooled request", 0, func() {
			a, ok := decodeAckReq(ack)
			if !ok {
				t.Fatal("ack not decoded")
			}
			a.release()
		}},
		{"relay: deliver, accepted and ok into the writer's buffer", 0, func() {
			buf := make([]byte, 0, 1024)
			var start int
			buf, start = beginText(buf)
			buf = appendDeliver(buf, m.ID, m.From, m.FromCardID, m.ReceivedAt.UnixMilli(), m.Body)
			buf = endText(buf, start)
			buf, start = beginText(buf)
			buf = appendAccepted(buf, 12345, 99, false)
			buf = endText(buf, start)
			buf, start = beginText(buf)
			buf = appendOK(buf, 77)
			_ = endText(buf, start)
		}},
		{"relay: a busy connection's outbound queue, batches of 40", 0, func() {
			for range 40 {
				q.tryPush(outItem{kind: itemOK, reqID: 1})
			}
			batch, _, _ := q.drain(reuse)
			clear(batch)
			reuse = batch
		}},
		{"client: send frame into a pooled buffer", 0, func() {
			bp := sendBufs.Get().(*[]byte)
			*bp = appendSend((*bp)[:0], &Frame{Type: TypeSend, ID: 12345, To: "bob", Body: body, ClientID: "c-123"})
			sendBufs.Put(bp)
		}},
		// The body is the receiver's to keep (Incoming.Body): its one allocation.
		{"client: deliver frame, sender strings interned", 1, func() {
			f, ok := fastDecodeDeliverIn(deliver, senders)
			if !ok || len(f.Body) != len(body) {
				t.Fatal("deliver not decoded")
			}
		}},
		{"client: accepted frame", 0, func() {
			if _, err := decodeServerFrameIn(appendAcceptedTo(accepted[:0]), senders); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if got := testing.AllocsPerRun(200, c.fn); got > c.max {
			t.Errorf("%s: %.1f allocations, want at most %.0f", c.name, got, c.max)
		}
	}
	// Bodies are decoded into slices of their exact length (base64 with padding
	// would suggest two bytes more, and a larger size class).
	if f, _ := fastDecodeDeliverIn(deliver, senders); cap(f.Body) != len(body) {
		t.Errorf("deliver body: capacity %d for %d bytes", cap(f.Body), len(body))
	}
}

var (
	senders  = interner{}
	accepted = make([]byte, 0, 64)
)

func appendAcceptedTo(b []byte) []byte { return appendAccepted(b, 12345, 99, true) }
