package server

// The read loop: it reads frames, applies the rate limit and decodes them, the hot
// frames (send, ack) straight into pooled requests, and hands them to the handlers.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
)

// discardLimit is how much of an oversized frame the relay reads and throws away so it
// can answer frame_too_large and keep the connection; anything bigger closes it.
const discardLimit = 1 << 20

var (
	sendPrefix = []byte(relay.SendPrefix)
	ackPrefix  = []byte(relay.AckPrefix)
)

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer close(c.readerDone)
	defer c.closeBlobs()
	defer func() {
		if !c.s.closing.Load() {
			c.close()
		}
	}()
	ws := c.ws
	// No gorilla read limit: readFrame enforces the limits and answers with an error
	// frame (gorilla would write its own close frame from this goroutine).
	ws.SetReadLimit(0)
	readTimeout := 2*c.s.limits.PingInterval + 15*time.Second
	c.readTimeout = readTimeout
	c.idleSetAt = time.Now()
	c.extendReads(c.idleSetAt.Add(readTimeout))
	c.msgReader.c = c
	ws.SetPongHandler(func(string) error {
		// Pongs count in the frame rate as pings do: unasked-for pongs are free to send.
		if ok, err := c.pingAllowed(); !ok {
			return err
		}
		c.controlArrived(readTimeout)
		return nil
	})
	// Only the write loop writes: pongs and the close echo go through its queue.
	ws.SetPingHandler(func(data string) error {
		if c.s.testHookPing != nil {
			c.s.testHookPing(c)
		}
		if ok, err := c.pingAllowed(); !ok {
			return err
		}
		c.controlArrived(readTimeout)
		c.out.tryPush(outItem{opcode: opPong, raw: []byte(data)})
		return nil
	})
	ws.SetCloseHandler(func(code int, text string) error {
		c.out.closeWith(outItem{opcode: opClose, raw: websocket.FormatCloseMessage(code, "")})
		return nil
	})

	c.sendHello()
	for {
		// Keep this loop's own frame small: an idle connection parks here, and a
		// shallow stack lets the runtime shrink it (per-frame work is in onMessage).
		if c.waiter != nil && c.br != nil && c.br.Buffered() == 0 && (c.park == nil || c.tlsQuiet()) {
			c.waiter.wait()
		}
		mt, r, err := ws.NextReader()
		if err != nil {
			if gorillaClosed(err) {
				c.closeSent.Store(true)
			}
			return
		}
		if c.ctx.Err() != nil {
			// Closed or killed (its card replaced, logged out, its account deleted, a
			// limit): nothing it sends from now on is acted on, however long its socket
			// takes to go (a client that does not read can hold the writer for its
			// write timeout). The linger after a kill reads the rest unparsed.
			return
		}
		c.startMessage()
		c.msgReader.r = r
		if !c.onMessage(mt, &c.msgReader) {
			return
		}
		c.endMessage()
	}
}

// gorillaClosed reports whether err is a protocol error gorilla answered itself with a
// close frame (1002: a bad frame header, an unmasked frame, a reserved opcode, …), after
// which nothing more may be sent (RFC 6455 §5.5.1): the relay's own close frame at
// teardown went out as a second one. Its errors carry no type; they are the ones that
// are neither the peer's close, nor the socket's, nor the end of the stream.
func gorillaClosed(err error) bool {
	var ce *websocket.CloseError
	var ne net.Error
	return !errors.As(err, &ce) && !errors.As(err, &ne) && !errors.Is(err, io.EOF) &&
		!errors.Is(err, io.ErrUnexpectedEOF) && strings.HasPrefix(err.Error(), "websocket: ")
}

// controlArrived extends the idle deadline for a ping or pong: the peer is there.
// Inside a message it does not push the deadline past the message's own, or a client
// could keep a message open, and its buffer held, for as long as it pings.
func (c *conn) controlArrived(readTimeout time.Duration) {
	t := time.Now().Add(readTimeout)
	if !c.messageStart.IsZero() {
		t = earliest(t, c.messageStart.Add(c.s.limits.MessageTimeout))
		c.messageDeadlineSet = true
	}
	c.extendReads(t)
}

