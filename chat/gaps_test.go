package chat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// refusingRelay refuses the next `refuse` sends for good, as a relay refuses a message
// it will never take, and loses the next `drop` sends after accepting them.
type refusingRelay struct {
	RelayClient
	mu           sync.Mutex
	refuse, drop int
}

func (r *refusingRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	r.mu.Lock()
	refuse := r.refuse > 0
	if refuse {
		r.refuse--
	}
	drop := !refuse && r.drop > 0
	if drop {
		r.drop--
	}
	r.mu.Unlock()
	if drop {
		return 1 << 40, nil
	}
	if refuse {
		return 0, &relay.ProtocolError{Code: relay.CodeForbidden, Message: "refused by the test"}
	}
	return r.RelayClient.Send(ctx, to, body, clientID)
}

// A message the relay refused for good leaves no hole at the receiver: the sender
// withdraws its number (chat/PAYLOAD.md §4.6), the receiver shows the message as not
// delivered in its place, and Gaps reports nothing however long it waits. A real hole
// (here: the withdrawn notice deleted, as an older sender would never send it) is
// reported a minute after the later message arrived, not before.
func TestRefusedMessageRaisesNoGap(t *testing.T) {
	ref := &refusingRelay{}
	alice, bob, clock := refusalPair(t, func(c RelayClient) RelayClient { ref.RelayClient = c; return ref })
	ctx := t.Context()
	sendOne(t, alice, bob)
	ref.mu.Lock()
	ref.refuse = 1
	ref.mu.Unlock()
	two, err := alice.c.Send(ctx, "bob", "two")
	must(t, err)
	waitEvent(t, alice.c, "two refused", func(e Event) bool {
		return e.Kind == DeliveryChanged && e.Message.ID == two.ID && e.Message.State == Failed
	})
	// Three may overtake the withdrawn notice; it is shown in its place all the same
	// (TestWithdrawnNoticeOvertakenKeepsSendOrder makes sure it does overtake).
	if _, err := alice.c.Send(ctx, "bob", "three"); err != nil {
		t.Fatal(err)
	}
	waitAll(t, bob.c, "three and two's withdrawn notice",
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.Text == "three"
		},
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.State == Failed && e.Message.Seq == 2
		})
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	var seqs []uint64
	var withdrawn *Message
	for i := len(h) - 1; i >= 0; i-- {
		seqs = append(seqs, h[i].Seq)
		if h[i].State == Failed {
			withdrawn = &h[i]
		}
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("bob's conversation has seqs %v, want 1 2 3", seqs)
	}
	if withdrawn == nil || withdrawn.Seq != 2 || withdrawn.Outgoing || withdrawn.Reason != WithdrawnReason || withdrawn.Text != "" {
		t.Fatalf("the refused message's place: %+v", withdrawn)
	}
	noGapsAfterAnHour(t, bob, clock)

	// A message lost after the relay accepted it is a hole, reported only once the
	// later message has waited GapWait.
	ref.mu.Lock()
	ref.drop = 1
	ref.mu.Unlock()
	if _, err := alice.c.Send(ctx, "bob", "four, lost"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, "bob", "five"); err != nil {
		t.Fatal(err)
	}
	five := waitReceived(t, bob.c, "alice", "five")
	clock.Add(GapWait - time.Second)
	gaps, err := bob.c.Gaps(ctx, "alice")
	must(t, err)
	if len(gaps) != 0 {
		t.Fatalf("a hole reported before GapWait: %+v", gaps)
	}
	clock.Add(time.Second)
	gaps, err = bob.c.Gaps(ctx, "alice")
	must(t, err)
	if len(gaps) != 1 || gaps[0].From != 4 || gaps[0].To != 4 || gaps[0].Contact != "alice" || gaps[0].Before != five.ID {
		t.Fatalf("gaps = %+v, want seq 4 before message %d", gaps, five.ID)
	}
}

// holdingRelay refuses the next send for good once armed, but holds the refusal back
// until the test releases it: the test can commit a later message while the refused
// one is still with the relay, so that message is queued before the withdrawn notice.
type holdingRelay struct {
	RelayClient
	mu      sync.Mutex
	armed   bool
	held    chan struct{} // closed when the refused send is being held
	release chan struct{} // closed by the test: the refusal is answered
}

// arm makes the next send the held refusal.
func (r *holdingRelay) arm() {
	r.mu.Lock()
	r.armed, r.held, r.release = true, make(chan struct{}), make(chan struct{})
	r.mu.Unlock()
}

func (r *holdingRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	r.mu.Lock()
	refuse, held, release := r.armed, r.held, r.release
	r.armed = false
	r.mu.Unlock()
	if !refuse {
		return r.RelayClient.Send(ctx, to, body, clientID)
	}
	close(held)
	select {
	case <-release:
	case <-ctx.Done():
		return 0, fmt.Errorf("holding the refusal of %s: %w", clientID, ctx.Err())
	}
	return 0, &relay.ProtocolError{Code: relay.CodeForbidden, Message: "refused by the test"}
}

// waitAll reads events until each of matches has matched one, in any order.
func waitAll(t *testing.T, c *Controller, what string, matches ...func(Event) bool) []Event {
	t.Helper()
	got := make([]Event, len(matches))
	done := make([]bool, len(matches))
	left := len(matches)
	waitEvent(t, c, what, func(e Event) bool {
		for i, m := range matches {
			if !done[i] && m(e) {
				got[i], done[i] = e, true
				left--
				break
			}
		}
		return left == 0
	})
	return got
}

