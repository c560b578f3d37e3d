package chat_test

import (
	"errors"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

func TestTwoUsersTalkWithReceipts(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()

	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	m, err := alice.Send(ctx, "bob", "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != chat.Pending || !m.Outgoing {
		t.Fatalf("Send returned %+v, want a pending outgoing message", m)
	}
	got := chattest.WaitReceived(t, bob, "alice", "hello bob")
	if got.Outgoing || got.State != chat.Delivered {
		t.Fatalf("bob got %+v", got)
	}
	chattest.WaitState(t, alice, m.ID, chat.Delivered)

	// Bob answers; alice's session becomes acknowledged; read receipts flow back.
	m2, err := bob.Send(ctx, "alice", "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	chattest.WaitReceived(t, alice, "bob", "hi alice")
	if err := bob.MarkRead(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitState(t, alice, m.ID, chat.Read)
	chattest.WaitState(t, bob, m2.ID, chat.Delivered)

	// Both see the same safety number.
	sa, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if sa.Digits() != sb.Digits() || len(sa.Groups()) != 12 {
		t.Fatalf("safety numbers differ: %s vs %s", sa.Digits(), sb.Digits())
	}
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	cs, err := alice.Contacts(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Verified || cs[0].Name != "bob" {
		t.Fatalf("contacts = %+v, %v", cs, err)
	}
	h, err := alice.History(ctx, "bob", 0, 10)
	if err != nil || len(h) != 2 || h[0].Text != "hi alice" || h[1].Text != "hello bob" {
		t.Fatalf("history = %+v, %v", h, err)
	}
	if _, err := alice.Send(ctx, "carol", "x"); !errors.Is(err, chat.ErrUnknownContact) {
		t.Fatalf("send to unknown contact: %v", err)
	}
	if _, err := alice.AddContact(ctx, "carol"); !errors.Is(err, chat.ErrUnknownUser) {
		t.Fatalf("add unknown user: %v", err)
	}
}

// TestMarkReadThrough: a reader marks read only what it has shown; later messages stay
// unread, and only the shown ones are reported read to the sender.
func TestMarkReadThrough(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	var sent []chat.Message
	var got []chat.Message
	for _, text := range []string{"one", "two", "three"} {
		m, err := alice.Send(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
		got = append(got, chattest.WaitReceived(t, bob, "alice", text))
	}
	if err := bob.MarkReadThrough(ctx, "alice", got[1].ID); err != nil {
		t.Fatal(err)
	}
	unread, err := bob.Unread(ctx)
	if err != nil || len(unread) != 1 || unread[0].Text != "three" {
		t.Fatalf("unread after marking through %q: %+v, %v", got[1].Text, unread, err)
	}
	// Delivery receipts come on their own schedule: wait for "three"'s, and for the
	// read receipt, which covers "one" and "two" only.
	chattest.WaitStored(t, alice, "bob", sent[1].ID, chat.Read)
	chattest.WaitStored(t, alice, "bob", sent[2].ID, chat.Delivered)
	h, err := alice.History(ctx, "bob", 0, 10)
	if err != nil || len(h) != 3 {
		t.Fatalf("history = %+v, %v", h, err)
	}
	if h[0].Text != "three" || h[0].State != chat.Delivered || h[1].State != chat.Read || h[2].State != chat.Read {
		t.Fatalf("alice sees %q %v, %q %v, %q %v; want delivered, read, read",
			h[0].Text, h[0].State, h[1].Text, h[1].State, h[2].Text, h[2].State)
	}
	if err := bob.MarkReadThrough(ctx, "alice", 0); err == nil {
		t.Fatal("MarkReadThrough(0) accepted")
	}
}