// startMessage marks the start of a message whose first frame has arrived: it must be
// whole within MessageTimeout (limit message_deadline), whatever pings and pongs
// arrive meanwhile. Its deadline is set only before a read that may wait for the
// network (msgReader): a message already whole in the read buffer, as most are, costs
// no timer update. The idle deadline is pushed out at most once a second: it costs
// one.
//
//go:noinline
func (c *conn) startMessage() {
	now := time.Now()
	c.messageStart = now
	if now.Sub(c.idleSetAt) > time.Second {
		c.extendReads(now.Add(c.readTimeout))
		c.idleSetAt = now
	}
}

// endMessage puts the idle deadline back after a message that set its own.
func (c *conn) endMessage() {
	c.messageStart = time.Time{}
	c.msgReader.r = nil
	if c.messageDeadlineSet {
		c.messageDeadlineSet = false
		c.idleSetAt = time.Now()
		c.extendReads(c.idleSetAt.Add(c.readTimeout))
	}
}

// msgReader reads the current message, setting the message's deadline before the
// first read that finds the read buffer empty. A read that starts with bytes buffered
// and then waits (a frame header cut short) waits under the idle deadline, which a
// ping or pong inside the message lowers to the message's (controlArrived).
type msgReader struct {
	c *conn
	r io.Reader
}

func (m *msgReader) Read(p []byte) (int, error) {
	if c := m.c; !c.messageDeadlineSet && (c.br == nil || c.br.Buffered() == 0) {
		c.messageDeadlineSet = true
		c.extendReads(earliest(time.Now().Add(c.readTimeout), c.messageStart.Add(c.s.limits.MessageTimeout)))
	}
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF && gorillaClosed(err) {
		m.c.closeSent.Store(true) // a bad frame inside a message: gorilla has sent its 1002
	}
	return n, err
}

// messageExpired reports whether err, a read error inside a message, is its deadline
// passing (and not the cap a shutdown or a closing connection puts on reads).
func (c *conn) messageExpired(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && c.readCap.Load() == 0 &&
		!c.messageStart.IsZero() && !time.Now().Before(c.messageStart.Add(c.s.limits.MessageTimeout))
}

