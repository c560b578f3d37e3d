package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"pfschat/relay"
	"pfschat/storage"
)

// sendReq is one send on its way through the relay: read from a send frame, waiting
// for the group commit, then, once published, shared read-only by the writers of the
// recipient's connections, which encode it as a deliver push. It is pooled together
// with its body buffer, because a message's body and its headers were most of the
// relay's garbage. refs counts its holders: whoever has it before and during the
// commit (the read loop, then the committer), plus each writer it is queued on. The
// last release returns it to the pool. A holder that drops it without releasing
// (a writer whose connection failed) only leaves it to the garbage collector.
type sendReq struct {
	c     *conn
	reqID uint64
	msg   storage.QueuedMessage
	body  []byte // the pooled buffer msg.Body may point into, kept across reuses
	refs  atomic.Int32
	// arrived is when the read loop took the send (for the deliver-latency histogram).
	arrived time.Time
	// escaped: handed to a Hub or Subscriber outside this package, which may keep it;
	// never reused then.
	escaped bool
}

var sendReqs = sync.Pool{New: func() any { return new(sendReq) }}

// maxPooledBody bounds the body buffer a pooled sendReq keeps.
const maxPooledBody = 4 << 10

func newSendReq() *sendReq {
	r := sendReqs.Get().(*sendReq)
	r.refs.Store(1)
	return r
}

// release drops one reference; the last one returns r to the pool.
func (r *sendReq) release() {
	switch n := r.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("relay: sendReq released too often")
	}
	if r.escaped {
		return
	}
	r.c = nil
	r.reqID = 0
	r.arrived = time.Time{}
	r.msg = storage.QueuedMessage{}
	if cap(r.body) > maxPooledBody {
		r.body = nil
	}
	sendReqs.Put(r)
}

// ackReq is one ack frame waiting for the group commit. It is pooled with its ids
// buffer: the committer copies the ids into the recipient's group and releases the
// request once it has answered it.
type ackReq struct {
	c     *conn
	reqID uint64
	to    string
	card  string // the card the connection was logged in with when it sent the ack
	ids   []int64
	n     int // len(ids) when it was added to its group (ids may be reused after)
	entry int // its OwnedAck in the round's list (flushOwnedAcks); -1: dropped
	// dropped: left out of its commit because its connection's account was going
	// (ackGroup.liveIDs); answered as not recorded, never ok.
	dropped bool
}

var ackReqs = sync.Pool{New: func() any { return new(ackReq) }}

// maxPooledIDs bounds the ids buffer a pooled ackReq or ackGroup keeps.
const maxPooledIDs = 1024

func newAckReq() *ackReq { return ackReqs.Get().(*ackReq) }

func (a *ackReq) release() {
	a.c, a.reqID, a.to, a.card, a.n, a.entry, a.dropped = nil, 0, "", "", 0, 0, false
	if cap(a.ids) > maxPooledIDs {
		a.ids = nil
	}
	a.ids = a.ids[:0]
	ackReqs.Put(a)
}

// AckBatcher is an optional Queue extension: delete acks for many recipients in one
// transaction. Without it the committer calls Ack once per recipient per round.
type AckBatcher interface {
	AckBatch(ctx context.Context, acks map[string][]int64) error
}

// OwnedAcker is an optional Queue extension for a queue shared by several relay nodes.
// An account deleted on one node is heard of on the others milliseconds later, and
// meanwhile a connection of it there could ack away the messages of the name's next
// owner (the queue is by name, not by card). An OwnedAcker deletes an ack's messages
// only if, once it has read which of them are queued, owns(ctx, To, CardID) answers
// nil (the card's account still holds the name): every message it deletes was then
// queued while that account held it. errs[i] is acks[i]'s outcome; owns's error when
// it refused. As with Ack, the acks and their ids are the caller's again once it
// returns.
type OwnedAcker interface {
	AckOwned(ctx context.Context, acks []OwnedAck, owns func(ctx context.Context, name, cardID string) error) (errs []error)
}

// OwnedAck is one card's acks of a name's messages.
type OwnedAck struct {
	To, CardID string
	IDs        []int64
}

// errAckerGone is what ackerOwns answers for an ack whose card's account no longer
// holds its name (deleted, the name perhaps another's now).
var errAckerGone = errors.New("relay: the acking card's account no longer holds the name")

