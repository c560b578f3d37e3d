package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// TestNotReadWhileScrolledBack: messages that arrive while the open conversation is
// scrolled back ("↓ N new" below the view) are not marked read — the sender would see
// read ✓✓ for messages not seen; the list keeps their count. Ctrl+End brings them into
// view: then they are marked read, under a "3 new" divider.
func TestNotReadWhileScrolledBack(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.focused = true // as App starts: until the terminal reports otherwise
	b := m.b.(*memBackend)
	for i := range 80 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	drive(t, m, m.openContact("bob"), "")
	backendUnread := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.contacts["bob"].Unread
	}
	receive := func(text string) {
		t.Helper()
		msg := b.addMessage(chat.Message{Contact: "bob", Text: text, SentAt: fixedNow})
		b.mu.Lock()
		b.contacts["bob"].Unread++
		b.mu.Unlock()
		drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}), "")
	}

	// At the bottom, a message is read as it arrives (as before).
	receive("seen at once")
	if n := backendUnread(); n != 0 {
		t.Fatalf("at the bottom, focused: %d unread, want the message marked read", n)
	}

	_, cmd := m.Update(keyMsg("pgup"))
	drive(t, m, cmd, "")
	for i := 1; i <= 3; i++ {
		receive(fmt.Sprintf("fresh %d", i))
	}
	if n := backendUnread(); n != 3 {
		t.Fatalf("scrolled back, 3 arrived below the view: %d unread in the store, want 3 (none marked read)", n)
	}
	if ct, _ := m.contact("bob"); ct.Unread != 3 {
		t.Fatalf("scrolled back: the list counts %d unread for bob, want 3", ct.Unread)
	}

	_, cmd = m.Update(keyMsg("ctrl+end"))
	drive(t, m, cmd, "")
	if n := backendUnread(); n != 0 {
		t.Fatalf("back at the newest (ctrl+end): %d unread, want them marked read", n)
	}
	if it := m.conv().newItem; it == nil || it.newMark != 3 || it.m.Text != "fresh 1" {
		t.Fatalf("the messages read at the bottom have no \"3 new\" divider above the first: %+v", it)
	}
}

// TestNotReadWhileTheTerminalIsUnfocused: after the terminal reports focus-out
// (BlurMsg), a message arriving in the open conversation is shown but not marked read
// — its sender sees delivered, not read, and alice's list counts it — until the focus
// comes back (FocusMsg): then it is marked read and the sender sees read. Real
// controllers over a real relay.
func TestNotReadWhileTheTerminalIsUnfocused(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "hi back") // (Converse read the events that said the relay is connected)

	tm.Send(tea.BlurMsg{})
	m, err := bob.Send(ctx, "alice", "while you were away")
	chattest.Must(t, err)
	chattest.WaitState(t, bob, m.ID, chat.Delivered)
	bobRow := func(s string) string {
		for _, l := range contactColumn(s) {
			if strings.Contains(l, "bob") {
				return l
			}
		}
		return ""
	}
	fr.WaitFor(t, "the message shown, bob's unread count kept", func(s string) bool {
		return strings.Contains(s, "while you were away") && strings.HasSuffix(bobRow(s), " 1")
	})
	if got := chattest.WaitStored(t, bob, "alice", m.ID, chat.Delivered); got.State >= chat.Read {
		t.Fatalf("unfocused: bob's message is %v, want delivered, not read", got.State)
	}

	tm.Send(tea.FocusMsg{})
	chattest.WaitState(t, bob, m.ID, chat.Read)
	fr.WaitFor(t, "bob's count cleared", func(s string) bool { return !strings.HasSuffix(bobRow(s), " 1") })
	quitUI(t, tm)
}

