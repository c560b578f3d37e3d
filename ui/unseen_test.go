package ui

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// TestNewBelowWhileScrolledBack: messages that arrive while the conversation is
// scrolled back put "↓ N new · ctrl+end" on the pane's bottom edge, counting them;
// scrolling down to the newest (PgDn, the wheel) or Ctrl+End takes it away. At the
// bottom, new messages are followed as before and no count appears.
func TestNewBelowWhileScrolledBack(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.focused = true // messages in view are read: the row counts the unread ones below
	b := m.b.(*memBackend)
	for i := range 80 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	drive(t, m, m.openContact("bob"), "")
	n := 0
	receive := func() string {
		t.Helper()
		n++
		msg := b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("fresh %d", n), SentAt: fixedNow})
		m.Update(eventMsg{chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}})
		return msg.Text
	}
	pane := func() (body, bottom string) {
		lines := m.conversationView(m.convWidth(), m.bodyHeight())
		for i := range lines {
			lines[i] = ansi.Strip(lines[i])
		}
		return strings.Join(lines, "\n"), strings.TrimSpace(lines[len(lines)-1])
	}

	m.handleKey(keyMsg("pgup"))
	for range 3 {
		receive()
	}
	body, bottom := pane()
	if bottom != "↓ 3 new · ctrl+end" {
		t.Fatalf("scrolled back, 3 messages arrived: bottom edge %q, want \"↓ 3 new · ctrl+end\"\n%s", bottom, body)
	}
	if strings.Contains(body, "fresh") {
		t.Fatalf("scrolled back, the view jumped to the new messages:\n%s", body)
	}
	// PgDn until the newest is on screen: the count goes when the bottom is reached.
	for range 10 {
		if m.conv().atBottom() {
			break
		}
		if _, bottom := pane(); bottom != "↓ 3 new · ctrl+end" {
			t.Fatalf("not yet at the bottom: bottom edge %q", bottom)
		}
		m.handleKey(keyMsg("pgdown"))
	}
	body, bottom = pane()
	if bottom != "09:30 bob   fresh 3" || strings.Contains(body, "new ·") || strings.Contains(body, "newer below") {
		t.Fatalf("back at the bottom: bottom line %q, want the newest message and no count\n%s", bottom, body)
	}

	// At the bottom, a new message is followed: no count.
	text := receive()
	if _, bottom := pane(); !strings.HasSuffix(bottom, text) {
		t.Fatalf("at the bottom, %q arrived: bottom line %q, want it followed", text, bottom)
	}

	// The wheel back down clears it too (3 lines up, 1 new line below: two turns of
	// 3), and so does ctrl+end.
	wheelDown := tea.MouseWheelMsg{Button: tea.MouseWheelDown}
	for _, back := range [][]tea.Msg{{wheelDown, wheelDown}, {keyMsg("ctrl+end")}} {
		m.Update(tea.MouseWheelMsg{Button: tea.MouseWheelUp})
		receive()
		if _, bottom := pane(); bottom != "↓ 1 new · ctrl+end" {
			t.Fatalf("scrolled back 3 lines, 1 arrived: bottom edge %q", bottom)
		}
		for _, msg := range back {
			m.Update(msg)
		}
		if _, bottom := pane(); !strings.HasSuffix(bottom, fmt.Sprintf("fresh %d", n)) {
			t.Fatalf("after %v: bottom line %q, want the newest message", back, bottom)
		}
	}
}

// TestNewBelowInTheProgram: the same through a running program, with the messages
// coming from the backend's event stream: scrolled back (PgUp), three arrive and the
// frame shows "↓ 3 new · ctrl+end" and not the messages; Ctrl+End shows the newest and
// the count goes.
func TestNewBelowInTheProgram(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	for i := range 60 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 80, 24)
	fr.WaitText(t, "old 59")
	press(tm, "pgup")
	fr.WaitText(t, "newer below")
	for i := 1; i <= 3; i++ {
		msg := b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("fresh %d", i), SentAt: fixedNow})
		b.mu.Lock()
		b.contacts["bob"].Unread++ // unread, as the controller counts it
		b.mu.Unlock()
		b.events <- chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}
	}
	if s := fr.WaitText(t, "↓ 3 new · ctrl+end"); strings.Contains(s, "fresh") {
		t.Fatalf("scrolled back, the view jumped to the new messages:\n%s", s)
	}
	press(tm, "ctrl+end")
	fr.WaitFor(t, "the newest on screen and no count", func(s string) bool {
		return strings.Contains(s, "fresh 3") && !strings.Contains(s, "new ·") && !strings.Contains(s, "newer below")
	})
}

