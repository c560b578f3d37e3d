package storage

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errInjected = errors.New("injected failure")

// dump renders every row of every table (sealed bytes included), for before/after
// comparisons.
func dump(t *testing.T, d *db) string {
	t.Helper()
	rows, err := d.r.Query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := d.r.Query("SELECT * FROM " + tbl + " ORDER BY 1, 2")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", tbl, vals)
		}
		rows.Close()
	}
	return b.String()
}

// failEveryStep runs op with a failure injected at step 1, 2, 3... of its transaction
// until it succeeds, and checks that every failed attempt left the store exactly as it
// was. It returns how many steps the successful run took.
func failEveryStep(t *testing.T, d *db, op func() error) int {
	t.Helper()
	before := dump(t, d)
	for n := 1; ; n++ {
		d.hook = func(step int) error {
			if step == n {
				return fmt.Errorf("%w at step %d", errInjected, step)
			}
			return nil
		}
		err := op()
		d.hook = nil
		if err == nil {
			if n == 1 {
				t.Fatal("no statement ran")
			}
			return n - 1
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("step %d: %v", n, err)
		}
		if got := dump(t, d); got != before {
			t.Fatalf("failure at step %d changed the store:\nbefore:\n%s\nafter:\n%s", n, before, got)
		}
		if n > 100 {
			t.Fatal("never succeeded")
		}
	}
}

