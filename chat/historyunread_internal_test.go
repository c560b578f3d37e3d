package chat

import (
	"fmt"
	"testing"
	"time"

	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// TestHistoryFromUnread: a conversation with many unread messages is read from its
// first unread message to the newest in one call, with a page of older ones for
// context, rather than a page at a time back to it (the UI opens it there).
func TestHistoryFromUnread(t *testing.T) {
	ctx := t.Context()
	c := aliceKnowingBob(t)
	put := func(text string, st storage.DeliveryState) int64 {
		id, err := c.store.CommitReceive(ctx, storage.ReceiveTx{Message: &storage.Message{Contact: "bob", Body: []byte(text), State: st}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := 1; i <= 70; i++ {
		put(fmt.Sprintf("read %d", i), storage.Read)
	}
	first := put("unread 1", storage.Delivered)
	for i := 2; i <= 260; i++ {
		put(fmt.Sprintf("unread %d", i), storage.Delivered)
	}

	msgs, more, err := c.HistoryFromUnread(ctx, "bob", 260, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 260+50 || !more {
		t.Fatalf("%d messages, more %v; want the 260 unread and 50 older, more true", len(msgs), more)
	}
	if msgs[0].Text != "unread 260" || msgs[259].ID != first || msgs[260].Text != "read 70" || msgs[309].Text != "read 21" {
		t.Fatalf("window %q … %q (%d) %q … %q, want newest first from unread 260 to read 21",
			msgs[0].Text, msgs[259].Text, msgs[259].ID, msgs[260].Text, msgs[309].Text)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].ID >= msgs[i-1].ID {
			t.Fatalf("not newest first at %d: %d after %d", i, msgs[i].ID, msgs[i-1].ID)
		}
	}
	// History goes on from the oldest returned.
	if h, err := c.History(ctx, "bob", msgs[len(msgs)-1].ID, 50); err != nil || len(h) != 20 || h[0].Text != "read 20" {
		t.Fatalf("the rest: %d messages (%v), want the 20 oldest", len(h), err)
	}
	// The context reaches the oldest message: nothing more.
	if msgs, more, err := c.HistoryFromUnread(ctx, "bob", 260, 100); err != nil || len(msgs) != 330 || more {
		t.Fatalf("with 100 older: %d messages, more %v, %v; want all 330, more false", len(msgs), more, err)
	}
	// No unread: the newest page.
	if msgs, more, err := c.HistoryFromUnread(ctx, "bob", 0, 50); err != nil || len(msgs) != 50 || msgs[0].Text != "unread 260" || !more {
		t.Fatalf("no unread: %d messages, more %v, %v; want the newest 50", len(msgs), more, err)
	}
}

// aliceKnowingBob is alice's controller on a relay of its own, with bob's card and
// contact put straight into her store: history tests fill it without a bob to send.
func aliceKnowingBob(t *testing.T) *Controller {
	t.Helper()
	ctx := t.Context()
	c := newUser(t, relaytest.Start(t), "alice").c
	if err := c.store.PutCard(ctx, storage.Card{ID: "card-bob", Name: "bob", Data: []byte("x"), FirstSeen: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.store.AddContact(ctx, "bob", "card-bob", time.Now()); err != nil {
		t.Fatal(err)
	}
	return c
}
