package ui

import (
	"image/color"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
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
	final := finalApp(t, tm)
	t.Run("dark", func(t *testing.T) { teatest.RequireEqualOutput(t, downsample(final.render())) })
	t.Run("light", func(t *testing.T) {
		final.Update(tea.BackgroundColorMsg{Color: color.White})
		teatest.RequireEqualOutput(t, downsample(final.render()))
	})
}

// TestGoldenAttachments pins how files look at 100×24: a file being uploaded (below the
// messages, with its percentage), sent, waiting for ctrl+o, downloading, saved with its
// dimensions, and failed with the reason. Regenerate with `go test ./ui -run Golden
// -update` and review the diff.
func TestGoldenAttachments(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Verified: true, Fingerprint: "3f2a 9c1d"})
	at := func(min int) time.Time { return fixedNow.Add(time.Duration(min) * time.Minute) }
	file := func(name, mt string, size int64, st chat.AttachmentState) *chat.Attachment {
		return &chat.Attachment{FileName: name, MediaType: mt, Size: size, State: st}
	}
	saved := file("beach.jpg", "image/jpeg", 2_400_000, chat.AttachmentDownloaded)
	saved.Path, saved.Width, saved.Height = "/home/alice/Downloads/beach.jpg", 4032, 3024
	failed := file("notes.txt", "text/plain; charset=utf-8", 1200, chat.AttachmentFailed)
	failed.Reason = "chat: attachment does not match its digest: notes.txt"
	fetching := file("talk.mp4", "video/mp4", 80<<20, chat.AttachmentFetching)
	fetching.DoneBytes = 30 << 20
	for _, m := range []chat.Message{
		{Outgoing: true, Text: "the report, as promised", SentAt: at(-30), State: chat.Read, Attachment: file("report.pdf", "application/pdf", 1_234_567, chat.AttachmentSent)},
		{Text: "holiday!", SentAt: at(-20), Attachment: saved},
		{SentAt: at(-15), Attachment: fetching},
		{SentAt: at(-10), Attachment: file("backup.tar.gz", "application/gzip", 300<<20, chat.AttachmentAvailable)},
		{SentAt: at(-5), State: chat.Delivered, Attachment: failed},
	} {
		m.Contact = "bob"
		b.addMessage(m)
	}
	b.events <- chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Online}}
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 100, 24)
	fr.WaitText(t, "relay connected", "backup.tar.gz")
	up := chat.Transfer{ClientID: "u1", Outgoing: true, FileName: "slides.odp", MediaType: "application/vnd.oasis.opendocument.presentation",
		Size: 100 << 20, Done: 42 << 20, State: chat.AttachmentUploading}
	b.events <- chat.Event{Kind: chat.TransferProgress, Contact: "bob", Transfer: &up}
	fr.WaitText(t, "uploading 42%")
	tm.Quit()
	final := finalApp(t, tm)
	teatest.RequireEqualOutput(t, downsample(final.render()))
}

// TestGoldenMutedContacts pins the contact list's muted mark at 100×16: a muted
// contact's unread count is greyed (not the accent badge) and its name is not bold,
// "muted" is on its second row — beside "✔ verified" and the time when they fit, the
// symbol only when they do not — and an unmuted contact keeps the accent badge.
// Regenerate with `go test ./ui -run Golden -update` and review the diff.
func TestGoldenMutedContacts(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Verified: true, Fingerprint: "3f2a 9c1d"})
	b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64), Verified: true, Muted: true, Unread: 3})
	b.addContact(chat.Contact{Name: "erin", CardID: strings.Repeat("e", 64), Muted: true})
	b.addContact(chat.Contact{Name: "frank", CardID: strings.Repeat("f", 64), Unread: 1})
	for i, name := range []string{"bob", "dave", "erin", "frank"} {
		b.addMessage(chat.Message{Contact: name, Text: "hello from " + name, SentAt: fixedNow.Add(time.Duration(-10*i) * time.Minute)})
	}
	b.events <- chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Online}}
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 100, 16)
	fr.WaitText(t, "relay connected", "hello from bob", "✔ · muted · 09:20", "muted · 09:10")
	tm.Quit()
	final := finalApp(t, tm)
	teatest.RequireEqualOutput(t, downsample(final.render()))

	// Narrow, the header counts the unread of other conversations: frank's 1, not
	// muted dave's 3.
	final.Update(tea.WindowSizeMsg{Width: 40, Height: 16})
	if header := strings.Split(ansi.Strip(final.render()), "\n")[0]; !strings.Contains(header, " 1  tab") {
		t.Errorf("narrow header %q, want frank's 1 unread (muted dave's 3 not counted)", header)
	}
}
