package cluster

// Operations of a relay node on JetStream: /healthz says whether the node reaches NATS
// and JetStream, /metrics adds the publish latency and JetStream errors. Ops wraps the
// relay's handlers and its queue, so the relay's own code needs no hook.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"pfschat/relay/server"
	"pfschat/storage"
)

// Ops measures a node's JetStream work and reports its health.
type Ops struct {
	conn *Conn
	// streams are checked for a quorum by Health (a server that was JetStream's leader
	// may go on answering account info for a while after it lost its quorum).
	streams []string
	// healthTimeout bounds /healthz's JetStream round trip.
	healthTimeout time.Duration

	publishes atomic.Uint64     // Enqueue calls that returned (ok or not)
	published atomic.Uint64     // messages in them
	latency   *server.Histogram // seconds per Enqueue (the publishes and their acks)
	errors    [len(opNames)]atomic.Uint64
	hub       *Hub // its resync and drop counters, when set (OpenNode)
}

// The queue operations Ops counts errors of, as the op label of
// pfschat_jetstream_errors_total.
const (
	opEnqueue = iota
	opPending
	opAck
	opPurge
	opHealth
)

var opNames = [...]string{"enqueue", "pending", "ack", "purge", "health"}

// NewOps returns the operations view of c.
func NewOps(c *Conn) *Ops {
	return &Ops{conn: c, healthTimeout: 2 * time.Second,
		latency: server.NewHistogram(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)}
}

// Health is nil when the node is connected to NATS and JetStream answers; otherwise it
// says what is wrong. disconnected is true when the node cannot reach NATS at all.
func (o *Ops) Health(ctx context.Context) (disconnected bool, err error) {
	if !o.conn.Connected() {
		return true, fmt.Errorf("nats: not connected (%v)", o.conn.NATS().Status())
	}
	ctx, cancel := context.WithTimeout(ctx, o.healthTimeout)
	defer cancel()
	if _, err := o.conn.JetStream().AccountInfo(ctx); err != nil {
		o.errors[opHealth].Add(1)
		return false, fmt.Errorf("jetstream: %w", err)
	}
	for _, name := range o.streams {
		if err := o.quorum(ctx, name); err != nil {
			o.errors[opHealth].Add(1)
			return false, fmt.Errorf("jetstream: %w", err)
		}
	}
	return false, nil
}

// CheckQuorum makes Health check that the named streams (or a key-value bucket's,
// KV_<bucket>) have a leader and a quorum of current replicas.
func (o *Ops) CheckQuorum(streams ...string) { o.streams = append(o.streams, streams...) }

// quorum checks that stream name has a leader and, replicated, a quorum of current
// replicas.
func (o *Ops) quorum(ctx context.Context, name string) error {
	s, err := o.conn.JetStream().Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	c := s.CachedInfo().Cluster
	if c == nil || len(c.Replicas) == 0 { // not replicated
		return nil
	}
	if c.Leader == "" {
		return fmt.Errorf("stream %s has no leader", name)
	}
	up, n := 1, len(c.Replicas)+1
	for _, r := range c.Replicas {
		if r.Current && !r.Offline {
			up++
		}
	}
	if up < n/2+1 {
		return fmt.Errorf("stream %s: %d of its %d servers current, no quorum", name, up, n)
	}
	return nil
}

// Handler serves /healthz and /metrics in front of next (the relay's admin handler):
//   - /healthz answers 503 "unavailable: nats: …" while the node cannot reach NATS (a
//     load balancer then sends clients to another node), 200 "degraded: jetstream: …"
//     while NATS is reached but JetStream does not answer (no quorum: sends are refused
//     unavailable, but connections, deliveries and acks of what is stored may still
//     work), and otherwise what next says (ok, or the relay's own state);
//   - /metrics is next's, followed by the JetStream figures;
//   - everything else is next's.
func (o *Ops) Handler(next http.Handler) http.Handler { return o.handler(next, true) }

// PublicHandler is Handler without /metrics, for the relay's public port (whose
// /metrics, like everything but /healthz, stays next's).
func (o *Ops) PublicHandler(next http.Handler) http.Handler { return o.handler(next, false) }

