package chat

import (
	"fmt"
	"testing"

	"pfschat/relay/relaytest"
)

// An offline recipient gets its backlog when it comes back, in order.
func TestOfflineRecipientGetsBacklog(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.close()
	const n = 20
	var last Message
	for i := range n {
		m, err := alice.c.Send(ctx, "bob", fmt.Sprintf("backlog %d", i))
		if err != nil {
			t.Fatal(err)
		}
		last = m
	}
	waitState(t, alice.c, last.ID, Sent)

	bob.reopen()
	if err := bob.c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	unread, err := bob.c.Unread(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(unread) != n {
		t.Fatalf("bob has %d unread, want %d", len(unread), n)
	}
	for i, m := range unread {
		if want := fmt.Sprintf("backlog %d", i); m.Text != want || m.Contact != "alice" {
			t.Fatalf("unread[%d] = %q from %s, want %q", i, m.Text, m.Contact, want)
		}
	}
	waitState(t, alice.c, last.ID, Delivered)
}

// An offline sender's messages wait in the outbox and go out, in order, on reconnect.
func TestOfflineSenderOutboxDrains(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, "bob", "first"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "first")

	r.Close() // the relay goes away; alice keeps writing
	waitEvent(t, alice.c, "offline", func(e Event) bool { return e.Kind == ConnectionChanged && e.State.Status != Online })
	var ids []int64
	for i := range 5 {
		m, err := alice.c.Send(ctx, "bob", fmt.Sprintf("offline %d", i))
		if err != nil {
			t.Fatalf("offline send %d: %v", i, err)
		}
		if m.State != Pending {
			t.Fatalf("offline message state %s", m.State)
		}
		ids = append(ids, m.ID)
	}
	// Alice restarts while offline too: the outbox is in the store, not in memory.
	alice.p.Prefs.AllowOffline = true
	alice.reopen()

	r.Restart(t)
	for i := range 5 {
		waitReceived(t, bob.c, "alice", fmt.Sprintf("offline %d", i))
	}
	for _, id := range ids {
		waitState(t, alice.c, id, Delivered)
	}
}

// The first message to a contact needs the relay for the handshake; written offline, it
// waits in the outbox and the handshake runs when the relay is back.
func TestOfflineFirstMessageWaitsForTheRelay(t *testing.T) {
	r := relaytest.Start(t)
	alice := newUser(t, r, "alice", func(p *Profile) { p.Prefs.AllowOffline = true })
	bob := newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	r.Close()
	waitEvent(t, alice.c, "offline", func(e Event) bool { return e.Kind == ConnectionChanged && e.State.Status != Online })
	first, err := alice.c.Send(ctx, "bob", "written offline")
	if err != nil {
		t.Fatalf("first message offline: %v", err)
	}
	second, err := alice.c.Send(ctx, "bob", "also offline")
	must(t, err)
	alice.reopen() // survives a restart too
	r.Restart(t)
	waitReceived(t, bob.c, "alice", "written offline")
	waitReceived(t, bob.c, "alice", "also offline")
	for _, id := range []int64{first.ID, second.ID} {
		waitState(t, alice.c, id, Delivered)
	}
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	if len(h) != 2 || h[1].Text != "written offline" || h[0].Text != "also offline" {
		t.Fatalf("bob's history: %+v", h)
	}
	if out, _ := alice.c.store.Outbox(ctx); len(out) != 0 {
		t.Fatalf("%d items left in alice's outbox", len(out))
	}
}
