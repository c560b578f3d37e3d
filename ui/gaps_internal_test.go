package ui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// A gap the backend reports shows as a line just above the message after the hole, and
// goes when the next history load no longer reports it.
func TestGapLineShownAndCleared(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	be := newMemBackend("alice", func() time.Time { return now })
	be.addContact(chat.Contact{Name: "bob"})
	be.addMessage(chat.Message{Contact: "bob", Text: "first", SentAt: now.Add(-3 * time.Minute), State: chat.Delivered, Seq: 1})
	be.addMessage(chat.Message{Contact: "bob", Text: "third", SentAt: now.Add(-2 * time.Minute), State: chat.Delivered, Seq: 3})
	app := New(t.Context(), Options{Backend: be, Now: func() time.Time { return now }, Location: time.UTC})
	app.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	ms := app.screen.(*mainScreen)
	list, _ := be.Contacts(t.Context())
	ms.onContacts(contactsMsg{list: list})
	msgs, _ := be.History(t.Context(), "bob", 0, historyPage)
	var third int64
	for _, m := range msgs {
		if m.Text == "third" {
			third = m.ID
		}
	}
	ms.onHistory(historyMsg{contact: "bob", msgs: msgs, gaps: []chat.Gap{{Contact: "bob", From: 2, To: 2, Before: third}}})
	view := strings.Join(ms.conversationView(100, 20), "\n")
	gapAt, thirdAt := strings.Index(view, "a message from bob has not arrived"), strings.Index(view, "third")
	if gapAt < 0 || thirdAt < gapAt || strings.Index(view, "first") > gapAt {
		t.Fatalf("gap line missing or misplaced:\n%s", view)
	}
	ms.onHistory(historyMsg{contact: "bob", before: 0, msgs: nil})
	if view := strings.Join(ms.conversationView(100, 20), "\n"); strings.Contains(view, "has not arrived") {
		t.Fatalf("gap line stayed:\n%s", view)
	}
	// A later read (after a message arrived) brings it back and clears it again.
	ms.Update(gapsMsg{"bob", []chat.Gap{{Contact: "bob", From: 2, To: 2, Before: third}}})
	if view := strings.Join(ms.conversationView(100, 20), "\n"); !strings.Contains(view, "a message from bob has not arrived") {
		t.Fatalf("gapsMsg shows no gap line:\n%s", view)
	}
	ms.Update(gapsMsg{"bob", nil})
	if view := strings.Join(ms.conversationView(100, 20), "\n"); strings.Contains(view, "has not arrived") {
		t.Fatalf("gap line stayed:\n%s", view)
	}
}
