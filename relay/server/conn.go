package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
)

var errQueueClosed = errors.New("relay: connection closed")

// conn is one client connection. Its read loop owns the fields below "reader state";
// the delivery fields are shared with the committer (via the hub) under dmu.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	br     *bufio.Reader // gorilla's read buffer (nil if gorilla made its own)
	waiter *readWaiter   // nil where unsupported
	park   *parkConn     // under tls.Conn when served through ParkingListener, else nil
	id     uint64
	out    *outQueue

	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	inflight   chan struct{} // semaphore: sends waiting for the group commit
	readerDone chan struct{}
	// readCap, when not zero, is the latest read deadline (Unix nanoseconds) the read
	// loop may set. stopReading and linger set it: without it a ping or a frame arriving
	// at that moment would push their deadline out again, and a shutdown would wait for
	// ever on a client that keeps pinging.
	readCap    atomic.Int64
	closeOnce  sync.Once
	slowOnce   atomic.Bool
	killed     atomic.Bool // closed for abuse: linger before closing the socket
	addrKey    string      // the source address the connection caps count it under
	loginTimer *time.Timer // login deadline, until logged in

	// reader state
	challenge   [relay.ChallengeSize]byte
	nonce       [relay.NonceSize]byte   // the client's, from the URL
	binding     [relay.BindingSize]byte // TLS exporter, or zeros
	bindingMode string                  // relay.Binding*
	version     int
	bucket      tokenBucket
	textBytes   tokenBucket // text_bytes_per_second
	ackIDs      tokenBucket // ack_ids_per_second, for ids beyond ackCredit
	// ackCreditUsed is how many of the deliveries written to this connection its acks
	// have spent (see delivered).
	ackCreditUsed int64
	loginFailures int
	rateStrikes   int
	strikesBefore int      // rateStrikes before the frame being handled took one back
	acct          *account // nil until logged in
	blob          blobConn // blobs.go; the read loop's
	// messageStart is when the message being read began (zero between messages); the
	// ping and pong handlers, which run inside its reads, read it too (reader.go).
	messageStart time.Time
	// messageDeadlineSet: the read deadline is the message's own, to be put back to
	// the idle deadline when the message ends.
	messageDeadlineSet bool
	idleSetAt          time.Time     // when the idle read deadline was last pushed out
	msgReader          msgReader     // the message being read, as onMessage reads it
	readTimeout        time.Duration // the idle read deadline's length
	// cardID is acct's card ID for other goroutines (Notify): a card replaced on
	// another connection closes this one.
	cardID atomic.Pointer[string]
	// acctGone: the account this connection logged in with is being deleted. Set on
	// its every connection here before the deletion commits, so that no ack of theirs
	// is committed after it (the committer drops them: a new owner of the name could
	// otherwise lose messages to acks the old one sent ahead) and nothing more is
	// delivered to them.
	acctGone atomic.Bool
	// loginDeletions is the server's deletion count when this connection's login began
	// (loggedIn looks again if an account was deleted meanwhile).
	loginDeletions uint64
	// closeSent: gorilla has answered a protocol error with its own close frame (1002),
	// so the write loop sends none at teardown.
	closeSent  atomic.Bool
	unsub      func()
	recipients map[string]string // names this connection sent to: known to exist
	// recipientsGen is Server.deletions when recipients was last cleared.
	recipientsGen uint64

	// delivery state
	dmu         sync.Mutex
	backfilling bool  // backlog goroutine still catching up; live pushes wait for it
	missed      bool  // a live message arrived while backfilling
	lastQueued  int64 // highest message id the backlog handed to the writer
	// liveSent holds the ids above lastQueued handed to the writer and not yet acked by
	// the client, when the hub can lose a live push (a Resyncer hub, across relay
	// nodes): Resync then delivers what the store has and this connection has not.
	// nil on one node, where nothing is tracked.
	liveSent map[int64]struct{}
	// resyncing: a Resync of this connection is under way. Its page may have been read
	// before an ack was committed, so ids acked meanwhile stay in liveSent until it
	// ends (forgetLater), or it would hand them over again.
	resyncing   bool
	forgetLater []int64
	// recentAcked holds the ids of the last ackedRing messages acked on this
	// connection. A message may come again after its ack: a hub push that was merely
	// slow (a Resync brought it first), or a push or a Resync read that repeats it (a
	// NATS server lost, a new stream leader that had not applied the ack yet); it is
	// not handed over a second time. Allocated with the first ack.
	recentAcked *[ackedRing]int64
	ackedNext   int

	// delivered counts the deliver frames written to this connection: each lets its
	// acks name one id without spending ack_ids_per_second (submitAck).
	delivered atomic.Int64

	// writer-role state, handed from the committer's answer writer (writeInline) to a
	// writer goroutine
	wpending []byte    // bytes of a batch the socket did not take: written first
	wbatch   []outItem // a drained batch not yet written
	wfailed  bool      // a write failed: drop everything until the queue closes
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s: s, ws: ws, id: s.nextID.Add(1),
		ctx:        ctx,
		cancel:     cancel,
		inflight:   make(chan struct{}, s.limits.MaxInflightSends),
		readerDone: make(chan struct{}),
		version:    relay.ProtocolVersion,
		bucket:     newTokenBucket(s.limits.FramesPerSecond, s.limits.FrameBurst, s.now()),
		textBytes:  newTokenBucket(s.limits.TextBytesPerSecond, s.limits.TextBytesBurst, s.now()),
		ackIDs:     newTokenBucket(s.limits.AckIDsPerSecond, s.limits.AckIDBurst, s.now()),
	}
	write := c.writeLoop // one method value: `go c.writeLoop()` would allocate a closure per start
	c.out = newOutQueue(s.limits.OutboundQueue, func() { go write() })
	rand.Read(c.challenge[:]) // never fails (Go 1.24+: a broken OS source aborts the program)
	c.startLoginDeadline()    // before any goroutine of the connection can read loginTimer
	return c
}

