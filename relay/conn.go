package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
	"pfschat/storage"
)

var errQueueClosed = errors.New("relay: connection closed")

// discardLimit is how much of an oversized frame the relay reads and throws away so it
// can answer frame_too_large and keep the connection; anything bigger closes it.
const discardLimit = 1 << 20

// maxLoginFailures closes a connection that keeps failing key proofs.
const maxLoginFailures = 5

// conn is one client connection. Its read loop owns the fields below "reader state";
// the delivery fields are shared with the committer (via the hub) under dmu.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	br     *bufio.Reader // gorilla's read buffer (nil if gorilla made its own)
	waiter *readWaiter   // nil where unsupported
	id     uint64
	out    *outQueue

	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	inflight   chan struct{} // semaphore: sends waiting for the group commit
	readerDone chan struct{}
	closeOnce  sync.Once
	slowOnce   atomic.Bool

	// reader state
	challenge     [ChallengeSize]byte
	version       int
	bucket        tokenBucket
	loginFailures int
	rateStrikes   int
	acct          *account // nil until logged in
	// cardID is acct's card ID for other goroutines (Notify): a card replaced on
	// another connection closes this one.
	cardID     atomic.Pointer[string]
	unsub      func()
	recipients map[string]string // names this connection sent to: known to exist

	// delivery state
	dmu         sync.Mutex
	backfilling bool  // backlog goroutine still catching up; live pushes wait for it
	missed      bool  // a live message arrived while backfilling
	lastQueued  int64 // highest message id handed to the writer
}

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func newConn(s *Server, ws *websocket.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s: s, ws: ws, id: s.nextID.Add(1),
		ctx:        ctx,
		cancel:     cancel,
		inflight:   make(chan struct{}, s.limits.MaxInflightSends),
		readerDone: make(chan struct{}),
		version:    ProtocolVersion,
		bucket:     newTokenBucket(s.limits.FramesPerSecond, s.limits.FrameBurst, s.now()),
	}
	write := c.writeLoop // one method value: `go c.writeLoop()` would allocate a closure per start
	c.out = newOutQueue(s.limits.OutboundQueue, func() { go write() })
	rand.Read(c.challenge[:]) // never fails (Go 1.24+: a broken OS source aborts the program)
	return c
}

// close ends the connection: pushes stop, the writer flushes what is queued and closes.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.out.close()
	})
}

// kill closes at once, dropping queued frames, with a close frame naming the reason
// (protocol abuse, a replaced card). Messages stay in the store, unacknowledged, and
// are delivered on the next connection.
func (c *conn) kill(code, reason string) {
	c.s.m.errorSent(code)
	c.s.log.Info("closing connection", "conn", c.id, "code", code)
	c.closeOnce.Do(c.cancel)
	c.out.closeWith(
		outItem{raw: encodeFrame(&Frame{Type: TypeError, Code: code, Message: reason + "; closing the connection"})},
		outItem{opcode: opClose, raw: websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(code+": "+reason, 120))})
}

func (c *conn) stopReading() { c.ws.SetReadDeadline(time.Unix(1, 0)) }

func (c *conn) goingAway() {
	c.out.forcePush(outItem{raw: encodeFrame(&Frame{Type: TypeGoingAway, Code: CodeGoingAway, Message: "relay is shutting down; reconnect later"})})
	c.close()
}

// ---- writer ----

// WebSocket opcodes the writer uses (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
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
			buf = appendDeliver(buf, m.ID, m.From, m.FromCardID, m.ReceivedAt.UnixMilli(), m.Body)
			buf = endText(buf, start)
			if it.owner != nil {
				it.owner.release() // encoded: the body may be reused
			}
			c.s.m.frameOut(TypeDeliver)
			c.s.m.delivered.Add(1)
		case it.kind == itemAccepted || it.kind == itemAcceptedDup:
			var start int
			buf, start = beginText(buf)
			buf = appendAccepted(buf, it.reqID, it.msgID, it.kind == itemAcceptedDup)
			buf = endText(buf, start)
		case it.kind == itemOK:
			var start int
			buf, start = beginText(buf)
			buf = appendOK(buf, it.reqID)
			buf = endText(buf, start)
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

// ---- replies (may be called from any goroutine) ----

