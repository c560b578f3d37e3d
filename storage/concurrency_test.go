package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestTakePreKeyConcurrent: 100 goroutines fetching for the same card get 100 distinct
// keys; the 101st finds none.
func TestTakePreKeyConcurrent(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	const n = 100
	keys := make([]StoredPreKey, n)
	for i := range keys {
		keys[i] = StoredPreKey{Kind: 2, ID: uint32(i + 1), Data: []byte(fmt.Sprint("opk", i+1))}
	}
	if stored, err := r.PutPreKeys(ctx, "card", keys, 0); err != nil || stored != n {
		t.Fatalf("stored %d, %v", stored, err)
	}
	var wg sync.WaitGroup
	got := make(chan uint32, n+10)
	errs := make(chan error, n+10)
	start := make(chan struct{})
	for i := 0; i < n+5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			k, err := r.TakePreKey(ctx, "card", 2)
			if err != nil {
				errs <- err
				return
			}
			if string(k.Data) != fmt.Sprint("opk", k.ID) {
				errs <- fmt.Errorf("key %d has data %q", k.ID, k.Data)
				return
			}
			got <- k.ID
		}()
	}
	close(start)
	wg.Wait()
	close(got)
	close(errs)
	seen := map[uint32]bool{}
	for id := range got {
		if seen[id] {
			t.Fatalf("key %d handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct keys, want %d", len(seen), n)
	}
	empty := 0
	for err := range errs {
		if !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		empty++
	}
	if empty != 5 {
		t.Fatalf("%d callers found none, want 5", empty)
	}
	if left, _ := r.CountPreKeys(ctx, "card", 2); left != 0 {
		t.Fatalf("%d keys left", left)
	}
}

// TestQueueConcurrent: senders enqueue (with resends) while the recipient drains and
// acks; every message is delivered exactly once and in order per page.
func TestQueueConcurrent(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 1 << 20})
	const senders, perSender = 4, 50
	var wg sync.WaitGroup
	accepted := make(chan int64, senders*perSender*2)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := fmt.Sprint("sender", s)
			for i := 0; i < perSender; i++ {
				m := QueuedMessage{To: "bob", From: from, ClientID: fmt.Sprint(i), Body: []byte(fmt.Sprint(from, "/", i))}
				// Every message is sent twice, the second time in a batch with the next.
				batch := []QueuedMessage{m, m}
				res, err := r.Enqueue(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				if res[0].Duplicate || !res[1].Duplicate || res[1].ID != res[0].ID {
					t.Errorf("%s/%d: %+v", from, i, res)
					return
				}
				accepted <- res[0].ID
			}
		}()
	}
	delivered := map[int64]string{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drain := func() {
		page, err := r.Pending(ctx, "bob", 0, 37)
		if err != nil {
			t.Error(err)
			return
		}
		ids := make([]int64, len(page))
		for i, m := range page {
			if i > 0 && m.ID <= page[i-1].ID {
				t.Errorf("out of order: %d after %d", m.ID, page[i-1].ID)
			}
			if prev, ok := delivered[m.ID]; ok {
				t.Errorf("message %d (%s) delivered after its ack (was %s)", m.ID, m.Body, prev)
			}
			delivered[m.ID] = string(m.Body)
			ids[i] = m.ID
		}
		if err := r.Ack(ctx, "bob", ids); err != nil {
			t.Error(err)
		}
	}
loop:
	for {
		select {
		case <-done:
			break loop
		default:
			drain()
		}
	}
	drain()
	drain()
	close(accepted)
	n := 0
	for id := range accepted {
		if _, ok := delivered[id]; !ok {
			t.Errorf("accepted message %d never delivered", id)
		}
		n++
	}
	if n != senders*perSender || len(delivered) != n {
		t.Fatalf("accepted %d, delivered %d", n, len(delivered))
	}
	if d, _ := r.QueueDepth(ctx); d != 0 {
		t.Fatalf("queue depth %d after draining", d)
	}
}

// TestBusyAcrossHandles: two handles on one file, as two processes would have. A
// second writer waits for the first; past the busy timeout it fails with ErrBusy and
// writes nothing.
func TestBusyAcrossHandles(t *testing.T) {
	ctx := t.Context()
	old := busyTimeout
	busyTimeout = 200 * time.Millisecond
	t.Cleanup(func() { busyTimeout = old })
	a := newClient(t, nil)
	b, err := OpenClient(ctx, a.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	inTx, release := make(chan struct{}), make(chan struct{})
	a.setHook(func(step int) error {
		if step == 1 {
			close(inTx)
			<-release
		}
		return nil
	})
	done := make(chan error)
	go func() { done <- a.SetMeta(ctx, "k", []byte("from a")) }()
	<-inTx
	if err := b.SetMeta(ctx, "k", []byte("from b")); !errors.Is(err, ErrBusy) {
		t.Fatalf("second writer: %v, want ErrBusy", err)
	}
	// Reads are not blocked by the writer (WAL).
	if _, err := b.Meta(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read during write: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.setHook(nil)
	if err := b.SetMeta(ctx, "k", []byte("from b")); err != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
	if v, _ := a.Meta(ctx, "k"); string(v) != "from b" {
		t.Fatalf("meta %q", v)
	}
}

// TestClientConcurrent: receivers and senders commit while readers page through the
// conversation; every commit lands once and readers never see a torn page.
func TestClientConcurrent(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	writers, each := 4, 40
	if testing.Short() {
		each = 15
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				page, _, err := c.Messages(ctx, "bob", Cursor{}, 20)
				if err != nil {
					t.Error(err)
					return
				}
				for i := 1; i < len(page); i++ {
					if page[i].ID >= page[i-1].ID {
						t.Errorf("page out of order")
						return
					}
				}
				if _, err := c.Contacts(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := fmt.Sprint(w, "-", i)
				if w%2 == 0 {
					_, err := c.CommitReceive(ctx, ReceiveTx{RelayID: id, Message: &Message{Contact: "bob", Body: []byte(id), State: Delivered},
						Session: &Session{ID: fmt.Sprint("s", w), PeerCardID: "card-bob", State: []byte(id), Generation: uint64(i)}})
					if err != nil {
						t.Error(err)
						return
					}
				} else if _, err := c.CommitSend(ctx, SendTx{Message: &Message{Contact: "bob", Body: []byte(id)}, Outbox: OutboxItem{ClientID: id, To: "bob", Payload: []byte(id)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	all, _, err := c.Messages(ctx, "bob", Cursor{}, MaxPage)
	if err != nil || len(all) != writers*each {
		t.Fatalf("%d messages, %v", len(all), err)
	}
	if ct, _ := c.Contact(ctx, "bob"); ct.Unread != writers/2*each {
		t.Fatalf("unread %d", ct.Unread)
	}
	if ob, _ := c.Outbox(ctx); len(ob) != writers/2*each {
		t.Fatalf("outbox %d", len(ob))
	}
}
