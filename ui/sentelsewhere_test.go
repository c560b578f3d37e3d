package ui

import (
	"strings"
	"testing"
	"time"

	"pfschat/chat"
)

// TestShowsMessageSentThroughOwner: a message `pfschat send` sends through the running
// UI (the profile's owner) shows in the open conversation when its first delivery
// event arrives, once; it showed only after a restart.
func TestShowsMessageSentThroughOwner(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Fingerprint: "3f2a 9c1d"})
	b.addMessage(chat.Message{Contact: "bob", Text: "hello alice", SentAt: fixedNow.Add(-time.Minute)})
	b.events <- chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Online}}
	_, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 100, 30)
	fr.WaitText(t, "hello alice")

	m := b.addMessage(chat.Message{Contact: "bob", Outgoing: true, Text: "sent by a script", SentAt: fixedNow, State: chat.Sent})
	b.events <- chat.Event{Kind: chat.DeliveryChanged, Contact: "bob", Message: &m}
	frame := fr.WaitText(t, "sent by a script")
	if !strings.Contains(frame, "✓") {
		t.Fatalf("the message sent through the owner has no mark:\n%s", frame)
	}
	if strings.Count(frame, "sent by a script") != 1 {
		t.Fatalf("the message sent through the owner shows more than once:\n%s", frame)
	}
}

// TestSentElsewhereOnlyNewest: the conversation asks for an unknown outgoing message
// only when it is newer than every message it holds; Send's own answer (pending)
// arriving after the message's sent event does not take its mark back.
func TestSentElsewhereOnlyNewest(t *testing.T) {
	cv := newConversation("bob")
	cv.loaded = true
	cv.appendMsg(chat.Message{ID: 5, Contact: "bob", Text: "five", State: chat.Delivered, Outgoing: true}, time.UTC)
	if cv.sentElsewhere(chat.Message{ID: 3, Outgoing: true}) {
		t.Error("an unknown older message counts as sent elsewhere")
	}
	if cv.sentElsewhere(chat.Message{ID: 5, Outgoing: true}) {
		t.Error("a shown message counts as sent elsewhere")
	}
	if cv.sentElsewhere(chat.Message{ID: 6}) {
		t.Error("an incoming message counts as sent elsewhere")
	}
	if !cv.sentElsewhere(chat.Message{ID: 6, Outgoing: true}) {
		t.Error("a newer unknown outgoing message does not count as sent elsewhere")
	}
	cv.appendMsg(chat.Message{ID: 6, Contact: "bob", Text: "six", State: chat.Sent, Outgoing: true}, time.UTC)
	cv.appendMsg(chat.Message{ID: 6, Contact: "bob", Text: "six", State: chat.Pending, Outgoing: true}, time.UTC)
	if st := cv.byID[6].m.State; st != chat.Sent {
		t.Errorf("after Send's pending answer the message is %v, want it still sent", st)
	}
}