func (c *conn) send(f *Frame) {
	c.s.m.frameOut(f.Type)
	if f.Type == TypeError {
		c.s.m.errorSent(f.Code)
	}
	if !c.out.tryPush(outItem{raw: encodeFrame(f)}) {
		c.slow()
	}
}

func (c *conn) slow() {
	if !c.slowOnce.CompareAndSwap(false, true) {
		return
	}
	c.s.m.slowReaders.Add(1)
	c.s.m.errorSent(CodeSlowReader)
	c.s.log.Info("closing connection", "conn", c.id, "code", CodeSlowReader)
	c.close()
	// The peer is not reading, so no close frame would reach it: cut the connection.
	// Its messages stay queued and are delivered on its next connection.
	c.ws.Close()
}

func (c *conn) replyError(reqID uint64, code, msg, limit string) {
	c.send(&Frame{Type: TypeError, ID: reqID, Code: code, Message: msg, Limit: limit})
}

func (c *conn) replyOK(reqID uint64) {
	c.s.m.frameOut(TypeOK)
	if !c.out.tryPush(outItem{kind: itemOK, reqID: reqID}) {
		c.slow()
	}
}

func (c *conn) replyAccepted(reqID uint64, msgID int64, dup bool) {
	c.s.m.frameOut(TypeAccepted)
	kind := byte(itemAccepted)
	if dup {
		kind = itemAcceptedDup
	}
	if !c.out.tryPush(outItem{kind: kind, reqID: reqID, msgID: msgID}) {
		c.slow()
	}
}

func (c *conn) releaseSend() { <-c.inflight }

// Deliver implements Subscriber: a committed message for this connection's card.
func (c *conn) Deliver(m *storage.QueuedMessage) { c.deliver(m, nil) }

// deliver queues m for the writer. When owner is set (m is owner.msg), the queued
// item holds a reference to it, which the writer releases.
func (c *conn) deliver(m *storage.QueuedMessage, owner *sendReq) {
	c.dmu.Lock()
	if c.backfilling {
		c.missed = true // the backlog goroutine will read it from the store
		c.dmu.Unlock()
		return
	}
	if m.ID <= c.lastQueued {
		c.dmu.Unlock()
		return
	}
	if owner != nil {
		owner.refs.Add(1) // before the push: the writer may release it at once
	}
	ok := c.out.tryPush(outItem{msg: m, owner: owner})
	if ok {
		c.lastQueued = m.ID
	} else if owner != nil {
		owner.refs.Add(-1) // never the last: the publisher holds one
	}
	c.dmu.Unlock()
	if !ok {
		c.slow()
	}
}

// Notify implements Subscriber.
func (c *conn) Notify(n Notice) {
	if n.LowPreKeys != nil {
		c.send(&Frame{Type: TypeLowPreKeys, Counts: n.LowPreKeys})
	}
	if n.CardReplaced != "" {
		if id := c.cardID.Load(); id != nil && *id != n.CardReplaced {
			c.kill(CodeCardReplaced, "the card this connection logged in with was replaced; log in with the current card")
		}
	}
}

// backfill streams the stored backlog in order, then hands over to live delivery.
func (c *conn) backfill(name string) {
	defer c.s.wg.Done()
	const page = 256
	// The backlog fills at most half the outbound queue; the rest is for answers.
	backlogMax := max(1, c.s.limits.OutboundQueue/2)
	after := int64(0)
	for {
		msgs, err := c.s.queue.Pending(c.ctx, name, after, page)
		if err != nil {
			if c.ctx.Err() == nil {
				c.s.log.Error("reading backlog", "conn", c.id, "err", err)
				c.send(&Frame{Type: TypeError, Code: CodeInternal, Message: "could not read your queue; reconnect"})
				c.close()
			}
			return
		}
		now := c.s.now()
		for i := range msgs {
			m := &msgs[i]
			after = m.ID
			if !m.ExpiresAt.IsZero() && now.After(m.ExpiresAt) {
				continue
			}
			if err := c.out.push(c.ctx, outItem{msg: m}, backlogMax); err != nil {
				return
			}
		}
		c.dmu.Lock()
		c.lastQueued = after
		if len(msgs) < page {
			if !c.missed {
				c.backfilling = false
				c.dmu.Unlock()
				break
			}
			c.missed = false
		}
		c.dmu.Unlock()
	}
	c.send(&Frame{Type: TypeSynced})
}