func (o *Ops) handler(next http.Handler, metrics bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			disconnected, err := o.Health(r.Context())
			switch {
			case disconnected:
				http.Error(w, "unavailable: "+err.Error(), http.StatusServiceUnavailable)
				return
			case err != nil:
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				io.WriteString(w, "degraded: "+err.Error()+"\n")
				return
			}
		case metrics && r.URL.Path == "/metrics":
			next.ServeHTTP(w, r)
			o.WriteMetrics(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WriteMetrics writes the JetStream figures in the Prometheus text format.
func (o *Ops) WriteMetrics(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	connected := 0
	if o.conn.Connected() {
		connected = 1
	}
	st := o.conn.NATS().Stats()
	p("# HELP pfschat_jetstream_connected Whether this node is connected to NATS.\n# TYPE pfschat_jetstream_connected gauge\npfschat_jetstream_connected %d\n", connected)
	p("# HELP pfschat_jetstream_reconnects_total Reconnections to NATS.\n# TYPE pfschat_jetstream_reconnects_total counter\npfschat_jetstream_reconnects_total %d\n", st.Reconnects)
	p("# HELP pfschat_jetstream_publishes_total Batches published to the message stream (each waits for its acks).\n# TYPE pfschat_jetstream_publishes_total counter\npfschat_jetstream_publishes_total %d\n", o.publishes.Load())
	p("# HELP pfschat_jetstream_published_messages_total Messages in those batches.\n# TYPE pfschat_jetstream_published_messages_total counter\npfschat_jetstream_published_messages_total %d\n", o.published.Load())
	o.latency.Write(p, "pfschat_jetstream_publish_seconds", "Time from publishing a batch to the stream until JetStream acked all of it (or failed).")
	p("# HELP pfschat_jetstream_errors_total JetStream operations that failed, by operation (enqueue: per message not stored).\n# TYPE pfschat_jetstream_errors_total counter\n")
	for i, name := range opNames {
		p("pfschat_jetstream_errors_total{op=%q} %d\n", name, o.errors[i].Load())
	}
	if o.hub != nil {
		reads, delivered := o.hub.Resyncs()
		p("# HELP pfschat_hub_resyncs_total Reads of a connection's queue for live pushes lost between nodes.\n# TYPE pfschat_hub_resyncs_total counter\npfschat_hub_resyncs_total %d\n", reads)
		p("# HELP pfschat_hub_resynced_messages_total Messages those reads delivered: live pushes that had been lost.\n# TYPE pfschat_hub_resynced_messages_total counter\npfschat_hub_resynced_messages_total %d\n", delivered)
		p("# HELP pfschat_hub_dropped_total Hub messages between nodes that could not be sent or read.\n# TYPE pfschat_hub_dropped_total counter\npfschat_hub_dropped_total %d\n", o.hub.Dropped())
	}
}

// Queue returns q measured: the latency of each Enqueue (the publish of a batch until
// JetStream acked it) and the errors of every call. The result has q's methods, the
// optional server extensions included (AckBatch, AckOwned, PurgeRecipient,
// MarkRecipient, PurgeRecipientBefore, Expire, QueueDepth): TestOpsQueueKeepsExtensions
// checks that none is lost, every exported method of Queue's included.
func (o *Ops) Queue(q *Queue) server.Queue { return &measuredQueue{q: q, o: o} }

type measuredQueue struct {
	q *Queue
	o *Ops
}

var (
	_ server.AckBatcher  = (*measuredQueue)(nil)
	_ server.OwnedAcker  = (*measuredQueue)(nil)
	_ server.QueuePurger = (*measuredQueue)(nil)
	// A registration drops what an earlier account of the name left queued
	// (server.StaleQueuePurger): without these two the relay skipped that step.
	_ server.StaleQueuePurger = (*measuredQueue)(nil)
)

func (m *measuredQueue) Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error) {
	start := time.Now()
	res, err := m.q.Enqueue(ctx, msgs)
	m.o.publishes.Add(1)
	m.o.published.Add(uint64(len(msgs)))
	m.o.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		m.o.errors[opEnqueue].Add(1)
		return res, err
	}
	for _, r := range res { // a message JetStream did not take (a limit is no error)
		if errors.Is(r.Err, server.ErrUnavailable) {
			m.o.errors[opEnqueue].Add(1)
		}
	}
	return res, err
}

func (m *measuredQueue) Pending(ctx context.Context, to string, afterID int64, limit int) ([]storage.QueuedMessage, error) {
	res, err := m.q.Pending(ctx, to, afterID, limit)
	m.count(err, opPending)
	return res, err
}

func (m *measuredQueue) Ack(ctx context.Context, to string, ids []int64) error {
	err := m.q.Ack(ctx, to, ids)
	m.count(err, opAck)
	return err
}

func (m *measuredQueue) AckBatch(ctx context.Context, acks map[string][]int64) error {
	err := m.q.AckBatch(ctx, acks)
	m.count(err, opAck)
	return err
}

// AckOwned counts the queue's failures, not owns's refusals (an account deleted on
// another node is no JetStream error).
func (m *measuredQueue) AckOwned(ctx context.Context, acks []server.OwnedAck, owns func(ctx context.Context, name, cardID string) error) []error {
	var mu sync.Mutex
	var refused []error
	errs := m.q.AckOwned(ctx, acks, func(ctx context.Context, name, cardID string) error {
		err := owns(ctx, name, cardID)
		if err != nil {
			mu.Lock()
			refused = append(refused, err)
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		if err != nil && !slices.ContainsFunc(refused, func(r error) bool { return errors.Is(err, r) }) {
			m.o.errors[opAck].Add(1)
		}
	}
	return errs
}

func (m *measuredQueue) PurgeRecipient(ctx context.Context, name string) (int, error) {
	n, err := m.q.PurgeRecipient(ctx, name)
	m.count(err, opPurge)
	return n, err
}

func (m *measuredQueue) MarkRecipient(ctx context.Context, name string) (server.QueueMark, error) {
	mark, err := m.q.MarkRecipient(ctx, name)
	m.count(err, opPurge)
	return mark, err
}

func (m *measuredQueue) PurgeRecipientBefore(ctx context.Context, name string, mark server.QueueMark) (int, error) {
	n, err := m.q.PurgeRecipientBefore(ctx, name, mark)
	m.count(err, opPurge)
	return n, err
}

func (m *measuredQueue) Expire(ctx context.Context, now time.Time) (int, error) {
	return m.q.Expire(ctx, now)
}

func (m *measuredQueue) QueueDepth(ctx context.Context) (int, error) { return m.q.QueueDepth(ctx) }

func (m *measuredQueue) count(err error, op int) {
	if err != nil {
		m.o.errors[op].Add(1)
	}
}