// ackerOwns is the check of an OwnedAcker: nil while cardID's account holds name,
// read from the store itself (this node may not have heard of another's deletion).
// The account's current card, or one it replaced since (on this connection or another
// whose notice has not reached this one): the messages are that account's either way,
// and a deleted account's replaced cards are deleted with it. The second read is only
// for a card that is not current.
func (s *Server) ackerOwns(ctx context.Context, name, cardID string) error {
	a, err := s.dir.AccountByName(ctx, name)
	switch {
	case err == nil && a.CardID == cardID:
		return nil
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return err
	}
	r, err := s.dir.ReplacedCard(ctx, cardID)
	switch {
	case err == nil && r.Name == name:
		return nil
	case err == nil || errors.Is(err, storage.ErrNotFound):
		return errAckerGone
	}
	return err
}

// Committer is an optional Queue extension: enqueue a batch and delete acks for many
// recipients in one transaction, so a round of the group commit is one commit (one
// fsync) instead of two. A returned error means nothing was committed. As with
// Queue.Enqueue, msgs (bodies included) and acks are the caller's again once it
// returns: copy what is kept.
type Committer interface {
	Commit(ctx context.Context, msgs []storage.QueuedMessage, acks map[string][]int64) ([]storage.EnqueueResult, error)
}

// committer is the relay's single writer. Concurrent sends from every connection queue
// up on its channel while the previous transaction commits, and the next round commits
// them all in one storage transaction (group commit): one fsync for the whole batch.
// Only after the commit returns does anyone hear "accepted" or see a deliver push.
type committer struct {
	q        Queue
	hub      Hub
	log      *slog.Logger
	m        *metrics
	maxBatch int
	now      func() time.Time
	expire   func(ctx context.Context, now time.Time) (int, error)
	// owns is the check an OwnedAcker runs before it deletes (Server.ackerOwns).
	owns func(ctx context.Context, name, cardID string) error

	sends chan *sendReq
	acks  chan *ackReq

	ackGroups  map[string]*ackGroup // committer goroutine only
	ackOrder   []string
	ackBatch   map[string][]int64 // reused for Commit and AckBatch
	owned      []OwnedAck         // reused for AckOwned
	freeGroups []*ackGroup        // answered groups, for reuse
	ws         writeSet           // connections whose queues this round's answers started
	written    chan writeSet      // rounds' write sets for the answer writer
	spare      chan writeSet      // write sets it has finished with, for reuse
	quit       chan struct{}
	done       chan struct{}
}

func newCommitter(q Queue, hub Hub, log *slog.Logger, m *metrics, maxBatch int, now func() time.Time,
	expire func(context.Context, time.Time) (int, error)) *committer {
	return &committer{
		q: q, hub: hub, log: log, m: m, maxBatch: maxBatch, now: now, expire: expire,
		sends: make(chan *sendReq, 4*maxBatch),
		acks:  make(chan *ackReq, 4*maxBatch),
		quit:  make(chan struct{}),

		ackGroups: make(map[string]*ackGroup),
		written:   make(chan writeSet, 1),
		spare:     make(chan writeSet, 2),
		done:      make(chan struct{}),
	}
}

// stop finishes every request already handed over, then returns. Callers must make
// sure nobody submits after stop begins (the server stops all read loops first).
func (cm *committer) stop() {
	close(cm.quit)
	<-cm.done
}

func (cm *committer) run() {
	defer close(cm.done)
	answered := make(chan struct{})
	go cm.writeRounds(answered)
	defer func() {
		// Every answer written before done closes: the server tears connections
		// down after that.
		close(cm.written)
		<-answered
	}()
	var expiring sync.WaitGroup
	var expireRunning atomic.Bool
	defer expiring.Wait() // before done closes: the store may be closed after that
	// Background context on purpose: a commit that has started must finish even while
	// the server shuts down, or an "accepted" could be lost.
	ctx := context.Background()
	expireTick := time.NewTicker(time.Hour)
	defer expireTick.Stop()
	cm.runExpire(ctx)

	var sends []*sendReq
	var acks []*ackReq
	batch := make([]storage.QueuedMessage, 0, cm.maxBatch)
	for {
		sends, acks = sends[:0], acks[:0]
		if len(cm.ackOrder) == 0 {
			// Nothing left over: wait for work.
			select {
			case r := <-cm.sends:
				sends = append(sends, r)
			case a := <-cm.acks:
				acks = append(acks, a)
			case <-expireTick.C:
				// Beside the commits: the expiry scan reads on its own connection and
				// deletes in short transactions that take turns with group commits.
				// (The first run, at start, happens before any commit.)
				if !expireRunning.CompareAndSwap(false, true) {
					continue // the previous run is still going
				}
				expiring.Add(1)
				go func() {
					defer expiring.Done()
					defer expireRunning.Store(false)
					cm.runExpire(ctx)
				}()
				continue
			case <-cm.quit:
				cm.drain(ctx, batch)
				return
			}
		} else {
			select {
			case <-cm.quit:
				cm.drain(ctx, batch)
				return
			default:
			}
		}
		sends, acks = cm.collect(sends, acks)
		cm.addAcks(acks)
		if c, ok := cm.q.(Committer); ok {
			batch = cm.commitAll(ctx, c, sends, batch)
		} else {
			batch = cm.commitSends(ctx, sends, batch)
			cm.flushAcks(ctx)
		}
		cm.writeAnswers()
	}
}

