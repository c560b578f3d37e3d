package chat_test

import (
	"fmt"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// Both sides start a session before either has seen the other's: they converge on one
// session (the one with the smaller ID) and no message is lost.
func TestSimultaneousStartConverges(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	ab := chattest.AddContact(t, alice, "bob")
	ba := chattest.AddContact(t, bob, "alice")
	bobCard, _ := chat.StoredCard(alice.Controller, ctx, ab.CardID)
	aliceCard, _ := chat.StoredCard(bob.Controller, ctx, ba.CardID)
	sa, err := alice.StartNewSession(ctx, bobCard)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.StartNewSession(ctx, aliceCard)
	if err != nil {
		t.Fatal(err)
	}
	if sa.ID() == sb.ID() {
		t.Fatal("two handshakes produced the same session ID")
	}
	// Each sends before seeing the other's initial message.
	if _, err := alice.Send(ctx, "bob", "a0"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "b0"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitReceived(t, bob, "alice", "a0")
	chattest.WaitReceived(t, alice, "bob", "b0")

	// Keep talking both ways; everything arrives and both settle on the same session.
	for i := 1; i <= 5; i++ {
		if _, err := alice.Send(ctx, "bob", fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, "alice", fmt.Sprintf("b%d", i)); err != nil {
			t.Fatal(err)
		}
		chattest.WaitReceived(t, bob, "alice", fmt.Sprintf("a%d", i))
		chattest.WaitReceived(t, alice, "bob", fmt.Sprintf("b%d", i))
	}
	want := min(sa.ID(), sb.ID())
	aa, err := alice.ActiveSession(ctx, ab.CardID)
	if err != nil || aa == nil {
		t.Fatalf("alice's active session: %v", err)
	}
	bb, err := bob.ActiveSession(ctx, ba.CardID)
	if err != nil || bb == nil {
		t.Fatalf("bob's active session: %v", err)
	}
	if aa.ID() != want || bb.ID() != want {
		t.Fatalf("active sessions alice=%.8s bob=%.8s, want both %.8s", aa.ID(), bb.ID(), want)
	}
	for _, u := range []*chattest.User{alice, bob} {
		h, err := u.History(ctx, map[string]string{"alice": "bob", "bob": "alice"}[u.Name], 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h {
			if m.State == chat.UndecryptableState {
				t.Fatalf("%s has an undecryptable message: %s", u.Name, m.Reason)
			}
		}
		if len(h) != 12 {
			t.Fatalf("%s has %d messages, want 12", u.Name, len(h))
		}
	}
}
