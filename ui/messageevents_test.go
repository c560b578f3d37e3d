package ui

import (
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// rowOf is the contact list row of name in a plain frame ("" when it is not listed).
func rowOf(frame, name string) string {
	for _, l := range contactColumn(frame) {
		if strings.Contains(l, name) {
			return l
		}
	}
	return ""
}

// TestHeadlessReadAndDeleteShowInTheUI: read marks and deletions made through the
// controller the UI runs on, not by the UI — what 'pfschat --home alice recv',
// 'delete-message bob ID' and 'clear bob' do through the UI's owner socket — show in
// the running UI at once: carol's unread badge goes, and the open conversation with bob
// loses the deleted message, then every message (the badge and the messages stayed
// until the UI read them again for something else).
func TestHeadlessReadAndDeleteShowInTheUI(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob, carol := newUser(t, r, "alice"), newUser(t, r, "bob"), newUser(t, r, "carol")
	chattest.Converse(t, alice, bob)
	chattest.Converse(t, alice, carol)
	chattest.Send(t, carol, alice, "from carol")
	chattest.Send(t, bob, alice, "delete me")
	chattest.Send(t, bob, alice, "keep me")
	var del int64
	for _, m := range chattest.FullHistory(t, alice, "bob") {
		if m.Text == "delete me" {
			del = m.ID
		}
	}

	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 100, 30)
	fr.WaitFor(t, "bob's conversation, carol with 2 unread", func(s string) bool {
		return strings.Contains(s, "delete me") && strings.Contains(s, "keep me") && strings.HasSuffix(rowOf(s, "carol"), " 2")
	})

	chattest.Must(t, alice.MarkRead(ctx, "carol"))
	fr.WaitFor(t, "carol's badge gone", func(s string) bool { return strings.HasSuffix(rowOf(s, "carol"), "carol") })

	chattest.Must(t, alice.DeleteMessage(ctx, "bob", del))
	fr.WaitFor(t, "the deleted message gone", func(s string) bool {
		return !strings.Contains(s, "delete me") && strings.Contains(s, "keep me")
	})
	_, err := alice.ClearConversation(ctx, "bob")
	chattest.Must(t, err)
	fr.WaitFor(t, "bob's conversation empty", func(s string) bool {
		return !strings.Contains(s, "keep me") && !strings.Contains(s, "hi back")
	})
	quitUI(t, tm)
}

// TestMessagesDeletedEventKeepsWhatIsNotAMessage: a MessagesDeleted event reloads a
// loaded conversation but keeps the draft kept for it while another one is open (a
// headless clear may reach any conversation), and one for a message that is not loaded
// reloads nothing; MessagesRead reads the unread counts again.
func TestMessagesDeletedEventKeepsWhatIsNotAMessage(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	kept := b.addMessage(chat.Message{Contact: "carol", Text: "from carol", SentAt: fixedNow})
	drive(t, m, m.c.loadContacts(b), "")
	drive(t, m, m.openContact("carol"), "")
	m.input.SetValue("for carol")
	drive(t, m, m.openContact("bob"), "")
	if cv := m.convs["carol"]; cv == nil || cv.draft != "for carol" || cv.byID[kept.ID] == nil {
		t.Fatalf("carol's conversation before: %+v", cv)
	}

	before := m.convs["carol"]
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessagesDeleted, Contact: "carol", Message: &chat.Message{ID: kept.ID + 100}}), "")
	if m.convs["carol"] != before {
		t.Fatal("a message that is not loaded was deleted: carol's conversation was loaded again")
	}

	_, _ = b.ClearConversation(t.Context(), "carol")
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessagesDeleted, Contact: "carol"}), "")
	if cv := m.convs["carol"]; cv == nil || cv.draft != "for carol" || cv.byID[kept.ID] != nil {
		t.Fatalf("after carol's conversation was cleared elsewhere: %+v, want the draft kept and the message gone", cv)
	}
	drive(t, m, m.openContact("carol"), "")
	if v := m.input.Value(); v != "for carol" {
		t.Fatalf("carol opened again: the input holds %q, want her draft", v)
	}

	b.mu.Lock()
	b.contacts["bob"].Unread = 3
	b.mu.Unlock()
	drive(t, m, m.c.loadContacts(b), "")
	b.mu.Lock()
	b.contacts["bob"].Unread = 0 // marked read through the owner socket
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessagesRead, Contact: "bob"}), "")
	if ct, _ := m.contact("bob"); ct.Unread != 0 {
		t.Fatalf("after MessagesRead the list still shows %d unread for bob", ct.Unread)
	}
}
