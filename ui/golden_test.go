package ui

import (
	"image/color"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat"
)

// goldenBackend is a small, fixed conversation: every state mark, a day separator, an
// undecryptable placeholder, unread counts and the trust marks.
func goldenBackend() *memBackend {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Verified: true, Fingerprint: "3f2a 9c1d"})
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64), Unread: 2, Fingerprint: "77e0 1b4f"})
	b.addContact(chat.Contact{Name: "mallory", CardID: strings.Repeat("d", 64), KeyChanged: true, Fingerprint: "0bad f00d"})
	yesterday := fixedNow.Add(-24 * time.Hour)
	at := func(base time.Time, min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	b.addMessage(chat.Message{Contact: "carol", Text: "lunch?", SentAt: at(fixedNow, -50)})
	b.addMessage(chat.Message{Contact: "carol", Text: "the usual place", SentAt: at(fixedNow, -49)})
	b.addMessage(chat.Message{Contact: "mallory", Text: "trust me", SentAt: at(yesterday, -300)})
	msgs := []chat.Message{
		{Text: "Did the new relay come up?", SentAt: at(yesterday, -10)},
		{Outgoing: true, Text: "Yes — it answers on 7878 and pins its key on first contact.", SentAt: at(yesterday, -8), State: chat.Read},
		{State: chat.UndecryptableState, Reason: "no session for this message", SentAt: at(fixedNow, -20)},
		{Text: "Sorry, that one was sent from my old laptop. Here it is again: the prekey count looks healthy, 100 one-time keys on the relay.", SentAt: at(fixedNow, -18)},
		{Outgoing: true, Text: "Great.\nLet's compare safety numbers later.", SentAt: at(fixedNow, -15), State: chat.Delivered},
		{Outgoing: true, Text: "Sending this one while you're offline", SentAt: at(fixedNow, -5), State: chat.Sent},
		{Outgoing: true, Text: "and this is still in the outbox", SentAt: at(fixedNow, -1), State: chat.Pending},
		{Outgoing: true, Text: "this one the relay refused", SentAt: at(fixedNow, 0), State: chat.Failed, Reason: "queue full"},
	}
	for _, m := range msgs {
		m.Contact = "bob"
		b.addMessage(m)
	}
	return b
}

// TestGoldenMainScreen pins the main screen at 100×30 (TERM=xterm-256color, ANSI256
// colours, dark background, UTC, fixed clock). Regenerate with `go test ./ui -run
// Golden -update` and review the diff.
func TestGoldenMainScreen(t *testing.T) {
	b := goldenBackend()
	b.events <- chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Online}}
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 100, 30)
	fr.WaitText(t, "relay connected", "this one the relay refused", "not sent: queue full", "carol", "mallory")
	tm.Quit()
	final := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*App)
	t.Run("dark", func(t *testing.T) { teatest.RequireEqualOutput(t, downsample(final.render())) })
	t.Run("light", func(t *testing.T) {
		final.Update(tea.BackgroundColorMsg{Color: color.White})
		teatest.RequireEqualOutput(t, downsample(final.render()))
	})
}
