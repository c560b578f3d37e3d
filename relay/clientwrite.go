package relay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// frameWriter is a client connection's writer. Callers append their frame to a shared
// buffer; whoever finds no write in progress writes everything buffered in one
// system call and keeps going while others add more (flat combining). Concurrent
// requests thus share writes instead of each paying for one, with no writer goroutine.
// Client frames are masked (RFC 6455 §5.3) with keys from a ChaCha8 stream seeded
// from crypto/rand.
type frameWriter struct {
	mu      sync.Mutex
	nc      net.Conn
	ws      *websocket.Conn
	buf     []byte
	spare   []byte
	writing bool
	err     error
	keys    *mrand.ChaCha8
}

func (w *frameWriter) init(ws *websocket.Conn) {
	var seed [32]byte
	rand.Read(seed[:])
	w.ws, w.nc, w.keys = ws, ws.NetConn(), mrand.NewChaCha8(seed)
}

// maxCombineRounds bounds how long one caller keeps writing for others before it
// hands the rest to a goroutine.
const maxCombineRounds = 8

var errWriterClosed = errors.New("relay: connection closed for writing")

// write queues one frame and, unless another caller is writing, writes. An error
// means the frame was not sent and the connection is being closed.
func (w *frameWriter) write(opcode byte, payload []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.buf = w.appendMasked(w.buf, opcode, payload)
	if w.writing {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	return w.flush(maxCombineRounds) // unlocks
}

// flush writes the buffer until it stays empty (or rounds run out). Called with mu held
// and writing set; returns with mu released.
func (w *frameWriter) flush(rounds int) error {
	for i := 0; ; i++ {
		if len(w.buf) == 0 {
			w.writing = false
			w.mu.Unlock()
			return nil
		}
		if i == rounds {
			w.mu.Unlock()
			go func() { w.mu.Lock(); w.flush(1 << 30) }()
			return nil
		}
		buf := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		w.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := w.nc.Write(buf)
		w.mu.Lock()
		if cap(buf) <= 256<<10 {
			w.spare = buf[:0]
		}
		if err != nil {
			w.err = err
			w.writing = false
			w.buf = nil
			w.mu.Unlock()
			w.ws.Close() // the read loop ends and fails every waiting request
			return err
		}
	}
}

// appendMasked appends a masked client-to-server frame.
func (w *frameWriter) appendMasked(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(w.keys.Uint64()))
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= key[i&3]
	}
	return b
}
