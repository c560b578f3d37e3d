package chat

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// deferCounter counts the controller's "send deferred" log records: one per send the
// relay refused for now.
type deferCounter struct{ n atomic.Int64 }

func (d *deferCounter) Enabled(context.Context, slog.Level) bool { return true }
func (d *deferCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "send deferred" {
		d.n.Add(1)
	}
	return nil
}
func (d *deferCounter) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d *deferCounter) WithGroup(string) slog.Handler      { return d }

// TestFlushKeepsTheRetryBackoff: Flush waits for the send loop's passes and does not
// start one after each, so a relay that refuses a send for now (queue_full here;
// storage_full, unavailable) gets the loop's backed-off retries, not a send every few
// milliseconds up to the frame rate for as long as Flush waits (pfschat send's exit).
func TestFlushKeepsTheRetryBackoff(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{MaxQueueCount: 1}})
	count := &deferCounter{}
	alice := newUser(t, r, "alice", func(p *Profile) { p.Prefs.Logger = slog.New(count) })
	newUser(t, r, "bob").close() // offline: his queue holds one message at most
	ctx := t.Context()
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	first, err := alice.c.Send(ctx, "bob", "one")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, alice.c, first.ID, Sent)
	if _, err := alice.c.Send(ctx, "bob", "two"); err != nil { // queue_full: stays in the outbox
		t.Fatal(err)
	}
	before := count.n.Load()
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if n, err := alice.c.Flush(fctx); n != 1 || err == nil {
		t.Fatalf("Flush = %d, %v; want 1 item left and the deadline", n, err)
	}
	// The loop's backoff (100 ms, doubling) allows a handful of tries in a second.
	if tries := count.n.Load() - before; tries > 10 {
		t.Errorf("%d sends refused for now within Flush's second: Flush retried without the backoff", tries)
	}
}
