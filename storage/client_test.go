package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestClientBasics(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("correct horse"))
	if err := c.SaveIdentity(ctx, Identity{Name: "alice", CardID: "card-alice", Card: []byte("card"), PrivateKey: []byte("private")}); err != nil {
		t.Fatal(err)
	}
	addPeer(t, c, "bob")
	if err := c.PutPreKeys(ctx, []PreKey{{Kind: 2, ID: 1, CreatedAt: t0, Private: []byte("opk1")}, {Kind: 2, ID: 2, CreatedAt: t0, Private: []byte("opk2")}}); err != nil {
		t.Fatal(err)
	}
	id, err := c.CommitReceive(ctx, ReceiveTx{
		Session:         &Session{ID: "s1", PeerCardID: "card-bob", Active: true, State: []byte("state1"), CreatedAt: t0, UpdatedAt: t0},
		Message:         &Message{Contact: "bob", Body: []byte("hello"), SentAt: t0, ReceivedAt: t0, State: Delivered, ClientID: "c1"},
		ConsumedPreKeys: []PreKeyRef{{Kind: 2, ID: 1}},
		RelayID:         "r1",
	})
	if err != nil || id == 0 {
		t.Fatalf("CommitReceive = %d, %v", id, err)
	}
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "r1", Message: &Message{Contact: "bob", Body: []byte("again")}}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second receive: %v, want ErrDuplicate", err)
	}
	if _, err := c.PreKey(ctx, 2, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("consumed prekey still there: %v", err)
	}
	if k, err := c.PreKey(ctx, 2, 2); err != nil || !bytes.Equal(k.Private, []byte("opk2")) {
		t.Fatalf("prekey 2 = %v, %v", k, err)
	}
	msgs, cur, err := c.Messages(ctx, "bob", Cursor{}, 10)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "hello" || cur != (Cursor{}) {
		t.Fatalf("Messages = %+v %v %v", msgs, cur, err)
	}
	ct, err := c.Contact(ctx, "bob")
	if err != nil || ct.Unread != 1 {
		t.Fatalf("contact = %+v, %v", ct, err)
	}
	c.Close()

	if _, err := OpenClient(ctx, c.Path(), []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	c2, err := OpenClient(ctx, c.Path(), []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	idn, err := c2.Identity(ctx)
	if err != nil || string(idn.PrivateKey) != "private" {
		t.Fatalf("identity = %+v, %v", idn, err)
	}
	ss, err := c2.Sessions(ctx, "card-bob")
	if err != nil || len(ss) != 1 || string(ss[0].State) != "state1" {
		t.Fatalf("sessions = %+v, %v", ss, err)
	}
}

func TestMessagesPaging(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	addPeer(t, c, "carol")
	const total = 23
	var ids []int64
	for i := 0; i < total; i++ {
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte{byte(i)}, State: Delivered}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if _, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "carol", Body: []byte("other")}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []int64
	cur := Cursor{}
	pages := 0
	for {
		page, next, err := c.Messages(ctx, "bob", cur, 5)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range page {
			if m.Contact != "bob" {
				t.Fatalf("page has %s's message", m.Contact)
			}
			got = append(got, m.ID)
		}
		if next == (Cursor{}) {
			break
		}
		if next.BeforeID != page[len(page)-1].ID {
			t.Fatalf("cursor %v, last id %d", next, page[len(page)-1].ID)
		}
		cur = next
	}
	if pages != 5 || len(got) != total {
		t.Fatalf("%d pages, %d messages", pages, len(got))
	}
	for i, id := range got {
		if id != ids[total-1-i] {
			t.Fatalf("position %d: id %d, want %d (newest first)", i, id, ids[total-1-i])
		}
	}
	// Exactly n left: the last page must say there is no more.
	page, next, err := c.Messages(ctx, "bob", Cursor{BeforeID: ids[5]}, 5)
	if err != nil || len(page) != 5 || next != (Cursor{}) {
		t.Fatalf("last full page: %d msgs, next %v, %v", len(page), next, err)
	}
	if page, _, _ := c.Messages(ctx, "nobody", Cursor{}, 5); len(page) != 0 {
		t.Fatal("messages for unknown contact")
	}

	// Unread counts and MarkRead.
	if ct, _ := c.Contact(ctx, "bob"); ct.Unread != total {
		t.Fatalf("unread %d", ct.Unread)
	}
	cids, err := c.MarkReadClientIDs(ctx, "bob")
	if err != nil || len(cids) != 0 {
		t.Fatalf("MarkRead = %v, %v", cids, err)
	}
	if ct, _ := c.Contact(ctx, "bob"); ct.Unread != 0 {
		t.Fatalf("unread after MarkRead %d", ct.Unread)
	}
	if m, _ := c.Message(ctx, ids[0]); m.State != Read {
		t.Fatalf("state after MarkRead %v", m.State)
	}
}