// writeSet is the connections whose writer role the committer took while answering a
// round (conn.pushTo): their queues were idle, so instead of a writer goroutine each,
// started per frame and waiting for a P, one goroutine writes them all once the round
// is answered (writeRounds). At a few messages per commit that was three goroutine
// starts per message (accepted, deliver, ok) and, on a busy machine, most of the
// relay's latency tail: the writers waited for a P p99 21 ms.
type writeSet []*conn

// writeAnswers hands the round's answers and deliveries (see writeSet) to the answer
// writer and takes a fresh set for the next round. The writes overlap the next round's
// commit: written by the committer itself, they took a quarter of its time at a few
// messages per commit, and every send arriving meanwhile waited for them too. The
// channel holds one round besides the one being written, so a committer that outruns
// its writes waits here; a connection's frames stay in order because its writer role
// stays with the set until it is written.
func (cm *committer) writeAnswers() {
	if len(cm.ws) == 0 {
		return
	}
	cm.written <- cm.ws
	select {
	case ws := <-cm.spare:
		cm.ws = ws
	default:
		cm.ws = nil
	}
}

// writeRounds is the answer writer: it writes each round's write set in turn, on the
// committer's behalf (conn.writeInline), until run closes cm.written.
func (cm *committer) writeRounds(done chan<- struct{}) {
	defer close(done)
	var buf []byte
	for ws := range cm.written {
		for i, c := range ws {
			buf = c.writeInline(buf)
			ws[i] = nil
		}
		if cap(buf) > writeFlushSize {
			buf = nil
		}
		select {
		case cm.spare <- ws[:0]:
		default:
		}
	}
}

// commitAll commits the round's sends and every waiting ack in one transaction, then
// answers them all. Acks riding along with sends cost no extra commit, so none wait.
func (cm *committer) commitAll(ctx context.Context, c Committer, sends []*sendReq, batch []storage.QueuedMessage) []storage.QueuedMessage {
	if len(sends) == 0 && len(cm.ackOrder) == 0 {
		return batch
	}
	batch = batch[:0]
	for _, r := range sends {
		batch = append(batch, r.msg)
	}
	var acks map[string][]int64
	if len(cm.ackOrder) > 0 {
		acks = cm.ackBatchMap()
	}
	start := time.Now()
	results, err := c.Commit(ctx, batch, acks)
	took := time.Since(start).Seconds()
	if len(sends) > 0 {
		cm.m.commitLatency.observe(took)
		cm.m.commitBatch.observe(float64(len(batch)))
	}
	if acks != nil {
		cm.m.ackLatency.observe(took)
	}
	if err == nil && len(results) != len(sends) {
		err = errors.New("store returned a result count that does not match the batch")
	}
	if err != nil {
		cm.log.Error("group commit failed", "batch", len(sends), "ack_recipients", len(acks), "err", err)
	}
	cm.answerSends(sends, batch, results, err)
	for _, to := range cm.ackOrder {
		cm.answerAcks(cm.ackGroups[to], err)
	}
	cm.recycleGroups()
	return batch
}

// ackBatchMap fills the reused map of every waiting ack by recipient. The store must
// not keep it (see Committer).
func (cm *committer) ackBatchMap() map[string][]int64 {
	if cm.ackBatch == nil {
		cm.ackBatch = make(map[string][]int64)
	}
	clear(cm.ackBatch)
	for to, g := range cm.ackGroups {
		cm.ackBatch[to] = g.liveIDs()
	}
	return cm.ackBatch
}