// ---- reader ----

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer close(c.readerDone)
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
	lastDeadline := time.Now()
	ws.SetReadDeadline(lastDeadline.Add(readTimeout))
	ws.SetPongHandler(func(string) error {
		ws.SetReadDeadline(time.Now().Add(readTimeout))
		return nil
	})
	// Only the write loop writes: pongs and the close echo go through its queue.
	ws.SetPingHandler(func(data string) error {
		ws.SetReadDeadline(time.Now().Add(readTimeout))
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
		if c.waiter != nil && c.br != nil && c.br.Buffered() == 0 {
			c.waiter.wait()
		}
		mt, r, err := ws.NextReader()
		if err != nil {
			return
		}
		// Refresh the idle deadline at most once a second: it costs a timer update.
		if now := time.Now(); now.Sub(lastDeadline) > time.Second {
			ws.SetReadDeadline(now.Add(readTimeout))
			lastDeadline = now
		}
		if !c.onMessage(mt, r) {
			return
		}
	}
}

//go:noinline
func (c *conn) sendHello() {
	c.send(&Frame{
		Type: TypeHello, Version: ProtocolVersion, Versions: supportedVersions,
		RelayKey: c.s.pub, Challenge: c.challenge[:], Limits: c.s.frameLimits(),
	})
}

// onMessage reads, checks and handles one message. It returns false to close.
//
//go:noinline
func (c *conn) onMessage(mt int, r io.Reader) bool {
	bp := readBufPool.Get().(*[]byte)
	data, tooBig, err := readFrame(r, (*bp)[:0], c.s.limits.MaxFrameBytes)
	if err != nil {
		readBufPool.Put(bp)
		if tooBig {
			c.kill(CodeFrameTooLarge, "frame over "+strconv.Itoa(discardLimit)+" bytes")
		}
		return false
	}
	if ok, retry := c.bucket.allow(c.s.now()); !ok {
		defer readBufPool.Put(bp)
		c.s.m.frameIn("")
		c.rateStrikes++
		if c.rateStrikes > 4*c.s.limits.FrameBurst {
			c.kill(CodeRateLimited, "persistently over the frame rate")
			return false
		}
		c.send(&Frame{Type: TypeError, ID: peekID(data), Code: CodeRateLimited, Limit: "frames_per_second",
			Message: "over " + strconv.Itoa(c.s.limits.FramesPerSecond) + " frames/s; slow down", RetryAfterMS: retry.Milliseconds() + 1})
		return true
	}
	c.rateStrikes = 0
	if tooBig {
		readBufPool.Put(bp)
		c.s.m.frameIn("")
		c.send(&Frame{Type: TypeError, Code: CodeFrameTooLarge, Limit: "max_frame_bytes",
			Message: "frame over " + strconv.Itoa(c.s.limits.MaxFrameBytes) + " bytes"})
		return true
	}
	if mt != websocket.TextMessage {
		readBufPool.Put(bp)
		c.s.m.frameIn("")
		c.send(&Frame{Type: TypeError, Code: CodeBadFrame, Message: "frames are JSON text messages"})
		return true
	}
	if c.acct != nil && bytes.HasPrefix(data, ackPrefix) {
		if a, ok := decodeAckReq(data); ok {
			c.s.m.frameIn(TypeAck)
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
			c.s.m.frameIn(TypeSend)
			more := c.onSendReq(r, r.reqID, to, clientID, ttl)
			if cap(data) <= 64<<10 {
				*bp = data[:0]
				readBufPool.Put(bp)
			}
			return more
		}
	}
	f, err := DecodeFrame(data)
	if cap(data) <= 64<<10 {
		*bp = data[:0]
		readBufPool.Put(bp)
	}
	c.s.m.frameIn(f.Type)
	if err != nil {
		var fe *FrameError
		errors.As(err, &fe)
		c.send(&Frame{Type: TypeError, ID: f.ID, Code: fe.Code, Message: fe.Error()})
		return true
	}
	return c.handle(&f)
}

