package relay

import (
	"context"
	"sync"

	"pfschat/storage"
)

// outItem is one frame waiting for the connection's writer: either an encoded frame
// or a queued message to encode as a deliver push (encoded by the writer, so the
// committer that hands it over does no encoding work).
type outItem struct {
	raw    []byte
	msg    *storage.QueuedMessage
	opcode byte // 0 = text frame; else a WebSocket control opcode (pong, close)
}

// outQueue is a connection's bounded outbound queue. An idle connection holds no
// buffer at all (the slice is released when drained), which keeps idle connections
// small; a full queue means the peer is not reading.
type outQueue struct {
	mu     sync.Mutex
	items  []outItem
	limit  int
	closed bool
	wake   chan struct{} // writer: something to write (cap 1)
	space  chan struct{} // blocked producers: the writer drained (cap 1)
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tryPush adds an item unless the queue is full or closed. It never blocks, so the
// committer and the hub can call it.
func (q *outQueue) tryPush(it outItem) (ok bool) {
	q.mu.Lock()
	if q.closed || len(q.items) >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	signal(q.wake)
	return true
}

// push adds an item, waiting until fewer than max are queued. It is for producers
// that may wait (the backlog), which use a max below the limit so that answers and
// live pushes always find room.
func (q *outQueue) push(ctx context.Context, it outItem, max int) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return errQueueClosed
		}
		if len(q.items) < max {
			q.items = append(q.items, it)
			q.mu.Unlock()
			signal(q.wake)
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// forcePush adds an item even over the limit (used for the final going_away frame).
func (q *outQueue) forcePush(it outItem) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, it)
	}
	q.mu.Unlock()
	signal(q.wake)
}

// drain takes everything queued, handing back the previous batch's slice for reuse.
func (q *outQueue) drain(reuse []outItem) (batch []outItem, closed bool) {
	q.mu.Lock()
	batch = q.items
	closed = q.closed
	if len(batch) == 0 {
		q.items = nil
	} else if cap(reuse) > 64 {
		q.items = nil // let a burst's big buffer go
	} else {
		q.items = reuse[:0]
	}
	q.mu.Unlock()
	if len(batch) > 0 {
		signal(q.space)
	}
	return batch, closed
}

// closeWith drops everything queued, queues one last frame and closes the queue.
func (q *outQueue) closeWith(last outItem) {
	q.mu.Lock()
	if !q.closed {
		clear(q.items)
		q.items = append(q.items[:0], last)
		q.closed = true
	}
	q.mu.Unlock()
	signal(q.wake)
	signal(q.space)
}

// close stops the queue: pushes fail; the writer writes what is left, then stops.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.wake)
	signal(q.space)
}

func (q *outQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
