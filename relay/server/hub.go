package server

import (
	"context"
	"sync"

	"pfschat/storage"
)

// Hub routes live events to the connections of a recipient: the committer publishes a
// message after it is durable; every connection logged in as the recipient receives it.
// The in-memory hub serves one relay process; a multi-node relay would put the same
// interface over a message bus (for example NATS subjects per recipient), with the
// queue behind Queue staying the source of truth.
type Hub interface {
	// Subscribe registers s for events addressed to name until cancel is called.
	Subscribe(name string, s Subscriber) (cancel func())
	// Publish hands a committed message to the recipient's subscribers. It must not
	// block: a subscriber that cannot keep up is the subscriber's problem.
	Publish(m *storage.QueuedMessage)
	// Notice sends a notice (for example low prekeys) to name's subscribers.
	Notice(name string, n Notice)
}

// ForwardingHub is a Hub across relay nodes whose local part is a MemHub: the
// committer hands a committed message to this node's connections through LocalHub
// (without a copy) and to the other nodes through Forward, which must not keep m (its
// body is reused once Forward returns) and must not block.
type ForwardingHub interface {
	Hub
	LocalHub() *MemHub
	Forward(m *storage.QueuedMessage)
}

// ResyncingHub is a Hub that can lose a live push — a message bus between relay nodes
// that delivers at most once — and repairs that by calling Resync on its subscribers
// (Resyncable) when a push may have been lost. A connection on such a hub keeps track
// of the messages it handed over until they are acked, so that a Resync delivers only
// what it lacks.
type ResyncingHub interface {
	Hub
	ResyncsSubscribers()
}

// Resyncable is a Subscriber that can read what the store holds for it and deliver
// what it lacks (a push the hub lost); it returns how many it delivered, and the
// store's error if it could not read.
type Resyncable interface {
	Resync(ctx context.Context) (int, error)
}

// Subscriber receives live events. Both methods are called from the publisher's
// goroutine and must return promptly without blocking.
type Subscriber interface {
	Deliver(m *storage.QueuedMessage)
	Notify(n Notice)
}

// Notice is a relay-originated event for a logged-in card.
type Notice struct {
	LowPreKeys map[string]int // counts per prekey kind name
	// CardReplaced is the name's new card ID after replace_card: connections logged
	// in with any other card are closed.
	CardReplaced string
	// LogoutAllExcept is set by logout_all: every connection of the name except the
	// one whose ConnKey it is gets logged_out and is closed.
	LogoutAllExcept string
	// Limit names an abuse limit applied to the name's card (a limit_notice).
	Limit string
	// AccountDeleted is the card ID of a deleted account: its connections are closed.
	AccountDeleted string
}

// MemHub is the in-process Hub: a map from name to subscribers under a RWMutex.
type MemHub struct {
	mu   sync.RWMutex
	subs map[string][]Subscriber
}

// NewMemHub returns an empty in-memory hub.
func NewMemHub() *MemHub { return &MemHub{subs: make(map[string][]Subscriber)} }

// Subscribe implements Hub.
func (h *MemHub) Subscribe(name string, s Subscriber) func() {
	h.mu.Lock()
	h.subs[name] = append(h.subs[name], s)
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			list := h.subs[name]
			for i, x := range list {
				if x == s {
					list = append(list[:i:i], list[i+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(h.subs, name)
			} else {
				h.subs[name] = list
			}
		})
	}
}

// Publish implements Hub.
func (h *MemHub) Publish(m *storage.QueuedMessage) {
	h.mu.RLock()
	list := h.subs[m.To]
	h.mu.RUnlock()
	// list is never mutated in place (Subscribe/cancel copy), so reading it unlocked is safe.
	for _, s := range list {
		s.Deliver(m)
	}
}

// publishReq is Publish for a relay-owned request: connections take a reference
// each (see sendReq); a subscriber of another kind makes it escape. ws is the
// committer's (see writeSet).
func (h *MemHub) publishReq(r *sendReq, ws *writeSet) {
	h.mu.RLock()
	list := h.subs[r.msg.To]
	h.mu.RUnlock()
	for _, s := range list {
		if c, ok := s.(*conn); ok {
			c.deliver(&r.msg, r, ws)
			continue
		}
		r.escaped = true
		s.Deliver(&r.msg)
	}
}

// Resync calls Resync on every Resyncable subscriber of the names match accepts (all
// when match is nil), one after the other, and returns how many it called and how
// many messages they delivered. It stops at the first subscriber that could not read
// the store (the store is unreachable: the others would fail alike) and returns that
// error.
func (h *MemHub) Resync(ctx context.Context, match func(name string) bool) (reads, delivered int, err error) {
	var rs []Resyncable
	h.mu.RLock()
	for name, list := range h.subs {
		if match != nil && !match(name) {
			continue
		}
		for _, s := range list {
			if r, ok := s.(Resyncable); ok {
				rs = append(rs, r)
			}
		}
	}
	h.mu.RUnlock()
	for _, r := range rs {
		if ctx.Err() != nil {
			return reads, delivered, ctx.Err()
		}
		reads++
		n, err := r.Resync(ctx)
		delivered += n
		if err != nil {
			return reads, delivered, err
		}
	}
	return reads, delivered, nil
}

// Notice implements Hub.
func (h *MemHub) Notice(name string, n Notice) {
	h.mu.RLock()
	list := h.subs[name]
	h.mu.RUnlock()
	for _, s := range list {
		s.Notify(n)
	}
}
