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
	// What the committer handed over (writeInline): a failure, bytes the socket did
	// not take, a batch it did not write.
	ok := !c.wfailed
	c.wfailed = false
	if ok && len(c.wpending) > 0 {
		nc.SetWriteDeadline(time.Now().Add(c.s.limits.WriteTimeout))
		if _, err := nc.Write(c.wpending); err != nil {
			ok = false
			c.close()
			c.ws.Close()
		}
	}
	c.wpending = nil
	pending := c.wbatch
	c.wbatch = nil
	for {
		var batch []outItem
		var closed, exit bool
		if pending != nil {
			batch, pending = pending, nil
		} else {
			batch, closed, exit = c.out.drain(reuse)
		}
		if exit {
			return
		}
		if closed {
			if ok && !c.closeSent.Load() {
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				nc.Write(appendWSFrame(nil, opClose, websocket.FormatCloseMessage(websocket.CloseGoingAway, "")))
			}
			break
		}
		if ok {
			var sentClose bool
			ok, sentClose = c.writeBatch(nc, batch)
			if sentClose {
				dropRuns(batch)
				clear(batch)
				break
			}
			if !ok {
				c.close() // the peer is gone: stop reading too
				c.ws.Close()
			}
		}
		// After a failed write the rest is dropped: the messages stay in the store.
		dropRuns(batch)
		clear(batch)
		reuse = batch
	}
	c.teardown()
}

// writeInline is the committer's turn as c's writer, which it took with a push that
// found no writer running (see writeSet). It writes what is queued without blocking,
// on the committer's answer writer (committer.writeRounds). Whatever it cannot finish
// that way — bytes the socket did not take, frames queued meanwhile, a blob chunk or a
// close frame, a closing queue, a failed write — it hands to a writer goroutine as a
// push would have. buf is the answer writer's scratch buffer, returned for reuse.
func (c *conn) writeInline(buf []byte) []byte {
	batch, closed, exit := c.out.drain(nil)
	if exit {
		return buf
	}
	if closed || !inlineBatch(batch) {
		c.wbatch = batch
		c.out.startWriter()
		return buf
	}
	buf = buf[:0]
	for i := range batch {
		buf, _ = c.encodeItem(buf, &batch[i])
	}
	putItems(batch)
	n, err := c.waiter.tryWrite(buf)
	switch {
	case err != nil:
		c.wfailed = true
		c.close() // the peer is gone: stop reading too
		c.ws.Close()
	case n < len(buf):
		c.wpending = append([]byte(nil), buf[n:]...)
	default:
		// Written. Give the role back unless more was queued meanwhile.
		more, closed, exit := c.out.drain(nil)
		if exit {
			return buf
		}
		if !closed {
			c.wbatch = more
		}
	}
	c.out.startWriter()
	return buf
}

// inlineBatch reports whether writeInline may write batch: not blob chunks (written
// from their own buffers) nor a close frame (after which the writer tears down).
func inlineBatch(batch []outItem) bool {
	for i := range batch {
		if batch[i].opcode == opBinary || batch[i].opcode == opClose {
			return false
		}
	}
	return true
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

// encodeItem appends it as a frame to buf (any item but a blob chunk) and reports
// whether it was a close frame.
func (c *conn) encodeItem(buf []byte, it *outItem) (_ []byte, isClose bool) {
	switch {
	case it.msg != nil:
		m := it.msg
		var start int
		buf, start = beginText(buf)
		buf = relay.AppendDeliver(buf, m.ID, m.From, m.FromCardID, m.ReceivedAt.UnixMilli(), m.Body)
		buf = endText(buf, start)
		if it.owner != nil {
			c.s.m.deliverLatency.observe(time.Since(it.owner.arrived).Seconds())
			it.owner.release() // encoded: the body may be reused
		}
		c.s.m.frameOut(relay.TypeDeliver)
		c.s.m.delivered.Add(1)
		c.delivered.Add(1)
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
	case it.opcode != 0:
		buf = appendWSFrame(buf, it.opcode, it.raw)
		isClose = it.opcode == opClose
	default:
		buf = appendWSFrame(buf, opText, it.raw)
		if it.kind == itemBlobJSON {
			c.blobSent()
		}
	}
	return buf, isClose
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
	for i := range batch {
		it := &batch[i]
		switch {
		case it.run != nil:
			// A blob run sent from its file (sendfile): the frames before it, its
			// headers, then its bytes.
			mark := len(buf)
			buf = append(buf, 0x80|opBinary)
			buf = appendWSLen(buf, relay.BlobChunkHeaderSize+int(it.run.n))
			buf = relay.AppendBlobChunkHeader(buf, it.reqID)
			run := it.run
			it.run = nil
			sent, err := sendRun(nc, c.waiter, run, buf)
			c.blobSent()
			if !sent {
				// Answered as the read path answers a cut file, in a later batch.
				buf = buf[:mark]
				c.internal(it.reqID, "reading a blob chunk", err)
				continue
			}
			if err != nil {
				return false, false
			}
			c.s.m.blob.bytesSentFromFile.Add(uint64(run.n))
			buf = buf[:0]
			continue
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
		default:
			buf, sentClose = c.encodeItem(buf, it)
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