// TestNotReadWhileTheListCoversTheConversation: below 60 columns the contact list
// (Tab) takes the conversation's place; a message arriving then is not marked read
// until Tab brings the conversation back.
func TestNotReadWhileTheListCoversTheConversation(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.focused, m.c.width = true, 50
	b := m.b.(*memBackend)
	b.addMessage(chat.Message{Contact: "bob", Text: "old", SentAt: fixedNow.Add(-time.Hour)})
	drive(t, m, m.openContact("bob"), "")
	_, cmd := m.Update(keyMsg("tab"))
	drive(t, m, cmd, "")
	if m.focus != focusContacts {
		t.Fatal("tab did not show the contact list")
	}
	msg := b.addMessage(chat.Message{Contact: "bob", Text: "behind the list", SentAt: fixedNow})
	b.mu.Lock()
	b.contacts["bob"].Unread = 1
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}), "")
	unread := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.contacts["bob"].Unread
	}
	if n := unread(); n != 1 {
		t.Fatalf("the list on screen instead of the conversation: %d unread, want 1 (not marked read)", n)
	}
	_, cmd = m.Update(keyMsg("tab"))
	drive(t, m, cmd, "")
	if n := unread(); n != 0 {
		t.Fatalf("the conversation back on screen: %d unread, want 0", n)
	}
}

// TestNotReadUnderADialog: a message arriving in the open conversation while a dialog
// (here the help) is drawn over it is not marked read — the user is reading the dialog
// (a tester saw read receipts go out meanwhile); closing the dialog brings it into view
// and marks it read.
func TestNotReadUnderADialog(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	b.addMessage(chat.Message{Contact: "bob", Text: "old", SentAt: fixedNow.Add(-time.Hour)})
	a := New(t.Context(), Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	m := a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	if m.open != "bob" || !m.conv().loaded {
		t.Fatal("bob's conversation did not open")
	}
	unread := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.contacts["bob"].Unread
	}

	_, cmd := a.Update(pushDialogMsg{newHelpDialog(a.c)}) // as f1's command delivers it
	drive(t, m, cmd, "")
	if len(a.dialogs) != 1 {
		t.Fatalf("%d dialogs open, want the help", len(a.dialogs))
	}
	msg := b.addMessage(chat.Message{Contact: "bob", Text: "under the dialog", SentAt: fixedNow})
	b.mu.Lock()
	b.contacts["bob"].Unread = 1
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}), "")
	if n := unread(); n != 1 {
		t.Fatalf("a dialog over the conversation: %d unread, want 1 (not marked read)", n)
	}

	_, cmd = a.Update(keyMsg("esc"))
	if len(a.dialogs) != 0 {
		t.Fatal("esc did not close the help")
	}
	drive(t, m, cmd, "")
	if n := unread(); n != 0 {
		t.Fatalf("the dialog closed, the message in view: %d unread, want 0", n)
	}
}

