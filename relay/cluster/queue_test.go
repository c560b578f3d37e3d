package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

func testConn(t *testing.T, urls []string, replicas int) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{URLs: urls, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testQueue(t *testing.T, o QueueOptions) (*Queue, context.Context) {
	t.Helper()
	s := natstest.Single(t)
	c := testConn(t, []string{s.URL()}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	q, err := NewQueue(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	return q, ctx
}

func msg(to, from, id, body string) storage.QueuedMessage {
	return storage.QueuedMessage{To: to, From: from, FromCardID: "card-" + from, ClientID: id, Body: []byte(body), ReceivedAt: time.Now().UTC()}
}

func TestQueueEnqueuePendingAck(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{})
	batch := []storage.QueuedMessage{msg("bob", "alice", "1", "one"), msg("carol", "alice", "2", "two"), msg("bob.x", "alice", "3", "three"), msg("bob", "alice", "4", "four")}
	res, err := q.Enqueue(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate || r.ID == 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	// The caller reuses the bodies: the queue must have copied them.
	for i := range batch {
		copy(batch[i].Body, "XXXX")
	}
	got, err := q.Pending(ctx, "bob", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].Body) != "one" || string(got[1].Body) != "four" || got[0].ID != res[0].ID || got[1].ID != res[3].ID {
		t.Fatalf("bob's pending: %+v", got)
	}
	if got[0].From != "alice" || got[0].FromCardID != "card-alice" || got[0].ClientID != "1" || got[0].To != "bob" {
		t.Fatalf("fields: %+v", got[0])
	}
	if p, _ := q.Pending(ctx, "bob", got[0].ID, 10); len(p) != 1 || p[0].ID != got[1].ID {
		t.Fatalf("after first: %+v", p)
	}
	if p, _ := q.Pending(ctx, "bob", 0, 1); len(p) != 1 || p[0].ID != got[0].ID {
		t.Fatalf("limit 1: %+v", p)
	}
	if p, _ := q.Pending(ctx, "bob.x", 0, 10); len(p) != 1 || string(p[0].Body) != "three" {
		t.Fatalf("bob.x: %+v", p)
	}
	// Ack only deletes the recipient's own messages: carol's id acked as bob is kept.
	if err := q.Ack(ctx, "bob", []int64{got[0].ID, res[1].ID, 999}); err != nil {
		t.Fatal(err)
	}
	if p, _ := q.Pending(ctx, "bob", 0, 10); len(p) != 1 || p[0].ID != got[1].ID {
		t.Fatalf("bob after ack: %+v", p)
	}
	if p, _ := q.Pending(ctx, "carol", 0, 10); len(p) != 1 {
		t.Fatalf("carol's message was deleted by bob's ack: %+v", p)
	}
	if err := q.AckBatch(ctx, map[string][]int64{"bob": {got[1].ID}, "carol": {res[1].ID}}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.QueueDepth(ctx); err != nil || n != 1 {
		t.Fatalf("depth %d %v, want 1 (bob.x)", n, err)
	}
}

func TestQueueDedup(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{})
	res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "a", "1"), msg("bob", "alice", "a", "1 again in the batch")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].ID != res[0].ID {
		t.Fatalf("in-batch repeat: %+v", res)
	}
	// Within the window: Nats-Msg-Id.
	res2, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "a", "1 resent"), msg("bob", "mallory", "a", "other sender, same id")})
	if err != nil {
		t.Fatal(err)
	}
	if !res2[0].Duplicate || res2[0].ID != res[0].ID || res2[1].Duplicate {
		t.Fatalf("resend in the window: %+v", res2)
	}
	// Under a replaced card of the same name: the window's id has the card in it (so a
	// new account under a deleted name starts afresh), the marker has not; it catches
	// the resend and the new copy is removed.
	other := msg("bob", "alice", "a", "1 resent by alice's next card")
	other.FromCardID = "alice-card-2"
	resCard, err := q.Enqueue(ctx, []storage.QueuedMessage{other})
	if err != nil {
		t.Fatal(err)
	}
	if !resCard[0].Duplicate || resCard[0].ID != res[0].ID {
		t.Fatalf("resend under a replaced card: %+v, want duplicate of %d", resCard, res[0].ID)
	}
	// Beyond the window: every publish gets a fresh Nats-Msg-Id, as if the window had
	// passed; the marker catches it and the new copy is removed.
	var n atomic.Int64
	q.msgID = func(string, string, string) string { return fmt.Sprint("fresh-", n.Add(1)) }
	res3, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "a", "1 resent much later")})
	if err != nil {
		t.Fatal(err)
	}
	if !res3[0].Duplicate || res3[0].ID != res[0].ID {
		t.Fatalf("resend beyond the window: %+v, want duplicate of %d", res3, res[0].ID)
	}
	p, err := q.Pending(ctx, "bob", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || string(p[0].Body) != "1" || p[1].From != "mallory" {
		t.Fatalf("bob's queue holds %d messages, want alice's original and mallory's: %+v", len(p), p)
	}
}

