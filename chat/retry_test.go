package chat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// converse makes a and b contacts who have written to each other (so receipts and retry
// requests flow both ways) over one session.
func converse(t *testing.T, a, b *user) {
	t.Helper()
	ctx := t.Context()
	if _, err := a.c.AddContact(ctx, b.name); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Send(ctx, b.name, "hello "+b.name); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, b.c, a.name, "hello "+b.name)
	m, err := b.c.Send(ctx, a.name, "hello "+a.name)
	if err != nil {
		t.Fatal(err)
	}
	waitReceived(t, a.c, b.name, "hello "+a.name)
	// a's delivery receipt has gone out: nothing of a's is queued any more.
	waitState(t, b.c, m.ID, Delivered)
}

// texts returns the conversation's texts oldest first, failing on any unreadable entry.
func texts(t *testing.T, u *user, contact string) []string {
	t.Helper()
	h, err := u.c.History(t.Context(), contact, 0, 100)
	must(t, err)
	var out []string
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].State == UndecryptableState || h[i].State == Failed {
			t.Fatalf("%s's conversation with %s has an unreadable entry: %+v", u.name, contact, h[i])
		}
		out = append(out, h[i].Text)
	}
	return out
}

func count(xs []string, x string) (n int) {
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// Issue 13 point 2: after /reset, a message the peer sent under the old session (before
// it saw the new one) is still decrypted, shown exactly once, and both sides then move
// to the new session.
func TestResetKeepsOldSessionForReceiving(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := t.Context()
	converse(t, alice, bob)
	old, err := alice.c.ActiveSession(ctx, bob.card.ID())
	if err != nil || old == nil {
		t.Fatalf("alice's session: %v", err)
	}

	must(t, alice.c.ResetSession(ctx, "bob"))
	// Bob has not seen a new session: his message goes out under the old one.
	inFlight, err := bob.c.Send(ctx, "alice", "in flight")
	if err != nil {
		t.Fatal(err)
	}
	waitReceived(t, alice.c, "bob", "in flight")
	// Decrypted by the archived session, not recovered by a retry request.
	if si, err := bob.c.store.SentInfo(ctx, inFlight.ID); err != nil || si.Resends != 0 {
		t.Fatalf("the in-flight message was re-sent %d times (%v): the old session did not decrypt it", si.Resends, err)
	}

	// Alice's next message starts the new session; bob adopts it and answers in it.
	if _, err := alice.c.Send(ctx, "bob", "after reset"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "after reset")
	if _, err := bob.c.Send(ctx, "alice", "reply"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, alice.c, "bob", "reply")

	na, err := alice.c.ActiveSession(ctx, bob.card.ID())
	if err != nil || na == nil || na.ID() == old.ID() {
		t.Fatalf("alice still on the old session (%v)", err)
	}
	nb, err := bob.c.ActiveSession(ctx, alice.card.ID())
	if err != nil || nb == nil || nb.ID() != na.ID() {
		t.Fatalf("bob is not on alice's new session (%v)", err)
	}
	got := texts(t, alice, "bob")
	if count(got, "in flight") != 1 || count(got, "reply") != 1 || len(got) != 5 {
		t.Fatalf("alice's conversation: %q", got)
	}
}

// Issue 13 point 2: a message that cannot be decrypted makes the receiver ask for it
// again; the sender re-sends it from its history in a new session, and the receiver
// shows it once, in the place of its placeholder.
func TestUndecryptableIsResentOnRequest(t *testing.T) {
	r := relaytest.Start(t)
	tr := &tamperRelay{}
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { tr.RelayClient = client.New(cfg); return tr }
	})
	bob := newUser(t, r, "bob")
	ctx := t.Context()
	converse(t, alice, bob)
	before, _ := alice.c.ActiveSession(ctx, bob.card.ID())

	tr.mu.Lock()
	tr.tamper = true
	tr.mu.Unlock()
	sent, err := alice.c.Send(ctx, "bob", "garbled on the way")
	if err != nil {
		t.Fatal(err)
	}
	ph := waitEvent(t, bob.c, "the placeholder", func(e Event) bool { return e.Kind == Undecryptable && e.Message != nil })
	got := waitReceived(t, bob.c, "alice", "garbled on the way")
	if got.ID != ph.Message.ID || got.Seq != sent.Seq {
		t.Fatalf("the resend is message %d seq %d, the placeholder %d (seq sent %d)", got.ID, got.Seq, ph.Message.ID, sent.Seq)
	}
	// The original's receipt arrives: the resend is the same message.
	waitState(t, alice.c, sent.ID, Delivered)
	if got := texts(t, bob, "alice"); count(got, "garbled on the way") != 1 || len(got) != 3 {
		t.Fatalf("bob's conversation: %q", got)
	}
	if h, _ := alice.c.History(ctx, "bob", 0, 100); len(h) != 3 {
		t.Fatalf("alice's conversation has %d messages, want 3 (a resend is no new message)", len(h))
	}
	after, _ := alice.c.ActiveSession(ctx, bob.card.ID())
	if before == nil || after == nil || after.ID() == before.ID() {
		t.Fatal("the resend did not go out in a new session")
	}
	// The conversation goes on.
	if _, err := alice.c.Send(ctx, "bob", "next"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "next")
}