// TestOpenAtTheFirstUnread: a tester at 80x30 opened dave with 60 unread messages (more
// than fit) with ctrl+↑: the view jumped to the newest and all 60 were marked read,
// though messages 1–36 were never on screen and the "── 60 new" divider was above the
// view. As in Signal, the conversation opens with the divider on the top row, only the
// messages in view are marked read, and scrolling to the newest marks the rest.
func TestOpenAtTheFirstUnread(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64)})
	b.addMessage(chat.Message{Contact: "bob", Text: "hello", SentAt: fixedNow.Add(-2 * time.Hour)})
	b.addMessage(chat.Message{Contact: "dave", Text: "read long ago", SentAt: fixedNow.Add(-2 * time.Hour)})
	for i := 1; i <= 60; i++ {
		b.addMessage(chat.Message{Contact: "dave", Text: fmt.Sprintf("unread %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	b.contacts["dave"].Unread = 60
	a := New(t.Context(), Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 80, Height: 30})
	m := a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	if m.open != "bob" {
		t.Fatalf("%q open, want bob", m.open)
	}
	unread := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.contacts["dave"].Unread
	}

	_, cmd := a.Update(keyMsg("ctrl+up"))
	drive(t, m, cmd, "")
	if m.open != "dave" {
		t.Fatalf("ctrl+up opened %q, want dave", m.open)
	}
	view := ansi.Strip(m.View())
	if !strings.Contains(view, "── 60 new") || !strings.Contains(view, "unread 1 ") {
		t.Fatalf("dave opened without the \"60 new\" divider and the first unread message in view:\n%s", view)
	}
	if strings.Contains(view, "unread 60") {
		t.Fatalf("dave opened at the newest message:\n%s", view)
	}
	n := unread()
	if n == 0 || n == 60 {
		t.Fatalf("opened at the first unread: %d unread, want those below the view (not 0, not 60)", n)
	}
	if ct, _ := m.contact("dave"); ct.Unread != n {
		t.Fatalf("the list counts %d unread for dave, the store %d", ct.Unread, n)
	}

	_, cmd = a.Update(keyMsg("pgdown"))
	drive(t, m, cmd, "")
	if n2 := unread(); n2 >= n {
		t.Fatalf("a page down: %d unread, want fewer than %d", n2, n)
	}
	_, cmd = a.Update(keyMsg("ctrl+end"))
	drive(t, m, cmd, "")
	if n := unread(); n != 0 {
		t.Fatalf("at the newest: %d unread, want 0", n)
	}
	if it := m.conv().newItem; it == nil || it.newMark != 60 || it.m.Text != "unread 1" {
		t.Fatalf("the divider moved while the messages were read: %+v", it)
	}
}

// TestNewDividerIsThisVisits: the "N new" divider marks what was unread when the
// conversation was opened this time; a tester left and reopened one and found "── 1 new"
// still above a message read long before. Reopened with nothing unread there is none;
// reopened with new unread messages it sits above them.
func TestNewDividerIsThisVisits(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.focused = true
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64)})
	m.contacts = append(m.contacts, chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64), Unread: 1})
	b.contacts["dave"].Unread = 1
	b.addMessage(chat.Message{Contact: "dave", Text: "first", SentAt: fixedNow.Add(-time.Hour)})
	drive(t, m, m.openContact("dave"), "")
	if it := m.conv().newItem; it == nil || it.m.Text != "first" {
		t.Fatalf("opened with 1 unread: divider on %+v, want it above \"first\"", it)
	}
	drive(t, m, m.openContact("bob"), "")
	drive(t, m, m.openContact("dave"), "")
	if it := m.conv().newItem; it != nil {
		t.Fatalf("reopened with nothing unread: a \"%d new\" divider still above %q", it.newMark, it.m.Text)
	}

	drive(t, m, m.openContact("bob"), "")
	msg := b.addMessage(chat.Message{Contact: "dave", Text: "second", SentAt: fixedNow})
	b.contacts["dave"].Unread = 1
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "dave", Message: &msg}), "")
	drive(t, m, m.openContact("dave"), "")
	if it := m.conv().newItem; it == nil || it.m.Text != "second" || it.newMark != 1 {
		t.Fatalf("reopened with 1 new: divider on %+v, want \"1 new\" above \"second\"", it)
	}
}

// olderPagesFail is a backend whose older history pages do not load.
type olderPagesFail struct{ *memBackend }

func (b olderPagesFail) History(ctx context.Context, contact string, before int64, n int) ([]chat.Message, error) {
	if before != 0 {
		return nil, errors.New("disk I/O error")
	}
	return b.memBackend.History(ctx, contact, before, n)
}

// TestOpenAtTheFirstUnreadWhenAnOlderPageFails: opening at the first of 60 unread
// loads an older page first; when it fails, the divider goes over what is loaded and
// the messages in view are marked read (the open waited for the page for good).
func TestOpenAtTheFirstUnreadWhenAnOlderPageFails(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.focused = true
	m.noticeTTL = time.Millisecond // drive runs the expiry's tick too
	mb := m.b.(*memBackend)
	m.b = olderPagesFail{mb}
	for i := 1; i <= 60; i++ {
		mb.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("unread %d", i), SentAt: fixedNow})
	}
	mb.contacts["bob"].Unread = 60
	m.contacts[0].Unread = 60
	drive(t, m, m.openContact("bob"), "")
	it := m.conv().newItem
	if it == nil || it.m.Text != "unread 11" || it.newMark != historyPage {
		t.Fatalf("the older page failed: divider on %+v, want \"50 new\" above the oldest loaded", it)
	}
	mb.mu.Lock()
	n := mb.contacts["bob"].Unread
	mb.mu.Unlock()
	if n == 60 || n == 0 {
		t.Fatalf("%d unread, want the messages in view marked read and those below not", n)
	}
}

