package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// openBatchAtNew is the tester's start (80×24): alice in carol's conversation, bob
// sends 40 messages ("batch 1" … "batch 40"), alice opens bob at "── 40 new".
func openBatchAtNew(t *testing.T) (*App, *mainScreen, *memBackend) {
	t.Helper()
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	b.addMessage(chat.Message{Contact: "carol", Text: "hi alice", SentAt: fixedNow.Add(-2 * time.Hour)})
	for i := 1; i <= 40; i++ {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("batch %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	b.contacts["bob"].Unread = 40
	a := New(t.Context(), Options{Backend: b, OpenContact: "carol", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m := a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	drive(t, m, m.openContact("bob"), "")
	if v := ansi.Strip(m.View()); !strings.Contains(v, "── 40 new") || !strings.Contains(v, "batch 1 ") {
		t.Fatalf("bob opened without the divider and batch 1 in view:\n%s", v)
	}
	return a, m, b
}

// shownBatches lists the "batch N" numbers on screen.
func shownBatches(m *mainScreen) []int {
	var out []int
	for _, l := range strings.Split(ansi.Strip(m.View()), "\n") {
		if i := strings.Index(l, "batch "); i >= 0 {
			var k int
			if _, err := fmt.Sscanf(l[i:], "batch %d", &k); err == nil {
				out = append(out, k)
			}
		}
	}
	return out
}

func (b *memBackend) unread(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.contacts[name].Unread
}

// TestDeleteKeepsThePlace: /delete while reading the new messages back deletes the
// newest (batch 40) and leaves the view where it was, the "N new" divider with it; no
// message that was never on screen is marked read. It jumped to the newest and marked
// all of them read. The same scrolled back in read history.
func TestDeleteKeepsThePlace(t *testing.T) {
	_, m, b := openBatchAtNew(t)
	before := shownBatches(m)
	unread := b.unread("bob")
	if unread == 0 || unread == 40 {
		t.Fatalf("opened at the divider: %d unread", unread)
	}
	drive(t, m, m.command([]string{"/delete"}), "y")
	driveEvents(t, m, b)
	if after := shownBatches(m); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("/delete moved the view: batches %v on screen, were %v:\n%s", after, before, ansi.Strip(m.View()))
	}
	if got := b.unread("bob"); got != unread-1 { // batch 40, unread, is gone
		t.Fatalf("after /delete: %d unread, want %d (nothing more marked read)", got, unread-1)
	}
	if !strings.Contains(ansi.Strip(m.View()), "── 39 new") {
		t.Fatalf("the divider does not count the 39 new messages left:\n%s", ansi.Strip(m.View()))
	}

	// Scrolled back in read history: the view stays too.
	_, m, b = openBatchAtNew(t)
	_, cmd := m.Update(keyMsg("ctrl+end"))
	drive(t, m, cmd, "")
	_, cmd = m.Update(keyMsg("pgup"))
	drive(t, m, cmd, "")
	before = shownBatches(m)
	drive(t, m, m.command([]string{"/delete", "2"}), "y")
	driveEvents(t, m, b)
	if after := shownBatches(m); fmt.Sprint(after) != fmt.Sprint(before) || m.conv().atBottom() {
		t.Fatalf("/delete 2 scrolled back: batches %v on screen, were %v:\n%s", after, before, ansi.Strip(m.View()))
	}
}

// TestDeleteDrawsNoLoadingFrame: between the deletion's event and anything read back,
// the pane shows the conversation without the deleted message (/delete) or the empty
// conversation (/clear), never a blank " loading…" frame (the tester saw one with
// tmux pipe-pane).
func TestDeleteDrawsNoLoadingFrame(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	for _, text := range []string{"one", "two", "three"} {
		b.addMessage(chat.Message{Contact: "bob", Text: text, SentAt: fixedNow})
	}
	drive(t, m, m.openContact("bob"), "")
	pane := func() string {
		return ansi.Strip(strings.Join(m.conversationView(m.convWidth(), m.bodyHeight()), "\n"))
	}

	newest := m.conv().items[len(m.conv().items)-1].m.ID
	m.handleEvent(chat.Event{Kind: chat.MessagesDeleted, Contact: "bob", Message: &chat.Message{ID: newest, Contact: "bob"}})
	if p := pane(); strings.Contains(p, "loading") || !strings.Contains(p, "two") || strings.Contains(p, "three") {
		t.Fatalf("right after /delete's event the pane reads:\n%s", p)
	}
	m.handleEvent(chat.Event{Kind: chat.MessagesDeleted, Contact: "bob"})
	if p := pane(); strings.Contains(p, "loading") || strings.Contains(p, "one") || !strings.Contains(p, "No messages yet") {
		t.Fatalf("right after /clear's event the pane reads:\n%s", p)
	}
}

// deleteDialog runs /delete with args and returns the confirmation's text, its words
// joined by single spaces ("" without a dialog).
func deleteDialog(t *testing.T, m *mainScreen, args ...string) string {
	t.Helper()
	queue := []tea.Cmd{m.command(append([]string{"/delete"}, args...))}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		switch msg := c().(type) {
		case pushDialogMsg:
			return strings.Join(strings.Fields(strings.NewReplacer("│", " ", "─", "", "╭", "", "╮", "", "╰", "", "╯", "").
				Replace(ansi.Strip(msg.d.View()))), " ")
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case nil:
		default:
			_, next := m.Update(msg)
			queue = append(queue, next)
		}
	}
	return ""
}

// TestDeleteConfirmationNamesTheMessage: the confirmation says which message it is —
// the newest, which may not have been on screen — from whom and when, and a file
// without a caption by its name (it showed "()").
func TestDeleteConfirmationNamesTheMessage(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.height = 60 // the whole dialog
	b := m.b.(*memBackend)
	b.addMessage(chat.Message{Contact: "bob", Text: "hello", SentAt: fixedNow.Add(-time.Minute)})
	b.addMessage(chat.Message{Contact: "bob", SentAt: fixedNow,
		Attachment: &chat.Attachment{ClientID: "f1", FileName: "report.pdf", MediaType: "application/pdf", Size: 2048}})
	drive(t, m, m.openContact("bob"), "")
	d := deleteDialog(t, m)
	if !strings.Contains(d, "report.pdf") || strings.Contains(d, "()") {
		t.Errorf("/delete of a file without a caption: the dialog reads %q, want the file's name", d)
	}
	if !strings.Contains(d, "Delete the newest message of this conversation, from bob at 09:30") {
		t.Errorf("/delete: the dialog reads %q, want it to say the newest message, from bob at 09:30", d)
	}
	if d := deleteDialog(t, m, "2"); !strings.Contains(d, "the 2nd newest message") || !strings.Contains(d, "hello") {
		t.Errorf("/delete 2: the dialog reads %q", d)
	}
}

// TestDeleteNthNotLoaded: /delete N deletes the conversation's N-th newest message
// whether it is loaded or not (it said "no message 60 to delete here (scroll up to
// load older ones)"), and says how many there are when there are fewer.
func TestDeleteNthNotLoaded(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond
	b := m.b.(*memBackend)
	for i := 1; i <= 400; i++ {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("msg %d", i), SentAt: fixedNow})
	}
	drive(t, m, m.openContact("bob"), "")
	if len(m.conv().items) >= 250 {
		t.Fatalf("%d messages loaded: the test wants fewer than 250", len(m.conv().items))
	}
	if d := deleteDialog(t, m, "250"); !strings.Contains(d, "the 250th newest message") || !strings.Contains(d, "msg 151 ") {
		t.Fatalf("/delete 250 with %d loaded: dialog %q, notice %q", len(m.conv().items), d, m.notice)
	}
	drive(t, m, m.command([]string{"/delete", "250"}), "y")
	driveEvents(t, m, b)
	b.mu.Lock()
	for _, msg := range b.msgs["bob"] {
		if msg.Text == "msg 151" {
			t.Error("/delete 250 did not delete msg 151")
		}
	}
	b.mu.Unlock()
	drive(t, m, m.command([]string{"/delete", "500"}), "y")
	if !m.noticeErr || !strings.Contains(m.notice, "this conversation has 399 messages") {
		t.Errorf("/delete 500 of 399 messages: notice %q", m.notice)
	}
}

// TestDeletionDuringFirstPage: a page read before a deletion and arriving after it does
// not show the deleted messages again (/delete of one, /clear of all).
func TestDeletionDuringFirstPage(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	for _, text := range []string{"one", "two", "three"} {
		b.addMessage(chat.Message{Contact: "bob", Text: text, SentAt: fixedNow})
	}
	page := m.openContact("bob")() // read now, handed to the screen after the deletions
	_ = b.DeleteMessage(t.Context(), "bob", 3)
	driveEvents(t, m, b)
	drive(t, m, func() tea.Msg { return page }, "")
	for _, it := range m.conv().items {
		if it.m.Text == "three" {
			t.Fatal("the deleted message came back with a page read before its deletion")
		}
	}

	m = newTestMainScreen(t)
	b = m.b.(*memBackend)
	b.addMessage(chat.Message{Contact: "bob", Text: "one", SentAt: fixedNow})
	page = m.openContact("bob")()
	_, _ = b.ClearConversation(t.Context(), "bob")
	driveEvents(t, m, b)
	drive(t, m, func() tea.Msg { return page }, "")
	if n := len(m.conv().items); n != 0 {
		t.Fatalf("cleared while the first page was on its way: %d messages shown", n)
	}
}