// A received text whose id the receiver already holds from that sender is not shown
// again (an original and its resend both arriving).
func TestDuplicateMessageIDShownOnce(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := t.Context()
	converse(t, alice, bob)
	m, err := alice.c.Send(ctx, "bob", "once")
	must(t, err)
	waitReceived(t, bob.c, "alice", "once")
	waitState(t, alice.c, m.ID, Sent)
	stored, err := alice.c.store.Message(ctx, m.ID)
	must(t, err)
	si, err := alice.c.store.SentInfo(ctx, m.ID)
	must(t, err)
	// Bob asks for it by its relay msg id as if it had not arrived: the resend comes,
	// and is not shown a second time.
	must(t, alice.c.answerRetry(ctx, "bob", bob.card, payload.Retry{Reason: payload.RetryUndecryptable, RelayMsgID: uint64(si.RelayMsgID)}))
	if _, err := alice.c.Send(ctx, "bob", "marker"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "marker")
	if got := texts(t, bob, "alice"); count(got, "once") != 1 {
		t.Fatalf("bob's conversation: %q", got)
	}
	if stored.Seq == 0 {
		t.Fatal("no seq")
	}
}

// The sender answers a retry request only for its own message to the asking contact,
// from the card it was encrypted for, within RetryWindow, a bounded number of times.
func TestRetryRequestRules(t *testing.T) {
	r := relaytest.Start(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	alice := newUser(t, r, "alice", func(p *Profile) { p.Prefs.Clock = clock })
	bob, carol := newUser(t, r, "bob"), newUser(t, r, "carol")
	ctx := t.Context()
	converse(t, alice, bob)
	converse(t, alice, carol)
	m, err := alice.c.Send(ctx, "bob", "to bob")
	must(t, err)
	waitState(t, alice.c, m.ID, Sent)
	si, err := alice.c.store.SentInfo(ctx, m.ID)
	must(t, err)
	sm, err := alice.c.store.Message(ctx, m.ID)
	must(t, err)
	req := payload.Retry{Reason: payload.RetryUndecryptable, RelayMsgID: uint64(si.RelayMsgID)}

	if err := alice.c.answerRetry(ctx, "carol", carol.card, req); !errors.Is(err, errNoResend) {
		t.Fatalf("carol asked for bob's message: %v", err)
	}
	if err := alice.c.answerRetry(ctx, "bob", carol.card, req); !errors.Is(err, errNoResend) {
		t.Fatalf("another identity key asked for bob's message: %v", err)
	}
	if err := alice.c.answerRetry(ctx, "bob", bob.card, payload.Retry{Reason: payload.RetryUndecryptable, RelayMsgID: 1 << 40}); !errors.Is(err, errNoResend) {
		t.Fatalf("an unknown relay msg id: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := alice.c.answerRetry(ctx, "bob", bob.card, payload.Retry{Reason: payload.RetryUnreadable, ID: sm.ClientID}); err != nil {
			t.Fatalf("resend %d: %v", i+1, err)
		}
	}
	if err := alice.c.answerRetry(ctx, "bob", bob.card, req); !errors.Is(err, errNoResend) {
		t.Fatalf("a fourth resend: %v", err)
	}

	m2, err := alice.c.Send(ctx, "bob", "old news")
	must(t, err)
	waitState(t, alice.c, m2.ID, Sent)
	sm2, err := alice.c.store.Message(ctx, m2.ID)
	must(t, err)
	mu.Lock()
	now = now.Add(RetryWindow + time.Minute)
	mu.Unlock()
	if err := alice.c.answerRetry(ctx, "bob", bob.card, payload.Retry{Reason: payload.RetryUnreadable, ID: sm2.ClientID}); !errors.Is(err, errNoResend) {
		t.Fatalf("a message older than the retry window: %v", err)
	}
	if st, _ := alice.c.store.Message(ctx, m2.ID); st.State == Failed {
		t.Fatal("a refused request marked the message failed")
	}
}

// failingBundles refuses bundle fetches while fail is set, as a relay that lost the
// peer's prekeys would.
type failingBundles struct {
	RelayClient
	mu   sync.Mutex
	fail bool
}

func (f *failingBundles) FetchBundle(ctx context.Context, name string) (*ratchet.Bundle, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, &relay.ProtocolError{Code: relay.CodeNoPreKeys, Message: "no prekeys"}
	}
	return f.RelayClient.FetchBundle(ctx, name)
}

