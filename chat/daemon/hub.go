package daemon

import (
	"sync"

	"pfschat/chat"
	"pfschat/relay/fifo"
)

// Hub fans one controller's event stream out to any number of subscribers: the owner's
// own reader (the terminal UI) and every API subscription. A subscriber never blocks
// the others and misses nothing from the moment it subscribed: each has an unbounded
// queue in front of its channel.
type Hub struct {
	mu     sync.Mutex
	subs   map[*Sub]struct{}
	closed bool
	done   chan struct{}
}

// NewHub starts reading events (a controller's Events()); the hub closes every
// subscription when events closes.
func NewHub(events <-chan chat.Event) *Hub {
	h := &Hub{subs: make(map[*Sub]struct{}), done: make(chan struct{})}
	go h.run(events)
	return h
}

func (h *Hub) run(events <-chan chat.Event) {
	defer close(h.done)
	for ev := range events {
		h.mu.Lock()
		for s := range h.subs {
			s.q.Push(ev)
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	h.closed = true
	for s := range h.subs {
		s.q.Close()
	}
	h.mu.Unlock()
}

// Done is closed once the event stream has ended.
func (h *Hub) Done() <-chan struct{} { return h.done }

// NewHubFor is NewHub with a first subscriber, registered before the hub reads its
// first event: the owner's own reader (the terminal UI) then misses nothing the
// controller emitted before it — Initialize's connection events above all, which a
// Subscribe after NewHub could lose, leaving the UI on "connecting…" while online.
func NewHubFor(events <-chan chat.Event) (*Hub, *Sub) {
	h := &Hub{subs: make(map[*Sub]struct{}), done: make(chan struct{})}
	s := h.Subscribe()
	go h.run(events)
	return h, s
}

// Subscribe returns a new subscriber that gets every event from now on.
func (h *Hub) Subscribe() *Sub {
	s := &Sub{h: h, q: fifo.New[chat.Event](), out: make(chan chat.Event), stop: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		s.q.Close()
	} else {
		h.subs[s] = struct{}{}
	}
	h.mu.Unlock()
	go s.run()
	return s
}

// Sub is one subscriber of a Hub.
type Sub struct {
	h    *Hub
	q    *fifo.Queue[chat.Event]
	out  chan chat.Event
	stop chan struct{}
	once sync.Once
}

// C delivers the events in order; it closes when the hub's stream ends or Close is
// called.
func (s *Sub) C() <-chan chat.Event { return s.out }

func (s *Sub) run() {
	defer close(s.out)
	for {
		ev, ok := s.q.Pop()
		if !ok {
			if s.q.Closed() {
				return
			}
			select {
			case <-s.q.Ready():
			case <-s.stop:
				return
			}
			continue
		}
		select {
		case s.out <- ev:
		case <-s.stop:
			return
		}
	}
}

// Close ends the subscription. Safe to call twice.
func (s *Sub) Close() {
	s.once.Do(func() {
		s.h.mu.Lock()
		delete(s.h.subs, s)
		s.h.mu.Unlock()
		s.q.Close()
		close(s.stop)
	})
}