// liveIDs is the group's ids less those of acks whose connection's account is being
// deleted (conn.acctGone): read here, as the commit is built, so that an ack collected
// before a deletion and committed after it, beside a new owner's first messages, deletes
// none of them. Such an ack is answered as not recorded (its connection is closing, or
// its deletion failed and the messages come again).
func (g *ackGroup) liveIDs() []int64 {
	gone := false
	for _, a := range g.reqs {
		if a.c.acctGone.Load() {
			gone = true
			break
		}
	}
	if !gone {
		return g.ids
	}
	ids := make([]int64, 0, len(g.ids))
	for _, a := range g.reqs {
		if a.dropped = a.c.acctGone.Load(); !a.dropped {
			ids = append(ids, a.ids[:a.n]...)
		}
	}
	return ids
}

// recycleGroups forgets every (answered) ack group, keeping them for reuse.
func (cm *committer) recycleGroups() {
	for _, g := range cm.ackGroups {
		cm.recycleGroup(g)
	}
	clear(cm.ackGroups)
	cm.ackOrder = cm.ackOrder[:0]
	if cm.ackBatch != nil {
		clear(cm.ackBatch) // drop references to the groups' ids
	}
}

const maxFreeGroups = 256

func (cm *committer) recycleGroup(g *ackGroup) {
	if len(cm.freeGroups) >= maxFreeGroups || cap(g.ids) > maxPooledIDs || cap(g.reqs) > maxPooledIDs {
		return
	}
	clear(g.reqs)
	g.ids, g.reqs = g.ids[:0], g.reqs[:0]
	cm.freeGroups = append(cm.freeGroups, g)
}

// drain commits everything still waiting, at shutdown.
func (cm *committer) drain(ctx context.Context, batch []storage.QueuedMessage) {
	var sends []*sendReq
	var acks []*ackReq
	for {
		sends, acks = cm.collect(sends[:0], acks[:0])
		cm.addAcks(acks)
		if len(sends) == 0 && len(cm.ackOrder) == 0 {
			return
		}
		if c, ok := cm.q.(Committer); ok {
			batch = cm.commitAll(ctx, c, sends, batch)
		} else {
			batch = cm.commitSends(ctx, sends, batch)
			cm.flushAcks(ctx)
		}
		cm.writeAnswers()
	}
}

// collect takes every request already waiting, up to the batch size, without blocking.
func (cm *committer) collect(sends []*sendReq, acks []*ackReq) ([]*sendReq, []*ackReq) {
	for len(sends) < cm.maxBatch {
		select {
		case r := <-cm.sends:
			sends = append(sends, r)
			continue
		default:
		}
		break
	}
	for len(acks) < cm.maxBatch {
		select {
		case a := <-cm.acks:
			acks = append(acks, a)
			continue
		default:
		}
		break
	}
	return sends, acks
}

func (cm *committer) commitSends(ctx context.Context, sends []*sendReq, batch []storage.QueuedMessage) []storage.QueuedMessage {
	if len(sends) == 0 {
		return batch
	}
	batch = batch[:0]
	for _, r := range sends {
		batch = append(batch, r.msg)
	}
	start := time.Now()
	results, err := cm.q.Enqueue(ctx, batch)
	cm.m.commitLatency.observe(time.Since(start).Seconds())
	cm.m.commitBatch.observe(float64(len(batch)))
	if err == nil && len(results) != len(sends) {
		err = errors.New("store returned a result count that does not match the batch")
	}
	if err != nil {
		cm.log.Error("group commit failed", "batch", len(sends), "err", err)
	}
	cm.answerSends(sends, batch, results, err)
	return batch
}

// answerSends replies to a committed (or failed) round of sends, publishes the
// newly queued messages and lets go of the requests.
func (cm *committer) answerSends(sends []*sendReq, batch []storage.QueuedMessage, results []storage.EnqueueResult, err error) {
	if err != nil {
		for _, r := range sends {
			r.c.replyError(r.reqID, errorCode(err), "could not store the message; retry with the same client_id", "")
			r.c.releaseSend()
			r.release()
		}
		return
	}
	for i, r := range sends {
		res := results[i]
		switch {
		case errors.Is(res.Err, ErrUnavailable):
			r.c.replyError(r.reqID, relay.CodeUnavailable, "could not store the message now; retry with the same client_id", "")
		case res.Err != nil:
			limit := ""
			var qf *storage.QueueFullError
			if errors.As(res.Err, &qf) {
				limit = qf.Limit
				cm.m.limited(limit) // count, bytes or sender_quota
			}
			r.c.replyError(r.reqID, relay.CodeQueueFull, "the recipient's queue is full; try again later", limit)
		case res.Duplicate:
			cm.m.duplicates.Add(1)
			r.c.replyAccepted(&cm.ws, r.reqID, res.ID, true)
		default:
			cm.m.accepted.Add(1)
			r.c.replyAccepted(&cm.ws, r.reqID, res.ID, false)
			r.msg.ID = res.ID
			cm.publish(r)
		}
		r.c.releaseSend()
		r.release()
	}
}