// deliveredRetry has alice, after a first exchange with bob, send him text and wait
// until it is delivered; it returns the message and bob's retry request for it.
func deliveredRetry(t *testing.T, alice, bob *user, text string) (Message, payload.Retry) {
	t.Helper()
	ctx := t.Context()
	converse(t, alice, bob)
	m, err := alice.c.Send(ctx, "bob", text)
	must(t, err)
	waitState(t, alice.c, m.ID, Delivered)
	si, err := alice.c.store.SentInfo(ctx, m.ID)
	must(t, err)
	return m, payload.Retry{Reason: payload.RetryUndecryptable, RelayMsgID: uint64(si.RelayMsgID)}
}

// A resend that cannot be made turns the message's mark to failed, with the reason.
func TestFailedResendMarksMessage(t *testing.T) {
	r := relaytest.Start(t)
	fb := &failingBundles{}
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { fb.RelayClient = client.New(cfg); return fb }
	})
	bob := newUser(t, r, "bob")
	ctx := t.Context()
	// Bob's receipt first: arriving after the failed resend it would move the mark on.
	m, retry := deliveredRetry(t, alice, bob, "lost")
	fb.mu.Lock()
	fb.fail = true
	fb.mu.Unlock()
	if err := alice.c.answerRetry(ctx, "bob", bob.card, retry); err == nil || errors.Is(err, errNoResend) {
		t.Fatalf("a resend without a bundle: %v", err)
	}
	got, err := alice.c.store.Message(ctx, m.ID)
	must(t, err)
	if got.State != Failed || !strings.Contains(got.Reason, "could not be re-sent") {
		t.Fatalf("message after a failed resend: %v %q", got.State, got.Reason)
	}
}

// A retry request naming an attachment is not answered (PAYLOAD.md §4.3: only texts are
// re-sent): resending it as a text would show its caption in the file's place, or, with
// no caption, fail and mark a delivered file failed.
func TestRetryRequestForAttachmentNotAnswered(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	src := t.TempDir()
	for _, caption := range []string{"", "a caption"} {
		sent, err := alice.c.SendFile(ctx, "bob", writeFile(t, src, "f.bin", []byte("contents")), caption, nil)
		must(t, err)
		waitAttachment(t, bob.c, "alice")
		waitState(t, alice.c, sent.ID, Delivered)
		si, err := alice.c.store.SentInfo(ctx, sent.ID)
		must(t, err)
		sm, err := alice.c.store.Message(ctx, sent.ID)
		must(t, err)
		for _, req := range []payload.Retry{
			{Reason: payload.RetryUndecryptable, RelayMsgID: uint64(si.RelayMsgID)},
			{Reason: payload.RetryUnreadable, ID: sm.ClientID},
		} {
			if err := alice.c.answerRetry(ctx, "bob", bob.card, req); !errors.Is(err, errNoResend) {
				t.Fatalf("caption %q: a retry request for an attachment: %v", caption, err)
			}
		}
		got, err := alice.c.store.Message(ctx, sent.ID)
		must(t, err)
		if si, _ := alice.c.store.SentInfo(ctx, sent.ID); got.State != Delivered || si.Resends != 0 {
			t.Fatalf("caption %q: after the requests the attachment is %v %q, re-sent %d times", caption, got.State, got.Reason, si.Resends)
		}
	}
}

// A resend the relay refuses for good gives no number up: the message itself reached
// the contact (it asked for the resend), so no withdrawn notice goes out for it.
func TestRefusedResendSendsNoWithdrawnNotice(t *testing.T) {
	r := relaytest.Start(t)
	ref := &refusingRelay{}
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { ref.RelayClient = client.New(cfg); return ref }
	})
	bob := newUser(t, r, "bob")
	ctx := t.Context()
	m, retry := deliveredRetry(t, alice, bob, "once")
	ref.mu.Lock()
	ref.refuse = 1 // the resend
	ref.mu.Unlock()
	must(t, alice.c.answerRetry(ctx, "bob", bob.card, retry))
	waitState(t, alice.c, m.ID, Failed)
	// Anything alice queues from now on goes behind a notice, had one been committed.
	_, err := alice.c.Send(ctx, "bob", "after")
	must(t, err)
	waitReceived(t, bob.c, "alice", "after")
	h, err := bob.c.History(ctx, "alice", 0, 20)
	must(t, err)
	for _, hm := range h {
		if hm.State == Failed && hm.Reason == WithdrawnReason {
			t.Fatalf("a refused resend withdrew message seq %d, which bob has", hm.Seq)
		}
	}
}