func TestQueuePerRecipientCap(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{MaxPerRecipient: 2})
	res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "a", "1", "x"), msg("bob", "a", "2", "x"), msg("bob", "a", "3", "x"), msg("carol", "a", "4", "x")})
	if err != nil {
		t.Fatal(err)
	}
	var qf *storage.QueueFullError
	if res[0].Err != nil || res[1].Err != nil || !errors.As(res[2].Err, &qf) || qf.Limit != "count" || res[3].Err != nil {
		t.Fatalf("cap 2: %+v", res)
	}
	// The refused send was not stored: once bob acks, the same client_id goes in.
	p, _ := q.Pending(ctx, "bob", 0, 10)
	if err := q.Ack(ctx, "bob", []int64{p[0].ID}); err != nil {
		t.Fatal(err)
	}
	res, err = q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "a", "3", "x")})
	if err != nil || res[0].Err != nil || res[0].Duplicate {
		t.Fatalf("after an ack: %+v %v", res, err)
	}
}

func TestQueueTTL(t *testing.T) {
	now := time.Now()
	q, ctx := testQueue(t, QueueOptions{Clock: func() time.Time { return now }})
	m := msg("bob", "alice", "1", "x")
	m.ExpiresAt = now.Add(90 * time.Second)
	if _, err := q.Enqueue(ctx, []storage.QueuedMessage{m}); err != nil {
		t.Fatal(err)
	}
	p, err := q.Pending(ctx, "bob", 0, 10)
	if err != nil || len(p) != 1 || !p[0].ExpiresAt.Equal(m.ExpiresAt.UTC().Truncate(0)) {
		t.Fatalf("%+v %v", p, err)
	}
	// The stored message carries its TTL for JetStream to remove it.
	raw, _, ok, err := q.leaderGet(ctx, q.qsubjs[0]+"bob", 1, true)
	if err != nil || !ok {
		t.Fatal(err)
	}
	_ = raw
	if got := q.ttl(m.ExpiresAt); got != 91*time.Second {
		t.Fatalf("ttl %v", got)
	}
}

func TestQueueUnavailable(t *testing.T) {
	s := natstest.Single(t)
	c := testConn(t, []string{s.URL()}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := NewQueue(ctx, c, QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "1", "x")})
	if err == nil && res[0].Err == nil {
		t.Fatalf("accepted with the server down: %+v", res)
	}
	if err == nil {
		err = res[0].Err
	}
	if !errors.Is(err, server.ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
	if _, err := q.Pending(ctx, "bob", 0, 1); !errors.Is(err, server.ErrUnavailable) {
		t.Fatalf("pending: %v", err)
	}
}