// readFrame reads one message into buf. A message over max is read up to
// discardLimit and dropped (tooBig, err == nil); beyond that it fails (tooBig, err).
func readFrame(r io.Reader, buf []byte, max int) (data []byte, tooBig bool, err error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) > max {
				n, err := io.Copy(io.Discard, io.LimitReader(r, discardLimit))
				if err != nil {
					return nil, true, err
				}
				if n >= discardLimit {
					return nil, true, errors.New("frame far over the limit")
				}
				return nil, true, nil
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > max {
				return nil, true, nil
			}
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

func (s *Server) frameLimits() *FrameLimits {
	l := s.limits
	return &FrameLimits{
		MaxFrameBytes: l.MaxFrameBytes, MaxBodyBytes: MaxBodySize, MaxQueueCount: l.MaxQueueCount, MaxQueueBytes: l.MaxQueueBytes,
		MaxTTLSeconds: int64(l.MaxTTL / time.Second), FramesPerSecond: l.FramesPerSecond,
		FrameBurst: l.FrameBurst, MaxOneTimePreKey: l.MaxOneTimePreKeys,
	}
}

// handle runs one decoded frame. It returns false to close the connection.
func (c *conn) handle(f *Frame) bool {
	switch f.Type {
	case TypeHello:
		return c.onHello(f)
	case TypePing:
		c.send(&Frame{Type: TypePong, ID: f.ID})
		return true
	case TypeRegister:
		c.onRegister(f)
		return true
	case TypeLookup:
		c.onLookup(f)
		return true
	case TypeLogin:
		return c.onLogin(f)
	case TypeResume:
		c.onResume(f)
		return true
	}
	if c.acct == nil {
		c.replyError(f.ID, CodeNotLoggedIn, f.Type+" needs a logged-in connection: login first", "")
		return true
	}
	switch f.Type {
	case TypeSend:
		return c.onSend(f)
	case TypeAck:
		return c.onAck(f)
	case TypeUploadPreKeys:
		c.onUploadPreKeys(f)
	case TypePreKeyStatus:
		c.onPreKeyStatus(f)
	case TypeFetchBundle:
		c.onFetchBundle(f)
	case TypeReplaceCard:
		c.onReplaceCard(f)
	}
	return true
}

func (c *conn) onHello(f *Frame) bool {
	best := 0
	for _, v := range f.Versions {
		for _, s := range supportedVersions {
			if v == s && v > best {
				best = v
			}
		}
	}
	if best == 0 {
		c.replyError(f.ID, CodeUnsupportedVersion, "this relay speaks protocol versions "+strconv.Itoa(supportedVersions[0])+".."+strconv.Itoa(supportedVersions[len(supportedVersions)-1]), "")
		c.close()
		return false
	}
	c.version = best
	c.send(&Frame{Type: TypeOK, ID: f.ID, Version: best})
	return true
}

// opCtx bounds one store operation done on behalf of a frame.
func (c *conn) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, 10*time.Second)
}

func (c *conn) internal(reqID uint64, what string, err error) {
	c.s.log.Error(what, "conn", c.id, "err", err)
	c.replyError(reqID, CodeInternal, what+" failed on the relay; retry later", "")
}

