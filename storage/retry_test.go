package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestArchivedSessions: archiving demotes every session of the peer (none active, all
// kept), and only idle archived ones are deleted.
func TestArchivedSessions(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	for i, id := range []string{"old", "cur"} {
		if err := c.PutSession(ctx, Session{ID: id, PeerCardID: "card-bob", Active: true, State: []byte(id), UpdatedAt: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ArchiveSessions(ctx, "card-bob"); err != nil {
		t.Fatal(err)
	}
	ss, _ := c.Sessions(ctx, "card-bob")
	if len(ss) != 2 || ss[0].Active || ss[1].Active {
		t.Fatalf("after archiving: %+v", ss)
	}
	n, err := c.DeleteIdleSessions(ctx, t0.Add(30*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if ss, _ = c.Sessions(ctx, "card-bob"); len(ss) != 1 || ss[0].ID != "cur" {
		t.Fatalf("kept %+v", ss)
	}
	// An active session is never idle.
	if err := c.PutSession(ctx, Session{ID: "new", PeerCardID: "card-bob", Active: true, State: []byte("n"), UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.DeleteIdleSessions(ctx, t0.Add(100*time.Hour)); n != 1 {
		t.Fatalf("deleted %d, want only the archived one", n)
	}
	if ss, _ = c.Sessions(ctx, "card-bob"); len(ss) != 1 || ss[0].ID != "new" {
		t.Fatalf("kept %+v", ss)
	}
}

// TestResendBookkeeping: a sent message is found by the relay msg id it was accepted
// under, with the card it was encrypted for; a resend settles onto the same message
// (which then answers to the new msg id) and is bounded.
func TestResendBookkeeping(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	addPeer(t, c, "carol")
	sess := Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("x"), UpdatedAt: t0}
	id, err := c.CommitSend(ctx, SendTx{Session: sess, Message: &Message{Contact: "bob", Body: []byte("hi"), SentAt: t0, Seq: 1},
		Outbox: OutboxItem{ClientID: "m1", To: "bob", Payload: []byte("wire")}, ToCardID: "card-bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SentByRelayMsgID(ctx, "bob", 77); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before acceptance: %v", err)
	}
	if m, ok, err := c.SettleOutboxAccepted(ctx, "m1", 77); err != nil || !ok || m.State != Sent {
		t.Fatalf("settle: %+v %v %v", m, ok, err)
	}
	m, err := c.SentByRelayMsgID(ctx, "bob", 77)
	if err != nil || m.ID != id || m.ClientID != "m1" || string(m.Body) != "hi" {
		t.Fatalf("by relay msg id: %+v %v", m, err)
	}
	if _, err := c.SentByRelayMsgID(ctx, "carol", 77); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another contact's request found bob's message: %v", err)
	}
	if si, _ := c.SentInfo(ctx, id); si.ToCardID != "card-bob" || si.RelayMsgID != 77 {
		t.Fatalf("sent info %+v", si)
	}
	sess.Generation = 1
	for i := 1; i <= MaxResends; i++ {
		cid := "m1.r" + string(rune('0'+i))
		if err := c.CommitResend(ctx, sess, id, OutboxItem{ClientID: cid, To: "bob", Payload: []byte("wire2")}); err != nil {
			t.Fatalf("resend %d: %v", i, err)
		}
		sess.Generation++
		if _, _, err := c.SettleOutboxAccepted(ctx, cid, int64(77+i)); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := c.SentByRelayMsgID(ctx, "bob", 77+MaxResends); err != nil || m.ID != id {
		t.Fatalf("the resend's msg id: %+v %v", m, err)
	}
	if err := c.CommitResend(ctx, sess, id, OutboxItem{ClientID: "m1.rx", To: "bob", Payload: []byte("w")}); !errors.Is(err, ErrResendLimit) {
		t.Fatalf("resend past the limit: %v", err)
	}
	if ob, _ := c.Outbox(ctx); len(ob) != 0 {
		t.Fatalf("a refused resend left %d outbox items", len(ob))
	}
	if msgs, _, _ := c.Messages(ctx, "bob", Cursor{}, 10); len(msgs) != 1 {
		t.Fatalf("resends made %d messages", len(msgs))
	}
}

// TestResendReplacesPlaceholder: the resend of a message that could not be read takes
// the placeholder's id and place; nothing else is replaced.
func TestResendReplacesPlaceholder(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	ph, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "41:aa", Message: &Message{Contact: "bob", State: Undecryptable, Reason: "could not decrypt", ReceivedAt: t0}})
	if err != nil {
		t.Fatal(err)
	}
	later, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "42:bb", Message: &Message{Contact: "bob", State: Delivered, Body: []byte("later"), ClientID: "in:bob/2", Seq: 2, ReceivedAt: t0}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.UndecryptableByRelayMsgID(ctx, "bob", 41); err != nil || m.ID != ph {
		t.Fatalf("placeholder by relay msg id: %+v %v", m, err)
	}
	if _, err := c.UndecryptableByRelayMsgID(ctx, "bob", 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("prefix 4 matched 41: %v", err)
	}
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "43:cc", Replaces: later, Message: &Message{Contact: "bob", State: Delivered, Body: []byte("x"), Reason: "re-sent"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replaced a readable message: %v", err)
	}
	id, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "44:dd", Replaces: ph, Message: &Message{Contact: "bob", State: Delivered, Body: []byte("first"), Reason: "re-sent", ClientID: "in:bob/1", Seq: 1, ReceivedAt: t0}})
	if err != nil || id != ph {
		t.Fatalf("replace: %d %v", id, err)
	}
	msgs, _, _ := c.Messages(ctx, "bob", Cursor{}, 10)
	if len(msgs) != 2 || string(msgs[1].Body) != "first" || msgs[1].State != Delivered || msgs[1].ID != ph || string(msgs[0].Body) != "later" {
		t.Fatalf("conversation %+v", msgs)
	}
}

// The unlock screen names the profile: its identity name is read without the passphrase.
func TestPeekClientName(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	if _, err := PeekClientName(ctx, c.Path()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no identity yet: %v", err)
	}
	if err := c.SaveIdentity(ctx, Identity{Name: "alice", CardID: "c", PrivateKey: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if name, err := PeekClientName(ctx, c.Path()); err != nil || name != "alice" {
		t.Fatalf("peek: %q %v", name, err)
	}
	if _, err := PeekClientName(ctx, c.Path()+".missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}

// A client store whose creation was cut short (empty, or without an identity) is
// unfinished; one with an identity, a relay store, a file that is not SQLite and a
// missing file are not, and UnfinishedClient changes none of them.
func TestUnfinishedClient(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !UnfinishedClient(ctx, empty) {
		t.Error("an empty file is not unfinished")
	}
	c := newClient(t, []byte("pw"))
	if !UnfinishedClient(ctx, c.Path()) {
		t.Error("a client store without an identity is not unfinished")
	}
	if err := c.SaveIdentity(ctx, Identity{Name: "alice", CardID: "c", PrivateKey: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	if UnfinishedClient(ctx, c.Path()) {
		t.Error("a client store with an identity is unfinished")
	}
	if after, _ := os.ReadFile(c.Path()); !bytes.Equal(before, after) {
		t.Error("UnfinishedClient changed the store")
	}
	r, err := OpenRelay(ctx, filepath.Join(dir, "relay.db"), RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("not a database at all, but not empty either"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "relay.db"), junk, filepath.Join(dir, "missing.db"), dir} {
		if UnfinishedClient(ctx, p) {
			t.Errorf("%s is unfinished", filepath.Base(p))
		}
	}
}

// TestResendOfSeenPlaceholderIsUnread: a placeholder already seen (marked read with the
// messages after it) that its resend fills is unread again — that message and no other:
// neither a read message after it nor another placeholder already seen comes back.
// (recv printed the newest message instead and marked the resend read unprinted: seen
// in the identity walk.) The contact's unread count takes it in.
func TestResendOfSeenPlaceholderIsUnread(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	receive := func(tx ReceiveTx) int64 {
		t.Helper()
		id, err := c.CommitReceive(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ph1 := receive(ReceiveTx{RelayID: "51:aa", Message: &Message{Contact: "bob", State: Undecryptable, Reason: "could not decrypt", ReceivedAt: t0}})
	ph2 := receive(ReceiveTx{RelayID: "52:bb", Message: &Message{Contact: "bob", State: Undecryptable, Reason: "could not decrypt", ReceivedAt: t0}})
	receive(ReceiveTx{RelayID: "53:cc", Message: &Message{Contact: "bob", State: Delivered, Body: []byte("three"), ClientID: "in:bob/3", Seq: 3, ReceivedAt: t0}})
	if err := c.MarkRead(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	unread := func() string { t.Helper(); return unreadSummary(t, c, "bob") }
	if got := unread(); got != "0 []" {
		t.Fatalf("all of bob's read: %s", got)
	}
	receive(ReceiveTx{RelayID: "55:ee", Replaces: ph1, Message: &Message{Contact: "bob", State: Delivered, Body: []byte("one"), Reason: "re-sent", ClientID: "in:bob/1", Seq: 1, ReceivedAt: t0}})
	if got := unread(); got != "1 [one]" {
		t.Fatalf("after the first resend: %s", got)
	}
	receive(ReceiveTx{RelayID: "56:ff", Message: &Message{Contact: "bob", State: Delivered, Body: []byte("four"), ClientID: "in:bob/4", Seq: 4, ReceivedAt: t0}})
	receive(ReceiveTx{RelayID: "57:gg", Replaces: ph2, Message: &Message{Contact: "bob", State: Delivered, Body: []byte("two"), Reason: "re-sent", ClientID: "in:bob/2", Seq: 2, ReceivedAt: t0}})
	if got := unread(); got != "3 [four two one]" {
		t.Fatalf("after a new message and the second resend: %s", got)
	}
	if marked, err := c.MarkReadThrough(ctx, "bob", ph2); err != nil || fmt.Sprint(marked) != "[in:bob/1 in:bob/2]" {
		t.Fatalf("MarkReadThrough(ph2) = %v, %v", marked, err)
	}
	if got := unread(); got != "1 [four]" {
		t.Fatalf("after marking the resends read: %s", got)
	}
}