// publish hands a committed message to the hub. The in-process hub passes the
// request itself to this package's connections, whose writers release it once
// encoded; any other hub or subscriber gets the message and keeps it for good.
func (cm *committer) publish(r *sendReq) {
	if h, ok := cm.hub.(*MemHub); ok {
		h.publishReq(r, &cm.ws)
		return
	}
	if h, ok := cm.hub.(ForwardingHub); ok {
		h.LocalHub().publishReq(r, &cm.ws)
		h.Forward(&r.msg)
		return
	}
	r.escaped = true
	cm.hub.Publish(&r.msg)
}

// ackGroup is every ack waiting for one recipient.
type ackGroup struct {
	ids   []int64
	reqs  []*ackReq
	since time.Time // when the oldest ack in the group arrived
}

// While sends are waiting, at most maxAckTxPerRound per-recipient ack transactions
// run between two send commits, and only for groups older than ackDelayUnderLoad:
// acks (whose delay costs nothing but a possible redelivery) must not hold up
// accepts, and acks for one recipient coalesce while they wait, so under load each
// transaction deletes many ids. With no sends waiting, every ack is committed at once.
const (
	maxAckTxPerRound  = 2
	ackDelayUnderLoad = 500 * time.Millisecond
	// With an AckBatcher all waiting acks take one transaction.
	ackBatchDelayUnderLoad = 20 * time.Millisecond
)

func (cm *committer) addAcks(acks []*ackReq) {
	for _, a := range acks {
		g := cm.ackGroups[a.to]
		if g == nil {
			if n := len(cm.freeGroups); n > 0 {
				g = cm.freeGroups[n-1]
				cm.freeGroups[n-1] = nil
				cm.freeGroups = cm.freeGroups[:n-1]
			} else {
				g = &ackGroup{}
			}
			g.since = time.Now()
			cm.ackGroups[a.to] = g
			cm.ackOrder = append(cm.ackOrder, a.to)
		}
		g.ids = append(g.ids, a.ids...)
		a.n = len(a.ids)
		g.reqs = append(g.reqs, a)
	}
}

// flushAcks commits waiting acks: all of them when the store can batch across
// recipients or when no sends are waiting, otherwise a few recipients, oldest first.
func (cm *committer) flushAcks(ctx context.Context) {
	if len(cm.ackOrder) == 0 {
		return
	}
	if oa, ok := cm.q.(OwnedAcker); ok && cm.owns != nil {
		cm.flushOwnedAcks(ctx, oa)
		return
	}
	if ab, ok := cm.q.(AckBatcher); ok {
		// One transaction for every recipient; under load, only once the oldest ack
		// has waited a little, so most rounds are a single (send) commit.
		if len(cm.sends) > 0 && time.Since(cm.ackGroups[cm.ackOrder[0]].since) < ackBatchDelayUnderLoad {
			return
		}
		batch := cm.ackBatchMap()
		start := time.Now()
		err := ab.AckBatch(ctx, batch)
		cm.m.ackLatency.observe(time.Since(start).Seconds())
		if err != nil {
			cm.log.Error("ack batch failed", "recipients", len(batch), "err", err)
		}
		for _, to := range cm.ackOrder {
			cm.answerAcks(cm.ackGroups[to], err)
		}
		cm.recycleGroups()
		return
	}
	n := len(cm.ackOrder)
	if len(cm.sends) > 0 {
		// Under load: the oldest few groups, once they have waited a little.
		now := time.Now()
		n = 0
		for n < len(cm.ackOrder) && n < maxAckTxPerRound && now.Sub(cm.ackGroups[cm.ackOrder[n]].since) >= ackDelayUnderLoad {
			n++
		}
	}
	for _, to := range cm.ackOrder[:n] {
		g := cm.ackGroups[to]
		start := time.Now()
		err := cm.q.Ack(ctx, to, g.liveIDs())
		cm.m.ackLatency.observe(time.Since(start).Seconds())
		if err != nil {
			cm.log.Error("ack failed", "ids", len(g.ids), "err", err)
		}
		cm.answerAcks(g, err)
		delete(cm.ackGroups, to)
		cm.recycleGroup(g)
	}
	cm.ackOrder = append(cm.ackOrder[:0], cm.ackOrder[n:]...)
}

