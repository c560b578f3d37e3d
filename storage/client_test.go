package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestClientBasics(t *testing.T) {
	ctx := context.Background()
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