// killExpiredMessage closes the connection with message_timeout after its message
// deadline passed. The socket can still be written: the peer gets the error frame and
// the close frame as for every limit that ends a connection.
func (c *conn) killExpiredMessage() {
	c.s.m.limited(LimitMessageDeadline)
	c.kill(relay.CodeMessageTimeout, LimitMessageDeadline, "message not complete within "+c.s.limits.MessageTimeout.String())
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

//go:noinline
func (c *conn) sendHello() {
	c.send(&relay.Frame{
		Type: relay.TypeHello, Version: relay.ProtocolVersion, Versions: relay.SupportedVersions,
		RelayKey: c.s.pub, Challenge: c.challenge[:], Limits: c.s.frameLimits(),
		Signature:      relay.SignHello(c.s.priv, c.nonce[:], c.challenge[:], c.binding[:]),
		ChannelBinding: c.bindingMode,
		Registration:   c.s.registration,
		KeyRotations:   c.s.keyRotations,
	})
}

// onMessage reads, checks and handles one message. It returns false to close.
//
//go:noinline
func (c *conn) onMessage(mt int, r io.Reader) bool {
	if mt == websocket.BinaryMessage {
		return c.onBinary(r) // blobs.go
	}
	bp := readBufPool.Get().(*[]byte)
	data, tooBig, err := readFrame(r, (*bp)[:0], c.s.limits.MaxFrameBytes)
	if err != nil {
		readBufPool.Put(bp)
		switch {
		case tooBig:
			c.s.m.limited(LimitMaxFrameBytes)
			c.kill(relay.CodeFrameTooLarge, LimitMaxFrameBytes, "frame over "+strconv.Itoa(c.s.limits.MaxFrameBytes+discardLimit)+" bytes")
		case c.messageExpired(err):
			c.killExpiredMessage()
		}
		return false
	}
	if ok, retry := c.bucket.allow(c.s.now()); !ok {
		defer readBufPool.Put(bp)
		return c.overRate(data, LimitFramesPerSecond, "over "+strconv.Itoa(c.s.limits.FramesPerSecond)+" frames/s", retry)
	}
	strikes := c.rateStrikes
	c.strikesBefore = strikes
	c.rateStrikes = max(0, c.rateStrikes-1) // a frame within the rate takes one strike back
	if tooBig {
		readBufPool.Put(bp)
		c.s.m.frameIn("")
		c.s.m.limited(LimitMaxFrameBytes)
		c.send(&relay.Frame{Type: relay.TypeError, Code: relay.CodeFrameTooLarge, Limit: LimitMaxFrameBytes,
			Message: "frame over " + strconv.Itoa(c.s.limits.MaxFrameBytes) + " bytes"})
		return true
	}
	if mt != websocket.TextMessage {
		readBufPool.Put(bp)
		c.s.m.frameIn("")
		c.send(&relay.Frame{Type: relay.TypeError, Code: relay.CodeBadFrame, Message: "frames are JSON text messages"})
		return true
	}
	if c.acct != nil && bytes.HasPrefix(data, ackPrefix) {
		if a, ok := decodeAckReq(data); ok {
			c.s.m.frameIn(relay.TypeAck)
			if cap(data) <= 64<<10 {
				*bp = data[:0]
				readBufPool.Put(bp)
			}
			return c.submitAck(a)
		}
	}
	if c.acct != nil && bytes.HasPrefix(data, sendPrefix) {
		// The hot frame: decoded straight into a pooled request, body and all.
		if r, to, clientID, ttl, ok := decodeSendReq(data); ok {
			c.s.m.frameIn(relay.TypeSend)
			more := c.onSendReq(r, r.reqID, to, clientID, ttl)
			if cap(data) <= 64<<10 {
				*bp = data[:0]
				readBufPool.Put(bp)
			}
			return more
		}
	}
	f, fast, err := relay.DecodeFrameFast(data)
	if !fast {
		// The general decoder costs about 20 µs a KiB: text_bytes_per_second is
		// charged here, after the fast paths (sends, acks and blob chunks in their
		// canonical layout cost little more than their copy).
		if ok, retry := c.textBytes.allowN(c.s.now(), float64(len(data))); !ok {
			defer readBufPool.Put(bp)
			// Not taken after all: the frame rate's token and strike come back.
			c.bucket.give()
			c.rateStrikes = strikes
			return c.overRate(data, LimitTextBytesPerSecond, "over "+strconv.Itoa(c.s.limits.TextBytesPerSecond)+" bytes/s of text frames", retry)
		}
		f, err = relay.DecodeFrameGeneral(data)
	}
	if cap(data) <= 64<<10 {
		*bp = data[:0]
		readBufPool.Put(bp)
	}
	c.s.m.frameIn(f.Type)
	if err != nil {
		var fe *relay.FrameError
		errors.As(err, &fe)
		if fe.Limit != "" {
			c.s.m.limited(fe.Limit) // max_body_bytes
		}
		c.send(&relay.Frame{Type: relay.TypeError, ID: f.ID, Code: fe.Code, Limit: fe.Limit, Message: fe.Error()})
		return true
	}
	return c.handle(&f)
}

// overRate answers a frame dropped for a rate (frames_per_second,
// text_bytes_per_second) with its id and when to retry, and counts a strike; it
// reports false when the strikes close the connection.
func (c *conn) overRate(data []byte, limit, over string, retry time.Duration) bool {
	c.s.m.frameIn("")
	c.rateStrikes++
	c.s.m.limited(limit)
	if c.rateStrikes > 4*c.s.limits.FrameBurst {
		c.kill(relay.CodeRateLimited, limit, "persistently "+over)
		return false
	}
	c.send(&relay.Frame{Type: relay.TypeError, ID: relay.PeekID(data), Code: relay.CodeRateLimited, Limit: limit,
		Message: over + "; slow down", RetryAfterMS: retry.Milliseconds() + 1})
	return true
}

// ackOverRate answers an ack dropped for ack_ids_per_second (submitAck), as overRate
// answers a frame over the frame rate; the frame was already counted.
func (c *conn) ackOverRate(id uint64, retry time.Duration) bool {
	// Not taken after all: the frame rate's token and strike come back.
	c.bucket.give()
	c.rateStrikes = c.strikesBefore + 1
	c.s.m.limited(LimitAckIDsPerSecond)
	over := "over " + strconv.Itoa(c.s.limits.AckIDsPerSecond) + " acknowledged ids/s beyond the messages delivered"
	if c.rateStrikes > 4*c.s.limits.FrameBurst {
		c.kill(relay.CodeRateLimited, LimitAckIDsPerSecond, "persistently "+over)
		return false
	}
	c.send(&relay.Frame{Type: relay.TypeError, ID: id, Code: relay.CodeRateLimited, Limit: LimitAckIDsPerSecond,
		Message: over + "; acknowledge only what was delivered", RetryAfterMS: retry.Milliseconds() + 1})
	return true
}

// readFrame reads one message into buf. A message over max is read up to
// discardLimit bytes past max and dropped (tooBig, err == nil); beyond that it fails
// (tooBig, err); either way data is then its first 9 bytes (a binary message's kind and
// id). It reads at most max+1 bytes into buf, whatever buf's capacity, so
// the boundaries are PROTOCOL.md's to the byte: up to max bytes kept, up to
// max+discardLimit answered, more closed.
func readFrame(r io.Reader, buf []byte, max int) (data []byte, tooBig bool, err error) {
	for {
		if len(buf) > max {
			// Over: dropped, but for its first bytes (a binary message's kind and
			// id, for the answer's id).
			head := buf[:min(len(buf), 9)]
			n, err := io.Copy(io.Discard, io.LimitReader(r, discardLimit))
			if err != nil {
				return head, true, err
			}
			if n >= discardLimit {
				return head, true, errors.New("frame far over the limit")
			}
			return head, true, nil
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), max+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > max {
				return buf[:min(len(buf), 9)], true, nil
			}
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

func (s *Server) frameLimits() *relay.FrameLimits {
	l := s.limits
	fl := &relay.FrameLimits{
		MaxFrameBytes: l.MaxFrameBytes, MaxBodyBytes: relay.MaxBodySize, MaxQueueCount: l.MaxQueueCount, MaxQueueBytes: l.MaxQueueBytes,
		MaxTTLSeconds: int64(l.MaxTTL / time.Second), FramesPerSecond: l.FramesPerSecond,
		FrameBurst: l.FrameBurst, MaxOneTimePreKey: l.MaxOneTimePreKeys, FramesPerMessage: MaxMessageFrames,
	}
	if l.TextBytesPerSecond > 0 {
		fl.TextBytesPerSecond, fl.TextByteBurst = l.TextBytesPerSecond, l.TextBytesBurst
	}
	if l.AckIDsPerSecond > 0 {
		fl.AckIDsPerSecond, fl.AckIDBurst = l.AckIDsPerSecond, l.AckIDBurst
	}
	if s.blobs != nil {
		fl.MaxBlobBytes = l.MaxBlobBytes
		fl.BlobRunChunks = relay.BlobRunChunks
		fl.BlobCRC32C = true
	}
	fl.QuietAcks = true
	return fl
}

// handle runs one decoded frame. It returns false to close the connection.

// decodeSendReq is the relay's fast path for send frames: relay.DecodeSendInto into a
// pooled request (the body into its reused buffer). It accepts only what
// relay.DecodeFrame accepts, with the same values; anything else, valid or not, is
// left to DecodeFrame. to and clientID are views into b.
func decodeSendReq(b []byte) (r *sendReq, to, clientID []byte, ttl int64, ok bool) {
	if !bytes.HasPrefix(b, sendPrefix) {
		return nil, nil, nil, 0, false
	}
	r = newSendReq()
	f, ok := relay.DecodeSendInto(b, r.body)
	if !ok {
		r.release()
		return nil, nil, nil, 0, false
	}
	r.body = f.Body // keep a grown buffer (release drops one too big to pool)
	r.reqID = f.ID
	r.msg.Body = f.Body
	return r, f.To, f.ClientID, f.TTL, true
}

// decodeAckReq is the relay's fast path for ack frames: relay.DecodeAckInto into a
// pooled request. It accepts only what relay.DecodeFrame accepts, with the same
// values; anything else is left to DecodeFrame.
func decodeAckReq(b []byte) (*ackReq, bool) {
	if !bytes.HasPrefix(b, ackPrefix) {
		return nil, false
	}
	a := newAckReq()
	id, ids, ok := relay.DecodeAckInto(b, a.ids)
	a.ids = ids
	if !ok {
		a.release()
		return nil, false
	}
	a.reqID = id
	return a, true
}
