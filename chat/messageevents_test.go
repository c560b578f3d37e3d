package chat_test

import (
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// TestReadMarksAndDeletionsEmitEvents: marking a contact's messages read (through a
// message, then all) is followed by a MessagesRead event naming the contact, after which
// Contact reads the new unread count; deleting a message and clearing the conversation
// are followed by MessagesDeleted (the message's id, or none for the whole
// conversation), after which History reads the change. A MarkRead with nothing unread
// sends nothing. A UI on the same controller sees what a headless 'pfschat recv',
// 'delete-message' or 'clear' did through the owner socket (its unread badge and its
// conversation went stale).
func TestReadMarksAndDeletionsEmitEvents(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob) // alice has "hi back" unread
	ctx := t.Context()
	var first chat.Message
	for _, m := range chattest.FullHistory(t, alice, "bob") {
		if !m.Outgoing && m.Text == "hi back" {
			first = m
		}
	}
	chattest.Send(t, bob, alice, "two")
	chattest.Send(t, bob, alice, "three")
	next := func(what string) chat.Event {
		t.Helper()
		return chattest.WaitEvent(t, alice, what, func(e chat.Event) bool {
			return e.Kind == chat.MessagesRead || e.Kind == chat.MessagesDeleted
		})
	}
	unread := func() int {
		t.Helper()
		ct, err := alice.Contact(ctx, "bob")
		chattest.Must(t, err)
		return ct.Unread
	}

	chattest.Must(t, alice.MarkReadThrough(ctx, "bob", first.ID))
	if ev := next("MessagesRead after MarkReadThrough"); ev.Kind != chat.MessagesRead || ev.Contact != "bob" || unread() != 2 {
		t.Fatalf("after MarkReadThrough: %v for %q, %d unread; want messages-read for bob, 2 unread", ev.Kind, ev.Contact, unread())
	}
	chattest.Must(t, alice.MarkRead(ctx, "bob"))
	if ev := next("MessagesRead after MarkRead"); ev.Kind != chat.MessagesRead || ev.Contact != "bob" || unread() != 0 {
		t.Fatalf("after MarkRead: %v for %q, %d unread; want messages-read for bob, 0 unread", ev.Kind, ev.Contact, unread())
	}
	chattest.Must(t, alice.MarkRead(ctx, "bob")) // nothing unread: no event

	chattest.Must(t, alice.DeleteMessage(ctx, "bob", first.ID))
	ev := next("MessagesDeleted after DeleteMessage")
	if ev.Kind != chat.MessagesDeleted || ev.Contact != "bob" || ev.Message == nil || ev.Message.ID != first.ID {
		t.Fatalf("after DeleteMessage(%d): %v for %q (%+v), want messages-deleted for bob naming it", first.ID, ev.Kind, ev.Contact, ev.Message)
	}
	for _, m := range chattest.FullHistory(t, alice, "bob") {
		if m.ID == first.ID {
			t.Fatalf("message %d still in the history after its event", first.ID)
		}
	}
	n, err := alice.ClearConversation(ctx, "bob")
	chattest.Must(t, err)
	ev = next("MessagesDeleted after ClearConversation")
	if ev.Kind != chat.MessagesDeleted || ev.Contact != "bob" || ev.Message != nil || n == 0 {
		t.Fatalf("after ClearConversation (%d deleted): %v for %q (%+v), want messages-deleted for bob without a message", n, ev.Kind, ev.Contact, ev.Message)
	}
	if h := chattest.FullHistory(t, alice, "bob"); len(h) != 0 {
		t.Fatalf("after the clear's event the history holds %d messages", len(h))
	}
}
