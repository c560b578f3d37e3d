package chat

import (
	"errors"
	"testing"

	"pfschat/relay/relaytest"
)

func TestTwoUsersTalkWithReceipts(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)

	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	m, err := alice.c.Send(ctx, "bob", "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != Pending || !m.Outgoing {
		t.Fatalf("Send returned %+v, want a pending outgoing message", m)
	}
	got := waitReceived(t, bob.c, "alice", "hello bob")
	if got.Outgoing || got.State != Delivered {
		t.Fatalf("bob got %+v", got)
	}
	waitState(t, alice.c, m.ID, Delivered)

	// Bob answers; alice's session becomes acknowledged; read receipts flow back.
	m2, err := bob.c.Send(ctx, "alice", "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	waitReceived(t, alice.c, "bob", "hi alice")
	if err := bob.c.MarkRead(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitState(t, alice.c, m.ID, Read)
	waitState(t, bob.c, m2.ID, Delivered)

	// Both see the same safety number.
	sa, err := alice.c.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.c.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if sa.Digits() != sb.Digits() || len(sa.Groups()) != 12 {
		t.Fatalf("safety numbers differ: %s vs %s", sa.Digits(), sb.Digits())
	}
	if err := alice.c.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	cs, err := alice.c.Contacts(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Verified || cs[0].Name != "bob" {
		t.Fatalf("contacts = %+v, %v", cs, err)
	}
	h, err := alice.c.History(ctx, "bob", 0, 10)
	if err != nil || len(h) != 2 || h[0].Text != "hi alice" || h[1].Text != "hello bob" {
		t.Fatalf("history = %+v, %v", h, err)
	}
	if _, err := alice.c.Send(ctx, "carol", "x"); !errors.Is(err, ErrUnknownContact) {
		t.Fatalf("send to unknown contact: %v", err)
	}
	if _, err := alice.c.AddContact(ctx, "carol"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("add unknown user: %v", err)
	}
}

// TestMarkReadThrough: a reader marks read only what it has shown; later messages stay
// unread, and only the shown ones are reported read to the sender.
func TestMarkReadThrough(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	var sent []Message
	var got []Message
	for _, text := range []string{"one", "two", "three"} {
		m, err := alice.c.Send(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
		got = append(got, waitReceived(t, bob.c, "alice", text))
	}
	if err := bob.c.MarkReadThrough(ctx, "alice", got[1].ID); err != nil {
		t.Fatal(err)
	}
	unread, err := bob.c.Unread(ctx)
	if err != nil || len(unread) != 1 || unread[0].Text != "three" {
		t.Fatalf("unread after marking through %q: %+v, %v", got[1].Text, unread, err)
	}
	// Delivery receipts come on their own schedule: wait for "three"'s, and for the
	// read receipt, which covers "one" and "two" only.
	waitStored(t, alice.c, "bob", sent[1].ID, Read)
	waitStored(t, alice.c, "bob", sent[2].ID, Delivered)
	h, err := alice.c.History(ctx, "bob", 0, 10)
	if err != nil || len(h) != 3 {
		t.Fatalf("history = %+v, %v", h, err)
	}
	if h[0].Text != "three" || h[0].State != Delivered || h[1].State != Read || h[2].State != Read {
		t.Fatalf("alice sees %q %v, %q %v, %q %v; want delivered, read, read",
			h[0].Text, h[0].State, h[1].Text, h[1].State, h[2].Text, h[2].State)
	}
	if err := bob.c.MarkReadThrough(ctx, "alice", 0); err == nil {
		t.Fatal("MarkReadThrough(0) accepted")
	}
}
