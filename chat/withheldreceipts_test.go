package chat_test

import (
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// finalState is message id's state in from's history with contact.
func finalState(t *testing.T, from *chattest.User, contact string, id int64) chat.DeliveryState {
	t.Helper()
	for _, m := range chattest.FullHistory(t, from, contact) {
		if m.ID == id {
			return m.State
		}
	}
	t.Fatalf("message %d is not in %s's history with %s", id, from.Name, contact)
	return 0
}

// TestWithheldReceiptsGoOnceAccepted: no receipt goes to a message request, nor for
// messages from a new key the user has not accepted; once the user accepts them —
// accepting the request, writing to them, or accepting the key — the receipts held back
// go: read for the messages read meanwhile, delivered for the others.
func TestWithheldReceiptsGoOnceAccepted(t *testing.T) {
	ctx := t.Context()
	for _, accept := range []string{"accept-request", "write", "add-contact"} {
		t.Run(accept, func(t *testing.T) {
			r := relaytest.Start(t)
			alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
			chattest.AddContact(t, alice, "bob")
			read := chattest.Send(t, alice, bob, "read while a request")
			unread := chattest.Send(t, alice, bob, "not read yet")
			in, err := bob.History(ctx, "alice", 0, 10)
			chattest.Must(t, err)
			chattest.Must(t, bob.MarkReadThrough(ctx, "alice", in[1].ID)) // the older one
			switch accept {
			case "accept-request":
				chattest.Must(t, bob.AcceptRequest(ctx, "alice"))
			case "write":
				if _, err := bob.Send(ctx, "alice", "hello"); err != nil {
					t.Fatal(err)
				}
			case "add-contact":
				chattest.AddContact(t, bob, "alice")
			}
			// The delivery receipt is queued before the read receipt, and the relay
			// keeps their order: once the read one is in, so is the other.
			chattest.WaitState(t, alice, read.ID, chat.Read)
			if st := finalState(t, alice, "bob", unread.ID); st != chat.Delivered {
				t.Errorf("the message bob has not read is %v on alice's side, want delivered", st)
			}
		})
	}

	t.Run("accept-key", func(t *testing.T) {
		r := relaytest.Start(t)
		alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
		chattest.AddContact(t, alice, "bob")
		chattest.AddContact(t, bob, "alice")
		chattest.Send(t, alice, bob, "old key")
		if _, err := alice.ResetIdentity(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := alice.Send(ctx, "bob", "new key")
		chattest.Must(t, err)
		if got := chattest.WaitReceived(t, bob, "alice", "new key"); !got.KeyPending {
			t.Fatal("the new key's message is not held behind the key change")
		}
		chattest.Must(t, bob.AcceptKey(ctx, "alice"))
		chattest.WaitState(t, alice, m.ID, chat.Delivered)
	})
}
