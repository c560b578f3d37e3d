package server

// The writer: a goroutine that exists only while a connection has something to send,
// framing everything queued into one buffer and writing it with one system call.

import (
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
)

// WebSocket opcodes the writer uses (RFC 6455 §5.2).
const (
	opText   = 0x1
	opBinary = 0x2 // blob chunk messages (blobs.go)
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxWSHeader is the longest unmasked frame header.
const maxWSHeader = 10

// appendWSFrame appends one unmasked (server-to-client) WebSocket frame.
func appendWSFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	b = appendWSLen(b, len(payload))
	return append(b, payload...)
}

func appendWSLen(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// writeLoop writes until the queue is empty, then exits; the next push starts a new
// one, so an idle connection costs no goroutine here. It frames everything queued
// since its last turn into one buffer and writes it with one system call, so a busy
// connection pays one write per batch rather than per frame. (gorilla/websocket does
// the reading and the handshake; its writer would flush every frame on its own.)
// Pings, pongs and close frames go through the queue too, so no other goroutine ever
// writes. Once the queue is closed and empty, it sends a close frame and tears the
// connection down.
func (c *conn) writeLoop() {
	nc := c.ws.NetConn()
	var reuse []outItem
	ok := true
	for {
		batch, closed, exit := c.out.drain(reuse)
		if exit {
			return
		}
		if closed {
			if ok {
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				nc.Write(appendWSFrame(nil, opClose, websocket.FormatCloseMessage(websocket.CloseGoingAway, "")))
			}
			break
		}
		if ok {
			var sentClose bool
			ok, sentClose = c.writeBatch(nc, batch)
			if sentClose {
				clear(batch)
				break
			}
			if !ok {
				c.close() // the peer is gone: stop reading too
				c.ws.Close()
			}
		}
		// After a failed write the rest is dropped: the messages stay in the store.
		clear(batch)
		reuse = batch
	}
	c.teardown()
}

// teardown runs once, after the last write.
func (c *conn) teardown() {
	defer c.s.wg.Done()
	c.close()
	c.loginTimer.Stop()
	if c.killed.Load() {
		c.linger()
	}
	c.ws.Close()
	<-c.readerDone
	if c.unsub != nil {
		c.unsub()
	}
	if c.acct != nil {
		c.s.m.loggedIn.Add(-1)
	}
	c.s.removeConn(c)
}

// ping is called by the server's pinger for every connection.
func (c *conn) ping() { c.out.tryPush(outItem{opcode: opPing}) }

var encodeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// writeFlushSize bounds the buffer of one write system call.
const writeFlushSize = 64 << 10

// beginText leaves room for the largest text frame header; the caller appends the
// payload and calls endText, which moves it up behind the header it actually needs.
// Frames are thus encoded straight into the batch buffer.
func beginText(buf []byte) ([]byte, int) {
	start := len(buf)
	return append(buf, make([]byte, maxWSHeader)...), start
}

func endText(buf []byte, start int) []byte {
	payload := len(buf) - start - maxWSHeader
	hdr := appendWSFrame(buf[start:start], opText, nil) // header only
	hdr = appendWSLen(hdr[:1], payload)
	copy(buf[start+len(hdr):], buf[start+maxWSHeader:])
	return buf[:start+len(hdr)+payload]
}

// writeBatch frames and writes a batch. It reports whether the connection is still
// good and whether a close frame went out.
func (c *conn) writeBatch(nc net.Conn, batch []outItem) (ok, sentClose bool) {
	nc.SetWriteDeadline(time.Now().Add(c.s.limits.WriteTimeout))
	bp := encodeBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 4*writeFlushSize {
			*bp = buf[:0]
			encodeBufPool.Put(bp)
		}
	}()
	for _, it := range batch {
		switch {
		case it.msg != nil:
			m := it.msg
			var start int
			buf, start = beginText(buf)
			buf = relay.AppendDeliver(buf, m.ID, m.From, m.FromCardID, m.ReceivedAt.UnixMilli(), m.Body)
			buf = endText(buf, start)
			if it.owner != nil {
				it.owner.release() // encoded: the body may be reused
			}
			c.s.m.frameOut(relay.TypeDeliver)
			c.s.m.delivered.Add(1)
		case it.kind == itemAccepted || it.kind == itemAcceptedDup:
			var start int
			buf, start = beginText(buf)
			buf = relay.AppendAccepted(buf, it.reqID, it.msgID, it.kind == itemAcceptedDup)
			buf = endText(buf, start)
		case it.kind == itemOK:
			var start int
			buf, start = beginText(buf)
			buf = relay.AppendOK(buf, it.reqID)
			buf = endText(buf, start)
		case it.opcode == opBinary:
			// A blob chunk message (up to 256 KiB): written beside the batch from its own
			// buffer (one writev, no copy), which then goes back to the free list.
			buf = append(buf, 0x80|opBinary)
			buf = appendWSLen(buf, len(it.raw))
			bufs := net.Buffers{buf, it.raw}
			_, err := bufs.WriteTo(nc)
			putBlobBuf(it.raw)
			c.blobSent()
			if err != nil {
				return false, false
			}
			buf = buf[:0]
			continue
		case it.opcode != 0:
			buf = appendWSFrame(buf, it.opcode, it.raw)
			if it.opcode == opClose {
				sentClose = true
			}
		default:
			buf = appendWSFrame(buf, opText, it.raw)
		}
		if len(buf) >= writeFlushSize || sentClose {
			if _, err := nc.Write(buf); err != nil {
				return false, sentClose
			}
			buf = buf[:0]
			if sentClose {
				return true, true
			}
		}
	}
	if len(buf) > 0 {
		if _, err := nc.Write(buf); err != nil {
			return false, false
		}
	}
	return true, false
}
