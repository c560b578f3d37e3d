package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// pendingUntil reads to's backlog, retrying while the cluster answers unavailable
// (a stream leader being elected), bounded by ctx.
func pendingUntil(ctx context.Context, t *testing.T, q *Queue, to string, after int64, limit int) []storage.QueuedMessage {
	t.Helper()
	for {
		got, err := q.Pending(ctx, to, after, limit)
		if err == nil {
			return got
		}
		if !errors.Is(err, server.ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("pending: %v", err)
		}
	}
}

// TestQueueR3NoReadAfterAck: at R3, a message whose ack was answered is never read
// again, though the backlog is read from any replica (direct gets) and a replica may
// not have applied the delete or purge yet. Rounds of: enqueue a batch for bob, ack
// a prefix (one purge) or a random subset (deletes by sequence), every few rounds
// move the stream's leader, then read bob's whole backlog at once: none of the acked
// may come back, and every message not acked must.
func TestQueueR3NoReadAfterAck(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	cl := natstest.Cluster(t, 3)
	c := testConn(t, cl.URLs(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, err := NewQueue(ctx, c, QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(16, 1))
	acked := map[int64]bool{}
	var open []int64 // accepted, not acked, in order
	const rounds, batch = 60, 12
	for r := range rounds {
		msgs := make([]storage.QueuedMessage, batch)
		for i := range msgs {
			msgs[i] = msg("bob", "alice", fmt.Sprint(r, "-", i), fmt.Sprint("body ", r, "-", i))
		}
		// A send refused unavailable (the cluster moving) is sent again with its
		// client_id, as a client does: then a copy stored meanwhile is a duplicate.
		ids := make([]int64, batch)
		for retried := false; ; retried = true {
			res, err := q.Enqueue(ctx, msgs)
			if err != nil {
				t.Fatal(err)
			}
			again := false
			for i, x := range res {
				switch {
				case errors.Is(x.Err, server.ErrUnavailable) && ctx.Err() == nil:
					again = true
				case x.Err != nil || x.Duplicate && !retried:
					t.Fatalf("round %d: enqueue %d: %+v", r, i, x)
				default:
					ids[i] = x.ID
				}
			}
			if !again {
				break
			}
		}
		open = append(open, ids...)
		// Ack: a prefix (a purge) on even rounds, a random subset (deletes) on odd ones.
		var ack []int64
		if r%2 == 0 {
			ack = open[:1+rng.IntN(len(open))]
		} else {
			for _, id := range open {
				if rng.IntN(2) == 0 {
					ack = append(ack, id)
				}
			}
		}
		// An ack refused unavailable (a leader being elected) is sent again, as a
		// client does; only an ack answered ok counts.
		for {
			err := q.Ack(ctx, "bob", ack)
			if err == nil {
				break
			}
			if !errors.Is(err, server.ErrUnavailable) || ctx.Err() != nil {
				t.Fatalf("round %d: ack: %v", r, err)
			}
		}
		for _, id := range ack {
			acked[id] = true
		}
		open = slices.DeleteFunc(open, func(id int64) bool { return acked[id] })
		if r%5 == 4 {
			// Move the stream's leader: its successor and the other replica may
			// still be applying the acks when the next read comes.
			if _, err := c.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+q.qstreams[0], nil, 5*time.Second); err != nil {
				t.Fatalf("round %d: step down: %v", r, err)
			}
			// Wait for the successor (a message get asked of no leader waits out
			// the connection's timeout), not for the other replica.
			waitStreamLeader(ctx, t, cl, q.qstreams[0])
		}
		got := pendingUntil(ctx, t, q, "bob", 0, 1024)
		var read []int64
		for _, m := range got {
			if acked[m.ID] {
				t.Fatalf("round %d: message %d (%s) read again after its ack was answered", r, m.ID, m.ClientID)
			}
			read = append(read, m.ID)
		}
		if !slices.Equal(read, open) {
			t.Fatalf("round %d: read %v, want the unacked %v", r, read, open)
		}
	}
}

// waitStreamLeader waits until a server of cl is the leader of stream with its
// applies caught up (bounded by ctx).
func waitStreamLeader(ctx context.Context, t *testing.T, cl *natstest.Group, stream string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for i := range 3 {
			if s := cl.Server(i).Server(); s != nil && s.JetStreamIsStreamLeader("$G", stream) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader of %s: %v", stream, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestQueueAckTwiceGivesBackOnce: the same messages acked twice at once (two
// connections of bob's, or a replica that had not applied the first ack when the
// second read it) give their usage back once: the record stays equal to a count of
// the queue, never below it (a record too low lets the queue pass its limits).
func TestQueueAckTwiceGivesBackOnce(t *testing.T) {
	q, ctx := testQueue(t, QueueOptions{MaxPerRecipient: 1000, MaxBytesPerRecipient: 1 << 20, SenderQuota: 2})
	for r := range 20 {
		msgs := make([]storage.QueuedMessage, 8)
		for i := range msgs {
			msgs[i] = msg("bob", fmt.Sprint("s", i%3), fmt.Sprint(r, "-", i), fmt.Sprint("body ", r, "-", i))
		}
		if _, err := q.Enqueue(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		p := pendingUntil(ctx, t, q, "bob", 0, 1024)
		ack := make([]int64, 0, len(p))
		for i, m := range p {
			if r%2 == 0 && i < len(p)/2 || r%2 == 1 && i%2 == 0 { // a prefix (purge) or every other (deletes)
				ack = append(ack, m.ID)
			}
		}
		done := make(chan error, 2)
		for range 2 {
			go func() { done <- q.Ack(ctx, "bob", ack) }()
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		recs, _, err := q.readUsage(ctx, []string{"bob"})
		if err != nil {
			t.Fatal(err)
		}
		want, err := q.recount(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if u := recs["bob"]; u.Count != want.Count || u.Bytes != want.Bytes {
			t.Fatalf("round %d: usage record %d messages %d bytes, the queue holds %d, %d", r, u.Count, u.Bytes, want.Count, want.Bytes)
		}
	}
}

// TestQueueR3UsageTwoWriters: at R3, one node enqueuing for bob while another acks
// bob's messages write bob's usage record at once (reservations and give-backs);
// JetStream refuses a compare-and-set while another write of the subject is in flight
// (10164): that is a lost compare-and-set, retried, never "unavailable". Afterwards
// the record equals a count of the queue.
func TestQueueR3UsageTwoWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	cl := natstest.Cluster(t, 3)
	o := QueueOptions{MaxPerRecipient: 100000, MaxBytesPerRecipient: 64 << 20, SenderQuota: 8}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	qa, err := NewQueue(ctx, testConn(t, cl.URLs(), 3), o)
	if err != nil {
		t.Fatal(err)
	}
	qb, err := NewQueue(ctx, testConn(t, cl.URLs(), 3), o)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, batch = 40, 16
	sent := make(chan struct{}, rounds)
	errc := make(chan error, 2)
	go func() { // node A: sends
		for r := range rounds {
			msgs := make([]storage.QueuedMessage, batch)
			for i := range msgs {
				msgs[i] = msg("bob", fmt.Sprint("s", i%4), fmt.Sprint(r, "-", i), "body")
			}
			res, err := qa.Enqueue(ctx, msgs)
			if err == nil {
				for _, x := range res {
					if x.Err != nil {
						err = x.Err
						break
					}
				}
			}
			if err != nil {
				errc <- fmt.Errorf("round %d: enqueue: %w", r, err)
				return
			}
			sent <- struct{}{}
		}
		errc <- nil
	}()
	go func() { // node B: acks what it reads, as it comes
		var after int64
		for range rounds {
			select {
			case <-sent:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
			p, err := qb.Pending(ctx, "bob", after, 1024)
			if err != nil {
				errc <- fmt.Errorf("pending: %w", err)
				return
			}
			ids := make([]int64, len(p))
			for i, m := range p {
				ids[i] = m.ID
				after = m.ID
			}
			if err := qb.Ack(ctx, "bob", ids); err != nil {
				errc <- fmt.Errorf("ack: %w", err)
				return
			}
		}
		errc <- nil
	}()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	recs, _, err := qa.readUsage(ctx, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := qa.recount(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if u := recs["bob"]; u.Count != want.Count || u.Bytes != want.Bytes {
		t.Fatalf("usage record %d messages %d bytes, the queue holds %d, %d", u.Count, u.Bytes, want.Count, want.Bytes)
	}
}
