package fifo_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"pfschat/relay/fifo"
)

func TestOrder(t *testing.T) {
	q := fifo.New[int]()
	// Interleave pushes and pops so the queue slides its items down and grows.
	next, want := 0, 0
	for round := range 200 {
		for range round%7 + 1 {
			q.Push(next)
			next++
		}
		for range round % 5 {
			v, ok := q.Pop()
			if !ok {
				break
			}
			if v != want {
				t.Fatalf("popped %d, want %d", v, want)
			}
			want++
		}
		if got := q.Len(); got != next-want {
			t.Fatalf("Len %d, want %d", got, next-want)
		}
	}
	for want < next {
		v, err := q.Wait(t.Context())
		if err != nil || v != want {
			t.Fatalf("Wait = %d, %v; want %d", v, err, want)
		}
		want++
	}
	if v, ok := q.Pop(); ok {
		t.Fatalf("empty queue popped %d", v)
	}
}

// TestPushNeverBlocks: with nobody reading, pushes still return at once.
func TestPushNeverBlocks(t *testing.T) {
	q := fifo.New[[]byte]()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100_000 {
			q.Push(nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pushes into an unread queue blocked")
	}
	if q.Len() != 100_000 {
		t.Fatalf("Len %d", q.Len())
	}
}

func TestWaitWakesOnPush(t *testing.T) {
	q := fifo.New[string]()
	got := make(chan string)
	go func() {
		v, err := q.Wait(t.Context())
		if err != nil {
			v = err.Error()
		}
		got <- v
	}()
	q.Push("hello")
	if v := <-got; v != "hello" {
		t.Fatalf("Wait returned %q", v)
	}
}

func TestReadyAfterPush(t *testing.T) {
	q := fifo.New[int]()
	select {
	case <-q.Ready():
		t.Fatal("an empty, open queue is ready")
	default:
	}
	q.Push(1)
	q.Push(2)
	<-q.Ready() // one token for both pushes
	if v, _ := q.Pop(); v != 1 {
		t.Fatalf("popped %d", v)
	}
	<-q.Ready() // the pop left an item behind: ready again
	if v, _ := q.Pop(); v != 2 {
		t.Fatalf("popped %d", v)
	}
	select {
	case <-q.Ready():
		t.Fatal("ready after the last item was taken")
	default:
	}
}

func TestWaitHonoursContext(t *testing.T) {
	q := fifo.New[int]()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() {
		_, err := q.Wait(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
}

// TestClose: queued items survive Close, later pushes are dropped, and every waiter
// wakes with ErrClosed.
func TestClose(t *testing.T) {
	q := fifo.New[int]()
	q.Push(1)
	q.Push(2)
	q.Close()
	q.Close() // twice is fine
	if q.Push(3) {
		t.Fatal("Push after Close accepted an item")
	}
	for want := 1; want <= 2; want++ {
		if v, err := q.Wait(t.Context()); err != nil || v != want {
			t.Fatalf("Wait = %d, %v; want %d", v, err, want)
		}
	}
	if _, err := q.Wait(t.Context()); !errors.Is(err, fifo.ErrClosed) {
		t.Fatalf("Wait on a closed, drained queue: %v", err)
	}

	q = fifo.New[int]()
	const waiters = 4
	errc := make(chan error, waiters)
	for range waiters {
		go func() {
			_, err := q.Wait(t.Context())
			errc <- err
		}()
	}
	q.Close()
	for range waiters {
		if err := <-errc; !errors.Is(err, fifo.ErrClosed) {
			t.Fatalf("waiter woke with %v, want ErrClosed", err)
		}
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("a closed queue is not ready")
	}
}

// TestConcurrent: several producers and consumers; every item is taken exactly once,
// and each producer's items come out in the order it pushed them. Run it with -race.
func TestConcurrent(t *testing.T) {
	type item struct{ producer, seq int }
	q := fifo.New[item]()
	const producers, consumers, each = 4, 3, 5000
	var pwg, cwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range each {
				q.Push(item{p, i})
			}
		}()
	}
	taken := make([][]item, consumers)
	for c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				v, err := q.Wait(t.Context())
				if err != nil {
					return
				}
				taken[c] = append(taken[c], v)
			}
		}()
	}
	pwg.Wait()
	q.Close()
	cwg.Wait()
	seen := make([]int, producers) // per producer, items seen
	for c, items := range taken {
		last := make([]int, producers)
		for p := range last {
			last[p] = -1
		}
		for _, v := range items {
			if v.seq <= last[v.producer] {
				t.Fatalf("consumer %d took producer %d's item %d after %d", c, v.producer, v.seq, last[v.producer])
			}
			last[v.producer] = v.seq
			seen[v.producer]++
		}
	}
	for p, n := range seen {
		if n != each {
			t.Fatalf("producer %d: %d items taken, want %d", p, n, each)
		}
	}
}

func BenchmarkPushPop(b *testing.B) {
	q := fifo.New[int]()
	for i := 0; b.Loop(); i++ {
		q.Push(i)
		q.Pop()
	}
}

// A weighed queue keeps what its items weigh, and Lighter's channel closes once the
// consumer has taken enough (at once when the queue is light enough already).
func TestWeighedLighter(t *testing.T) {
	q := fifo.NewWeighed(func(s string) int64 { return int64(len(s)) })
	select {
	case <-q.Lighter(0):
	default:
		t.Fatal("an empty queue is not at most 0 heavy")
	}
	for _, s := range []string{"aaaa", "bb", "cccccc"} {
		q.Push(s)
	}
	if w := q.Weight(); w != 12 {
		t.Fatalf("weight %d, want 12", w)
	}
	at6, at0 := q.Lighter(6), q.Lighter(0)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	q.Pop() // 8 left
	if closed(at6) || closed(at0) {
		t.Fatal("closed at weight 8")
	}
	q.Pop() // 6 left
	if !closed(at6) || closed(at0) {
		t.Fatalf("at weight 6: bound 6 closed %v, bound 0 closed %v", closed(at6), closed(at0))
	}
	q.Pop()
	if !closed(at0) || q.Weight() != 0 {
		t.Fatalf("empty: bound 0 closed %v, weight %d", closed(at0), q.Weight())
	}
	if fifo.New[int]().Weight() != 0 {
		t.Fatal("an unweighed queue weighs something")
	}
}
