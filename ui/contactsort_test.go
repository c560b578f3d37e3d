package ui

import (
	"testing"
	"time"

	"pfschat/chat"
)

// TestMutedUnreadDoesNotJumpUp: a muted contact with unread messages keeps its place
// by last activity, below a more recent contact without unread; an unmuted contact
// with unread still goes to the top (a tester saw muted chats sort first).
func TestMutedUnreadDoesNotJumpUp(t *testing.T) {
	m := newTestMainScreen(t)
	at := func(min int) time.Time { return fixedNow.Add(time.Duration(-min) * time.Minute) }
	drive(t, m, m.onContacts(contactsMsg{list: []chat.Contact{
		{Name: "muted", Muted: true, Unread: 5, LastActivity: at(30)},
		{Name: "recent", LastActivity: at(10)},
		{Name: "older", LastActivity: at(40)},
		{Name: "unread", Unread: 1, LastActivity: at(50)},
	}}), "")
	var got []string
	for _, ct := range m.contacts {
		got = append(got, ct.Name)
	}
	want := []string{"unread", "recent", "muted", "older"}
	if len(got) != len(want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %q, want %q: a muted contact is not promoted by its unread count", got, want)
		}
	}
}

// TestArrivalInTheOpenConversationKeepsTheRule: contacts with unread messages sort
// first (README). A message arriving in the open conversation, read at once, moved its
// contact above one with unread messages (a tester saw it): the list had been sorted
// with the count from before it was marked read.
func TestArrivalInTheOpenConversationKeepsTheRule(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.focused = true
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "carol", LastActivity: fixedNow.Add(-time.Hour)})
	b.addMessage(chat.Message{Contact: "bob", Text: "old", SentAt: fixedNow.Add(-2 * time.Hour)})
	drive(t, m, m.c.loadContacts(b), "")
	drive(t, m, m.openContact("bob"), "")
	if m.open != "bob" {
		t.Fatalf("%q open, want bob", m.open)
	}
	msg := b.addMessage(chat.Message{Contact: "bob", Text: "new", SentAt: fixedNow})
	b.mu.Lock()
	b.contacts["carol"].Unread = 2 // arrived while bob was open
	b.contacts["bob"].Unread++
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}), "")
	var got []string
	for _, ct := range m.contacts {
		got = append(got, ct.Name)
	}
	if len(got) != 2 || got[0] != "carol" || got[1] != "bob" {
		t.Fatalf("order %q, want [carol bob]: carol has unread messages, bob's new one was read", got)
	}
	if m.contacts[m.selected].Name != "bob" {
		t.Fatalf("selected %q, want the open bob", m.contacts[m.selected].Name)
	}
}
