package relay

import (
	"strings"
	"testing"
)

// TestCodecAllocs pins the allocations of the fast encoders and decoders that the
// relay's load generator (relaytest) drives the relay with, so that the measuring
// instrument stays cheap. (The relay's own hot paths are pinned in package server.)
func TestCodecAllocs(t *testing.T) {
	body := []byte(strings.Repeat("\x01\x02\x03\x04", 64)) // 256 bytes, as the load benchmarks
	deliver := AppendDeliver(nil, 99, "alice", strings.Repeat("ab", 32), 1700000000123, body)
	sendBuf := make([]byte, 0, 1024)
	bodyBuf := make([]byte, 0, 1024)
	accepted := make([]byte, 0, 64)
	for _, c := range []struct {
		name string
		max  float64
		fn   func()
	}{
		{"send frame into a reused buffer", 0, func() {
			sendBuf = AppendSend(sendBuf[:0], &Frame{Type: TypeSend, ID: 12345, To: "bob", Body: body, ClientID: "c-123"})
		}},
		{"deliver frame into a reused buffer", 0, func() {
			f, ok := DecodeDeliverInto(deliver, bodyBuf)
			if !ok || len(f.Body) != len(body) {
				t.Fatal("deliver not decoded")
			}
		}},
		{"accepted frame", 0, func() {
			if _, err := DecodeServerFrame(AppendAccepted(accepted[:0], 12345, 99, true)); err != nil {
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
	if f, _ := fastDecodeDeliver(deliver); cap(f.Body) != len(body) {
		t.Errorf("deliver body: capacity %d for %d bytes", cap(f.Body), len(body))
	}
}
