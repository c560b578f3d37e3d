package server

import (
	"context"
	"sync"

	"pfschat/storage"
)

// outItem is one frame waiting for the connection's writer: an encoded frame, a
// queued message to encode as a deliver push, or a short answer (accepted, ok) to
// encode. The writer encodes into its batch buffer, so neither the committer that
// hands items over nor the answers cost an allocation per frame.
type outItem struct {
	raw    []byte
	msg    *storage.QueuedMessage
	owner  *sendReq // msg belongs to it: the writer releases it once encoded
	reqID  uint64   // itemAccepted, itemOK
	msgID  int64    // itemAccepted
	opcode byte     // 0 = text frame; else a WebSocket control opcode (ping, pong, close)
	kind   byte     // itemRaw unless it is a short answer
	run    *fileRun // a binary blob chunk message (reqID) whose bytes the writer sends from a file
}

// dropRuns closes the files of runs that will not be written.
func dropRuns(items []outItem) {
	for i := range items {
		if r := items[i].run; r != nil {
			items[i].run = nil
			r.close()
		}
	}
}

// outItem kinds.
const (
	itemRaw         = iota // raw, or msg when set
	itemAccepted           // {"type":"accepted","id":reqID,"msg_id":msgID}
	itemAcceptedDup        // the same with "duplicate":true
	itemOK                 // {"type":"ok","id":reqID}
	itemBlobJSON           // raw: a JSON blob_chunk answer, holding a slot of conn.blob.out until encoded
)

// freeItems holds item slices of writers that went idle, so that a connection that
// wakes up does not grow a new one from nothing. A channel rather than a sync.Pool:
// a slice goes in and out without being boxed.
var freeItems = make(chan []outItem, 128)

// maxFreeItems is the largest slice kept for reuse, by a busy writer from batch to
// batch and on the free list (a burst's big one is let go). Busy connections' batches
// often reach 32 to 64 items, and append rounds capacities up to its size classes
// (40 items can mean a capacity of 75): a bound at 64 would have them regrow all
// the time. At most 128 slices of 128 items (1 MiB) wait on the free list.
const maxFreeItems = 128

func putItems(s []outItem) {
	if cap(s) == 0 || cap(s) > maxFreeItems {
		return
	}
	clear(s[:cap(s)])
	select {
	case freeItems <- s[:0]:
	default:
	}
}

func getItems() []outItem {
	select {
	case s := <-freeItems:
		return s
	default:
		return make([]outItem, 0, 8)
	}
}

// outQueue is a connection's bounded outbound queue. An idle connection holds no
// buffer and no writer goroutine: the first push starts a writer (startWriter), which
// runs until the queue is empty. A full queue means the peer is not reading.
type outQueue struct {
	mu      sync.Mutex
	items   []outItem
	limit   int
	closed  bool
	writing bool          // a writer goroutine is running (or tearing down)
	space   chan struct{} // blocked producers: the writer drained (cap 1)

	startWriter func()
}

func newOutQueue(limit int, startWriter func()) *outQueue {
	return &outQueue{limit: limit, space: make(chan struct{}, 1), startWriter: startWriter}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// appendLocked adds an item and reports whether a writer must be started.
func (q *outQueue) appendLocked(it outItem) (start bool) {
	if q.items == nil {
		q.items = getItems()
	}
	q.items = append(q.items, it)
	start = !q.writing
	q.writing = true
	return start
}

// isClosed reports whether close or closeWith ran.
func (q *outQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// tryPush adds an item unless the queue is full or closed. It never blocks, so the
// committer and the hub can call it.
func (q *outQueue) tryPush(it outItem) (ok bool) {
	q.mu.Lock()
	if q.closed || len(q.items) >= q.limit {
		q.mu.Unlock()
		return false
	}
	start := q.appendLocked(it)
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
	return true
}

// tryPushTake is tryPush for the committer: instead of starting a writer goroutine it
// reports start, and the caller then holds the writer role (see conn.writeInline).
func (q *outQueue) tryPushTake(it outItem) (ok, start bool) {
	q.mu.Lock()
	if q.closed || len(q.items) >= q.limit {
		q.mu.Unlock()
		return false, false
	}
	start = q.appendLocked(it)
	q.mu.Unlock()
	return true, start
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
			start := q.appendLocked(it)
			q.mu.Unlock()
			if start {
				q.startWriter()
			}
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

// forcePush adds an item even over the limit (the final going_away frame).
func (q *outQueue) forcePush(it outItem) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	start := q.appendLocked(it)
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
}

// drain takes everything queued, handing back the previous batch's slice for reuse.
// With nothing queued it either tells the writer to exit (the queue is open: the next
// push starts a new writer) or reports closed (the writer tears the connection down).
func (q *outQueue) drain(reuse []outItem) (batch []outItem, closed, exit bool) {
	q.mu.Lock()
	if len(q.items) == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil, true, false
		}
		q.writing = false
		items := q.items
		q.items = nil
		q.mu.Unlock()
		putItems(items)
		putItems(reuse)
		return nil, false, true
	}
	batch = q.items
	if cap(reuse) > maxFreeItems {
		q.items = nil // let a burst's big buffer go
	} else {
		q.items = reuse[:0]
	}
	q.mu.Unlock()
	signal(q.space)
	return batch, false, false
}

// closeWith drops everything queued, queues the last frames and closes the queue.
func (q *outQueue) closeWith(last ...outItem) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	dropRuns(q.items)
	clear(q.items)
	q.items = append(q.items[:0], last...)
	start := !q.writing
	q.writing = true
	q.closed = true
	q.mu.Unlock()
	signal(q.space)
	if start {
		q.startWriter()
	}
}

// close stops the queue: pushes fail; the writer writes what is left, sends a close
// frame and tears the connection down.
func (q *outQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	start := !q.writing
	q.writing = true
	q.mu.Unlock()
	signal(q.space)
	if start {
		q.startWriter()
	}
}

func (q *outQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