// TestFirstNewBelowKeepsTheView: scrolled back (PgUp), the first message to arrive
// brings the "↓ 1 new" row, which takes the place of the view's bottom line: every
// other line of the pane stays where it was (it used to shift up one line), and so do
// they when more arrive.
func TestFirstNewBelowKeepsTheView(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	for i := range 80 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	drive(t, m, m.openContact("bob"), "")
	pane := func() []string {
		lines := m.conversationView(m.convWidth(), m.bodyHeight())
		for i := range lines {
			lines[i] = ansi.Strip(lines[i])
		}
		return lines
	}
	m.handleKey(keyMsg("pgup"))
	before := pane()
	for n := 1; n <= 2; n++ {
		msg := b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("fresh %d", n), SentAt: fixedNow})
		m.Update(eventMsg{chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg}})
		after := pane()
		last := len(after) - 1
		if got, want := strings.TrimSpace(after[last]), fmt.Sprintf("↓ %d new · ctrl+end", n); got != want {
			t.Fatalf("%d arrived: bottom edge %q, want %q", n, got, want)
		}
		for i := range last {
			if after[i] != before[i] {
				t.Fatalf("%d arrived: line %d moved:\nbefore %q\nafter  %q\n\nbefore:\n%s\n\nafter:\n%s", n, i,
					before[i], after[i], strings.Join(before, "\n"), strings.Join(after, "\n"))
			}
		}
	}
}

// newRow is the number on the "↓ N new" row of the frame, -1 without one.
func newRow(m *mainScreen) int {
	if sm := newRowRE.FindStringSubmatch(ansi.Strip(m.View())); sm != nil {
		n, _ := strconv.Atoi(sm[1])
		return n
	}
	return -1
}

var newRowRE = regexp.MustCompile(`↓ (\d+) new`)

// TestNewRowCountsUnreadBelow: the "↓ N new" row counts the unread messages below the
// view, as the list does, and goes down as they are scrolled into view. The tester saw
// it count the messages that arrived while scrolled back: "↓ 25 new" where the list said
// 9 (back in a conversation left scrolled back, 25 received meanwhile, 16 of them read
// at the "N new" divider), and "↓ 3 new" with 272 unread below.
func TestNewRowCountsUnreadBelow(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	for i := range 60 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-2 * time.Hour)})
	}
	b.addMessage(chat.Message{Contact: "carol", Text: "hi", SentAt: fixedNow.Add(-3 * time.Hour)})
	a := New(t.Context(), Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m := a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	key := func(k string) {
		t.Helper()
		_, cmd := a.Update(keyMsg(k))
		drive(t, m, cmd, "")
	}
	receive := func(name, text string) {
		msg := b.addMessage(chat.Message{Contact: name, Text: text, SentAt: fixedNow})
		b.mu.Lock()
		b.contacts[name].Unread++
		b.mu.Unlock()
		drive(t, m, m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: name, Message: &msg}), "")
	}
	check := func(step string) int {
		t.Helper()
		ct, _ := m.contact("bob")
		if got := newRow(m); ct.Unread > 0 && got != ct.Unread || ct.Unread == 0 && got != -1 {
			t.Fatalf("%s: the row says %d new, the list %d unread for bob (store %d):\n%s",
				step, got, ct.Unread, b.unread("bob"), ansi.Strip(m.View()))
		}
		return ct.Unread
	}

	key("pgup")
	drive(t, m, m.openContact("carol"), "")
	for i := 1; i <= 25; i++ {
		receive("bob", fmt.Sprintf("fresh %d", i))
	}
	drive(t, m, m.openContact("bob"), "")
	key("down") // any key: the screen reads what is in view
	n := check("back in bob's conversation")
	if n == 0 || n == 25 {
		t.Fatalf("back at bob's \"25 new\": %d unread, want some read, some below", n)
	}
	key("pgdown")
	if n2 := check("a page down"); n2 >= n {
		t.Fatalf("a page down: %d unread below, was %d", n2, n)
	}

	// Opened with 300 unread, a page down, 3 more arrive.
	b = newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	for i := range 300 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("unread %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	b.contacts["bob"].Unread = 300
	a = New(t.Context(), Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m = a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	key("pgdown")
	n = check("300 unread, a page down")
	for i := 1; i <= 3; i++ {
		receive("bob", fmt.Sprintf("more %d", i))
	}
	key("down")
	if n2 := check("3 more arrived"); n2 != n+3 {
		t.Fatalf("3 more arrived below: %d unread below, want %d", n2, n+3)
	}
}

// TestNewRowCountsAMessageOnce: the controller's event for a message already shown
// (told again) does not count it again on the "↓ N new" row.
func TestNewRowCountsAMessageOnce(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	for i := range 80 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	drive(t, m, m.openContact("bob"), "")
	m.handleKey(keyMsg("pgup"))
	msg := b.addMessage(chat.Message{Contact: "bob", Text: "fresh", SentAt: fixedNow})
	for range 2 {
		m.handleEvent(chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &msg})
	}
	if n := newRow(m); n != 1 {
		t.Fatalf("one message told twice: the row says %d new, want 1", n)
	}
}
