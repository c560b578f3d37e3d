package storage

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// receiveSeq commits an incoming message from bob with sequence number seq, sent at
// t0 + sent seconds.
func receiveSeq(t *testing.T, c *Client, seq uint64, sent int) int64 {
	t.Helper()
	id, err := c.CommitReceive(t.Context(), ReceiveTx{RelayID: fmt.Sprintf("r%d-%d", seq, sent), Message: &Message{
		Contact: "bob", Direction: Incoming, Body: fmt.Appendf(nil, "seq %d", seq), Seq: seq,
		SentAt: t0.Add(timeSec(sent)), ReceivedAt: t0.Add(time.Hour), State: Delivered, ClientID: fmt.Sprintf("in:bob/%d-%d", seq, sent)}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func bodies(t *testing.T, c *Client, cur Cursor, n int) ([]string, Cursor) {
	t.Helper()
	ms, next, err := c.Messages(t.Context(), "bob", cur, n)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Body))
	}
	slices.Reverse(out)
	return out, next
}

// A late message is placed by its sequence number before the ones that overtook it,
// however many arrive late into the same gap; messages without one keep arrival order;
// a counter that starts again (sender's clock later) is not sent back into history.
func TestLateMessagesTakeTheirPlace(t *testing.T) {
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	ctx := t.Context()
	receiveSeq(t, c, 1, 1)
	if _, err := c.CommitSend(ctx, SendTx{Message: &Message{Contact: "bob", Body: []byte("mine"), SentAt: t0, Seq: 1},
		Outbox: OutboxItem{ClientID: "o1", To: "bob", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	receiveSeq(t, c, 40, 40)
	for s := 39; s >= 2; s-- { // 38 late messages into one gap: the tail shifts once room runs out
		receiveSeq(t, c, uint64(s), s)
	}
	want := []string{"seq 1", "mine"}
	for s := 2; s <= 40; s++ {
		want = append(want, fmt.Sprintf("seq %d", s))
	}
	got, _ := bodies(t, c, Cursor{}, 100)
	if !slices.Equal(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	// Paging by cursor follows the same order.
	var paged []string
	cur := Cursor{}
	for {
		page, next := bodies(t, c, cur, 7)
		paged = append(page, paged...)
		if next.BeforeID == 0 {
			break
		}
		cur = next
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged order:\n got %q\nwant %q", paged, want)
	}
	// A new installation of bob starts at 1 again, later by its clock: it goes last.
	receiveSeq(t, c, 1, 1000)
	if got, _ := bodies(t, c, Cursor{}, 2); !slices.Equal(got, []string{"seq 40", "seq 1"}) {
		t.Fatalf("restarted counter: %q", got)
	}
	if n, err := c.NextSendSeq(ctx, "bob"); err != nil || n != 2 {
		t.Fatalf("NextSendSeq = %d, %v; want 2", n, err)
	}
	if _, err := c.NextSendSeq(ctx, "nobody"); err == nil {
		t.Fatal("NextSendSeq of an unknown contact")
	}
}

// MessagesFromUnread starts at the first unread message in the conversation's order: a
// late message among the unread ones (placed before messages that overtook it) is the
// first when it is the oldest placed, and everything placed after it comes along.
func TestMessagesFromUnreadFollowsTheOrder(t *testing.T) {
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	for s := 1; s <= 5; s++ {
		receiveSeq(t, c, uint64(s), s)
	}
	receiveSeq(t, c, 8, 8)
	receiveSeq(t, c, 7, 7) // late: placed before seq 8
	receiveSeq(t, c, 9, 9)
	window := func(unread int) []string {
		t.Helper()
		ms, err := c.MessagesFromUnread(t.Context(), "bob", unread)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, string(m.Body))
		}
		slices.Reverse(out)
		return out
	}
	// The 2 newest arrivals are seq 7 and seq 9: from seq 7 on, seq 8 with them.
	if got := window(2); !slices.Equal(got, []string{"seq 7", "seq 8", "seq 9"}) {
		t.Fatalf("2 unread: %q", got)
	}
	if got := window(3); !slices.Equal(got, []string{"seq 7", "seq 8", "seq 9"}) {
		t.Fatalf("3 unread: %q", got)
	}
	if got := window(4); !slices.Equal(got, []string{"seq 5", "seq 7", "seq 8", "seq 9"}) {
		t.Fatalf("4 unread: %q", got)
	}
	if got := window(0); len(got) != 0 {
		t.Fatalf("none unread: %q", got)
	}
	if got := window(100); len(got) != 8 {
		t.Fatalf("more unread than messages: %q, want all 8", got)
	}
}
