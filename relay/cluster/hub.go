package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"pfschat/relay/server"
	"pfschat/storage"
)

// Hub is server.Hub across relay nodes: this node's connections are served by a
// server.MemHub as on one node, and every committed message and notice is also
// published on the core NATS subject of its recipient (<prefix>.h.<name>), which a
// node subscribes to while it has a connection of that name.
//
// Core NATS is at most once: a push can be lost with a node that dies between its
// commit and its publish, or with a NATS server that goes down under a connection.
// The message is still in the queue, and the hub makes its connections read the queue
// again (server.ResyncingHub): all of them at once when this node's NATS connection
// comes back, and each one every ResyncEvery besides, spread over the interval, so a
// connected recipient gets a lost push within that time, not only on its next login.
type Hub struct {
	c      *Conn
	local  *server.MemHub
	subj   string // "<prefix>.h."
	node   [8]byte
	log    *slog.Logger
	in     chan *nats.Msg
	done   chan struct{}
	closed atomic.Bool
	every  time.Duration
	kick   chan struct{} // a reconnect: resync every connection

	mu   sync.Mutex
	subs map[string]*hubSub

	dropped  atomic.Uint64 // malformed or undeliverable hub messages
	resyncs  atomic.Uint64 // connections' reads of the queue for lost pushes
	resynced atomic.Uint64 // messages those reads delivered: pushes that were lost
}

// HubOptions configure NewHubWith.
type HubOptions struct {
	// ResyncEvery is how often each connection of this node reads its queue for
	// pushes lost between nodes (0 = DefaultResyncEvery; < 0 = only after a reconnect
	// to NATS).
	ResyncEvery time.Duration
}

// DefaultResyncEvery bounds how late a lost live push reaches a connected recipient.
// Each connection's read costs one page read from the queue (usually empty): with
// 10,000 connections on a node, 170 reads a second.
const DefaultResyncEvery = time.Minute

// resyncSlices spreads the periodic resync over its interval: each tick resyncs the
// names of one slice.
const resyncSlices = 60

// resyncRetry is how long a failed pass of every connection waits to be tried again.
const resyncRetry = time.Second

var _ server.ResyncingHub = (*Hub)(nil)

type hubSub struct {
	n   int
	sub *nats.Subscription
}

var _ server.ForwardingHub = (*Hub)(nil)

// hubBuffer is how many hub messages from other nodes may wait for the dispatcher.
const hubBuffer = 1 << 16

// NewHub returns the hub of this node with the default options; it runs until ctx
// ends or Close.
func NewHub(ctx context.Context, c *Conn) *Hub { return NewHubWith(ctx, c, HubOptions{}) }

// NewHubWith is NewHub with options. It takes over c's NATS reconnect handler (after
// calling the one set before).
func NewHubWith(ctx context.Context, c *Conn, o HubOptions) *Hub {
	if o.ResyncEvery == 0 {
		o.ResyncEvery = DefaultResyncEvery
	}
	h := &Hub{c: c, local: server.NewMemHub(), subj: c.Prefix() + ".h.", log: slog.New(slog.DiscardHandler),
		in: make(chan *nats.Msg, hubBuffer), done: make(chan struct{}), subs: map[string]*hubSub{},
		every: o.ResyncEvery, kick: make(chan struct{}, 1)}
	rand.Read(h.node[:])
	prev := c.nc.ReconnectHandler()
	c.nc.SetReconnectHandler(func(nc *nats.Conn) {
		if prev != nil {
			prev(nc)
		}
		select {
		case h.kick <- struct{}{}:
		default: // one is pending already
		}
	})
	go h.dispatch(ctx)
	go h.resyncLoop(ctx)
	return h
}

// ResyncsSubscribers implements server.ResyncingHub.
func (h *Hub) ResyncsSubscribers() {}

// Resyncs reports how many times a connection read its queue for lost pushes, and how
// many messages those reads delivered (pushes that had been lost).
func (h *Hub) Resyncs() (reads, delivered uint64) { return h.resyncs.Load(), h.resynced.Load() }