func (c *conn) onRegister(f *Frame) {
	card, ok := c.parseCard(f)
	if !ok {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	if err := card.SignAsRelay(c.s.priv); err != nil {
		c.internal(f.ID, "signing the card", err)
		return
	}
	export := card.Export()
	err := c.s.dir.CreateAccount(ctx, storage.Account{Name: card.Identity, CardID: card.ID(), Card: []byte(export), CreatedAt: c.s.now().UTC()})
	if errors.Is(err, storage.ErrExists) {
		// A repeated registration of the same card (its answer was lost) succeeds again.
		if acc, aerr := c.s.cachedAccount(ctx, card.Identity); aerr == nil && acc.cardID == card.ID() {
			c.send(&Frame{Type: TypeCard, ID: f.ID, Card: acc.export})
			return
		}
		c.replyError(f.ID, CodeNameTaken, "the name "+strconv.Quote(card.Identity)+" is already registered; pick another", "")
		return
	}
	if err != nil {
		c.internal(f.ID, "storing the card", err)
		return
	}
	c.s.log.Info("registered card", "conn", c.id, "name", card.Identity)
	c.send(&Frame{Type: TypeCard, ID: f.ID, Card: export})
}

// parseCard imports and checks a card from a register or replace_card frame.
func (c *conn) parseCard(f *Frame) (*ratchet.Card, bool) {
	card, err := ratchet.ImportCard(f.Card)
	if err != nil {
		c.replyError(f.ID, CodeBadCard, "card does not parse: "+err.Error(), "")
		return nil, false
	}
	if err := ratchet.ValidateName(card.Identity); err != nil {
		c.replyError(f.ID, CodeInvalidName, "names are 1 to 32 of a-z 0-9 . _ -", "")
		return nil, false
	}
	if err := card.Verify(); err != nil {
		c.replyError(f.ID, CodeBadCard, "card does not verify: "+err.Error(), "")
		return nil, false
	}
	return card, true
}

// namedAccount looks up the account a lookup or bundle request names, answering the
// request with the reason when the name is malformed or unknown.
func (c *conn) namedAccount(ctx context.Context, f *Frame) (*account, bool) {
	if err := ratchet.ValidateName(f.Name); err != nil {
		c.replyError(f.ID, CodeInvalidName, "names are 1 to 32 of a-z 0-9 . _ -", "")
		return nil, false
	}
	acc, err := c.s.cachedAccount(ctx, f.Name)
	if errors.Is(err, storage.ErrNotFound) {
		c.replyError(f.ID, CodeNotFound, "no card registered under "+strconv.Quote(f.Name), "")
		return nil, false
	}
	if err != nil {
		c.internal(f.ID, "looking up the card", err)
		return nil, false
	}
	return acc, true
}

func (c *conn) onLookup(f *Frame) {
	ctx, cancel := c.opCtx()
	defer cancel()
	acc, ok := c.namedAccount(ctx, f)
	if !ok {
		return
	}
	c.send(&Frame{Type: TypeCard, ID: f.ID, Card: acc.export})
}

func (c *conn) onLogin(f *Frame) bool {
	if c.acct != nil {
		c.replyError(f.ID, CodeAlreadyLoggedIn, "this connection is already logged in", "")
		return true
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	a, err := c.s.dir.AccountByCardID(ctx, f.CardID)
	var acc *account
	if err == nil {
		acc, err = accountFromStore(a)
	}
	if err == nil {
		// Only the name's current card may log in; a replaced card may not.
		var cur *account
		if cur, err = c.s.cachedAccount(ctx, acc.name); err == nil && cur.cardID != acc.cardID {
			err = storage.ErrNotFound
		}
	}
	if err == nil {
		err = ratchet.VerifySignature(acc.card.SigningKey, LoginDomain, loginMessage(c.s.pub, c.challenge[:]), f.Signature)
	}
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, ratchet.ErrBadSignature) {
			c.internal(f.ID, "checking the login", err)
			return true
		}
		c.loginFailures++
		c.replyError(f.ID, CodeLoginFailed, "unknown card or bad key proof (sign LoginDomain ‖ relay key ‖ this connection's challenge)", "")
		if c.loginFailures >= maxLoginFailures {
			c.close()
			return false
		}
		return true
	}
	c.loggedIn(ctx, f.ID, acc)
	return true
}

