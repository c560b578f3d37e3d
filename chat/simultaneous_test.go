package chat

import (
	"fmt"
	"testing"

	"pfschat/relay/relaytest"
)

// Both sides start a session before either has seen the other's: they converge on one
// session (the one with the smaller ID) and no message is lost.
func TestSimultaneousStartConverges(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	ab, err := alice.c.AddContact(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	ba, err := bob.c.AddContact(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bobCard, _ := alice.c.storedCard(ctx, ab.CardID)
	aliceCard, _ := bob.c.storedCard(ctx, ba.CardID)
	sa, err := alice.c.StartNewSession(ctx, bobCard)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.c.StartNewSession(ctx, aliceCard)
	if err != nil {
		t.Fatal(err)
	}
	if sa.ID() == sb.ID() {
		t.Fatal("two handshakes produced the same session ID")
	}
	// Each sends before seeing the other's initial message.
	if _, err := alice.c.Send(ctx, "bob", "a0"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.Send(ctx, "alice", "b0"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "a0")
	waitReceived(t, alice.c, "bob", "b0")

	// Keep talking both ways; everything arrives and both settle on the same session.
	for i := 1; i <= 5; i++ {
		if _, err := alice.c.Send(ctx, "bob", fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.c.Send(ctx, "alice", fmt.Sprintf("b%d", i)); err != nil {
			t.Fatal(err)
		}
		waitReceived(t, bob.c, "alice", fmt.Sprintf("a%d", i))
		waitReceived(t, alice.c, "bob", fmt.Sprintf("b%d", i))
	}
	want := min(sa.ID(), sb.ID())
	aa, err := alice.c.ActiveSession(ctx, ab.CardID)
	if err != nil || aa == nil {
		t.Fatalf("alice's active session: %v", err)
	}
	bb, err := bob.c.ActiveSession(ctx, ba.CardID)
	if err != nil || bb == nil {
		t.Fatalf("bob's active session: %v", err)
	}
	if aa.ID() != want || bb.ID() != want {
		t.Fatalf("active sessions alice=%.8s bob=%.8s, want both %.8s", aa.ID(), bb.ID(), want)
	}
	for _, u := range []*user{alice, bob} {
		h, err := u.c.History(ctx, map[string]string{"alice": "bob", "bob": "alice"}[u.name], 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h {
			if m.State == UndecryptableState {
				t.Fatalf("%s has an undecryptable message: %s", u.name, m.Reason)
			}
		}
		if len(h) != 12 {
			t.Fatalf("%s has %d messages, want 12", u.name, len(h))
		}
	}
}
