package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
)

// While the UI owns bob's profile, 'pfschat recv' (which marks what it printed read),
// 'delete-message alice ID' and 'clear alice' go through its socket into its controller
// — delete-message and clear were refused for the lock the UI holds — and the UI's
// event stream gets MessagesRead and MessagesDeleted for them, after which its backend
// reads the change (ui reloads its list and conversation on them: ui's
// TestHeadlessReadAndDeleteShowInTheUI).
func TestHeadlessReadAndDeleteReachTheUIOwner(t *testing.T) {
	r, alice, p, b := bobOwnedByTheUI(t) // bob has alice's "hi" unread
	ctx := t.Context()
	if _, err := alice.Send(ctx, "bob", "two"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitReceived(t, b, "alice", "two")
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"--home", p.Dir, "--relay", r.URL}, args...)
		if code := Main(ctx, args, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v while the UI owns the profile: exit %d, %q %q", args[4:], code, out.String(), errb.String())
		}
		return out.String()
	}
	next := func(what string, kind chat.EventKind) chat.Event {
		t.Helper()
		return chattest.WaitEvent(t, b, what, func(e chat.Event) bool { return e.Kind == kind })
	}

	if out := run("recv"); !strings.Contains(out, "hi") || !strings.Contains(out, "two") {
		t.Fatalf("recv printed %q", out)
	}
	if ev := next("MessagesRead after recv", chat.MessagesRead); ev.Contact != "alice" {
		t.Fatalf("after recv: messages-read for %q, want alice", ev.Contact)
	}
	if list, err := b.Contacts(ctx); err != nil || len(list) != 1 || list[0].Unread != 0 {
		t.Fatalf("after recv the UI's backend lists %+v, %v", list, err)
	}

	h, err := b.History(ctx, "alice", 0, 10)
	chattest.Must(t, err)
	id := h[0].ID // "two", the newest
	run("delete-message", "alice", fmt.Sprint(id))
	if ev := next("MessagesDeleted after delete-message", chat.MessagesDeleted); ev.Kind != chat.MessagesDeleted || ev.Message == nil || ev.Message.ID != id {
		t.Fatalf("after delete-message: %v %+v, want messages-deleted of message %d", ev.Kind, ev.Message, id)
	}
	if out := run("clear", "alice"); !strings.Contains(out, "deleted 2 messages") {
		t.Fatalf("clear printed %q, want 2 deleted (hi, hi back)", out)
	}
	if ev := next("MessagesDeleted after clear", chat.MessagesDeleted); ev.Kind != chat.MessagesDeleted || ev.Contact != "alice" || ev.Message != nil {
		t.Fatalf("after clear: %v for %q (%+v), want messages-deleted for alice without a message", ev.Kind, ev.Contact, ev.Message)
	}
	if h, err := b.History(ctx, "alice", 0, 10); err != nil || len(h) != 0 {
		t.Fatalf("after clear the UI's backend reads %d messages, %v", len(h), err)
	}
}
