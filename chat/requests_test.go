package chat_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

func contactOf(t *testing.T, u *chattest.User, name string) chat.Contact {
	t.Helper()
	ct, err := u.Contact(t.Context(), name)
	if err != nil {
		t.Fatalf("%s's contact %s: %v", u.Name, name, err)
	}
	return ct
}

// TestMessageRequestAcceptBlockRemove: a stranger's first message makes a request, not
// a contact; accepting makes a contact; blocking stops their messages here and at the
// relay (their send fails with the relay's reason, ours is refused locally) and
// unblocking lifts it; a nickname and mute are kept; removing forgets the contact.
func TestMessageRequestAcceptBlockRemove(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := chattest.NewUser(t, r, "alice")
	bob := chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	chattest.Send(t, alice, bob, "hello, stranger")
	if ct := contactOf(t, bob, "alice"); !ct.Request || ct.Blocked {
		t.Fatalf("a stranger's first message: %+v, want a request", ct)
	}
	if err := bob.AcceptRequest(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if ct := contactOf(t, bob, "alice"); ct.Request {
		t.Fatalf("accepted, still a request: %+v", ct)
	}
	if err := bob.AcceptRequest(ctx, "alice"); !errors.Is(err, chat.ErrNotARequest) {
		t.Fatalf("accepting twice: %v", err)
	}

	readMe := chattest.Send(t, alice, bob, "read me later")
	chattest.WaitState(t, alice, readMe.ID, chat.Delivered)
	chattest.Must(t, bob.Block(ctx, "alice"))
	chattest.Must(t, bob.MarkRead(ctx, "alice")) // read while blocked: no read receipt goes out
	if ct := contactOf(t, bob, "alice"); !ct.Blocked || ct.Request {
		t.Fatalf("blocked: %+v", ct)
	}
	if _, err := bob.Send(ctx, "alice", "hi"); !errors.Is(err, chat.ErrBlocked) {
		t.Fatalf("writing to a blocked contact: %v", err)
	}
	if err := bob.RemoveContact(ctx, "alice"); !errors.Is(err, chat.ErrBlocked) {
		t.Fatalf("removing a blocked contact: %v", err)
	}
	// The relay refuses alice's message: it fails on her side with the reason.
	m, err := alice.Send(ctx, "bob", "are you there?")
	chattest.Must(t, err)
	failed := chattest.WaitEvent(t, alice, "the refused message", func(e chat.Event) bool {
		return e.Kind == chat.DeliveryChanged && e.Message != nil && e.Message.ID == m.ID && e.Message.State == chat.Failed
	})
	if !strings.Contains(failed.Message.Reason, "blocked") {
		t.Errorf("reason %q does not say blocked", failed.Message.Reason)
	}

	chattest.Must(t, bob.Unblock(ctx, "alice"))
	chattest.Send(t, alice, bob, "back again")
	// bob's next message reaches alice after any receipt sent before it (the relay keeps
	// the order): her message read during the block is still only delivered.
	chattest.Send(t, bob, alice, "after the block")
	for _, h := range chattest.FullHistory(t, alice, "bob") {
		if h.ID == readMe.ID && h.State != chat.Delivered {
			t.Errorf("the message bob read while alice was blocked is %v, want delivered (no read receipt to a blocked contact)", h.State)
		}
	}

	chattest.Must(t, bob.SetNickname(ctx, "alice", " Ali "))
	chattest.Must(t, bob.SetMuted(ctx, "alice", true))
	if ct := contactOf(t, bob, "alice"); ct.Nickname != "Ali" || !ct.Muted {
		t.Fatalf("nickname/mute: %+v", ct)
	}
	if err := bob.SetNickname(ctx, "alice", "a\x1b[2Jb"); err == nil {
		t.Fatal("a nickname with an escape sequence was taken")
	}
	chattest.Must(t, bob.RemoveContact(ctx, "alice"))
	if _, err := bob.Contact(ctx, "alice"); !errors.Is(err, chat.ErrUnknownContact) {
		t.Fatalf("removed contact: %v", err)
	}
	// Her next message is a request again.
	chattest.Send(t, alice, bob, "remember me?")
	if ct := contactOf(t, bob, "alice"); !ct.Request {
		t.Fatalf("after removal: %+v, want a request", ct)
	}
}

// TestBlockOfflineReachesRelay: a block made while offline is kept and told to the
// relay on the next connection; messages the relay had queued before are dropped.
func TestBlockOfflineReachesRelay(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := chattest.NewUser(t, r, "alice")
	bob := chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	bob.Close()
	m, err := alice.Send(ctx, "bob", "queued before the block")
	chattest.Must(t, err)
	chattest.WaitState(t, alice, m.ID, chat.Sent)

	// bob blocks while his profile is offline (a command with no relay).
	off, err := bob.Profile.NewController(ctx, bob.Passphrase)
	chattest.Must(t, err)
	chattest.Must(t, off.Block(ctx, "alice"))
	off.Close()

	bob.Reopen()
	chattest.Must(t, bob.WaitSynced(ctx)) // the backlog, with the message queued before the block
	m2, err := alice.Send(ctx, "bob", "after the block")
	chattest.Must(t, err)
	chattest.WaitEvent(t, alice, "the refused message", func(e chat.Event) bool {
		return e.Kind == chat.DeliveryChanged && e.Message != nil && e.Message.ID == m2.ID && e.Message.State == chat.Failed
	})
	for _, h := range chattest.FullHistory(t, bob, "alice") {
		if strings.Contains(h.Text, "block") {
			t.Errorf("bob stored a blocked message: %q", h.Text)
		}
	}
}

// A removed contact stays removed when a receipt of theirs arrives afterwards: their
// delivery receipt for our last message, in flight while we removed them, used to make
// them a message request again, with nothing to show.
func TestReceiptAfterRemovalMakesNoRequest(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := chattest.NewUser(t, r, "alice")
	bob := chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	m, err := bob.Send(ctx, "alice", "last words")
	chattest.Must(t, err)
	chattest.WaitState(t, bob, m.ID, chat.Sent)
	chattest.Must(t, bob.Close())
	chattest.WaitReceived(t, alice, "bob", "last words") // her delivery receipt waits on the relay
	// bob removes alice while offline, then comes back for the receipt.
	online := bob.Profile
	offline := online
	offline.RelayURL = "ws://127.0.0.1:1"
	offline.Prefs.AllowOffline = true
	bob.Profile = offline
	bob.Reopen()
	chattest.Must(t, bob.RemoveContact(ctx, "alice"))
	bob.Profile = online
	bob.Reopen()
	// The receipt is handled once bob has acked it: the relay's queue for him empties.
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := r.Store.Pending(ctx, "bob", 0, 1)
		chattest.Must(t, err)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob did not take alice's receipt from the relay within 30 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the relay's queue
	}
	if ct, err := bob.Contact(ctx, "alice"); !errors.Is(err, chat.ErrUnknownContact) {
		t.Fatalf("after her receipt the removed alice is back: %+v, %v", ct, err)
	}
	// alice's next real message makes her a request.
	chattest.Send(t, alice, bob, "knock knock")
	if ct := contactOf(t, bob, "alice"); !ct.Request {
		t.Fatalf("after her message: %+v, want a request", ct)
	}
	for _, h := range chattest.FullHistory(t, bob, "alice") {
		if h.Text != "knock knock" {
			t.Errorf("bob's conversation with the removed alice holds %+v, want only her new message", h)
		}
	}
}