// resyncLoop makes this node's connections read their queues again: all of them after
// a reconnect to NATS (pushes published meanwhile never reached this node), and one
// slice of the names per tick otherwise.
func (h *Hub) resyncLoop(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var tick <-chan time.Time
	if h.every > 0 {
		t := time.NewTicker(max(h.every/resyncSlices, time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	slice := uint32(0)
	var retry <-chan time.Time // a pass of every connection that failed, tried again
	for {
		var match func(string) bool
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		case <-retry:
		case <-tick:
			k := slice
			slice = (slice + 1) % resyncSlices
			match = func(name string) bool { return nameSlice(name) == k }
		}
		reads, n, err := h.local.Resync(ctx, match)
		h.resyncs.Add(uint64(reads))
		if err != nil && ctx.Err() == nil {
			// The queue cannot be read now (right after a reconnect JetStream may still
			// be electing leaders): a pass of every connection is tried again in a
			// second, a slice at its next turn.
			h.log.Warn("hub: reading queues for lost pushes", "err", err)
			if match == nil {
				retry = time.After(resyncRetry)
			}
		} else if match == nil {
			retry = nil
		}
		if n > 0 {
			h.resynced.Add(uint64(n))
			h.log.Info("hub: delivered messages whose live push was lost", "messages", n)
		}
	}
}

// nameSlice is the slice of the periodic resync a name falls in.
func nameSlice(name string) uint32 {
	f := fnv.New32a()
	f.Write([]byte(name))
	return f.Sum32() % resyncSlices
}

// SetLogger logs dropped hub messages to l.
func (h *Hub) SetLogger(l *slog.Logger) { h.log = l }

// Close stops the dispatcher and every subscription.
func (h *Hub) Close() {
	if h.closed.Swap(true) {
		return
	}
	close(h.done)
	h.mu.Lock()
	for name, s := range h.subs {
		s.sub.Unsubscribe()
		delete(h.subs, name)
	}
	h.mu.Unlock()
}

// LocalHub is this node's part (server.ForwardingHub).
func (h *Hub) LocalHub() *server.MemHub { return h.local }

// Subscribe implements server.Hub. The first subscriber of a name on this node
// subscribes to the name's subject, and waits (bounded) until the NATS server has
// the interest, so that a message committed on another node after this returns is
// pushed here.
func (h *Hub) Subscribe(name string, s server.Subscriber) func() {
	cancel := h.local.Subscribe(name, s)
	tok, err := nameToken(name)
	if err != nil {
		return cancel
	}
	h.mu.Lock()
	hs := h.subs[name]
	if hs == nil {
		sub, err := h.c.nc.ChanSubscribe(h.subj+tok, h.in)
		if err != nil {
			h.mu.Unlock()
			h.log.Warn("hub: subscribe", "err", err)
			return cancel
		}
		hs = &hubSub{sub: sub}
		h.subs[name] = hs
		h.mu.Unlock()
		if err := h.c.nc.FlushTimeout(h.c.timeout); err != nil {
			h.log.Warn("hub: flush of a subscription", "err", err)
		}
		h.mu.Lock()
	}
	hs.n++
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			h.mu.Lock()
			defer h.mu.Unlock()
			if cur := h.subs[name]; cur == hs {
				if hs.n--; hs.n == 0 {
					hs.sub.Unsubscribe()
					delete(h.subs, name)
				}
			}
		})
	}
}

// Publish implements server.Hub.
func (h *Hub) Publish(m *storage.QueuedMessage) {
	h.local.Publish(m)
	h.Forward(m)
}

// Forward publishes m to the other nodes (server.ForwardingHub).
func (h *Hub) Forward(m *storage.QueuedMessage) {
	tok, err := nameToken(m.To)
	if err != nil {
		return
	}
	b, err := appendHubMessage(make([]byte, 0, 96+len(m.Body)), h.node, m)
	if err != nil {
		h.dropped.Add(1)
		return
	}
	if err := h.c.nc.Publish(h.subj+tok, b); err != nil {
		h.dropped.Add(1) // the queue has it: the recipient reads it on its next login
	}
}

// Notice implements server.Hub.
func (h *Hub) Notice(name string, n server.Notice) {
	h.local.Notice(name, n)
	tok, err := nameToken(name)
	if err != nil {
		return
	}
	b, err := appendHubNotice(nil, h.node, name, &n)
	if err != nil {
		h.dropped.Add(1)
		return
	}
	if err := h.c.nc.Publish(h.subj+tok, b); err != nil {
		h.dropped.Add(1)
	}
}

