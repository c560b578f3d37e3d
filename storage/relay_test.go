package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRelayQueueBasics(t *testing.T) {
	ctx := context.Background()
	r := newRelay(t, RelayOptions{MaxQueueCount: 3, MaxQueueBytes: 1000})
	res, err := r.Enqueue(ctx, []QueuedMessage{
		{To: "bob", From: "alice", ClientID: "a1", Body: []byte("x"), ExpiresAt: t0.Add(time.Hour)},
		{To: "bob", From: "alice", ClientID: "a1", Body: []byte("x"), ExpiresAt: t0.Add(time.Hour)},
		{To: "bob", From: "carol", ClientID: "a1", Body: []byte("y"), ExpiresAt: t0.Add(time.Hour)},
		{To: "bob", From: "carol", ClientID: "a2", Body: []byte("z")},
		{To: "bob", From: "carol", ClientID: "a3", Body: []byte("w")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Duplicate || !res[1].Duplicate || res[1].ID != res[0].ID || res[2].Duplicate {
		t.Fatalf("results %+v", res)
	}
	var qf *QueueFullError
	if !errors.As(res[4].Err, &qf) || qf.Limit != "count" || !errors.Is(res[4].Err, ErrQueueFull) {
		t.Fatalf("want count limit, got %+v", res[4])
	}
	p, err := r.Pending(ctx, "bob", 0, 10)
	if err != nil || len(p) != 3 || p[0].ID >= p[1].ID {
		t.Fatalf("pending %+v %v", p, err)
	}
	if err := r.Ack(ctx, "mallory", []int64{p[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := r.Ack(ctx, "bob", []int64{p[0].ID, p[1].ID}); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.QueueDepth(ctx); n != 1 {
		t.Fatalf("depth %d", n)
	}
	// A resend after ack is still a duplicate.
	res, err = r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "alice", ClientID: "a1", Body: []byte("x")}})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("resend after ack: %+v %v", res, err)
	}
	if n, err := r.Expire(ctx, t0.Add(2*time.Hour)); err != nil || n != 0 {
		t.Fatalf("expire = %d %v", n, err)
	}
}