func TestCommitReceiveAllOrNothing(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	if err := c.PutPreKeys(ctx, []PreKey{{Kind: 2, ID: 1, Private: []byte("a")}, {Kind: 4, ID: 1, Private: []byte("b")}, {Kind: 1, ID: 1, Private: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutSession(ctx, Session{ID: "old", PeerCardID: "card-carol", Active: true, State: []byte("o")}); err != nil {
		t.Fatal(err)
	}
	sendID, err := c.CommitSend(ctx, SendTx{Message: &Message{Contact: "bob", Body: []byte("hi")}, Outbox: OutboxItem{ClientID: "out1", To: "bob", Payload: []byte("w")}})
	if err != nil {
		t.Fatal(err)
	}
	var msgID int64
	steps := failEveryStep(t, c.db, func() error {
		var err error
		msgID, err = c.CommitReceive(ctx, ReceiveTx{
			Card:            &Card{ID: "card-carol", Name: "carol", Data: []byte("c"), FirstSeen: t0},
			NewContact:      &Contact{Name: "carol", CardID: "card-carol", AddedAt: t0},
			Session:         &Session{ID: "new", PeerCardID: "card-carol", Active: true, State: []byte("s")},
			Message:         &Message{Contact: "carol", Body: []byte("first"), ReceivedAt: t0, State: Delivered},
			ConsumedPreKeys: []PreKeyRef{{2, 1}, {4, 1}},
			RelayID:         "42",
			DeliveryUpdates: []DeliveryUpdate{{ClientID: "out1", State: Delivered}},
			From:            "bob", // updates limited to bob's messages: our message went to bob
		})
		return err
	})
	t.Logf("receive commit: %d steps", steps)
	if steps < 8 {
		t.Fatalf("only %d steps: the injection did not reach the end", steps)
	}
	// Everything landed.
	if m, err := c.Message(ctx, msgID); err != nil || string(m.Body) != "first" || m.RelayID != "42" {
		t.Fatalf("message %+v %v", m, err)
	}
	if m, _ := c.Message(ctx, sendID); m.State != Delivered {
		t.Fatalf("receipt not applied: %v", m.State)
	}
	if _, err := c.PreKey(ctx, 4, 1); !errors.Is(err, ErrNotFound) {
		t.Fatal("KEM one-time prekey not consumed")
	}
	if _, err := c.PreKey(ctx, 1, 1); err != nil {
		t.Fatal("signed prekey deleted")
	}
	ss, _ := c.Sessions(ctx, "card-carol")
	if len(ss) != 2 || ss[0].ID != "new" || !ss[0].Active || ss[1].Active {
		t.Fatalf("sessions %+v", ss)
	}
	if seen, _ := c.SeenRelayID(ctx, "42"); !seen {
		t.Fatal("relay id not recorded")
	}
	// A redelivery changes nothing.
	before := dump(t, c.db)
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "42", Message: &Message{Contact: "carol", Body: []byte("dup")},
		Session: &Session{ID: "new", PeerCardID: "card-carol", State: []byte("changed")}}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("redelivery: %v", err)
	}
	if dump(t, c.db) != before {
		t.Fatal("duplicate changed the store")
	}
	// A receipt from someone else does not touch our message to bob.
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "43", From: "carol", DeliveryUpdates: []DeliveryUpdate{{ClientID: "out1", State: Read}}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Message(ctx, sendID); m.State != Delivered {
		t.Fatalf("carol's receipt changed bob's message: %v", m.State)
	}
	// States only move forward.
	c.CommitReceive(ctx, ReceiveTx{RelayID: "44", From: "bob", DeliveryUpdates: []DeliveryUpdate{{ClientID: "out1", State: Read}}})
	c.CommitReceive(ctx, ReceiveTx{RelayID: "45", From: "bob", DeliveryUpdates: []DeliveryUpdate{{ClientID: "out1", State: Delivered}}})
	if m, _ := c.Message(ctx, sendID); m.State != Read {
		t.Fatalf("state went backwards: %v", m.State)
	}
}

func TestCommitSendAllOrNothing(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	for i := 0; i < MaxSessionsPerPeer; i++ {
		if err := c.PutSession(ctx, Session{ID: fmt.Sprint("s", i), PeerCardID: "card-bob", Active: true, State: []byte("x"), UpdatedAt: t0.Add(-100 + timeSec(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	steps := failEveryStep(t, c.db, func() error {
		var err error
		id, err = c.CommitSend(ctx, SendTx{
			Session: Session{ID: "s-new", PeerCardID: "card-bob", Active: true, State: []byte("y"), UpdatedAt: t0},
			Message: &Message{Contact: "bob", Body: []byte("hello"), SentAt: t0},
			Outbox:  OutboxItem{ClientID: "c1", To: "bob", Payload: []byte("wire"), CreatedAt: t0},
		})
		return err
	})
	t.Logf("send commit: %d steps", steps)
	m, err := c.Message(ctx, id)
	if err != nil || m.ClientID != "c1" || m.Direction != Outgoing || m.State != Pending {
		t.Fatalf("message %+v %v", m, err)
	}
	ob, _ := c.Outbox(ctx)
	if len(ob) != 1 || ob[0].MessageID != id || string(ob[0].Payload) != "wire" {
		t.Fatalf("outbox %+v", ob)
	}
	ss, _ := c.Sessions(ctx, "card-bob")
	if len(ss) != MaxSessionsPerPeer || ss[0].ID != "s-new" {
		t.Fatalf("sessions kept: %d, first %s", len(ss), ss[0].ID)
	}
	for _, s := range ss {
		if s.ID == "s0" {
			t.Fatal("oldest session kept beyond the limit")
		}
	}
	if _, err := c.CommitSend(ctx, SendTx{Outbox: OutboxItem{ClientID: "c1", To: "bob"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("same client id twice: %v", err)
	}
	if err := c.RemoveOutbox(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveOutbox(ctx, "c1"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if m, _ := c.Message(ctx, id); m.State != Sent {
		t.Fatalf("state after relay accepted: %v", m.State)
	}
}

func TestCommitReceiveBatch(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	if _, err := c.CommitReceive(ctx, ReceiveTx{RelayID: "1", Message: &Message{Contact: "bob", Body: []byte("before")}}); err != nil {
		t.Fatal(err)
	}
	sess := func(st string, gen uint64) *Session {
		return &Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte(st), Generation: gen}
	}
	batch := []ReceiveTx{
		{RelayID: "2", Session: sess("after 2", 0), Message: &Message{Contact: "bob", Body: []byte("two")}},
		{RelayID: "1", Session: sess("dup", 1), Message: &Message{Contact: "bob", Body: []byte("dup")}},
		{RelayID: "3", Session: sess("stranger", 1), Message: &Message{Contact: "nobody", Body: []byte("x")}},
		{RelayID: "2", Message: &Message{Contact: "bob", Body: []byte("dup within batch")}},
		{RelayID: "4", Session: sess("after 4", 1), Message: &Message{Contact: "bob", Body: []byte("four")}},
	}
	var res []ReceiveResult
	failEveryStep(t, c.db, func() error {
		var err error
		res, err = c.CommitReceiveBatch(ctx, batch)
		return err
	})
	if res[0].Err != nil || res[0].MessageID == 0 || res[4].Err != nil {
		t.Fatalf("good items failed: %+v", res)
	}
	if !errors.Is(res[1].Err, ErrDuplicate) || !errors.Is(res[3].Err, ErrDuplicate) || !errors.Is(res[2].Err, ErrNotFound) {
		t.Fatalf("bad items: %+v", res)
	}
	page, _, _ := c.Messages(ctx, "bob", Cursor{}, 10)
	var bodies []string
	for _, m := range page {
		bodies = append(bodies, string(m.Body))
	}
	if fmt.Sprint(bodies) != "[four two before]" {
		t.Fatalf("messages %v", bodies)
	}
	ss, _ := c.Sessions(ctx, "card-bob")
	if len(ss) != 1 || string(ss[0].State) != "after 4" {
		t.Fatalf("session %+v", ss)
	}
	if seen, _ := c.SeenRelayID(ctx, "3"); seen {
		t.Fatal("failed item's relay id recorded")
	}
}

// TestSettleOutbox: settling removes the item and moves its message in one
// transaction, and returns the message as it then stands, so the sender reports the
// delivery without reading the row again.
func TestSettleOutbox(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	send := func(cid string) int64 {
		t.Helper()
		id, err := c.CommitSend(ctx, SendTx{Message: &Message{Contact: "bob", Body: []byte("body " + cid), SentAt: t0},
			Outbox: OutboxItem{ClientID: cid, To: "bob", Payload: []byte("wire")}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	id := send("s1")
	var m Message
	var ok bool
	failEveryStep(t, c.db, func() error {
		var err error
		m, ok, err = c.SettleOutbox(ctx, "s1", "")
		return err
	})
	if !ok || m.ID != id || m.State != Sent || string(m.Body) != "body s1" || m.Contact != "bob" || !m.SentAt.Equal(t0) || m.Direction != Outgoing {
		t.Fatalf("settled: %+v ok=%v", m, ok)
	}
	if _, ok, err := c.SettleOutbox(ctx, "s1", ""); ok || err != nil {
		t.Fatalf("settling twice: ok=%v %v", ok, err)
	}

	// A receipt that came before the relay's answer is not moved back.
	id = send("s2")
	if _, err := c.CommitReceive(ctx, ReceiveTx{From: "bob", DeliveryUpdates: []DeliveryUpdate{{ClientID: "s2", State: Read}}}); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := c.SettleOutbox(ctx, "s2", ""); err != nil || !ok || m.ID != id || m.State != Read {
		t.Fatalf("settled after its receipt: %+v ok=%v %v", m, ok, err)
	}

	// Refused for good: Failed with the reason, in the same transaction.
	id = send("s3")
	if m, ok, err := c.SettleOutbox(ctx, "s3", "too big"); err != nil || !ok || m.ID != id || m.State != Failed || m.Reason != "too big" {
		t.Fatalf("refused: %+v ok=%v %v", m, ok, err)
	}
	if ob, _ := c.Outbox(ctx); len(ob) != 0 {
		t.Fatalf("outbox after settling: %+v", ob)
	}

	// A receipt's item carries no message.
	if _, err := c.CommitSend(ctx, SendTx{Outbox: OutboxItem{ClientID: "r1", To: "bob", Payload: []byte("receipt")}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.SettleOutbox(ctx, "r1", ""); ok || err != nil {
		t.Fatalf("receipt: ok=%v %v", ok, err)
	}
}

// TestSettleRefused: a refusal's settlement and its withdrawn notice (the notice's
// outbox item and the session state that encrypted it) commit all or nothing, and the
// notice only with the settlement: not for an item already settled, nor when its
// session moved on.
func TestSettleRefused(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	gen := func() uint64 {
		t.Helper()
		ss, err := c.Sessions(ctx, "card-bob")
		if err != nil || len(ss) != 1 {
			t.Fatalf("sessions %+v %v", ss, err)
		}
		return ss[0].Generation
	}
	send := func(cid string) int64 {
		t.Helper()
		var g uint64
		if ss, _ := c.Sessions(ctx, "card-bob"); len(ss) == 1 {
			g = ss[0].Generation
		}
		id, err := c.CommitSend(ctx, SendTx{Session: Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("sent " + cid), Generation: g},
			Message: &Message{Contact: "bob", Body: []byte("body " + cid), SentAt: t0, Seq: 1},
			Outbox:  OutboxItem{ClientID: cid, To: "bob", Payload: []byte("wire " + cid)}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	notice := func(cid string, g uint64) *SendTx {
		return &SendTx{Session: Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("notice " + cid), Generation: g},
			Outbox: OutboxItem{ClientID: cid, To: "bob", Payload: []byte("notice " + cid)}}
	}
	outbox := func() []string {
		t.Helper()
		ob, err := c.Outbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range ob {
			ids = append(ids, it.ClientID+"="+string(it.Payload))
		}
		return ids
	}

	id := send("m1")
	var m Message
	var ok bool
	failEveryStep(t, c.db, func() error {
		var err error
		m, ok, err = c.SettleRefused(ctx, "m1", "too big", notice("n1", gen()))
		return err
	})
	if !ok || m.ID != id || m.State != Failed || m.Reason != "too big" || m.Seq != 1 {
		t.Fatalf("refused: %+v ok=%v", m, ok)
	}
	if got := outbox(); len(got) != 1 || got[0] != "n1=notice n1" {
		t.Fatalf("outbox after the refusal: %v, want the notice alone", got)
	}
	if ss, _ := c.Sessions(ctx, "card-bob"); string(ss[0].State) != "notice n1" {
		t.Fatalf("session state %q, want the notice's", ss[0].State)
	}

	// Settled already (the relay answered twice): no second notice.
	g := gen()
	if _, ok, err := c.SettleRefused(ctx, "m1", "too big", notice("n2", g)); ok || err != nil {
		t.Fatalf("settling twice: ok=%v %v", ok, err)
	}
	if got := outbox(); len(got) != 1 || gen() != g {
		t.Fatalf("settling twice committed a notice: outbox %v, session generation %d, want %d", got, gen(), g)
	}

	// The notice's session moved on: nothing changes, the refused item stays.
	send("m2")
	if _, _, err := c.SettleRefused(ctx, "m2", "too big", notice("n3", g)); !errors.Is(err, ErrStaleSession) {
		t.Fatalf("a stale notice: %v", err)
	}
	if got := outbox(); len(got) != 2 || got[1] != "m2=wire m2" {
		t.Fatalf("outbox after a stale notice: %v", got)
	}
	if m, err := c.MessageByClientID(ctx, "m2"); err != nil || m.State != Pending {
		t.Fatalf("m2 after a stale notice: %+v %v", m, err)
	}

	// A notice is no message; a refusal has a reason.
	bad := notice("n4", gen())
	bad.Message = &Message{Contact: "bob", Body: []byte("x")}
	if _, _, err := c.SettleRefused(ctx, "m2", "too big", bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a notice with a message: %v", err)
	}
	if _, _, err := c.SettleRefused(ctx, "m2", "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a refusal without a reason: %v", err)
	}
}

// TestCommitAwaited: a message queued before its session existed keeps its client id,
// message and place in the queue when its ciphertext is committed with the new session
// state, all or nothing.
func TestCommitAwaited(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, []byte("pw"))
	addPeer(t, c, "bob")
	id, err := c.CommitSend(ctx, SendTx{Message: &Message{Contact: "bob", Body: []byte("hello")},
		Outbox: OutboxItem{ClientID: "w", To: "bob", Payload: []byte("plain"), AwaitingSession: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CommitSend(ctx, SendTx{Outbox: OutboxItem{ClientID: "later", To: "bob", Payload: []byte("wire later")}}); err != nil {
		t.Fatal(err)
	}
	sess := Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("after handshake")}
	failEveryStep(t, c.db, func() error { return c.CommitAwaited(ctx, sess, "w", []byte("ciphertext")) })
	ob, err := c.Outbox(ctx)
	if err != nil || len(ob) != 2 {
		t.Fatalf("outbox %+v %v", ob, err)
	}
	if w := ob[0]; w.ClientID != "w" || w.AwaitingSession || string(w.Payload) != "ciphertext" || w.MessageID != id {
		t.Fatalf("awaited item after commit: %+v", w)
	}
	if ss, _ := c.Sessions(ctx, "card-bob"); len(ss) != 1 || string(ss[0].State) != "after handshake" {
		t.Fatalf("session %+v", ss)
	}
	if err := c.CommitAwaited(ctx, sess, "w", []byte("again")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("committing an item no longer awaiting: %v", err)
	}
	if err := c.CommitAwaited(ctx, sess, "later", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("committing an ordinary item: %v", err)
	}
}
