package chat

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/fifo"
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

	// The line carries the relay id of the first message it counted; a resend of that
	// message (once the sender accepted the new key) does not fill it.
	if ph, ok := c.placeholderFor(ctx, "bob", 1); ok {
		t.Fatalf("a resend of the first message counted would replace the line: %+v", ph)
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

// Over a real relay: what a contact sent to alice's old key while she was away — texts
// and receipts look alike — shows no placeholder each on the device that recovered her
// name (she had no contacts there yet: dropped); the conversation then goes on in the
// new session.
func TestOldKeyMessagesAfterRecovery(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	converse(t, alice, bob)
	code := alice.c.TakeRecoveryCode()
	alice.close()
	for _, text := range []string{"m1", "m2"} {
		m, err := bob.c.Send(ctx, "alice", text)
		must(t, err)
		waitState(t, bob.c, m.ID, Sent)
	}

	p2 := Profile{Dir: filepath.Join(t.TempDir(), "alice2"), StoreOptions: storage.ClientOptions{KDF: testKDF, Synchronous: "NORMAL"}}
	p2.Prefs.Logger = testLogger(t)
	p2.Prefs.OneTimeKeys = 10
	// The recovery comes a while after bob's messages (a card's time has second
	// precision; the rule counts only what predates the card's second).
	p2.Prefs.Clock = func() time.Time { return time.Now().Add(2 * time.Second) }
	c2, err := p2.Recover(ctx, "alice", code, testPass, r.URL)
	must(t, err)
	t.Cleanup(func() { c2.Close() })
	_, err = c2.AddContact(ctx, "bob")
	must(t, err)
	_, err = c2.Send(ctx, "bob", "new here")
	must(t, err)
	waitEvent(t, bob.c, "alice's key change", func(e Event) bool { return e.Kind == ContactKeyChanged && e.Contact == "alice" })
	must(t, bob.c.AcceptKey(ctx, "alice"))
	_, err = bob.c.Send(ctx, "alice", "after")
	must(t, err)
	waitEvent(t, c2, `"after" from bob`, func(e Event) bool {
		if e.Kind == Undecryptable {
			if e.Message == nil {
				t.Errorf("an unreadable-message event for a message to the old key: %v", e.Err)
			} else if _, ok := PreviousKeyCount(*e.Message); !ok {
				t.Errorf("a placeholder for a message to the old key: %+v", *e.Message)
			}
		}
		return e.Kind == MessageReceived && e.Contact == "bob" && e.Message.Text == "after"
	})
	hist, err := c2.History(ctx, "bob", 0, 100)
	must(t, err)
	// bob's two texts and his receipts for alice's old messages: dropped if they came
	// before alice2 added bob, else counted on one line.
	lines := 0
	for _, m := range hist {
		if m.State != UndecryptableState {
			continue
		}
		lines++
		if _, ok := PreviousKeyCount(m); !ok || lines > 1 {
			t.Errorf("unexpected unreadable line: %+v", m)
		}
	}
}

// pastRelay hands its pushes on, with the next delivered message's received_at set far
// in the past when forge is set, as a hostile relay could.
type pastRelay struct {
	RelayClient
	q     *fifo.Queue[client.Push]
	forge atomic.Bool
}

func (p *pastRelay) Pushes() *fifo.Queue[client.Push] { return p.q }

// run hands inner's pushes on to q until inner is closed.
func (p *pastRelay) run(ctx context.Context, inner RelayClient, q *fifo.Queue[client.Push]) {
	defer q.Close()
	for {
		v, err := inner.Pushes().Wait(ctx)
		if err != nil {
			return
		}
		if v.Message != nil && p.forge.CompareAndSwap(true, false) {
			m := *v.Message
			m.ReceivedAt = time.Unix(1000, 0)
			v.Message = &m
		}
		q.Push(v)
	}
}

// A relay that corrupts a message and dates it before the receiver's card (so that it
// counts as sent to a previous key, shown only as a count) cannot make it vanish: the
// receiver asks for it again all the same, and the sender's resend shows (found by a
// hostile-relay run: no retry request was sent for such a message).
func TestMessageDatedBeforeTheCardIsAskedForAgain(t *testing.T) {
	r := relaytest.Start(t)
	tr := &tamperRelay{}
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { tr.RelayClient = client.New(cfg); return tr }
	})
	var pr *pastRelay
	bob := newUser(t, r, "bob", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient {
			// A new wrapper each time: a profile opened again dials again.
			inner, q := client.New(cfg), fifo.New[client.Push]()
			pr = &pastRelay{RelayClient: inner, q: q}
			go pr.run(t.Context(), inner, q)
			return pr
		}
	})
	converse(t, alice, bob)
	tr.mu.Lock()
	tr.tamper = true
	tr.mu.Unlock()
	pr.forge.Store(true)
	if _, err := alice.c.Send(t.Context(), "bob", "hidden by the relay"); err != nil {
		t.Fatal(err)
	}
	got := waitReceived(t, bob.c, "alice", "hidden by the relay")
	if got.State == UndecryptableState {
		t.Fatalf("the resend: %+v", got)
	}
}
