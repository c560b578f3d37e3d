package chat

import (
	"sync"

	"pfschat/storage"
)

// outbox is the sender's copy of the store's outbox: the items committed and not yet
// settled, per recipient in commit order. A commit hands its item over directly (the
// send path never reads back what it has just written); the store is read in full only
// when the copy may be stale — at start-up and on every reconnect — and then replaces
// the copy, which is safe because every item in the copy is also in the store until it
// is settled.
type outbox struct {
	mu    sync.Mutex
	stale bool // read the store before the next pass
	byTo  map[string][]storage.OutboxItem
	order []string // recipients in the order their first item arrived
}

func newOutbox() *outbox { return &outbox{stale: true, byTo: make(map[string][]storage.OutboxItem)} }

// add appends a committed item. The caller holds Controller.mu, so items join in the
// order they were committed and never race with reload.
func (o *outbox) add(it storage.OutboxItem) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.appendLocked(it)
}

func (o *outbox) appendLocked(it storage.OutboxItem) {
	if _, ok := o.byTo[it.To]; !ok {
		o.order = append(o.order, it.To)
	}
	o.byTo[it.To] = append(o.byTo[it.To], it)
}

// markStale makes the next pass read the store (reconnect).
func (o *outbox) markStale() {
	o.mu.Lock()
	o.stale = true
	o.mu.Unlock()
}

func (o *outbox) isStale() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stale
}

// reload replaces the copy with the store's outbox (items in commit order). The caller
// holds Controller.mu and no pass is running, so nothing is committed or settled
// meanwhile.
func (o *outbox) reload(items []storage.OutboxItem) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stale = false
	clear(o.byTo)
	o.order = o.order[:0]
	for _, it := range items {
		o.appendLocked(it)
	}
}

// takeAll hands every queued item to a pass, per recipient, in order.
func (o *outbox) takeAll() (map[string][]storage.OutboxItem, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	byTo, order := o.byTo, o.order
	o.byTo, o.order = make(map[string][]storage.OutboxItem), nil
	return byTo, order
}

// putBack returns the items a pass could not settle, ahead of those added meanwhile.
func (o *outbox) putBack(to string, items []storage.OutboxItem) {
	if len(items) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	rest, ok := o.byTo[to]
	if !ok {
		o.order = append(o.order, to)
	}
	o.byTo[to] = append(items[:len(items):len(items)], rest...)
}