func TestQueueBytesAndSenderQuota(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{MaxPerRecipient: 16, MaxBytesPerRecipient: 1000, SenderQuota: 4})
	body := func(n int) string { return string(make([]byte, n)) }
	// alice may fill 1/4: 4 messages, 250 bytes.
	res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "1", body(200)), msg("bob", "alice", "2", body(100)), msg("bob", "carol", "3", body(250))})
	if err != nil {
		t.Fatal(err)
	}
	var qf *storage.QueueFullError
	if res[0].Err != nil || !errors.As(res[1].Err, &qf) || qf.Limit != "sender_quota" || res[2].Err != nil {
		t.Fatalf("sender quota: %+v", res)
	}
	// Bytes: 450 queued; dave (his own quota fine at 250) and erin fill it to 950;
	// then 100 more bytes are over 1000.
	res, _ = q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "dave", "4", body(250)), msg("bob", "erin", "5", body(250)), msg("bob", "frank", "6", body(100))})
	if res[0].Err != nil || res[1].Err != nil || !errors.As(res[2].Err, &qf) || qf.Limit != "bytes" {
		t.Fatalf("bytes: %+v", res)
	}
	// A refused send was not stored; an ack gives its bytes back.
	p, err := q.Pending(ctx, "bob", 0, 100)
	if err != nil || len(p) != 4 {
		t.Fatalf("pending %d %v", len(p), err)
	}
	if err := q.Ack(ctx, "bob", []int64{p[0].ID}); err != nil { // alice's 200 bytes
		t.Fatal(err)
	}
	res, _ = q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "frank", "6", body(100)), msg("bob", "alice", "2", body(100))})
	if res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("after the ack: %+v", res)
	}
	// A duplicate gives its reservation back: the record stays exact.
	if res, _ = q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "frank", "6", body(100))}); !res[0].Duplicate {
		t.Fatalf("resend: %+v", res)
	}
	recs, _, err := q.readUsage(ctx, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if u := recs["bob"]; u.Count != 5 || u.Bytes != 950 || u.Senders["alice"].Bytes != 100 || u.Senders["frank"].Count != 1 {
		t.Fatalf("usage record %+v", u)
	}
}

// TestQueueUsageRecount: a record left too high (messages gone by their TTL are not
// given back) is counted again from the stream before it refuses a send.
func TestQueueUsageRecount(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	q, ctx := testQueue(t, QueueOptions{MaxPerRecipient: 16, MaxBytesPerRecipient: 1000, Clock: clock})
	if res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "1", string(make([]byte, 600)))}); err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	// As if 900 bytes had expired from bob's queue without being given back.
	recs, seqs, err := q.readUsage(ctx, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	recs["bob"].add("ghost", 3, 300)
	if errs := q.writeUsage(ctx, recs, seqs); errs["bob"] != nil {
		t.Fatal(errs["bob"])
	}
	// While the record is recent it may hold reservations in flight: it stands.
	res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "carol", "2", string(make([]byte, 300)))})
	var qf *storage.QueueFullError
	if err != nil || !errors.As(res[0].Err, &qf) || qf.Limit != "bytes" {
		t.Fatalf("a recent record was recounted: %+v %v", res, err)
	}
	mu.Lock()
	now = now.Add(recountAfter + time.Second)
	mu.Unlock()
	res, err = q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "carol", "2", string(make([]byte, 300)))})
	if err != nil || res[0].Err != nil {
		t.Fatalf("refused on a stale record: %+v %v", res, err)
	}
	if recs, _, _ = q.readUsage(ctx, []string{"bob"}); recs["bob"].Bytes != 900 || recs["bob"].Senders["ghost"] != nil {
		t.Fatalf("recounted record %+v", recs["bob"])
	}
}

// TestQueueUsageAcrossNodes: two nodes' queues filling one recipient at once never
// pass its byte limit together (compare-and-set on the usage record).
func TestQueueUsageAcrossNodes(t *testing.T) {
	s := natstest.Single(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	o := QueueOptions{MaxPerRecipient: 100, MaxBytesPerRecipient: 2000}
	var qs [2]*Queue
	for i := range qs {
		q, err := NewQueue(ctx, testConn(t, []string{s.URL()}, 1), o)
		if err != nil {
			t.Fatal(err)
		}
		qs[i] = q
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for n, q := range qs {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 10 {
					res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", fmt.Sprint("s", n, g), fmt.Sprint(k), string(make([]byte, 100)))})
					if err != nil {
						t.Error(err)
						return
					}
					if res[0].Err == nil {
						accepted.Add(1)
					} else if !errors.Is(res[0].Err, storage.ErrQueueFull) && !errors.Is(res[0].Err, server.ErrUnavailable) {
						t.Error(res[0].Err)
					}
				}
			}()
		}
	}
	wg.Wait()
	p, err := qs[0].Pending(ctx, "bob", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(p)) != accepted.Load() || len(p) > 20 || len(p) < 15 {
		t.Fatalf("%d queued, %d accepted: want the same, at most 20 (2000 bytes), and nearly that", len(p), accepted.Load())
	}
}

