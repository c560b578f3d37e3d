package cluster

import (
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
)

// TestSharedLimitAcrossNodes: a bucket of burst 3, one token a minute, counted in the
// directory: three takes pass whichever node makes them, the fourth is refused on
// either with the time until the next token, which arrives on time; other keys and
// other limits have their own buckets.
func TestSharedLimitAcrossNodes(t *testing.T) {
	ns := natstest.Single(t)
	a := newTestDirectory(t, connect(t, ns.URL()))
	b := newTestDirectory(t, connect(t, ns.URL()))
	ctx := testCtx(t)
	now := t0
	for i, d := range []*Directory{a, b, a} {
		if ok, _, err := d.Allow(ctx, "registrations_per_address", "192.0.2.1", now, time.Minute, 3); err != nil || !ok {
			t.Fatalf("take %d: %v %v", i, ok, err)
		}
	}
	for _, d := range []*Directory{a, b} {
		ok, wait, err := d.Allow(ctx, "registrations_per_address", "192.0.2.1", now, time.Minute, 3)
		if err != nil || ok || wait != time.Minute {
			t.Fatalf("fourth take: %v, wait %v, %v", ok, wait, err)
		}
	}
	if ok, _, err := b.Allow(ctx, "registrations_per_address", "192.0.2.2", now, time.Minute, 3); err != nil || !ok {
		t.Fatalf("another address: %v %v", ok, err)
	}
	if ok, _, err := b.Allow(ctx, "recovery_per_address", "192.0.2.1", now, time.Minute, 3); err != nil || !ok {
		t.Fatalf("another limit: %v %v", ok, err)
	}
	later := now.Add(time.Minute - time.Second)
	if ok, wait, _ := b.Allow(ctx, "registrations_per_address", "192.0.2.1", later, time.Minute, 3); ok || wait != time.Second {
		t.Fatalf("a second early: %v, wait %v", ok, wait)
	}
	if ok, _, err := b.Allow(ctx, "registrations_per_address", "192.0.2.1", now.Add(time.Minute), time.Minute, 3); err != nil || !ok {
		t.Fatalf("after a minute: %v %v", ok, err)
	}
	if ok, _, _ := a.Allow(ctx, "registrations_per_address", "192.0.2.1", now.Add(time.Minute), time.Minute, 3); ok {
		t.Fatal("the minute's token was taken twice")
	}
}
