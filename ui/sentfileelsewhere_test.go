package ui

import (
	"strings"
	"testing"
	"time"

	"pfschat/chat"
)

// TestFileSentThroughOwnerMovesTheContactUp: a file `pfschat send-file` sends through
// the running UI (the profile's owner) moves the contact up the list by its last
// activity, as a text `pfschat send` sends does with its conversation open — whether
// its conversation is open (the transfer's last event shows the message before its
// delivery event comes) or was never opened; so does a text to a conversation never
// opened. They kept their old place until something else read the list again.
func TestFileSentThroughOwnerMovesTheContactUp(t *testing.T) {
	for _, tc := range []struct{ open, file bool }{{true, true}, {false, true}, {false, false}} {
		open := tc.open
		m := newTestMainScreen(t)
		b := m.b.(*memBackend)
		b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64), LastActivity: fixedNow.Add(-time.Hour)})
		b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64), LastActivity: fixedNow.Add(-time.Minute)})
		drive(t, m, m.c.loadContacts(b), "")
		if open {
			drive(t, m, m.openContact("carol"), "")
		}
		order := func() []string {
			var got []string
			for _, ct := range m.contacts {
				got = append(got, ct.Name)
			}
			return got
		}
		if got := order(); got[0] != "dave" {
			t.Fatalf("before: order %q", got)
		}
		if !tc.file {
			msg := b.addMessage(chat.Message{Contact: "carol", Outgoing: true, Text: "by a script", SentAt: fixedNow, State: chat.Sent})
			drive(t, m, m.handleEvent(chat.Event{Kind: chat.DeliveryChanged, Contact: "carol", Message: &msg}), "")
			if got := order(); got[0] != "carol" {
				t.Errorf("a text to a conversation not open: order %q, want carol first", got)
			}
			continue
		}
		msg := b.addMessage(chat.Message{Contact: "carol", Outgoing: true, Text: "", SentAt: fixedNow, State: chat.Pending,
			Attachment: &chat.Attachment{FileName: "photo.png", Size: 10, State: chat.AttachmentSent}})
		drive(t, m, m.handleEvent(chat.Event{Kind: chat.TransferProgress, Contact: "carol", Message: &msg,
			Transfer: &chat.Transfer{ClientID: "x", MessageID: msg.ID, Outgoing: true, FileName: "photo.png", Size: 10, Done: 10,
				State: chat.AttachmentSent, Ended: true}}), "")
		sent := msg
		sent.State = chat.Sent
		drive(t, m, m.handleEvent(chat.Event{Kind: chat.DeliveryChanged, Contact: "carol", Message: &sent}), "")
		if got := order(); got[0] != "carol" {
			t.Errorf("conversation open %v: after the file went, order %q, want carol first", open, got)
		}
	}
}
