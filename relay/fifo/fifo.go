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
// (the relay client weighs its pushes, NewWeighed, and stops reading past a bound).
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	head   int // items[head:] are queued
	closed bool
	// ready holds a token after a Push, and after a Pop that leaves items behind, so
	// a consumer woken by it finds something to do or loops; Close closes it, which
	// wakes every consumer for good.
	ready chan struct{}

	// weigh, when set, weighs each item; weight is what the queued items weigh, and
	// lighter are the channels Lighter handed out, each closed once weight is at most
	// its bound.
	weigh   func(T) int64
	weight  int64
	lighter []lighterWait
}

type lighterWait struct {
	bound int64
	ch    chan struct{}
}

// New returns an empty queue.
func New[T any]() *Queue[T] {
	return &Queue[T]{ready: make(chan struct{}, 1)}
}

// NewWeighed returns an empty queue that keeps the sum of its items' weights (Weight,
// Lighter): a producer that must bound what waits (bytes, say) asks it before a Push.
func NewWeighed[T any](weigh func(T) int64) *Queue[T] {
	q := New[T]()
	q.weigh = weigh
	return q
}

// Weight is what the queued items weigh (0 for a queue made by New).
func (q *Queue[T]) Weight() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.weight
}

// Lighter returns a channel that is closed once the queued items weigh at most bound
// (at once if they do now).
func (q *Queue[T]) Lighter(bound int64) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	ch := make(chan struct{})
	if q.weight <= bound {
		close(ch)
		return ch
	}
	q.lighter = append(q.lighter, lighterWait{bound, ch})
	return ch
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
	if q.weigh != nil {
		q.weight += q.weigh(v)
	}
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
	if q.weigh != nil {
		q.weight -= q.weigh(v)
		q.wakeLighter()
	}
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

// wakeLighter closes the Lighter channels whose bound the weight has come down to.
// Called with q.mu held.
func (q *Queue[T]) wakeLighter() {
	kept := q.lighter[:0]
	for _, w := range q.lighter {
		if q.weight <= w.bound {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(q.lighter[len(kept):])
	q.lighter = kept
}