// TestOpenAtTheFirstUnreadReadReceipts: with real controllers over a real relay, alice
// opens bob's conversation with 41 unread at 80x30: it opens at the "41 new" divider,
// bob sees read on the first of his messages, and delivered, not read, on the newest,
// which alice has not had on screen.
func TestOpenAtTheFirstUnreadReadReceipts(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	chattest.Converse(t, alice, bob) // alice has "hi back" unread
	var last chat.Message
	for i := 1; i <= 40; i++ {
		last = chattest.Send(t, bob, alice, fmt.Sprintf("message %d", i))
	}
	first := chattest.FullHistory(t, bob, "alice")[1] // "hi back" (after alice's "hi")
	if first.Text != "hi back" {
		t.Fatalf("bob's second message is %q, want \"hi back\"", first.Text)
	}
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 80, 30)
	fr.WaitText(t, "── 41 new", "hi back")
	chattest.WaitStored(t, bob, "alice", first.ID, chat.Read)
	for _, m := range chattest.FullHistory(t, bob, "alice") {
		if m.ID == last.ID && m.State >= chat.Read {
			t.Fatalf("bob sees read on %q, which alice has not had on screen", m.Text)
		}
	}
	if strings.Contains(fr.Last(), "message 40") {
		t.Fatalf("the newest message is on screen:\n%s", fr.Last())
	}
	quitUI(t, tm)
}

// TestNotReadUnderTheNewRow: the "↓ N new" row, drawn over the view's bottom line while
// the conversation is scrolled back, hid a message that was marked read all the same
// (a tester scrolled down a line at a time from the first unread message). Only the
// messages whose lines are on screen are read.
func TestNotReadUnderTheNewRow(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64)})
	b.addMessage(chat.Message{Contact: "dave", Text: "read long ago", SentAt: fixedNow.Add(-2 * time.Hour)})
	for i := 1; i <= 60; i++ {
		b.addMessage(chat.Message{Contact: "dave", Text: fmt.Sprintf("unread %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	b.contacts["dave"].Unread = 60
	a := New(t.Context(), Options{Backend: b, Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 80, Height: 30})
	m := a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	if m.open != "dave" || m.conv().atBottom() {
		t.Fatalf("%q open (at the newest: %v), want dave at the first unread", m.open, m.conv().atBottom())
	}
	// The newest unread message whose line is on screen, and the store's unread count.
	shown := func() (newest int, unread int) {
		for _, l := range strings.Split(ansi.Strip(m.View()), "\n") {
			var k int
			if i := strings.Index(l, "unread "); i >= 0 {
				if _, err := fmt.Sscanf(l[i:], "unread %d", &k); err == nil {
					newest = max(newest, k)
				}
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		return newest, b.contacts["dave"].Unread
	}

	seen, _ := shown() // read as it opened
	msg := b.addMessage(chat.Message{Contact: "dave", Text: "unread 61", SentAt: fixedNow})
	b.mu.Lock()
	b.contacts["dave"].Unread++
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "dave", Message: &msg}), "")
	for step := range 3 {
		newest, unread := shown()
		seen = max(seen, newest)
		if row := fmt.Sprintf("↓ %d new", unread); !strings.Contains(ansi.Strip(m.View()), row) {
			t.Fatalf("step %d: no %q row (the unread messages below the view):\n%s", step, row, ansi.Strip(m.View()))
		}
		if unread != 61-seen {
			t.Fatalf("step %d: unread 1–%d seen, %d unread in the store; want %d (the message under \"↓ 1 new\" is not read):\n%s",
				step, seen, unread, 61-seen, ansi.Strip(m.View()))
		}
		_, cmd := a.Update(tea.MouseWheelMsg{Button: tea.MouseWheelDown})
		drive(t, m, cmd, "")
	}
}
