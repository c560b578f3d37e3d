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
