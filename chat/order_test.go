package chat_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// swappingQueue is a relay queue that hands out two chosen messages with their contents
// swapped (ids stay in order): the relay delivers them out of order, as a relay
// cluster, a restore or a resend can. Armed for a recipient, it picks the next two
// messages enqueued for it.
type swappingQueue struct {
	*storage.Relay
	mu    sync.Mutex
	to    string
	picks []int64
}

func (q *swappingQueue) arm(to string) {
	q.mu.Lock()
	q.to, q.picks = to, nil
	q.mu.Unlock()
}

func (q *swappingQueue) Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error) {
	res, err := q.Relay.Enqueue(ctx, msgs)
	q.pick(msgs, res, err)
	return res, err
}

// Commit is the relay's group commit (an optional Queue extension the store has).
func (q *swappingQueue) Commit(ctx context.Context, msgs []storage.QueuedMessage, acks map[string][]int64) ([]storage.EnqueueResult, error) {
	res, err := q.Relay.Commit(ctx, msgs, acks)
	q.pick(msgs, res, err)
	return res, err
}

func (q *swappingQueue) pick(msgs []storage.QueuedMessage, res []storage.EnqueueResult, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, r := range res {
		if err == nil && r.Err == nil && !r.Duplicate && msgs[i].To == q.to && len(q.picks) < 2 {
			q.picks = append(q.picks, r.ID)
		}
	}
}

func (q *swappingQueue) Pending(ctx context.Context, to string, afterID int64, limit int) ([]storage.QueuedMessage, error) {
	ms, err := q.Relay.Pending(ctx, to, afterID, limit)
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil || to != q.to || len(q.picks) != 2 {
		return ms, err
	}
	i := slices.IndexFunc(ms, func(m storage.QueuedMessage) bool { return m.ID == q.picks[0] })
	j := slices.IndexFunc(ms, func(m storage.QueuedMessage) bool { return m.ID == q.picks[1] })
	if i >= 0 && j >= 0 {
		a, b := ms[i], ms[j]
		ms[i], ms[j] = b, a
		ms[i].ID, ms[j].ID = a.ID, b.ID
		q.to = ""
	}
	return ms, err
}

// Messages a client sends in order are shown in order even when the relay delivers
// them swapped (the demo greeting appeared out of order in 2 of 5 launches): the
// second arrives first, the first is put back in its place by its sequence number.
func TestSwappedDeliveryShownInSendOrder(t *testing.T) {
	qs, err := storage.OpenRelay(t.Context(), filepath.Join(t.TempDir(), "queue.db"), storage.RelayOptions{
		MaxQueueCount: server.DefaultLimits.MaxQueueCount, MaxQueueBytes: server.DefaultLimits.MaxQueueBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qs.Close() })
	q := &swappingQueue{Relay: qs}
	r := relaytest.StartWith(t, relaytest.Options{Queue: q})
	alice := chattest.NewUser(t, r, "alice")
	bob := chattest.NewUser(t, r, "bob", chattest.AllowOffline)
	chattest.Converse(t, alice, bob)

	bob.Close() // the next two wait in the relay's queue
	q.arm("bob")
	ctx := t.Context()
	first, err := alice.Send(ctx, "bob", "first")
	if err != nil {
		t.Fatal(err)
	}
	second, err := alice.Send(ctx, "bob", "second")
	if err != nil {
		t.Fatal(err)
	}
	if second.Seq != first.Seq+1 {
		t.Fatalf("sequence numbers %d then %d", first.Seq, second.Seq)
	}
	chattest.WaitStored(t, alice, "bob", second.ID, chat.Sent)
	bob.Reopen()
	chattest.WaitReceived(t, bob, "alice", "first")
	chattest.WaitStored(t, alice, "bob", second.ID, chat.Delivered) // both have arrived

	h := chattest.FullHistory(t, bob, "alice")
	var texts []string
	byText := map[string]chat.Message{}
	for _, m := range h {
		texts = append(texts, m.Text)
		byText[m.Text] = m
	}
	if want := []string{"hi", "hi back", "first", "second"}; !slices.Equal(texts, want) {
		for _, m := range h {
			t.Logf("%+v", m)
		}
		t.Fatalf("bob's history %q, want %q", texts, want)
	}
	f, s := byText["first"], byText["second"]
	if f.ID < s.ID {
		t.Fatal("the relay did not deliver them swapped: the test reproduces nothing")
	}
	if f.Seq != first.Seq || s.Seq != second.Seq {
		t.Fatalf("received seqs %d, %d; sent %d, %d", f.Seq, s.Seq, first.Seq, second.Seq)
	}
	// recv prints unread messages in the same order.
	unread, err := bob.Unread(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var u []string
	for _, m := range unread {
		u = append(u, m.Text)
	}
	if got := strings.Join(u, ","); !strings.HasSuffix(got, "first,second") {
		t.Fatalf("unread order %q", got)
	}
}

// Every character arrives as typed, and the longest text — as the first message, an
// initial ratchet message with the PQXDH header — goes through the real relay.
func TestTextArrivesAsTypedUpToTheLimit(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	longest := strings.Repeat("😀", chat.MaxTextBytes/4) + strings.Repeat("x", chat.MaxTextBytes%4)
	chattest.Send(t, alice, bob, longest) // first message: initial
	for _, text := range []string{"\ttab", "cr\r", "crlf\r\n", "nul\x00byte", "trailing space ", "line\n",
		"👨\u200d👩\u200d👧\u200d👦 family", "שלום RTL", "\u202eoverride", "?question"} {
		chattest.Send(t, alice, bob, text)
	}
	if _, err := alice.Send(t.Context(), "bob", longest+"x"); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("a text over the limit: %v", err)
	}
}
