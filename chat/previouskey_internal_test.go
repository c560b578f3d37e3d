package chat

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// The rule for a message that could not be decrypted: it was sent to a previous key
// of ours when its initial header names a responder card that is not ours, or the
// relay took it before the second our current card was made in.
func TestToPreviousKey(t *testing.T) {
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	made := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	own, err := ratchet.NewCard(k, "alice", "username", "laptop", made, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := &client.Incoming{ReceivedAt: made.Add(time.Minute)}
	before := &client.Incoming{ReceivedAt: made.Add(-time.Minute)}
	other := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		what string
		env  *ratchet.Envelope
		in   *client.Incoming
		want bool
	}{
		{"initial to another card", &ratchet.Envelope{Initial: &ratchet.InitialHeader{ResponderCardID: other}}, after, true},
		{"initial to our card", &ratchet.Envelope{Initial: &ratchet.InitialHeader{ResponderCardID: own.ID()}}, after, false},
		{"normal, taken before our card", &ratchet.Envelope{}, before, true},
		{"normal, taken after our card", &ratchet.Envelope{}, after, false},
		{"normal, taken in our card's second", &ratchet.Envelope{}, &client.Incoming{ReceivedAt: made.Add(999 * time.Millisecond)}, false},
		{"normal, taken the instant before", &ratchet.Envelope{}, &client.Incoming{ReceivedAt: made.Add(-time.Millisecond)}, true},
		{"normal, no relay time", &ratchet.Envelope{}, &client.Incoming{}, false},
	} {
		if got := toPreviousKey(own, tc.env, tc.in); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
	if toPreviousKey(nil, &ratchet.Envelope{}, before) {
		t.Error("no own card: nothing is to a previous key")
	}
}

// Messages sent to a previous key make one summary line per conversation, counted up,
// never a placeholder each; a stranger's are only recorded as handled; a copy is a
// duplicate and does not count.
func TestPreviousKeySummary(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := newUser(t, r, "alice")
	newUser(t, r, "bob")
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	c := alice.c
	handle := func(from, relayID string) (*received, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		in := &client.Incoming{ID: 1, From: from, ReceivedAt: c.card.CreatedAt.Add(-time.Hour)}
		return c.previousKeyMessage(ctx, in, relayID, &received{}, c.now())
	}
	res, err := handle("bob", "1:a")
	if err != nil || res.msg == nil || !errors.Is(res.undecrypt, errPreviousKey) {
		t.Fatalf("first: %+v %v", res, err)
	}
	for i, id := range []string{"2:b", "3:c"} {
		res, err := handle("bob", id)
		if err != nil || res.msg != nil || res.previousKey == nil {
			t.Fatalf("message %d: %+v %v", i+2, res, err)
		}
		if n, ok := PreviousKeyCount(toMessage(*res.previousKey)); !ok || n != i+2 {
			t.Fatalf("message %d counted %d (%v)", i+2, n, ok)
		}
	}
	if _, err := handle("bob", "3:c"); !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("a copy: %v", err)
	}
	hist, err := c.History(ctx, "bob", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var lines []Message
	for _, m := range hist {
		if m.State == UndecryptableState {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 || lines[0].Reason != "3 messages sent to your previous key could not be read" {
		t.Fatalf("undecryptable lines: %+v", lines)
	}

	if _, err := handle("carol", "4:d"); err != nil {
		t.Fatal(err)
	}
	if seen, err := c.store.SeenRelayID(ctx, "4:d"); err != nil || !seen {
		t.Fatalf("a stranger's message to a previous key is not recorded as handled: %v %v", seen, err)
	}
	if _, err := c.store.Contact(ctx, "carol"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a stranger's message to a previous key made a contact: %v", err)
	}
}
