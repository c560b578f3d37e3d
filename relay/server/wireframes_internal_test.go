package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// wireFrame is one WebSocket frame, masked or not, with a payload of n zero bytes.
func wireFrame(opcode byte, fin, masked bool, n int) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	frame := []byte{b0}
	switch {
	case n < 126:
		frame = append(frame, m|byte(n))
	case n <= 0xffff:
		frame = binary.BigEndian.AppendUint16(append(frame, m|126), uint16(n))
	default:
		frame = binary.BigEndian.AppendUint64(append(frame, m|127), uint64(n))
	}
	if masked {
		frame = append(frame, 1, 2, 3, 4)
	}
	return append(frame, make([]byte, n)...)
}

// countFrames runs stream through a frameCounter in reads of at most chunk bytes, and
// returns how many bytes it passed before refusing (len(stream) if it did not) and
// its state at the end.
func countFrames(stream []byte, chunk int) (passed int, fc *frameCounter) {
	fc = &frameCounter{r: &chunkReader{b: stream, n: chunk}}
	buf := make([]byte, 4096)
	for {
		n, err := fc.Read(buf)
		passed += n
		if err != nil {
			return passed, fc
		}
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// The counter follows frames of every header form (7-bit, 16-bit and 64-bit lengths,
// masked or not), however the stream is cut into reads, and refuses a message at its
// 257th frame, not before.
func TestFrameCounterFollowsFrames(t *testing.T) {
	var ok bytes.Buffer
	ok.Write(wireFrame(0x1, true, true, 0))
	ok.Write(wireFrame(0x2, true, true, 125))
	ok.Write(wireFrame(0x2, false, true, 126))
	ok.Write(wireFrame(0x9, true, true, 5))
	ok.Write(wireFrame(0x0, true, true, 70000))
	ok.Write(wireFrame(0x1, true, false, 65535))
	ok.Write(wireFrame(0x1, false, true, 1))
	for range MaxMessageFrames - 2 {
		ok.Write(wireFrame(0x0, false, true, 0))
		ok.Write(wireFrame(0xA, true, true, 0))
	}
	ok.Write(wireFrame(0x0, true, true, 3))
	ok.Write(wireFrame(0x1, false, true, 2)) // a message under way at the end

	over := bytes.Clone(ok.Bytes())
	for range MaxMessageFrames - 1 {
		over = append(over, wireFrame(0x0, false, true, 0)...)
	}
	refusedAt := len(over)
	over = append(over, wireFrame(0x0, true, true, 0)...) // the 257th

	for _, chunk := range []int{1, 2, 3, 5, 7, 13, 4096} {
		passed, fc := countFrames(ok.Bytes(), chunk)
		if passed != ok.Len() || fc.err != nil {
			t.Fatalf("reads of %d: passed %d of %d bytes (%v)", chunk, passed, ok.Len(), fc.err)
		}
		if fc.frames != 1 || fc.hn != 0 || fc.skip != 0 {
			t.Fatalf("reads of %d: at the end frames %d, header bytes %d, skip %d; want 1, 0, 0", chunk, fc.frames, fc.hn, fc.skip)
		}
		passed, fc = countFrames(over, chunk)
		if fc.err != errTooManyFrames {
			t.Fatalf("reads of %d: a message in %d frames passed (%v)", chunk, MaxMessageFrames+1, fc.err)
		}
		// The read that completes the 257th frame's 6-byte header returns nothing.
		if end := refusedAt + 6; passed >= end || passed < end-chunk {
			t.Fatalf("reads of %d: %d bytes passed, want fewer than the %d up to the 257th frame's header", chunk, passed, end)
		}
	}
}

// FuzzFrameCounter: any bytes, cut into reads of any size, leave the counter in the
// same state as one read of them all, and never panic it.
func FuzzFrameCounter(f *testing.F) {
	f.Add(wireFrame(0x1, true, true, 3), 1)
	f.Add(append(wireFrame(0x2, false, false, 126), wireFrame(0x0, true, true, 70000)...), 3)
	f.Add([]byte{0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 2)
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk <= 0 || chunk > len(stream) {
			chunk = len(stream) + 1
		}
		_, whole := countFrames(stream, len(stream)+1)
		_, cut := countFrames(stream, chunk)
		if (whole.err == nil) != (cut.err == nil) {
			t.Fatalf("in one read: %v; in reads of %d: %v", whole.err, chunk, cut.err)
		}
		if whole.err == nil && (whole.frames != cut.frames || whole.hn != cut.hn || whole.skip != cut.skip || whole.hdr != cut.hdr) {
			t.Fatalf("in one read: %d %d %d; in reads of %d: %d %d %d", whole.frames, whole.hn, whole.skip, chunk, cut.frames, cut.hn, cut.skip)
		}
	})
}
