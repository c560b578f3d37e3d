package ui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// TestLongNicknameIsEllipsized: a nickname as long as storage allows (64 bytes; here
// 21 two-cell characters, 42 cells) ends in "…" in the conversation header, in the
// contact list and in the sender column, every frame stays the terminal's size, and on
// a narrow pane the sender column takes at most a quarter of it, so the messages keep
// their room (a tester saw the header cut without "…" and the message column squeezed).
func TestLongNicknameIsEllipsized(t *testing.T) {
	m := newTestMainScreen(t)
	nick := strings.Repeat("名", 21)
	if len(nick) > 64 {
		t.Fatalf("the nickname is %d bytes, more than storage allows", len(nick))
	}
	b := m.b.(*memBackend)
	b.contacts["bob"].Nickname = nick
	m.contacts[0].Nickname = nick
	b.addMessage(chat.Message{Contact: "bob", Text: "a message that is long enough to wrap on a narrow pane", SentAt: fixedNow})
	m.c.width, m.c.height = 40, 20
	m.Update(tea.WindowSizeMsg{Width: 40, Height: 20})
	drive(t, m, m.openContact("bob"), "")

	v := m.View()
	checkFrame(t, v, 40, 20)
	lines := strings.Split(ansi.Strip(v), "\n")
	if h := strings.TrimRight(lines[0], " "); !strings.HasSuffix(h, "…") || !strings.HasPrefix(h, " 名") {
		t.Errorf("header %q: the long nickname is not cut with \"…\"", h)
	}
	var msgLine string
	for _, l := range lines {
		if strings.Contains(l, "09:30") {
			msgLine = l
		}
	}
	if msgLine == "" {
		t.Fatalf("no message line in\n%s", strings.Join(lines, "\n"))
	}
	// " 09:30 SENDER… text": the sender column is at most a quarter of the 38 cells.
	sender := strings.Fields(msgLine)[1]
	if !strings.HasSuffix(sender, "…") {
		t.Errorf("message line %q: the sender is not cut with \"…\"", msgLine)
	}
	if sw := ansi.StringWidth(sender); sw > 38/4 {
		t.Errorf("message line %q: the sender column is %d cells on a 40-column pane, want at most %d", msgLine, sw, 38/4)
	}
	if !strings.Contains(msgLine, "a message that is") {
		t.Errorf("message line %q: the text has too little room beside the sender", msgLine)
	}

	_, cmd := m.Update(keyMsg("tab")) // the list, on a narrow terminal
	drive(t, m, cmd, "")
	v = m.View()
	checkFrame(t, v, 40, 20)
	found := false
	for _, l := range strings.Split(ansi.Strip(v), "\n") {
		if strings.Contains(l, "名") {
			found = true
			if !strings.HasSuffix(strings.TrimRight(l, " "), "…") {
				t.Errorf("list row %q: the long nickname is not cut with \"…\"", l)
			}
		}
	}
	if !found {
		t.Error("the nickname is not in the list")
	}
}

// TestNarrowRequestHeaderKeepsTheUnreadCount: at 50 columns the header of a message
// request keeps the unread count of the other conversations (it was pushed off by the
// request's label), with a label that still names all three commands.
func TestNarrowRequestHeaderKeepsTheUnreadCount(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width, m.c.height = 50, 20
	m.Update(tea.WindowSizeMsg{Width: 50, Height: 20})
	m.contacts = []chat.Contact{{Name: "bob", Request: true}, {Name: "carol", Unread: 3}}
	drive(t, m, m.openContact("bob"), "")
	v := m.View()
	checkFrame(t, v, 50, 20)
	header := strings.Split(ansi.Strip(v), "\n")[0]
	if !strings.Contains(header, " 3  tab") {
		t.Errorf("header %q: carol's 3 unread are not counted", header)
	}
	for _, cmd := range []string{"/accept-request", "/block", "/remove"} {
		if !strings.Contains(header, cmd) {
			t.Errorf("header %q does not name %s", header, cmd)
		}
	}

	// Scrolled back, "↓ newer below" takes its room too: the count stays whole, the
	// label goes short, and a long nickname gives way to them.
	m.contacts[0].Nickname = strings.Repeat("n", 40)
	for i := range 40 {
		m.conv().appendMsg(chat.Message{ID: int64(1000 + i), Contact: "bob", Text: "hello"}, time.UTC)
	}
	_, cmd := m.Update(keyMsg("pgup"))
	drive(t, m, cmd, "")
	v = m.View()
	checkFrame(t, v, 50, 20)
	header = strings.Split(ansi.Strip(v), "\n")[0]
	if !strings.Contains(header, " 3  tab") || !strings.HasSuffix(strings.TrimRight(header, " "), "↓ newer below") || !strings.Contains(header, "n…  ✉") {
		t.Errorf("scrolled back, header %q: want the nickname cut, the request's mark, carol's 3 unread and \"↓ newer below\"", header)
	}
}
