package server

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzReadFrame: the relay's reader of a client's WebSocket message returns a message
// within the limit whole, whatever the buffer it starts with and however the reads
// come, and reports one over it as too big instead of returning it.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte(`{"type":"ping","id":1}`), uint16(64), uint16(8), false)
	f.Add(bytes.Repeat([]byte("x"), 100), uint16(99), uint16(0), true)
	f.Add(bytes.Repeat([]byte("x"), 100), uint16(100), uint16(100), false)
	f.Add([]byte{}, uint16(0), uint16(0), false)
	f.Fuzz(func(t *testing.T, msg []byte, max, bufCap uint16, oneByte bool) {
		var r io.Reader = bytes.NewReader(msg)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		data, tooBig, err := readFrame(r, make([]byte, 0, bufCap), int(max))
		switch {
		case len(msg) <= int(max):
			if err != nil || tooBig || !bytes.Equal(data, msg) {
				t.Fatalf("%d bytes, limit %d: got %d bytes, tooBig %v, %v", len(msg), max, len(data), tooBig, err)
			}
		default:
			if !tooBig || !bytes.Equal(data, msg[:min(len(msg), 9, int(max)+1)]) || err != nil {
				t.Fatalf("%d bytes over the limit %d: got %d bytes (want its first 9 at most), tooBig %v, %v", len(msg), max, len(data), tooBig, err)
			}
		}
	})
}

// TestReadFrameBoundaries: the limits hold to the byte whatever the buffer's capacity
// (the read loop's buffers are pooled, some larger than the limit): max bytes are a
// message, max+discardLimit bytes are too big, one more fails.
func TestReadFrameBoundaries(t *testing.T) {
	const max = 100
	for _, bufCap := range []int{0, max, max + 1, 4 * max} {
		for _, tc := range []struct {
			size        int
			tooBig, err bool
		}{{max, false, false}, {max + 1, true, false}, {max + discardLimit, true, false}, {max + discardLimit + 1, true, true}} {
			data, tooBig, err := readFrame(bytes.NewReader(make([]byte, tc.size)), make([]byte, 0, bufCap), max)
			if tooBig != tc.tooBig || (err != nil) != tc.err || !tooBig && len(data) != tc.size {
				t.Errorf("buffer capacity %d, %d bytes, limit %d: got %d bytes, tooBig %v, %v; want tooBig %v, failed %v",
					bufCap, tc.size, max, len(data), tooBig, err, tc.tooBig, tc.err)
			}
		}
	}
}
