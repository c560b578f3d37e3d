package server

import (
	"encoding/binary"
	"errors"
	"io"
)

// MaxMessageFrames is the most WebSocket frames one message may come in (limit
// frames_per_message): the largest message the relay reads, 1 MiB past
// max_frame_bytes, fits in frames of 1,088 bytes or more (gorilla writes 4 KiB
// frames by default). Empty continuation frames cost about 0.1 µs each: a message of
// the most costs what a 5 KiB JSON frame does.
const MaxMessageFrames = 1024

// errTooManyFrames ends gorilla's read of a message that came in too many frames.
var errTooManyFrames = errors.New("relay: a message in too many frames")

// frameCounter watches the WebSocket frames a peer sends, between the socket (or
// tls.Conn) and gorilla's buffered reader. gorilla reads a message's continuation
// frames, and the control frames around them, inside one Read of its message reader,
// so the read loop sees a message once however many frames it came in: a message of
// endless empty continuation frames kept a core busy until the message deadline. The
// counter parses each frame's header as its bytes go by (payloads are skipped, never
// held) and fails the read once a message passes MaxMessageFrames.
//
// It counts, it does not check: a header gorilla will refuse (a reserved opcode, a
// continuation with no message) is gorilla's to refuse.
type frameCounter struct {
	r io.Reader
	// tooMany is called once, on the read loop, when a message passes
	// MaxMessageFrames, before the read fails: it ends the connection.
	tooMany func()

	hdr    [14]byte // the frame header read so far
	hn     int      // bytes of hdr held
	skip   uint64   // payload bytes of the current frame still to come
	frames int      // frames of the current data message; 0 between messages
	err    error
}

func (f *frameCounter) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	if n > 0 && !f.scan(p[:n]) {
		f.err = errTooManyFrames
		if f.tooMany != nil {
			f.tooMany()
		}
		return 0, f.err
	}
	return n, err
}

// scan follows the frames in b, the next bytes of the stream. It reports false once
// a message has passed MaxMessageFrames.
func (f *frameCounter) scan(b []byte) bool {
	for len(b) > 0 {
		if f.skip > 0 {
			k := min(uint64(len(b)), f.skip)
			f.skip -= k
			b = b[k:]
			continue
		}
		f.hdr[f.hn] = b[0]
		f.hn++
		b = b[1:]
		if f.hn < 2 || f.hn < headerSize(f.hdr[1]) {
			continue
		}
		f.hn = 0
		if !f.frame() {
			return false
		}
	}
	return true
}

// frame counts the frame whose header hdr holds and sets up its payload's skip.
func (f *frameCounter) frame() bool {
	switch n := f.hdr[1] & 0x7f; n {
	case 126:
		f.skip = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		f.skip = binary.BigEndian.Uint64(f.hdr[2:10])
	default:
		f.skip = uint64(n)
	}
	fin, opcode := f.hdr[0]&0x80 != 0, f.hdr[0]&0x0f
	switch opcode {
	case 0x1, 0x2: // a message's first frame
		f.frames = 1
	case 0x0: // a continuation
		f.frames++
		if f.frames > MaxMessageFrames {
			return false
		}
	default: // control frames, counted by the frame rate (pings and pongs)
		return true
	}
	if fin {
		f.frames = 0
	}
	return true
}

// headerSize is the length of a frame header whose second byte is b1: two bytes, the
// extended payload length, and the mask key.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}
