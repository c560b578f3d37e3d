//go:build !race

// (The race detector makes sync.Pool drop items at random, so pooled paths allocate.)

package server

import (
	"strings"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/storage"
)

// TestHotPathAllocs pins the per-message allocations of the relay's hot paths, so a
// change that brings garbage back shows up here rather than only as a slower p99.
func TestHotPathAllocs(t *testing.T) {
	body := []byte(strings.Repeat("\x01\x02\x03\x04", 64)) // 256 bytes, as the load benchmarks
	send := relay.AppendSend(nil, &relay.Frame{Type: relay.TypeSend, ID: 12345, To: "bob", Body: body, ClientID: "c-123"})
	ack := relay.AppendAck(nil, 77, []int64{1, 2, 3, 400, 5000})
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
			buf = relay.AppendDeliver(buf, m.ID, m.From, m.FromCardID, m.ReceivedAt.UnixMilli(), m.Body)
			buf = endText(buf, start)
			buf, start = beginText(buf)
			buf = relay.AppendAccepted(buf, 12345, 99, false)
			buf = endText(buf, start)
			buf, start = beginText(buf)
			buf = relay.AppendOK(buf, 77)
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
	} {
		if got := testing.AllocsPerRun(200, c.fn); got > c.max {
			t.Errorf("%s: %.1f allocations, want at most %.0f", c.name, got, c.max)
		}
	}
}
