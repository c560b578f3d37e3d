package storage

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"
)

// A sender fills at most 1/SenderQuota of a recipient's queue, in one batch or many;
// other senders still get through, and an ack frees the sender's room.
func TestRelaySenderQuota(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 80, MaxQueueBytes: 80 * 100, SenderQuota: 8}) // 10 messages, 1000 bytes a sender
	msg := func(from string, i, size int) QueuedMessage {
		return QueuedMessage{To: "bob", From: from, ClientID: fmt.Sprint(i), Body: make([]byte, size)}
	}
	// Others fill most of bob's queue first, so mallory's sends are checked.
	var batch []QueuedMessage
	for i := range 9 {
		batch = append(batch, msg(fmt.Sprint("friend", i), 0, 1))
	}
	for i := range 6 {
		batch = append(batch, msg("mallory", i, 1))
	}
	if _, err := r.Enqueue(ctx, batch); err != nil {
		t.Fatal(err)
	}
	batch = batch[:0]
	for i := 6; i < 14; i++ {
		batch = append(batch, msg("mallory", i, 1))
	}
	res, err := r.Enqueue(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i, x := range res {
		var qf *QueueFullError
		if errors.As(x.Err, &qf) {
			if qf.Limit != "sender_quota" {
				t.Fatalf("message %d: limit %q", i, qf.Limit)
			}
			refused++
		} else if x.Err != nil {
			t.Fatal(x.Err)
		}
	}
	if refused != 4 {
		t.Fatalf("%d of mallory's 8 later sends refused, want 4 (10 of 14 accepted)", refused)
	}
	if res, err := r.Enqueue(ctx, []QueuedMessage{msg("alice", 1, 1)}); err != nil || res[0].Err != nil {
		t.Fatalf("alice refused: %v %+v", err, res)
	}
	// Bytes: one big message over 1000 bytes from carol is refused once the queue is past the quota.
	if res, err := r.Enqueue(ctx, []QueuedMessage{msg("carol", 1, 1001)}); err != nil || res[0].Err == nil {
		t.Fatalf("carol's 1001 bytes accepted: %v %+v", err, res)
	}
	// bob acks mallory's messages: mallory has room again.
	p, err := r.Pending(ctx, "bob", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, m := range p {
		if m.From == "mallory" {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) != 10 {
		t.Fatalf("mallory has %d queued, want 10", len(ids))
	}
	if err := r.Ack(ctx, "bob", ids); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Enqueue(ctx, []QueuedMessage{msg("mallory", 99, 1)}); err != nil || res[0].Err != nil {
		t.Fatalf("mallory refused after the ack: %v %+v", err, res)
	}
}

func TestRelayInvites(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	h := sha256.Sum256([]byte("code"))
	now := time.Unix(1_800_000_000, 0)
	if err := r.CreateInvite(ctx, Invite{Hash: h[:], UsesLeft: 2, ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	acc := func(name string) Account {
		return Account{Name: name, CardID: "card-" + name, Card: []byte("c"), CreatedAt: now}
	}
	other := sha256.Sum256([]byte("other"))
	if err := r.CreateAccountInvited(ctx, acc("a"), other[:], now); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("unknown invite: %v", err)
	}
	if err := r.CreateAccountInvited(ctx, acc("a"), h[:], now.Add(2*time.Hour)); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("expired invite: %v", err)
	}
	if err := r.CreateAccountInvited(ctx, acc("a"), h[:], now); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateAccountInvited(ctx, acc("a"), h[:], now); !errors.Is(err, ErrExists) {
		t.Fatalf("taken name: %v", err)
	}
	if err := r.CreateAccountInvited(ctx, acc("b"), h[:], now); err != nil {
		t.Fatalf("second use (the taken name kept it): %v", err)
	}
	if err := r.CreateAccountInvited(ctx, acc("c"), h[:], now); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("used-up invite: %v", err)
	}
	if _, err := r.AccountByName(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused registration stored: %v", err)
	}
}