func FuzzDecodeQueueUsage(f *testing.F) {
	f.Add([]byte(`{"c":1,"b":2,"s":{"a":{"c":1,"b":2}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeQueueUsage(b)
		if err != nil {
			if !errors.Is(err, ErrBadUsage) {
				t.Fatalf("untyped %v", err)
			}
			return
		}
		if u.Count < 0 || u.Bytes < 0 {
			t.Fatal("negative usage accepted")
		}
	})
}

// TestQueueLargeBatch: a group commit of 1024 (more than one atomic batch may hold)
// goes in as several atomic batches; each message gets its own sequence.
func TestQueueLargeBatch(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{})
	msgs := make([]storage.QueuedMessage, 1024)
	for i := range msgs {
		msgs[i] = msg(fmt.Sprint("r", i%7), "alice", fmt.Sprint(i), fmt.Sprint("body", i))
	}
	res, err := q.Enqueue(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int64]int{}
	for i, r := range res {
		if r.Err != nil || r.Duplicate || r.ID <= 0 {
			t.Fatalf("message %d: %+v", i, r)
		}
		ids[r.ID] = i
	}
	if len(ids) != len(msgs) {
		t.Fatalf("%d distinct ids for %d messages", len(ids), len(msgs))
	}
	p, err := q.Pending(ctx, "r3", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p {
		if i := ids[m.ID]; string(m.Body) != fmt.Sprint("body", i) || m.To != "r3" {
			t.Fatalf("id %d holds %q, accepted for message %d", m.ID, m.Body, i)
		}
	}
	if len(p) != (1024+7-1-3)/7 {
		t.Fatalf("r3 has %d", len(p))
	}
}

// TestQueueShards: a queue split into 3 streams keeps every promise of one: ids
// unique across shards and increasing per recipient, pending in order, acks (a
// prefix and one in the middle) delete only the recipient's, duplicates in and
// beyond the window, purge and depth.
func TestQueueShards(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{Shards: 3, MaxPerRecipient: 50})
	var batch []storage.QueuedMessage
	for i := range 60 {
		batch = append(batch, msg(fmt.Sprint("u", i%6), "alice", fmt.Sprint(i), fmt.Sprint("m", i)))
	}
	res, err := q.Enqueue(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	shards := map[int]bool{}
	for i, r := range res {
		if r.Err != nil || r.Duplicate || seen[r.ID] {
			t.Fatalf("message %d: %+v", i, r)
		}
		seen[r.ID] = true
		shards[q.shardOf(batch[i].To)] = true
	}
	if len(shards) < 2 {
		t.Fatalf("6 names all in one shard of 3: %v", shards)
	}
	for r := range 6 {
		to := fmt.Sprint("u", r)
		p, err := q.Pending(ctx, to, 0, 100)
		if err != nil || len(p) != 10 {
			t.Fatalf("%s: %d pending, %v", to, len(p), err)
		}
		for k, m := range p {
			if m.ID != res[r+6*k].ID || string(m.Body) != fmt.Sprint("m", r+6*k) {
				t.Fatalf("%s #%d: %+v", to, k, m)
			}
		}
		if after, _ := q.Pending(ctx, to, p[4].ID, 100); len(after) != 5 || after[0].ID != p[5].ID {
			t.Fatalf("%s after #4: %+v", to, after)
		}
		// Another name's ids acked as to's are ignored; a prefix and one in the middle go.
		other := res[(r+1)%6].ID
		if err := q.Ack(ctx, to, []int64{p[0].ID, p[1].ID, p[7].ID, other}); err != nil {
			t.Fatal(err)
		}
		if left, _ := q.Pending(ctx, to, 0, 100); len(left) != 7 || left[0].ID != p[2].ID {
			t.Fatalf("%s after acks: %d left", to, len(left))
		}
	}
	for r := range 6 {
		if left, _ := q.Pending(ctx, fmt.Sprint("u", r), 0, 100); len(left) != 7 {
			t.Fatalf("u%d lost messages to another's ack: %d left", r, len(left))
		}
	}
	// Duplicates: in the window, and beyond it (the marker holds the id).
	if d, _ := q.Enqueue(ctx, []storage.QueuedMessage{msg("u3", "alice", "57", "again")}); !d[0].Duplicate || d[0].ID != res[57].ID {
		t.Fatalf("resend in the window: %+v, want %d", d, res[57].ID)
	}
	var n atomic.Int64
	q.msgID = func(string, string, string) string { return fmt.Sprint("fresh-", n.Add(1)) }
	if d, _ := q.Enqueue(ctx, []storage.QueuedMessage{msg("u3", "alice", "57", "again"), msg("u4", "alice", "58", "again")}); !d[0].Duplicate || d[0].ID != res[57].ID || !d[1].Duplicate || d[1].ID != res[58].ID {
		t.Fatalf("resend beyond the window: %+v", d)
	}
	if depth, err := q.QueueDepth(ctx); err != nil || depth != 42 {
		t.Fatalf("depth %d %v, want 42", depth, err)
	}
	if n, err := q.PurgeRecipient(ctx, "u2"); err != nil || n != 7 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if depth, _ := q.QueueDepth(ctx); depth != 35 {
		t.Fatalf("depth after purge %d", depth)
	}
}

// A stream's creation is tried again only while the cluster is not ready for it (an
// attempt timed out, no meta leader yet, its peers not all known); a NATS without
// JetStream, or a refused configuration, fails at once.
func TestStreamNotReady(t *testing.T) {
	for _, tc := range []struct {
		err   error
		again bool
	}{
		{fmt.Errorf("create: %w", context.DeadlineExceeded), true},
		{nats.ErrTimeout, true},
		{&jetstream.APIError{ErrorCode: errCodeClusterNotAvailable, Code: 503}, true},
		{&jetstream.APIError{ErrorCode: errCodeNoSuitablePeers, Code: 500}, true},
		{jetstream.ErrJetStreamNotEnabled, false},
		{nats.ErrNoResponders, false},
		{&jetstream.APIError{ErrorCode: 10058, Code: 400}, false}, // stream name in use with another configuration
	} {
		if got := streamNotReady(tc.err); got != tc.again {
			t.Errorf("streamNotReady(%v) = %v, want %v", tc.err, got, tc.again)
		}
	}
}

// TestQueueAckOwned: AckOwned asks owns once it has read which acked messages are
// queued, and deletes only those: a message queued while owns runs — a new owner's,
// its id guessed and acked ahead — stays; when owns refuses, nothing is deleted and
// the ack's error is owns's; an ack of nothing queued asks nothing.
func TestQueueAckOwned(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{})
	res, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "1", "old owner's")})
	if err != nil || res[0].Err != nil {
		t.Fatal(res, err)
	}
	first := res[0].ID
	var late int64
	asked := 0
	owns := func(ctx context.Context, name, card string) error {
		asked++
		if name != "bob" || card != "card-1" {
			t.Errorf("owns(%q, %q)", name, card)
		}
		r, err := q.Enqueue(ctx, []storage.QueuedMessage{msg("bob", "alice", "2", "new owner's")})
		if err != nil || r[0].Err != nil {
			t.Error(r, err)
		}
		late = r[0].ID
		return nil
	}
	errs := q.AckOwned(ctx, []server.OwnedAck{{To: "bob", CardID: "card-1", IDs: []int64{first, first + 1}}}, owns)
	if len(errs) != 1 || errs[0] != nil || asked != 1 || late != first+1 {
		t.Fatalf("errs %v, owns asked %d times, the late message's id %d (want %d)", errs, asked, late, first+1)
	}
	if p, _ := q.Pending(ctx, "bob", 0, 10); len(p) != 1 || p[0].ID != late {
		t.Fatalf("after the ack: %+v, want only the message queued during the check", p)
	}

	refused := errors.New("not the name's card")
	errs = q.AckOwned(ctx, []server.OwnedAck{{To: "bob", CardID: "card-1", IDs: []int64{late}}},
		func(context.Context, string, string) error { return refused })
	if len(errs) != 1 || !errors.Is(errs[0], refused) {
		t.Fatalf("refused ack: %v", errs)
	}
	if p, _ := q.Pending(ctx, "bob", 0, 10); len(p) != 1 {
		t.Fatalf("a refused ack deleted: %+v", p)
	}
	errs = q.AckOwned(ctx, []server.OwnedAck{{To: "bob", CardID: "card-1", IDs: []int64{first, late + 100}}},
		func(context.Context, string, string) error { t.Error("asked for an ack of nothing queued"); return nil })
	if len(errs) != 1 || errs[0] != nil {
		t.Fatalf("an ack of nothing: %v", errs)
	}
}
