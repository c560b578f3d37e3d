package daemon

import (
	"testing"

	"pfschat/chat"
	"pfschat/chat/profile"
)

// A subscribe that passed call's look at the server while it still ran, on a connection
// with all its subscriptions, reaches the limit once Close has begun: it is refused as
// closing, not too_many (the client would otherwise be told to unsubscribe and retry).
func TestSubscribeRefusedWhileClosingIsClosing(t *testing.T) {
	events := make(chan chat.Event)
	hub := NewHub(events)
	t.Cleanup(func() { close(events); <-hub.Done() })
	s := New(Config{Hub: hub, Owner: profile.OwnerDaemon})
	c := &conn{s: s, subs: make(map[int64]*Sub)}
	for i := range int64(MaxSubscriptions) {
		sub := hub.Subscribe()
		t.Cleanup(sub.Close)
		c.subs[i+1] = sub
	}
	// while the server runs, the ninth is too many
	if _, e := c.subscribe(t.Context()); e == nil || e.Code != CodeTooMany {
		t.Fatalf("a subscription beyond %d while running: %v; want too_many", MaxSubscriptions, e)
	}
	// Close has begun (its first step) and call's look is behind this request
	s.stop()
	if _, e := c.subscribe(t.Context()); e == nil || e.Code != CodeClosing || e.Data == nil || e.Data.Name != "closing" {
		t.Fatalf("a subscription beyond %d while closing: %v; want closing", MaxSubscriptions, e)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
