package daemon_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// A client's markRead, deleteMessage and clearConversation reach every subscription —
// another client's, and the owner's UI's through the same events — as markedRead and
// deleted notifications, exactly as API.md shows them: a UI that owned the profile kept
// a stale unread count and conversation after 'pfschat recv' marked messages read
// through it. A markRead with nothing unread and a clear of an empty conversation send
// nothing; deleteMessage of a message that is not there is unknown_message.
func TestSocketReadMarksAndDeletionsAreNotified(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob) // bob has "hi" unread
	o := startOwner(t, r, bob)
	cl := dial(t, o.sock)
	ctx := t.Context()
	nc, rd := rawSocket(t, o)
	nc.SetReadDeadline(time.Now().Add(time.Minute)) // a notification that never comes fails the read
	if _, err := io.WriteString(nc, `{"jsonrpc":"2.0","method":"subscribe","id":1}`+"\n"); err != nil {
		t.Fatal(err)
	}
	var sub daemon.SubscribeResult
	if l, _ := readRaw(t, rd); l.Error != nil || json.Unmarshal(l.Result, &sub) != nil {
		t.Fatalf("subscribe: %+v", l)
	}
	// next is the next notification among markedRead, deleted and contact, as sent.
	next := func() (string, string) {
		t.Helper()
		for {
			l, _ := readRaw(t, rd)
			switch l.Method {
			case daemon.NotifyMarkedRead, daemon.NotifyDeleted, daemon.NotifyContact:
				return l.Method, string(l.Params)
			}
		}
	}
	want := func(what, method, params string) {
		t.Helper()
		if m, p := next(); m != method || p != params {
			t.Fatalf("after %s: %s %s; want %s %s", what, m, p, method, params)
		}
	}
	unread := func() int {
		t.Helper()
		var list []daemon.Contact
		chattest.Must(t, cl.Call(ctx, "contacts", nil, &list))
		return list[0].Unread
	}

	if _, err := alice.Send(ctx, "bob", "two"); err != nil {
		t.Fatal(err)
	}
	for {
		if l, ev := readRaw(t, rd); l.Method == daemon.NotifyMessage && ev.Message.Text == "two" {
			break
		}
	}
	var got daemon.ReceiveResult
	chattest.Must(t, cl.Call(ctx, "receive", nil, &got))
	if len(got.Messages) != 2 {
		t.Fatalf("receive: %+v, want hi and two", got.Messages)
	}
	hi, two := got.Messages[0].ID, got.Messages[1].ID

	chattest.Must(t, cl.Call(ctx, "markRead", daemon.MarkReadParams{Contact: "alice", Through: hi}, nil))
	want("markRead through hi", daemon.NotifyMarkedRead, fmt.Sprintf(`{"subscription":%d,"contact":"alice"}`, sub.Subscription))
	if n := unread(); n != 1 {
		t.Fatalf("after markRead through hi: %d unread, want 1", n)
	}

	chattest.Must(t, cl.Call(ctx, "deleteMessage", daemon.DeleteMessageParams{Contact: "alice", ID: two}, nil))
	want("deleteMessage", daemon.NotifyDeleted, fmt.Sprintf(`{"subscription":%d,"contact":"alice","id":%d}`, sub.Subscription, two))
	if n := unread(); n != 0 {
		t.Fatalf("after deleting the unread message: %d unread, want 0", n)
	}
	err := cl.Call(ctx, "deleteMessage", daemon.DeleteMessageParams{Contact: "alice", ID: two}, nil)
	var re *daemon.Error
	if !errors.As(err, &re) || re.Code != daemon.CodeUnknownMessage || re.Data == nil || re.Data.Name != "unknown_message" {
		t.Fatalf("deleteMessage of a deleted message: %v, want unknown_message", err)
	}

	var cleared daemon.ClearResult
	chattest.Must(t, cl.Call(ctx, "clearConversation", daemon.ContactParams{Contact: "alice"}, &cleared))
	want("clearConversation", daemon.NotifyDeleted, fmt.Sprintf(`{"subscription":%d,"contact":"alice"}`, sub.Subscription))
	if cleared.Deleted != 2 { // "hi" from alice, "hi back" to her
		t.Fatalf("clearConversation deleted %d messages, want 2", cleared.Deleted)
	}

	// Nothing to mark, nothing to clear: no notification before the mute's.
	chattest.Must(t, cl.Call(ctx, "markRead", daemon.MarkReadParams{Contact: "alice"}, nil))
	chattest.Must(t, cl.Call(ctx, "clearConversation", daemon.ContactParams{Contact: "alice"}, &cleared))
	chattest.Must(t, cl.Call(ctx, "setMuted", daemon.MutedParams{Name: "alice", Muted: true}, nil))
	want("markRead and clear with nothing to do, then setMuted", daemon.NotifyContact, fmt.Sprintf(`{"subscription":%d,"contact":"alice"}`, sub.Subscription))
}