func TestContacts(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	if err := c.AddContact(ctx, "bob", "card-unknown", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("contact with unknown card: %v", err)
	}
	addPeer(t, c, "bob")
	addPeer(t, c, "carol")
	addPeer(t, c, "dave")
	if err := c.AddContact(ctx, "bob", "card-bob", t0); !errors.Is(err, ErrExists) {
		t.Fatalf("add twice: %v", err)
	}
	// carol wrote last but everything is read; dave has unread; bob wrote earlier.
	c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte("x"), ReceivedAt: t0.Add(1e9), State: Delivered}})
	c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "dave", Body: []byte("x"), ReceivedAt: t0.Add(2e9), State: Delivered}})
	c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "carol", Body: []byte("x"), ReceivedAt: t0.Add(3e9), State: Read}})
	c.MarkRead(ctx, "bob")
	list, err := c.Contacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ct := range list {
		names = append(names, ct.Name)
	}
	if fmt.Sprint(names) != "[dave carol bob]" {
		t.Fatalf("order %v, want unread first then newest activity", names)
	}
	if !list[1].LastMessageAt.Equal(t0.Add(3e9)) {
		t.Fatalf("last message at %v", list[1].LastMessageAt)
	}

	// Key change: pending card, then accepted; verification follows the card.
	c.PutCard(ctx, Card{ID: "card-bob2", Name: "bob", Data: []byte("new"), FirstSeen: t0})
	if err := c.UpdateContact(ctx, Contact{Name: "bob", CardID: "card-bob", PendingCardID: "card-bob2"}); err != nil {
		t.Fatal(err)
	}
	c.SetCardVerified(ctx, "card-bob", true)
	if ct, _ := c.Contact(ctx, "bob"); ct.PendingCardID != "card-bob2" || !ct.Verified {
		t.Fatalf("pending: %+v", ct)
	}
	c.UpdateContact(ctx, Contact{Name: "bob", CardID: "card-bob2"})
	c.SetCardSuperseded(ctx, "card-bob", true)
	if ct, _ := c.Contact(ctx, "bob"); ct.CardID != "card-bob2" || ct.Verified || ct.PendingCardID != "" {
		t.Fatalf("accepted: %+v", ct)
	}
	cards, _ := c.CardsByName(ctx, "bob")
	if len(cards) != 2 || !cards[0].Superseded || cards[1].Superseded {
		t.Fatalf("cards by name %+v", cards)
	}

	// Rename keeps history; delete removes it.
	if err := c.RenameContact(ctx, "bob", "carol"); !errors.Is(err, ErrExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
	if err := c.RenameContact(ctx, "bob", "robert"); err != nil {
		t.Fatal(err)
	}
	if page, _, _ := c.Messages(ctx, "robert", Cursor{}, 10); len(page) != 1 {
		t.Fatal("history did not follow rename")
	}
	if err := c.DeleteContact(ctx, "robert"); err != nil {
		t.Fatal(err)
	}
	if page, _, _ := c.Messages(ctx, "robert", Cursor{}, 10); len(page) != 0 {
		t.Fatal("history kept after delete")
	}
	if err := c.DeleteContact(ctx, "robert"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// A receive for an unknown contact fails whole: the relay id is not burnt.
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "77", Message: &Message{Contact: "zed", Body: []byte("x")}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("receive for unknown contact: %v", err)
	}
	if seen, _ := c.SeenRelayID(ctx, "77"); seen {
		t.Fatal("failed receive recorded its relay id")
	}
}