// close ends the connection: pushes stop, the writer flushes what is queued and closes.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.out.close()
	})
}

// kill closes at once, dropping queued frames, with an error frame and a close frame
// (1008) naming the reason (protocol abuse, a replaced card). When a limit ended the
// connection, limit names it: the error frame's "limit", and the close frame's reason
// after the code (PROTOCOL.md "Limits and abuse"). Messages stay in the store,
// unacknowledged, and are delivered on the next connection.
func (c *conn) kill(code, limit, reason string) {
	c.s.m.errorSent(code)
	c.s.log.Info("closing connection", "conn", c.id, "code", code, "limit", limit)
	c.killed.Store(true)
	c.closeOnce.Do(c.cancel)
	closeReason := code + ": " + reason
	if limit != "" {
		closeReason = code + ": " + limit + ": " + reason
	}
	c.out.closeWith(
		outItem{raw: relay.EncodeFrame(&relay.Frame{Type: relay.TypeError, Code: code, Limit: limit, Message: reason + "; closing the connection"})},
		outItem{opcode: opClose, raw: websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(closeReason, 120))})
}

func (c *conn) stopReading() { c.capReads(time.Unix(1, 0)) }

// capReads makes t the latest read deadline from now on and sets it.
func (c *conn) capReads(t time.Time) {
	n := t.UnixNano()
	for {
		old := c.readCap.Load()
		if old != 0 && old <= n {
			n = old
			break
		}
		if c.readCap.CompareAndSwap(old, n) {
			break
		}
	}
	c.ws.SetReadDeadline(time.Unix(0, n))
}

// extendReads sets the read deadline to t, or to the cap if that is earlier. The cap is
// read after the deadline is set: a capReads racing with it either sees its deadline
// overwritten by its own, later SetReadDeadline, or is seen here.
func (c *conn) extendReads(t time.Time) {
	c.ws.SetReadDeadline(t)
	if limit := c.readCap.Load(); limit != 0 && t.UnixNano() > limit {
		c.ws.SetReadDeadline(time.Unix(0, limit))
	}
}

func (c *conn) goingAway() {
	c.out.forcePush(outItem{raw: relay.EncodeFrame(&relay.Frame{Type: relay.TypeGoingAway, Code: relay.CodeGoingAway, Message: "relay is shutting down; reconnect later"})})
	c.close()
}

// Replies; they may be called from any goroutine.

func (c *conn) send(f *relay.Frame) {
	c.s.m.frameOut(f.Type)
	if f.Type == relay.TypeError {
		c.s.m.errorSent(f.Code)
	}
	if !c.out.tryPush(outItem{raw: relay.EncodeFrame(f)}) {
		c.slow()
	}
}

func (c *conn) slow() {
	// A push also fails on a closed queue: the connection is already closing (killed,
	// logged out, shut down) and its writer is sending the last frames — an error frame
	// naming why and a close frame. Cutting the socket now would lose them.
	if c.out.isClosed() {
		return
	}
	if !c.slowOnce.CompareAndSwap(false, true) {
		return
	}
	c.s.m.slowReaders.Add(1)
	c.s.m.errorSent(relay.CodeSlowReader)
	c.s.log.Info("closing connection", "conn", c.id, "code", relay.CodeSlowReader)
	c.close()
	// The peer is not reading, so no close frame would reach it: cut the connection.
	// Its messages stay queued and are delivered on its next connection.
	c.ws.Close()
}

func (c *conn) replyError(reqID uint64, code, msg, limit string) {
	c.send(&relay.Frame{Type: relay.TypeError, ID: reqID, Code: code, Message: msg, Limit: limit})
}

func (c *conn) replyOK(reqID uint64) { c.replyOKTo(nil, reqID) }

// replyOKTo is replyOK from the committer, which writes it itself when ws is set (see
// writeSet).
func (c *conn) replyOKTo(ws *writeSet, reqID uint64) {
	c.s.m.frameOut(relay.TypeOK)
	if !c.pushTo(ws, outItem{kind: itemOK, reqID: reqID}) {
		c.slow()
	}
}

// replyAccepted answers a send; the committer passes its writeSet (or nil).
func (c *conn) replyAccepted(ws *writeSet, reqID uint64, msgID int64, dup bool) {
	c.s.m.frameOut(relay.TypeAccepted)
	kind := byte(itemAccepted)
	if dup {
		kind = itemAcceptedDup
	}
	if !c.pushTo(ws, outItem{kind: kind, reqID: reqID, msgID: msgID}) {
		c.slow()
	}
}

// pushTo is out.tryPush, except that with ws set, on a connection the committer can
// write to without blocking, a push that would start a writer goroutine instead adds
// c to ws: the committer then writes c's queue itself once the round is answered.
func (c *conn) pushTo(ws *writeSet, it outItem) bool {
	if ws == nil || !c.inlineWrites() {
		return c.out.tryPush(it)
	}
	ok, start := c.out.tryPushTake(it)
	if start {
		*ws = append(*ws, c)
	}
	return ok
}

// inlineWrites reports whether the committer may write to c itself: a plain socket
// it can write to without blocking (not TLS, whose records only tls.Conn can write).
func (c *conn) inlineWrites() bool { return c.waiter != nil && c.park == nil }

func (c *conn) releaseSend() { <-c.inflight }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
