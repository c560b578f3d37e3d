package storage

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

// TestDeleteMessageAndClear: deleting a message removes it from the conversation and
// from the unread count but keeps its place in the sender's sequence (no false gap);
// clearing empties the conversation and keeps the contact.
func TestDeleteMessageAndClear(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	var ids []int64
	for i := 1; i <= 3; i++ {
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte{byte('a' + i)}, State: Delivered, Seq: uint64(i), SentAt: t0.Add(timeSec(i))}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := c.DeleteMessage(ctx, "bob", ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteMessage(ctx, "bob", ids[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting it again: %v", err)
	}
	if err := c.DeleteMessage(ctx, "carol", ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting another contact's message: %v", err)
	}
	msgs, _, _ := c.Messages(ctx, "bob", Cursor{}, 10)
	if len(msgs) != 2 {
		t.Fatalf("%d messages left, want 2", len(msgs))
	}
	ct, _ := c.Contact(ctx, "bob")
	if ct.Unread != 2 {
		t.Fatalf("unread %d after deleting an unread message, want 2", ct.Unread)
	}
	marks, _ := c.IncomingSeqs(ctx, "bob")
	if len(marks) != 3 {
		t.Fatalf("sequence marks %v: a deleted message must keep its place", marks)
	}
	n, err := c.ClearConversation(ctx, "bob")
	if err != nil || n != 2 {
		t.Fatalf("clear: %d, %v", n, err)
	}
	if msgs, _, _ := c.Messages(ctx, "bob", Cursor{}, 10); len(msgs) != 0 {
		t.Fatalf("%d messages after clear", len(msgs))
	}
	if ct, err := c.Contact(ctx, "bob"); err != nil || ct.Unread != 0 {
		t.Fatalf("contact after clear: %+v, %v", ct, err)
	}
	if marks, _ := c.IncomingSeqs(ctx, "bob"); len(marks) != 3 {
		t.Fatalf("sequence marks after clear: %v", marks)
	}
	if _, err := c.ClearConversation(ctx, "carol"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("clear an unknown contact: %v", err)
	}
}

// TestDeleteMovesLastMessageAt: the contact's last message time (the list's time, its
// order) is that of the newest message left after /delete, none after /clear: both kept
// the time of the deleted messages.
func TestDeleteMovesLastMessageAt(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	var ids []int64
	for i := 1; i <= 3; i++ {
		at := t0.Add(timeSec(i))
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: "bob", Body: []byte{byte('a' + i)}, State: Delivered,
			Seq: uint64(i), SentAt: at, ReceivedAt: at}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	last := func() time.Time {
		t.Helper()
		ct, err := c.Contact(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		return ct.LastMessageAt
	}
	if got := last(); !got.Equal(t0.Add(timeSec(3))) {
		t.Fatalf("last message at %v, want the third's", got)
	}
	if err := c.DeleteMessage(ctx, "bob", ids[2]); err != nil {
		t.Fatal(err)
	}
	if got := last(); !got.Equal(t0.Add(timeSec(2))) {
		t.Fatalf("newest deleted: last message at %v, want the second's %v", got, t0.Add(timeSec(2)))
	}
	if err := c.DeleteMessage(ctx, "bob", ids[0]); err != nil {
		t.Fatal(err)
	}
	if got := last(); !got.Equal(t0.Add(timeSec(2))) {
		t.Fatalf("oldest deleted: last message at %v, want the second's still", got)
	}
	if _, err := c.ClearConversation(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := last(); !got.IsZero() {
		t.Fatalf("cleared: last message at %v, want none", got)
	}
}

// TestContactPrefs: block, mute and nickname are stored per contact; a nickname with
// control characters or over the limit is refused and changes nothing.
func TestContactPrefs(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	if err := c.SetContactBlocked(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetContactMuted(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetContactNickname(ctx, "bob", "Bobby 🎸"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"a\nb", "\x1b[31m", strings.Repeat("x", MaxNicknameBytes+1), "\xff"} {
		if err := c.SetContactNickname(ctx, "bob", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("nickname %q: %v", bad, err)
		}
	}
	ct, _ := c.Contact(ctx, "bob")
	if !ct.Blocked || ct.BlockSynced || !ct.Muted || ct.Nickname != "Bobby 🎸" {
		t.Fatalf("contact %+v", ct)
	}
	if err := c.SetBlockSynced(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if ct, _ := c.Contact(ctx, "bob"); !ct.BlockSynced {
		t.Fatal("block_synced not stored")
	}
	if err := c.SetContactMuted(ctx, "nobody", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown contact: %v", err)
	}
}

// TestIncomingSeqsUnblocks: each mark counts the unblocks of its sender before the
// message arrived — deleted messages' too; messages of other contacts move nothing; an
// unblock of a contact that is not blocked is none, two with no message between them
// are one; the count follows a renamed contact and goes with a removed one.
func TestIncomingSeqsUnblocks(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	addPeer(t, c, "bob")
	addPeer(t, c, "carol")
	receive := func(contact string, seq uint64) int64 {
		t.Helper()
		id, err := c.CommitReceive(ctx, ReceiveTx{Message: &Message{Contact: contact, Body: []byte("x"), State: Delivered, Seq: seq, SentAt: t0.Add(timeSec(int(seq)))}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	setBlocked := func(v ...bool) {
		t.Helper()
		for _, b := range v {
			if err := c.SetContactBlocked(ctx, "bob", b); err != nil {
				t.Fatal(err)
			}
		}
	}
	receive("bob", 1)
	last := receive("bob", 2)
	setBlocked(false) // not blocked: no unblock
	if got := unblocksBefore(t, c, "bob"); got[1] != 0 || got[2] != 0 {
		t.Fatalf("never blocked, yet counted after an unblock: %v", got)
	}
	setBlocked(true)
	// The newest message is deleted before the unblock: its id is not given again, so
	// the next message is after the unblock all the same.
	if err := c.DeleteMessage(ctx, "bob", last); err != nil {
		t.Fatal(err)
	}
	setBlocked(false, false) // twice: the second is no unblock
	receive("carol", 1)
	five := receive("bob", 5)
	receive("bob", 6)
	if err := c.DeleteMessage(ctx, "bob", five); err != nil {
		t.Fatal(err)
	}
	setBlocked(true, false)
	receive("bob", 8)
	setBlocked(true, false, true, false) // nothing arrived between these two: one point
	receive("bob", 9)
	want := map[uint64]int{1: 0, 2: 0, 5: 1, 6: 1, 8: 2, 9: 3}
	if got := unblocksBefore(t, c, "bob"); !maps.Equal(got, want) {
		t.Fatalf("unblocks before each of bob's messages: %v, want %v (2 and 5 deleted)", got, want)
	}
	if got := unblocksBefore(t, c, "carol"); !maps.Equal(got, map[uint64]int{1: 0}) {
		t.Fatalf("carol's marks moved with bob's unblocks: %v", got)
	}
	if err := c.RenameContact(ctx, "bob", "bobby"); err != nil {
		t.Fatal(err)
	}
	if got := unblocksBefore(t, c, "bobby"); !maps.Equal(got, want) {
		t.Fatalf("after renaming bob: %v, want %v", got, want)
	}
	// Removed, then back under the same name: a new contact, never unblocked.
	if err := c.DeleteContact(ctx, "bobby"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddContact(ctx, "bobby", "card-bob", t0); err != nil {
		t.Fatal(err)
	}
	receive("bobby", 1)
	if got := unblocksBefore(t, c, "bobby"); !maps.Equal(got, map[uint64]int{1: 0}) {
		t.Fatalf("a removed contact's unblocks outlived it: %v", got)
	}
	if err := c.SetContactBlocked(ctx, "nobody", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unblocking an unknown contact: %v", err)
	}
}

// TestRelayBlocks: blocks are per blocker, idempotent, capped, and go with the
// blocker's account.
func TestRelayBlocks(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	for _, b := range []string{"mallory", "mallory", "eve"} {
		if err := r.Block(ctx, "alice", b, t0, 2); err != nil {
			t.Fatalf("block %s: %v", b, err)
		}
	}
	if err := r.Block(ctx, "alice", "trent", t0, 2); !errors.Is(err, ErrTooManyBlocks) {
		t.Fatalf("third block over a cap of 2: %v", err)
	}
	if err := r.Block(ctx, "bob", "mallory", t0, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.Unblock(ctx, "alice", "eve"); err != nil {
		t.Fatal(err)
	}
	if err := r.Unblock(ctx, "alice", "nobody"); err != nil {
		t.Fatal(err)
	}
	got, err := r.Blocks(ctx)
	if err != nil || len(got) != 2 || strings.Join(got["alice"], ",") != "mallory" || strings.Join(got["bob"], ",") != "mallory" {
		t.Fatalf("blocks %v, %v", got, err)
	}
}
