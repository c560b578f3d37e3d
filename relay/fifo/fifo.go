// Package fifo is an unbounded first-in, first-out queue whose producers never block:
// the relay client's queue of pushed frames, and chat's event queue, use it so that a
// reader of the network or a committing transaction never waits for a slow consumer.
//
//	q := fifo.New[Push]()
//	q.Push(p)              // never blocks
//	p, err := q.Wait(ctx)  // blocks until an item, ctx done, or closed and drained
//
// A consumer that waits on other things at once selects on Ready and then calls Pop.
//
// It lives under relay/ because both the relay client and chat use it, and chat may
// import only the relay's packages, ratchet and storage.
package fifo

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is what Wait returns once the queue is closed and every item is taken.
var ErrClosed = errors.New("fifo: queue closed")

// Queue is an unbounded FIFO, safe for concurrent use by any number of producers and
// consumers. Memory grows with what is queued; bounding it is the producer's business
// (the relay bounds what it delivers to a client by its queue limits).
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	head   int // items[head:] are queued
	closed bool
	// ready holds a token after a Push, and after a Pop that leaves items behind, so
	// a consumer woken by it finds something to do or loops; Close closes it, which
	// wakes every consumer for good.
	ready chan struct{}
}

// New returns an empty queue.
func New[T any]() *Queue[T] {
	return &Queue[T]{ready: make(chan struct{}, 1)}
}

// Push appends v. It never blocks. After Close it drops v and reports false.
func (q *Queue[T]) Push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if len(q.items) == cap(q.items) && q.head > 0 && q.head >= len(q.items)/2 {
		// Full backing array, mostly taken: slide the rest down instead of growing.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
	q.signal()
	q.mu.Unlock()
	return true
}

// Pop takes the oldest item without waiting; ok is false when the queue is empty.
func (q *Queue[T]) Pop() (v T, ok bool) {
	q.mu.Lock()
	if q.head == len(q.items) {
		q.mu.Unlock()
		return v, false
	}
	var zero T
	v, q.items[q.head] = q.items[q.head], zero // let the item be collected
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0 // reuse the backing array
	} else if !q.closed {
		q.signal() // another consumer may be waiting
	}
	q.mu.Unlock()
	return v, true
}

// Len is the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// Ready receives a value after a Push (and after a Pop that leaves items behind), and
// is closed by Close. A consumer selects on it, then calls Pop until the queue is
// empty; a wake-up that finds the queue empty is harmless, another one follows the
// next Push.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Wait takes the oldest item, waiting for one if the queue is empty. It fails with
// ctx's error, or with ErrClosed once the queue is closed and empty.
func (q *Queue[T]) Wait(ctx context.Context) (T, error) {
	for {
		if v, ok := q.Pop(); ok {
			return v, nil
		}
		if q.Closed() {
			var zero T
			return zero, ErrClosed
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// Close ends the queue: later Pushes are dropped, the queued items can still be
// taken, and then Wait returns ErrClosed. Closing twice is fine.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ready)
	}
}

// Closed reports whether Close has been called.
func (q *Queue[T]) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// signal leaves a token in ready unless one is there. q.mu is held and q is open.
func (q *Queue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