func (c *conn) onResume(f *Frame) {
	if c.acct != nil {
		c.replyError(f.ID, CodeAlreadyLoggedIn, "this connection is already logged in", "")
		return
	}
	name, cardID, err := parseToken(c.s.pub, f.Token, c.s.now())
	if err != nil {
		c.replyError(f.ID, CodeBadToken, err.Error()+"; log in with a key proof", "")
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	c.s.accounts.Delete(name) // resume re-reads: a replaced card must not resume
	acc, err := c.s.cachedAccount(ctx, name)
	if err != nil || acc.cardID != cardID {
		c.replyError(f.ID, CodeBadToken, "the token's card is no longer current; log in with a key proof", "")
		return
	}
	c.loggedIn(ctx, f.ID, acc)
}

func (c *conn) loggedIn(ctx context.Context, reqID uint64, acc *account) {
	c.acct = acc
	c.cardID.Store(&acc.cardID)
	c.s.m.loggedIn.Add(1)
	c.s.log.Debug("logged in", "conn", c.id, "name", acc.name)
	expires := c.s.now().Add(c.s.limits.TokenTTL)
	c.send(&Frame{Type: TypeOK, ID: reqID, Name: acc.name, CardID: acc.cardID,
		Token: issueToken(c.s.priv, acc.name, acc.cardID, expires), TokenExpires: expires.Unix()})

	c.dmu.Lock()
	c.backfilling = true
	c.dmu.Unlock()
	// Subscribe before reading the backlog so nothing committed in between is missed.
	c.unsub = c.s.hub.Subscribe(acc.name, c)
	c.s.wg.Add(1)
	go c.backfill(acc.name)

	if n, err := c.s.dir.CountPreKeys(ctx, acc.cardID, uint8(ratchet.OneTimePreKey)); err == nil && n < c.s.limits.LowPreKeyThreshold {
		if counts, err := c.s.preKeyCounts(ctx, acc.cardID); err == nil {
			c.send(&Frame{Type: TypeLowPreKeys, Counts: counts})
		}
	}
}

func (c *conn) onSend(f *Frame) bool {
	r := newSendReq()
	r.reqID = f.ID
	r.msg.To = f.To
	r.msg.ClientID = f.ClientID
	r.msg.Body = f.Body
	return c.submitSend(r, f.TTL)
}

// onSendReq handles a send decoded by decodeSendReq, whose strings are still views
// into the frame (valid until this returns).
func (c *conn) onSendReq(r *sendReq, reqID uint64, to, clientID []byte, ttl int64) bool {
	r.reqID = reqID
	if name, ok := c.recipients[string(to)]; ok {
		r.msg.To = name
	} else {
		r.msg.To = string(to)
	}
	r.msg.ClientID = string(clientID)
	return c.submitSend(r, ttl)
}

// maxRecipients bounds a connection's cache of recipient names.
const maxRecipients = 256

// submitSend checks a send and hands it to the committer. r holds the request's id,
// recipient, client id and body; submitSend owns it from here.
func (c *conn) submitSend(r *sendReq, ttlSeconds int64) bool {
	to := r.msg.To
	_, known := c.recipients[to]
	if !known {
		if err := ratchet.ValidateName(to); err != nil {
			c.replyError(r.reqID, CodeInvalidName, "recipient names are 1 to 32 of a-z 0-9 . _ -", "")
			r.release()
			return true
		}
	}
	ttl := c.s.limits.MaxTTL
	if ttlSeconds > 0 {
		if time.Duration(ttlSeconds) > c.s.limits.MaxTTL/time.Second {
			c.replyError(r.reqID, CodeTTLTooLong, "ttl over "+strconv.FormatInt(int64(c.s.limits.MaxTTL/time.Second), 10)+" seconds", "max_ttl")
			r.release()
			return true
		}
		ttl = time.Duration(ttlSeconds) * time.Second
	}
	if !known {
		var err error
		if _, cached := c.s.accounts.Load(to); !cached { // the usual case costs no context
			ctx, cancel := c.opCtx()
			_, err = c.s.cachedAccount(ctx, to)
			cancel()
		}
		if errors.Is(err, storage.ErrNotFound) {
			c.replyError(r.reqID, CodeNotFound, "no card registered under "+strconv.Quote(to), "")
			r.release()
			return true
		}
		if err != nil {
			c.internal(r.reqID, "looking up the recipient", err)
			r.release()
			return true
		}
		// Names are never deleted: once known, a recipient stays valid.
		if c.recipients == nil || len(c.recipients) >= maxRecipients {
			c.recipients = make(map[string]string)
		}
		c.recipients[to] = to
	}
	now := c.s.now().UTC()
	r.c = c
	r.msg.From = c.acct.name
	r.msg.FromCardID = c.acct.cardID
	r.msg.ReceivedAt = now
	r.msg.ExpiresAt = now.Add(ttl)
	select {
	case c.inflight <- struct{}{}:
	case <-c.ctx.Done():
		r.release()
		return false
	}
	select {
	case c.s.cm.sends <- r:
	case <-c.s.cm.done: // shutting down: the send was not stored
		c.releaseSend()
		c.replyError(r.reqID, CodeGoingAway, "relay is shutting down; resend after reconnecting", "")
		r.release()
	}
	return true
}

func (c *conn) onAck(f *Frame) bool {
	a := newAckReq()
	a.reqID = f.ID
	a.ids = append(a.ids, f.IDs...)
	return c.submitAck(a)
}

// submitAck hands an ack to the committer, which owns it from here.
func (c *conn) submitAck(a *ackReq) bool {
	a.c, a.to = c, c.acct.name
	select {
	case c.s.cm.acks <- a:
	case <-c.s.cm.done:
		c.replyError(a.reqID, CodeGoingAway, "relay is shutting down; the messages will come again", "")
		a.release()
	}
	return true
}

// preKeyKindNames are the JSON names of the prekey kinds in counts maps.
var preKeyKindNames = map[ratchet.PreKeyKind]string{
	ratchet.SignedPreKey:  "signed",
	ratchet.OneTimePreKey: "one_time",
	ratchet.KEMLastResort: "kem_last_resort",
	ratchet.KEMOneTime:    "kem_one_time",
}

var allPreKeyKinds = []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.OneTimePreKey, ratchet.KEMLastResort, ratchet.KEMOneTime}