// Dropped counts hub messages that could not be sent or read.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

func (h *Hub) dispatch(ctx context.Context) {
	for {
		select {
		case m := <-h.in:
			h.handle(m.Data)
		case <-ctx.Done():
			h.Close()
			return
		case <-h.done:
			return
		}
	}
}

func (h *Hub) handle(data []byte) {
	hm, err := parseHubMessage(data)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("hub: bad message from another node", "err", err)
		return
	}
	if hm.origin == h.node {
		return // served locally already
	}
	if hm.notice != nil {
		h.local.Notice(hm.name, *hm.notice)
		return
	}
	h.local.Publish(&hm.msg)
}

// Hub messages between nodes:
//
//	kind    1 byte: 1 message, 2 notice
//	origin  8 bytes: the publishing node (it ignores its own)
//	message: id 8 bytes big-endian, to (uvarint length, bytes), then the queue envelope
//	notice:  name (uvarint length, bytes), then the notice as JSON
const (
	hubKindMessage = 1
	hubKindNotice  = 2
)

// ErrBadHubMessage is returned for a hub message that does not decode.
var ErrBadHubMessage = errors.New("cluster: bad hub message")

type hubMessage struct {
	origin [8]byte
	name   string
	msg    storage.QueuedMessage
	notice *server.Notice
}

func appendHubMessage(b []byte, origin [8]byte, m *storage.QueuedMessage) ([]byte, error) {
	if m.ID <= 0 || m.To == "" || len(m.To) > maxField {
		return b, fmt.Errorf("%w: message needs an id and a recipient", ErrBadHubMessage)
	}
	b = append(b, hubKindMessage)
	b = append(b, origin[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.ID))
	b = binary.AppendUvarint(b, uint64(len(m.To)))
	b = append(b, m.To...)
	return appendEnvelope(b, m)
}

func appendHubNotice(b []byte, origin [8]byte, name string, n *server.Notice) ([]byte, error) {
	if name == "" || len(name) > maxField {
		return b, fmt.Errorf("%w: notice needs a name", ErrBadHubMessage)
	}
	j, err := json.Marshal(n)
	if err != nil {
		return b, fmt.Errorf("%w: %w", ErrBadHubMessage, err)
	}
	b = append(b, hubKindNotice)
	b = append(b, origin[:]...)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	return append(b, j...), nil
}

func parseHubMessage(data []byte) (hubMessage, error) {
	var hm hubMessage
	if len(data) < 9 {
		return hm, fmt.Errorf("%w: short", ErrBadHubMessage)
	}
	kind := data[0]
	copy(hm.origin[:], data[1:9])
	p := data[9:]
	switch kind {
	case hubKindMessage:
		if len(p) < 8 {
			return hm, fmt.Errorf("%w: no id", ErrBadHubMessage)
		}
		id := int64(binary.BigEndian.Uint64(p))
		if id <= 0 {
			return hm, fmt.Errorf("%w: id %d", ErrBadHubMessage, id)
		}
		to, rest, err := hubString(p[8:])
		if err != nil {
			return hm, err
		}
		if err := parseEnvelope(rest, &hm.msg); err != nil {
			return hm, fmt.Errorf("%w: %w", ErrBadHubMessage, err)
		}
		hm.msg.ID, hm.msg.To, hm.name = id, to, to
		return hm, nil
	case hubKindNotice:
		name, rest, err := hubString(p)
		if err != nil {
			return hm, err
		}
		var n server.Notice
		if err := json.Unmarshal(rest, &n); err != nil {
			return hm, fmt.Errorf("%w: notice: %w", ErrBadHubMessage, err)
		}
		hm.name, hm.notice = name, &n
		return hm, nil
	default:
		return hm, fmt.Errorf("%w: kind %d", ErrBadHubMessage, kind)
	}
}

func hubString(p []byte) (string, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n == 0 || n > maxField || uint64(len(p)-k) < n {
		return "", nil, fmt.Errorf("%w: name length", ErrBadHubMessage)
	}
	return string(p[k : k+int(n)]), p[k+int(n):], nil
}
