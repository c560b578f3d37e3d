package chat_test

import (
	"fmt"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// An offline recipient gets its backlog when it comes back, in order.
func TestOfflineRecipientGetsBacklog(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	bob.Close()
	const n = 20
	var last chat.Message
	for i := range n {
		m, err := alice.Send(ctx, "bob", fmt.Sprintf("backlog %d", i))
		if err != nil {
			t.Fatal(err)
		}
		last = m
	}
	chattest.WaitState(t, alice, last.ID, chat.Sent)

	bob.Reopen()
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	unread, err := bob.Unread(ctx)
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
	chattest.WaitState(t, alice, last.ID, chat.Delivered)
}

// An offline sender's messages wait in the outbox and go out, in order, on reconnect.
func TestOfflineSenderOutboxDrains(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	chattest.Send(t, alice, bob, "first")

	r.Close() // the relay goes away; alice keeps writing
	chattest.WaitEvent(t, alice, "offline", func(e chat.Event) bool { return e.Kind == chat.ConnectionChanged && e.State.Status != chat.Online })
	var ids []int64
	for i := range 5 {
		m, err := alice.Send(ctx, "bob", fmt.Sprintf("offline %d", i))
		if err != nil {
			t.Fatalf("offline send %d: %v", i, err)
		}
		if m.State != chat.Pending {
			t.Fatalf("offline message state %s", m.State)
		}
		ids = append(ids, m.ID)
	}
	// Alice restarts while offline too: the outbox is in the store, not in memory.
	alice.Profile.Prefs.AllowOffline = true
	alice.Reopen()

	r.Restart(t)
	for i := range 5 {
		chattest.WaitReceived(t, bob, "alice", fmt.Sprintf("offline %d", i))
	}
	for _, id := range ids {
		chattest.WaitState(t, alice, id, chat.Delivered)
	}
}

// The first message to a contact needs the relay for the handshake; written offline, it
// waits in the outbox and the handshake runs when the relay is back.
func TestOfflineFirstMessageWaitsForTheRelay(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice", func(p *chat.Profile) { p.Prefs.AllowOffline = true })
	bob := chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	r.Close()
	chattest.WaitEvent(t, alice, "offline", func(e chat.Event) bool { return e.Kind == chat.ConnectionChanged && e.State.Status != chat.Online })
	first, err := alice.Send(ctx, "bob", "written offline")
	if err != nil {
		t.Fatalf("first message offline: %v", err)
	}
	second, err := alice.Send(ctx, "bob", "also offline")
	chattest.Must(t, err)
	alice.Reopen() // survives a restart too
	r.Restart(t)
	chattest.WaitReceived(t, bob, "alice", "written offline")
	chattest.WaitReceived(t, bob, "alice", "also offline")
	for _, id := range []int64{first.ID, second.ID} {
		chattest.WaitState(t, alice, id, chat.Delivered)
	}
	h, err := bob.History(ctx, "alice", 0, 10)
	chattest.Must(t, err)
	if len(h) != 2 || h[1].Text != "written offline" || h[0].Text != "also offline" {
		t.Fatalf("bob's history: %+v", h)
	}
	if out, _ := chat.StoreOf(alice.Controller).Outbox(ctx); len(out) != 0 {
		t.Fatalf("%d items left in alice's outbox", len(out))
	}
}