func (s *Server) preKeyCounts(ctx context.Context, cardID string) (map[string]int, error) {
	counts := make(map[string]int, 4)
	for _, k := range allPreKeyKinds {
		n, err := s.dir.CountPreKeys(ctx, cardID, uint8(k))
		if err != nil {
			return nil, err
		}
		counts[preKeyKindNames[k]] = n
	}
	return counts, nil
}

func (c *conn) onUploadPreKeys(f *Frame) {
	card := c.acct.card
	keys := make([]storage.StoredPreKey, 0, len(f.PreKeys))
	newOneTime := map[ratchet.PreKeyKind]int{}
	for i, raw := range f.PreKeys {
		pk, err := ratchet.ParsePublicPreKey(raw)
		if err != nil {
			c.replyError(f.ID, CodeBadPreKey, "prekey "+strconv.Itoa(i)+" does not parse: "+err.Error(), "")
			return
		}
		if err := pk.Verify(card); err != nil {
			c.replyError(f.ID, CodeBadPreKey, "prekey "+strconv.Itoa(i)+" does not verify against your card: "+err.Error(), "")
			return
		}
		if pk.Kind == ratchet.OneTimePreKey || pk.Kind == ratchet.KEMOneTime {
			newOneTime[pk.Kind]++
		}
		keys = append(keys, storage.StoredPreKey{Kind: uint8(pk.Kind), ID: pk.ID, Data: raw})
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	max := c.s.limits.MaxOneTimePreKeys
	for kind, n := range newOneTime {
		have, err := c.s.dir.CountPreKeys(ctx, c.acct.cardID, uint8(kind))
		if err != nil {
			c.internal(f.ID, "counting prekeys", err)
			return
		}
		if have+n > max {
			c.replyError(f.ID, CodeTooManyPreKeys, strconv.Itoa(have)+" "+preKeyKindNames[kind]+" prekeys stored, "+strconv.Itoa(n)+" more would exceed "+strconv.Itoa(max), "max_one_time_prekeys")
			return
		}
	}
	if _, err := c.s.dir.PutPreKeys(ctx, c.acct.cardID, keys, max); err != nil {
		c.internal(f.ID, "storing prekeys", err)
		return
	}
	c.replyPreKeyStatus(ctx, f.ID)
}

func (c *conn) onPreKeyStatus(f *Frame) {
	ctx, cancel := c.opCtx()
	defer cancel()
	c.replyPreKeyStatus(ctx, f.ID)
}

func (c *conn) replyPreKeyStatus(ctx context.Context, reqID uint64) {
	counts, err := c.s.preKeyCounts(ctx, c.acct.cardID)
	if err != nil {
		c.internal(reqID, "counting prekeys", err)
		return
	}
	otk, err := c.s.dir.PreKeyIDs(ctx, c.acct.cardID, uint8(ratchet.OneTimePreKey))
	if err != nil {
		c.internal(reqID, "listing prekeys", err)
		return
	}
	kem, err := c.s.dir.PreKeyIDs(ctx, c.acct.cardID, uint8(ratchet.KEMOneTime))
	if err != nil {
		c.internal(reqID, "listing prekeys", err)
		return
	}
	if otk == nil {
		otk = []uint32{}
	}
	c.send(&Frame{Type: TypePreKeyStatus, ID: reqID, Counts: counts, OneTimeIDs: otk, KEMOneTimeIDs: kem})
}

func (c *conn) onFetchBundle(f *Frame) {
	ctx, cancel := c.opCtx()
	defer cancel()
	acc, ok := c.namedAccount(ctx, f)
	if !ok {
		return
	}
	b, code, err := c.s.bundle(ctx, acc)
	if code != "" {
		c.replyError(f.ID, code, f.Name+" has not published the prekeys a session needs yet; ask them to come online", "")
		return
	}
	if err != nil {
		c.internal(f.ID, "building the bundle", err)
		return
	}
	c.send(&Frame{Type: TypeBundle, ID: f.ID, Bundle: b})
}

// bundle assembles a prekey bundle, taking one-time keys atomically (each handed out
// once), and tells the owner when its one-time keys run low.
func (s *Server) bundle(ctx context.Context, acc *account) ([]byte, string, error) {
	parse := func(sp storage.StoredPreKey) (ratchet.PublicPreKey, error) { return ratchet.ParsePublicPreKey(sp.Data) }
	spk, err := s.dir.LatestPreKey(ctx, acc.cardID, uint8(ratchet.SignedPreKey))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, CodeNoPreKeys, nil
	}
	if err != nil {
		return nil, "", err
	}
	b := &ratchet.Bundle{Card: acc.card}
	if b.SignedPreKey, err = parse(spk); err != nil {
		return nil, "", err
	}
	kem, err := s.dir.TakePreKey(ctx, acc.cardID, uint8(ratchet.KEMOneTime))
	if errors.Is(err, storage.ErrNotFound) {
		kem, err = s.dir.LatestPreKey(ctx, acc.cardID, uint8(ratchet.KEMLastResort))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, CodeNoPreKeys, nil
		}
	}
	if err != nil {
		return nil, "", err
	}
	if b.KEMPreKey, err = parse(kem); err != nil {
		return nil, "", err
	}
	otk, err := s.dir.TakePreKey(ctx, acc.cardID, uint8(ratchet.OneTimePreKey))
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, "", err
	default:
		p, err := parse(otk)
		if err != nil {
			return nil, "", err
		}
		b.OneTimePreKey = &p
	}
	if counts, err := s.preKeyCounts(ctx, acc.cardID); err == nil && counts["one_time"] < s.limits.LowPreKeyThreshold {
		s.hub.Notice(acc.name, Notice{LowPreKeys: counts})
	}
	raw, err := b.MarshalBinary()
	return raw, "", err
}