// flushOwnedAcks commits every waiting ack through an OwnedAcker, as flushAcks does
// through an AckBatcher: all recipients at once, under load once the oldest has
// waited a little.
func (cm *committer) flushOwnedAcks(ctx context.Context, oa OwnedAcker) {
	if len(cm.sends) > 0 && time.Since(cm.ackGroups[cm.ackOrder[0]].since) < ackBatchDelayUnderLoad {
		return
	}
	clear(cm.owned)
	cm.owned = cm.owned[:0]
	for _, to := range cm.ackOrder {
		cm.owned = cm.ackGroups[to].appendOwned(cm.owned, to)
	}
	start := time.Now()
	errs := oa.AckOwned(ctx, cm.owned, cm.owns)
	cm.m.ackLatency.observe(time.Since(start).Seconds())
	if len(errs) != len(cm.owned) {
		errs = make([]error, len(cm.owned))
		for i := range errs {
			errs[i] = errors.New("store returned an ack result count that does not match the batch")
		}
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, errAckerGone) {
			cm.log.Error("ack batch failed", "recipient", cm.owned[i].To, "ids", len(cm.owned[i].IDs), "err", err)
		}
	}
	for _, to := range cm.ackOrder {
		for _, a := range cm.ackGroups[to].reqs {
			var err error
			if a.entry >= 0 {
				err = errs[a.entry]
			}
			cm.answerAck(a, err)
		}
	}
	cm.recycleGroups()
	clear(cm.owned) // drop references to the groups' ids
}

// appendOwned appends the group's acks to out, one OwnedAck per card, leaving out
// those liveIDs leaves out; it records each ack's entry. A group is almost always one
// card's, all of it live: then its ids go as they are, without a copy.
func (g *ackGroup) appendOwned(out []OwnedAck, to string) []OwnedAck {
	one := true
	for _, a := range g.reqs {
		a.dropped = a.c.acctGone.Load()
		one = one && !a.dropped && a.card == g.reqs[0].card
	}
	if one {
		for _, a := range g.reqs {
			a.entry = len(out)
		}
		return append(out, OwnedAck{To: to, CardID: g.reqs[0].card, IDs: g.ids})
	}
	first := len(out)
	for _, a := range g.reqs {
		if a.dropped {
			a.entry = -1
			continue
		}
		k := first
		for k < len(out) && out[k].CardID != a.card {
			k++
		}
		if k == len(out) {
			out = append(out, OwnedAck{To: to, CardID: a.card})
		}
		a.entry = k
		out[k].IDs = append(out[k].IDs, a.ids[:a.n]...)
	}
	return out
}

func (cm *committer) answerAcks(g *ackGroup, err error) {
	for _, a := range g.reqs {
		cm.answerAck(a, err)
	}
}

func (cm *committer) answerAck(a *ackReq, err error) {
	switch {
	case errors.Is(err, errAckerGone):
		a.c.replyError(a.reqID, relay.CodeAccountDeleted, "the account this connection logged in with was deleted: the ack was not recorded", "")
	case err == nil && a.dropped:
		a.c.replyError(a.reqID, relay.CodeAccountDeleted, "could not record the ack; the messages will come again, ack them again", "")
	case err != nil:
		a.c.replyError(a.reqID, errorCode(err), "could not record the ack; the messages will come again, ack them again", "")
	default:
		cm.m.acked.Add(uint64(a.n))
		a.c.forgetAcked(a.ids[:a.n])
		if a.reqID != 0 { // a quiet ack is not answered (PROTOCOL.md "ack")
			a.c.replyOKTo(&cm.ws, a.reqID)
		}
	}
	a.release()
}

func (cm *committer) runExpire(ctx context.Context) {
	if cm.expire == nil {
		return
	}
	n, err := cm.expire(ctx, cm.now())
	if err != nil {
		cm.log.Error("expiring old messages", "err", err)
		return
	}
	if n > 0 {
		cm.log.Info("expired messages past their TTL", "count", n)
	}
}