// ReservePreKeyIDsFor hands out every kind's ids in one transaction, from each kind's
// own counter (twice the same kind: consecutive ranges), and refuses an empty request
// without reserving anything.
func TestReservePreKeyIDsFor(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	if _, err := c.ReservePreKeyIDs(ctx, 3, 7); err != nil {
		t.Fatal(err)
	}
	first, err := c.ReservePreKeyIDsFor(ctx, []PreKeyIDs{{Kind: 1, N: 1}, {Kind: 3, N: 4}, {Kind: 1, N: 2}, {Kind: 4, N: 100}})
	if err != nil || !slices.Equal(first, []uint32{1, 8, 2, 1}) {
		t.Fatalf("first ids %v, %v; want [1 8 2 1]", first, err)
	}
	if _, err := c.ReservePreKeyIDsFor(ctx, []PreKeyIDs{{Kind: 1, N: 1}, {Kind: 3, N: 0}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a request for 0 ids: %v, want ErrInvalid", err)
	}
	if next, _ := c.NextPreKeyID(ctx, 1); next != 4 {
		t.Fatalf("after a refused request, kind 1's next id is %d, want 4", next)
	}
}

func TestPreKeysAndMeta(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	first, err := c.ReservePreKeyIDs(ctx, 2, 100)
	if err != nil || first != 1 {
		t.Fatalf("first = %d, %v", first, err)
	}
	next, _ := c.NextPreKeyID(ctx, 2)
	if next != 101 {
		t.Fatalf("next = %d", next)
	}
	if other, _ := c.NextPreKeyID(ctx, 1); other != 1 {
		t.Fatalf("kinds share a counter: %d", other)
	}
	c.PutPreKeys(ctx, []PreKey{{Kind: 2, ID: 101, Private: []byte("k")}, {Kind: 2, ID: 5, Private: []byte("j")}})
	c.DeletePreKeys(ctx, 2, []uint32{101})
	if again, _ := c.NextPreKeyID(ctx, 2); again != 102 {
		t.Fatalf("id reused: %d", again)
	}
	c.MarkPreKeysHandedOut(ctx, 2, []uint32{5}, t0)
	ks, err := c.PreKeys(ctx, 2)
	if err != nil || len(ks) != 1 || ks[0].ID != 5 || !ks[0].HandedOutAt.Equal(t0) {
		t.Fatalf("prekeys %+v %v", ks, err)
	}
	if _, err := c.Meta(ctx, "relay"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	c.SetMeta(ctx, "relay", []byte("ws://x"))
	if v, err := c.Meta(ctx, "relay"); err != nil || string(v) != "ws://x" {
		t.Fatalf("meta %q %v", v, err)
	}
	if _, err := c.Identity(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("identity of new store: %v", err)
	}
	c.PutSession(ctx, Session{ID: "a", PeerCardID: "p", Active: true, State: []byte("1")})
	c.PutSession(ctx, Session{ID: "b", PeerCardID: "q", Active: true, State: []byte("2")})
	c.DeleteSessions(ctx, "p")
	if ss, _ := c.Sessions(ctx, "q"); len(ss) != 1 {
		t.Fatal("deleted another peer's session")
	}
	c.DeleteSessions(ctx, "")
	if ss, _ := c.Sessions(ctx, "q"); len(ss) != 0 {
		t.Fatal("DeleteSessions(\"\") kept sessions")
	}
}

func TestMarkReadClientIDsAndClose(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	for _, cid := range []string{"b1", "b2", "", "b3"} {
		if _, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte("x"), ClientID: cid, State: Delivered}}); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := c.MarkReadClientIDs(ctx, "bob")
	if err != nil || fmt.Sprint(ids) != "[b1 b2 b3]" {
		t.Fatalf("ids %v, %v", ids, err)
	}
	if ids, _ := c.MarkReadClientIDs(ctx, "bob"); len(ids) != 0 {
		t.Fatalf("second MarkRead returned %v", ids)
	}
	c.Close()
	if err := c.PutSession(ctx, Session{ID: "s", PeerCardID: "p", State: []byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestMarkReadThrough: marking read up to a message leaves the later ones unread, and
// UnreadMessages keeps answering exactly the unread ones.
func TestMarkReadThrough(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	var ids []int64
	for _, cid := range []string{"b1", "b2", "b3", "b4"} {
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte(cid), ClientID: cid, State: Delivered}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	unread := func() string { t.Helper(); return unreadSummary(t, c, "bob") }
	if got := unread(); got != "4 [b4 b3 b2 b1]" {
		t.Fatalf("before: %s", got)
	}
	marked, err := c.MarkReadThrough(ctx, "bob", ids[1])
	if err != nil || fmt.Sprint(marked) != "[b1 b2]" {
		t.Fatalf("MarkReadThrough(b2) = %v, %v", marked, err)
	}
	if got := unread(); got != "2 [b4 b3]" {
		t.Fatalf("after marking through b2: %s", got)
	}
	if marked, _ := c.MarkReadThrough(ctx, "bob", ids[0]); len(marked) != 0 {
		t.Fatalf("marking through b1 again marked %v", marked)
	}
	if got := unread(); got != "2 [b4 b3]" {
		t.Fatalf("after marking through b1 again: %s", got)
	}
	if marked, _ := c.MarkReadThrough(ctx, "bob", 0); fmt.Sprint(marked) != "[b3 b4]" {
		t.Fatalf("MarkReadThrough(0) = %v", marked)
	}
	if got := unread(); got != "0 []" {
		t.Fatalf("after marking all: %s", got)
	}
	if ms, err := c.UnreadMessages(ctx, "nobody"); err != nil || len(ms) != 0 {
		t.Fatalf("UnreadMessages(nobody) = %v, %v", ms, err)
	}
}

// TestReceivedByRelayID: the incoming message a relay delivery stored is found by the
// delivery's id; a delivery that stored no message, or an outgoing one, is not.
func TestReceivedByRelayID(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "7:aa", Message: &Message{Contact: "bob", Direction: Incoming,
		Body: []byte("hi"), State: 2, ClientID: "in:bob/x1", RelayID: "7:aa"}}); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReceivedByRelayID(ctx, "7:aa")
	if err != nil || m.Contact != "bob" || m.ClientID != "in:bob/x1" || string(m.Body) != "hi" {
		t.Fatalf("ReceivedByRelayID = %+v, %v", m, err)
	}
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "8:bb"}); err != nil { // a receipt: no message
		t.Fatal(err)
	}
	for _, id := range []string{"8:bb", "9:cc", ""} {
		if _, err := c.ReceivedByRelayID(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ReceivedByRelayID(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// TestSaveIdentityAndMetaAtomic: a re-pin writes the own card and the pinned key in
// one transaction; a failure at any step leaves the old card and the old pin.
func TestSaveIdentityAndMetaAtomic(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pass"))
	old := Identity{Name: "alice", CardID: "card-alice", Card: []byte("card signed by K1"), PrivateKey: []byte("private")}
	if err := c.SaveIdentity(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := c.SetMeta(ctx, "relay_key", []byte("K1")); err != nil {
		t.Fatal(err)
	}
	repinned := old
	repinned.Card = []byte("card signed by K2")
	check := func(wantCard, wantPin string) {
		t.Helper()
		id, err := c.Identity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pin, err := c.Meta(ctx, "relay_key")
		if err != nil {
			t.Fatal(err)
		}
		if string(id.Card) != wantCard || string(pin) != wantPin || string(id.PrivateKey) != "private" {
			t.Fatalf("card %q pin %q key %q, want %q and %q", id.Card, pin, id.PrivateKey, wantCard, wantPin)
		}
	}
	// Steps: 1 the identity, 2 the pin, 3 the commit.
	for step := 1; step <= 3; step++ {
		injected := fmt.Errorf("injected failure at step %d", step)
		c.setHook(func(s int) error {
			if s == step {
				return injected
			}
			return nil
		})
		if err := c.SaveIdentityAndMeta(ctx, repinned, "relay_key", []byte("K2")); !errors.Is(err, injected) {
			t.Fatalf("step %d: %v, want the injected failure", step, err)
		}
		check("card signed by K1", "K1")
	}
	c.setHook(nil)
	if err := c.SaveIdentityAndMeta(ctx, repinned, "relay_key", []byte("K2")); err != nil {
		t.Fatal(err)
	}
	check("card signed by K2", "K2")
}

// TestDecryptedHeadersBounded: the headers of handled messages are remembered (a copy
// is a replay), the newest maxDecryptedHeaders of them.
func TestDecryptedHeadersBounded(t *testing.T) {
	ctx := t.Context()
	old := maxDecryptedHeaders
	maxDecryptedHeaders = 5
	t.Cleanup(func() { maxDecryptedHeaders = old })
	c := newClient(t, nil)
	dh := bytes.Repeat([]byte{7}, 32)
	for n := uint32(0); n < 8; n++ {
		if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: fmt.Sprint("r", n), Decrypted: &HeaderRef{DH: dh, N: n}}); err != nil {
			t.Fatal(err)
		}
	}
	for n := uint32(0); n < 9; n++ {
		seen, err := c.WasDecrypted(ctx, HeaderRef{DH: dh, N: n})
		if err != nil {
			t.Fatal(err)
		}
		if want := n >= 3 && n < 8; seen != want {
			t.Errorf("header %d remembered: %v, want %v", n, seen, want)
		}
	}
	if seen, _ := c.WasDecrypted(ctx, HeaderRef{DH: bytes.Repeat([]byte{8}, 32), N: 5}); seen {
		t.Error("a header of another chain is remembered")
	}
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "bad", Decrypted: &HeaderRef{N: 1}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a header without a ratchet key: %v, want ErrInvalid", err)
	}
}

// unreadSummary is a contact's unread count beside the bodies UnreadMessages returns,
// as "N [body …]": the two must agree.
func unreadSummary(t *testing.T, c *Client, contact string) string {
	t.Helper()
	ms, err := c.UnreadMessages(t.Context(), contact)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range ms {
		bodies = append(bodies, string(m.Body))
	}
	ct, err := c.Contact(t.Context(), contact)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(ct.Unread, bodies)
}
