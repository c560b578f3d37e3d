package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// enqueueUntil sends m until it is accepted (a retry with the same client_id, as a
// client does after "unavailable"), bounded by ctx.
func enqueueUntil(ctx context.Context, t *testing.T, q *Queue, m storage.QueuedMessage) storage.EnqueueResult {
	t.Helper()
	for {
		res, err := q.Enqueue(ctx, []storage.QueuedMessage{m})
		if err == nil && res[0].Err == nil {
			return res[0]
		}
		if err == nil {
			err = res[0].Err
		}
		if !errors.Is(err, server.ErrUnavailable) {
			t.Fatalf("enqueue: %v, want only unavailable while the cluster changes", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("not accepted in time: %v", err)
		}
	}
}

// TestQueueR3Faults: a queue at R3 keeps accepting with one of three servers down
// and loses nothing; with two down a send is refused unavailable, never accepted;
// once one returns the same send goes in, and each accepted message is read once.
func TestQueueR3Faults(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	cl := natstest.Cluster(t, 3)
	c := testConn(t, cl.URLs(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // bounds a hang: each re-election may take tens of seconds on two loaded cores
	defer cancel()
	q, err := NewQueue(ctx, c, QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[int64]string{}
	send := func(id string) {
		r := enqueueUntil(ctx, t, q, msg("bob", "alice", id, "body "+id))
		if r.Duplicate && accepted[r.ID] == "" {
			// An attempt answered unavailable was stored after all (its proposal
			// committed once a quorum was back): the retry is recognised.
			accepted[r.ID] = id
			return
		}
		if r.Duplicate {
			if accepted[r.ID] != id {
				t.Fatalf("%s answered duplicate of %d (%s)", id, r.ID, accepted[r.ID])
			}
			return
		}
		accepted[r.ID] = id
	}
	for i := range 5 {
		send(fmt.Sprint("a", i))
	}
	cl.Stop(0)
	for i := range 5 {
		send(fmt.Sprint("b", i))
	}
	cl.Stop(1)
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	res, err := q.Enqueue(short, []storage.QueuedMessage{msg("bob", "alice", "c0", "body c0")})
	cancelShort()
	if err == nil {
		err = res[0].Err
	}
	if !errors.Is(err, server.ErrUnavailable) {
		t.Fatalf("with 2 of 3 servers down: %v (%+v), want unavailable", err, res)
	}
	cl.Restart(1)
	send("c0") // the refused send, retried with its client_id
	send("c1")
	got, err := q.Pending(ctx, "bob", 0, 100)
	for err != nil && errors.Is(err, server.ErrUnavailable) && ctx.Err() == nil {
		got, err = q.Pending(ctx, "bob", 0, 100)
	}
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range got {
		seen[m.ClientID]++
		if accepted[m.ID] != m.ClientID {
			t.Errorf("read %d (%s), accepted as %q", m.ID, m.ClientID, accepted[m.ID])
		}
	}
	for id, cid := range accepted {
		if seen[cid] != 1 {
			t.Errorf("accepted %d (%s) read %d times", id, cid, seen[cid])
		}
	}
	if len(accepted) != 12 {
		t.Errorf("%d accepted, want 12", len(accepted))
	}
}