// A message sent while the relay is refusing the one before it overtakes the withdrawn
// notice (the notice is committed only when the refusal comes back, behind it), yet the
// receiver shows the conversation in the sender's order: one, the refused two's
// placeholder, three — and reports no hole.
func TestWithdrawnNoticeOvertakenKeepsSendOrder(t *testing.T) {
	hold := &holdingRelay{}
	alice, bob, clock := refusalPair(t, func(c RelayClient) RelayClient { hold.RelayClient = c; return hold })
	ctx := t.Context()
	sendOne(t, alice, bob)

	hold.arm()
	two, err := alice.c.Send(ctx, "bob", "two")
	must(t, err)
	select {
	case <-hold.held:
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the relay to be sent two")
	}
	// Two is with the relay, its refusal not yet answered: three is committed now,
	// before the withdrawn notice can be.
	_, err = alice.c.Send(ctx, "bob", "three")
	must(t, err)
	close(hold.release)

	evs := waitAll(t, bob.c, "three and two's withdrawn notice",
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.Text == "three"
		},
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.State == Failed && e.Message.Seq == 2
		})
	if evs[1].Message.ID < evs[0].Message.ID {
		t.Fatal("the withdrawn notice arrived before three: the test no longer exercises a notice overtaken by a later message")
	}
	ah, err := alice.c.History(ctx, "bob", 0, 10)
	must(t, err)
	if i := slices.IndexFunc(ah, func(m Message) bool { return m.ID == two.ID }); i < 0 || ah[i].State != Failed {
		t.Fatalf("alice's two is not failed: %+v", ah)
	}
	h := wantConversation(t, bob, `1 "one" delivered`, `2 "" failed`, `3 "three" delivered`)
	if w := h[1]; w.Outgoing || w.Reason != WithdrawnReason {
		t.Fatalf("the refused message's place: %+v", w)
	}
	noGapsAfterAnHour(t, bob, clock)
}

// The very first message to a contact, refused for good, is withdrawn like any other:
// the send that started the session committed it with the message, so the notice goes
// in that session (an initial message the receiver can open although it never saw the
// refused one), and the receiver, whose first message from the sender is then seq 2,
// reports no hole for seq 1.
func TestRefusedFirstMessageRaisesNoGap(t *testing.T) {
	ref := &refusingRelay{refuse: 1}
	alice, bob, clock := refusalPair(t, func(c RelayClient) RelayClient { ref.RelayClient = c; return ref })
	ctx := t.Context()
	one, err := alice.c.Send(ctx, "bob", "one")
	must(t, err)
	waitEvent(t, alice.c, "one refused", func(e Event) bool {
		return e.Kind == DeliveryChanged && e.Message.ID == one.ID && e.Message.State == Failed
	})
	_, err = alice.c.Send(ctx, "bob", "two")
	must(t, err)
	waitAll(t, bob.c, "two and one's withdrawn notice",
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.Text == "two"
		},
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.State == Failed && e.Message.Seq == 1
		})
	clock.Add(time.Hour)
	gaps, err := bob.c.Gaps(ctx, "alice")
	must(t, err)
	if len(gaps) != 0 {
		t.Fatalf("a refused first message raised gaps %+v", gaps)
	}
}

// refusalPair starts a relay with alice, whose relay client wrap wraps, and bob, whose
// clock the test moves; alice has added bob.
func refusalPair(t *testing.T, wrap func(RelayClient) RelayClient) (alice, bob *user, clock *fakeClock) {
	t.Helper()
	r := relaytest.Start(t)
	alice = newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { return wrap(client.New(cfg)) }
	})
	clock = &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
	bob = newUser(t, r, "bob", func(p *Profile) { p.Prefs.Clock = clock.Now })
	_, err := alice.c.AddContact(t.Context(), "bob")
	must(t, err)
	return alice, bob, clock
}

// sendOne has alice send bob "one" and waits until bob has it.
func sendOne(t *testing.T, alice, bob *user) {
	t.Helper()
	_, err := alice.c.Send(t.Context(), "bob", "one")
	must(t, err)
	waitReceived(t, bob.c, "alice", "one")
}

// wantConversation fails unless bob's conversation with alice, oldest first, is want
// ("seq "text" state" each), and returns it oldest first.
func wantConversation(t *testing.T, bob *user, want ...string) []Message {
	t.Helper()
	h, err := bob.c.History(t.Context(), "alice", 0, 10)
	must(t, err)
	slices.Reverse(h)
	var got []string
	for _, m := range h {
		got = append(got, fmt.Sprintf("%d %q %s", m.Seq, m.Text, m.State))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bob's conversation:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	return h
}

// noGapsAfterAnHour moves bob's clock an hour on and fails if his conversation with
// alice then has a hole.
func noGapsAfterAnHour(t *testing.T, bob *user, clock *fakeClock) {
	t.Helper()
	clock.Add(time.Hour)
	gaps, err := bob.c.Gaps(t.Context(), "alice")
	must(t, err)
	if len(gaps) != 0 {
		t.Fatalf("an hour on, bob reports gaps %+v", gaps)
	}
}