func (c *conn) onReplaceCard(f *Frame) {
	card, ok := c.parseCard(f)
	if !ok {
		return
	}
	if card.Identity != c.acct.name {
		c.replyError(f.ID, CodeForbidden, "you are logged in as "+strconv.Quote(c.acct.name)+" and can only replace that name's card", "")
		return
	}
	if card.ID() == c.acct.cardID {
		c.send(&Frame{Type: TypeCard, ID: f.ID, Card: c.acct.export})
		return
	}
	if err := card.SignAsRelay(c.s.priv); err != nil {
		c.internal(f.ID, "signing the card", err)
		return
	}
	export := card.Export()
	ctx, cancel := c.opCtx()
	defer cancel()
	err := c.s.dir.ReplaceCard(ctx, c.acct.name, storage.Account{Name: c.acct.name, CardID: card.ID(), Card: []byte(export), CreatedAt: c.s.now().UTC()})
	if errors.Is(err, storage.ErrExists) {
		c.replyError(f.ID, CodeBadCard, "that card is already registered", "")
		return
	}
	if err != nil {
		c.internal(f.ID, "replacing the card", err)
		return
	}
	acc := &account{name: c.acct.name, cardID: card.ID(), card: card, export: export}
	c.s.accounts.Store(acc.name, acc)
	c.acct = acc
	c.cardID.Store(&acc.cardID)
	c.s.log.Info("replaced card", "conn", c.id, "name", acc.name)
	c.send(&Frame{Type: TypeCard, ID: f.ID, Card: export})
	// Connections still logged in with the old card (another device, or whoever holds
	// the key being replaced) must stop receiving and acknowledging the name's messages.
	c.s.hub.Notice(acc.name, Notice{CardReplaced: acc.cardID})
}
