package ui

import (
	"fmt"
	"image/color"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// checkFrame asserts a frame is exactly w×h cells: resizing never garbles the layout.
func checkFrame(t *testing.T, frame string, w, h int) {
	t.Helper()
	lines := strings.Split(frame, "\n")
	if len(lines) != h {
		t.Fatalf("frame has %d lines, want %d:\n%s", len(lines), h, frame)
	}
	for i, l := range lines {
		if lw := ansi.StringWidth(l); lw != w {
			t.Fatalf("line %d is %d cells wide, want %d: %q", i, lw, w, l)
		}
	}
}

func TestResizeTo40ColumnsAndBack(t *testing.T) {
	b := goldenBackend()
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 100, 30)
	wide := fr.WaitText(t, "Contacts", "this one the relay refused")
	checkFrame(t, wide, 100, 30)

	tm.Send(tea.WindowSizeMsg{Width: 40, Height: 20})
	narrow := fr.WaitFor(t, "a 40-column frame", func(s string) bool {
		return len(strings.Split(s, "\n")) == 20 && ansi.StringWidth(strings.Split(s, "\n")[0]) == 40
	})
	checkFrame(t, narrow, 40, 20)
	// A notice stays readable at 40 columns: the state compacts to make room.
	tm.Type("/nonsense")
	press(tm, "enter")
	checkFrame(t, fr.WaitText(t, "◌ bob ✔", "unknown command /nons"), 40, 20)
	press(tm, "f1")
	checkFrame(t, fr.WaitText(t, "Help"), 40, 20)
	press(tm, "esc")
	narrow = fr.WaitFor(t, "help closed", func(s string) bool { return !strings.Contains(s, "Help") })
	if strings.Contains(narrow, "Contacts") {
		t.Fatalf("contact list not collapsed at 40 columns:\n%s", narrow)
	}
	if !strings.Contains(strings.Split(narrow, "\n")[0], " 2  tab") {
		t.Fatalf("carol's 2 unread not announced in the narrow header:\n%s", narrow)
	}
	if !strings.Contains(narrow, "refused") {
		t.Fatalf("conversation missing at 40 columns:\n%s", narrow)
	}

	// Tab shows the contact list in place of the conversation, enter opens one.
	press(tm, "tab")
	list := fr.WaitText(t, "Contacts", "carol")
	checkFrame(t, list, 40, 20)
	press(tm, "up") // bob is open; carol, with unread messages, sorts above him
	press(tm, "enter")
	carol := fr.WaitText(t, "the usual place", "── 2 new ─") // carol had 2 unread
	checkFrame(t, carol, 40, 20)

	tm.Send(tea.WindowSizeMsg{Width: 100, Height: 30})
	// A click on a contact opens the conversation (rows 1-2 are the first contact).
	// carol's messages read, she sorts below bob again (his are newer).
	tm.Send(tea.MouseClickMsg{X: 3, Y: 1, Button: tea.MouseLeft}) // rows 1-2: bob
	fr.WaitText(t, "Did the new relay come up?")
	tm.Send(tea.MouseClickMsg{X: 3, Y: 3, Button: tea.MouseLeft}) // rows 3-4: carol
	back := fr.WaitFor(t, "a 100-column frame with carol open", func(s string) bool {
		return ansi.StringWidth(strings.Split(s, "\n")[0]) == 100 && strings.Contains(s, "the usual place")
	})
	checkFrame(t, back, 100, 30)
	if !strings.Contains(back, "Contacts") || !strings.Contains(back, "the usual place") {
		t.Fatalf("layout not restored:\n%s", back)
	}
	for _, w := range []int{20, 39, 59, 60, 61, 80, 200} {
		tm.Send(tea.WindowSizeMsg{Width: w, Height: 12})
		f := fr.WaitFor(t, fmt.Sprintf("%d columns", w), func(s string) bool {
			return ansi.StringWidth(strings.Split(s, "\n")[0]) == w
		})
		checkFrame(t, f, w, 12)
	}
}

func TestScrollbackPagesAndStaysAnchored(t *testing.T) {
	be := newMemBackend("alice", func() time.Time { return fixedNow })
	be.addContact(chat.Contact{Name: "bob"})
	for i := range 500 {
		be.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("m%03d", i), SentAt: fixedNow.Add(time.Duration(i-500) * time.Minute)})
	}
	tm, fr := startUI(t, Options{Backend: be, OpenContact: "bob"}, 80, 24)
	fr.WaitText(t, "m499")
	// Only the newest page (and perhaps one more to fill the view) is loaded at first.
	// Wheel up until m340 shows: pages of 50 load on the way. One notch at a time, each
	// after the previous frame, so a notch never races a page that is still loading.
	for i := 0; !strings.Contains(fr.Last(), "m340"); i++ {
		if i == 400 {
			t.Fatalf("m340 never scrolled into view; last frame:\n%s", fr.Last())
		}
		tm.Send(tea.MouseWheelMsg{Button: tea.MouseWheelUp})
		fr.Next(t)
	}
	press(tm, "ctrl+end")
	fr.WaitText(t, "m499")
	// A new message while scrolled to the bottom follows; the view stays at the bottom.
	m := be.addMessage(chat.Message{Contact: "bob", Text: "fresh", SentAt: fixedNow})
	be.events <- chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &m}
	fr.WaitText(t, "fresh")
}

func TestConversationUnit(t *testing.T) {
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 60, height: 20,
		now: func() time.Time { return fixedNow }, loc: time.UTC}
	cv := newConversation("bob")
	r := &convRenderer{c: c, me: "alice", contact: "bob", width: 50, senderW: 5}
	var page []chat.Message
	for i := 99; i >= 50; i-- {
		page = append(page, chat.Message{ID: int64(i + 1), Text: fmt.Sprintf("line %d", i), SentAt: fixedNow.Add(time.Duration(i) * time.Hour)})
	}
	cv.prepend(page, time.UTC)
	lines, top := cv.view(r, 10)
	if len(lines) != 10 || top {
		t.Fatalf("view: %d lines, top=%v", len(lines), top)
	}
	if !strings.Contains(ansi.Strip(lines[9]), "line 99") {
		t.Fatalf("bottom line %q", ansi.Strip(lines[9]))
	}
	cv.scrollUp(r, 1_000_000, 10)
	lines, top = cv.view(r, 10)
	if !top || !strings.Contains(ansi.Strip(strings.Join(lines, "\n")), "line 50") {
		t.Fatalf("top not reached: %v\n%s", top, ansi.Strip(strings.Join(lines, "\n")))
	}
	// An older page keeps the bottom of the view where it was.
	before := ansi.Strip(lines[9])
	var older []chat.Message
	for i := 49; i >= 0; i-- {
		older = append(older, chat.Message{ID: int64(i + 1), Text: fmt.Sprintf("line %d", i), SentAt: fixedNow.Add(time.Duration(i) * time.Hour)})
	}
	cv.prepend(older, time.UTC)
	lines, _ = cv.view(r, 10)
	if after := ansi.Strip(lines[9]); after != before {
		t.Fatalf("view moved after prepend:\n%s\n---\n%s", before, after)
	}
	// Day separators between days, and a control-character message is defused.
	if !cv.items[0].withDay || cv.items[1].withDay {
		t.Fatalf("day separators: %v %v", cv.items[0].withDay, cv.items[1].withDay)
	}
	// A delivery update that overtakes its page is applied when the page arrives.
	late := newConversation("bob")
	late.loading = true
	late.update(chat.Message{ID: 7, Outgoing: true, Text: "x", State: chat.Delivered})
	late.prepend([]chat.Message{{ID: 7, Outgoing: true, Text: "x", State: chat.Sent}}, time.UTC)
	if late.byID[7].m.State != chat.Delivered {
		t.Fatalf("late delivery update lost: %v", late.byID[7].m.State)
	}

	cv.appendMsg(chat.Message{ID: 1000, Text: "evil\x1b[2Jclear\x07", SentAt: fixedNow.Add(200 * time.Hour)}, time.UTC)
	got := strings.Join(r.lines(cv.items[len(cv.items)-1]), "")
	if strings.Contains(got, "\x1b[2J") || strings.Contains(got, "\x07") {
		t.Fatalf("escape sequence passed through: %q", got)
	}
}

func TestStylesFollowTerminalBackground(t *testing.T) {
	app := New(t.Context(), Options{Backend: goldenBackend(), OpenContact: "bob", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	app.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	dark := app.render()
	app.Update(tea.BackgroundColorMsg{Color: color.White})
	if app.c.styles.IsDark {
		t.Fatal("a white background kept the dark styles")
	}
	light := app.render()
	if dark == light {
		t.Fatal("light and dark frames are identical")
	}
	if ansi.Strip(dark) != ansi.Strip(light) {
		t.Fatal("the background changed the text, not only the colours")
	}
}

func TestUndecryptableIsShownNotDropped(t *testing.T) {
	be := newMemBackend("alice", func() time.Time { return fixedNow })
	be.addContact(chat.Contact{Name: "bob"})
	be.addMessage(chat.Message{Contact: "bob", Text: "before", SentAt: fixedNow.Add(-time.Minute)})
	_, fr := startUI(t, Options{Backend: be, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "before")
	m := be.addMessage(chat.Message{Contact: "bob", State: chat.UndecryptableState, Reason: "bad MAC", SentAt: fixedNow})
	be.events <- chat.Event{Kind: chat.Undecryptable, Contact: "bob", Message: &m}
	fr.WaitText(t, "could not be decrypted (bad MAC)")
}

func TestAddContactDialog(t *testing.T) {
	be := newMemBackend("alice", func() time.Time { return fixedNow })
	tm, fr := startUI(t, Options{Backend: be}, 100, 30)
	fr.WaitText(t, "No conversation yet")
	press(tm, "ctrl+n")
	fr.WaitText(t, "Add a contact", "name:")
	tm.Type("nobody")
	press(tm, "enter")
	fr.WaitText(t, "no such user on the relay")
	for range 6 {
		press(tm, "backspace")
	}
	tm.Type("dave")
	press(tm, "enter")
	frame := fr.WaitText(t, "added dave", "No messages yet")
	if strings.Contains(frame, "Add a contact") {
		t.Fatalf("dialog still open:\n%s", frame)
	}
	// esc cancels without adding.
	press(tm, "ctrl+n")
	fr.WaitText(t, "Add a contact")
	press(tm, "esc")
	fr.WaitFor(t, "the dialog gone", func(s string) bool { return !strings.Contains(s, "Add a contact") })
}

// TestConversationLinesAt80Columns: at 80×24 the conversation pane is 54 cells wide; a
// message request's header keeps all three ways out (the long form lost "/remove" at
// the edge) and an empty conversation's line wraps instead of ending in "encrypt".
func TestConversationLinesAt80Columns(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Fingerprint: "3f2a 9c1d"})
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64), Request: true, Fingerprint: "77e0 1b4f"})
	b.addMessage(chat.Message{Contact: "carol", Text: "hello, we met at the conference", SentAt: fixedNow})
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "carol", Now: func() time.Time { return fixedNow }}, 80, 24)
	frame := fr.WaitText(t, "we met at the conference")
	checkFrame(t, frame, 80, 24)
	if header := strings.Split(frame, "\n")[0]; !strings.Contains(header, "/accept-request") || !strings.Contains(header, "/block") || !strings.Contains(header, "/remove") {
		t.Fatalf("the request's header at 80 columns does not name every way out: %q", header)
	}
	tm.Type("/add bob") // opens bob's empty conversation
	press(tm, "enter")
	frame = fr.WaitText(t, "No messages yet")
	checkFrame(t, frame, 80, 24)
	if !strings.Contains(frame, "encrypted.") {
		t.Fatalf("the empty conversation's line is cut at 80 columns:\n%s", frame)
	}
}

// TestCtrlHomeReachesTheOldest: ctrl+home ("oldest") shows the conversation's first
// message, however many pages of history lie before the loaded one; it stopped at the
// oldest message loaded, 50 back, and took a press per page.
func TestCtrlHomeReachesTheOldest(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Fingerprint: "3f2a 9c1d"})
	for i := 1; i <= 3*historyPage+7; i++ {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("history message %03d", i), SentAt: fixedNow.Add(time.Duration(i-200) * time.Minute)})
	}
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 80, 24)
	fr.WaitText(t, fmt.Sprintf("history message %03d", 3*historyPage+7))
	press(tm, "ctrl+home")
	fr.WaitText(t, "history message 001", "beginning of the conversation")
	press(tm, "ctrl+end")
	fr.WaitFor(t, "the newest message again", func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("history message %03d", 3*historyPage+7)) && !strings.Contains(s, "history message 001")
	})
}

// TestBeginningOfTheConversationAtTheTop: scrolled to the top of a history longer than
// the pane and fully loaded, the first row above the oldest message says "beginning of
// the conversation" — it was laid over a blank row above the messages, which a long
// history never has, so it showed only in short conversations.
func TestBeginningOfTheConversationAtTheTop(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.height = 20
	b := m.b.(*memBackend)
	for i := range 30 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	drive(t, m, m.openContact("bob"), "")
	if cv := m.conv(); !cv.exhausted {
		t.Fatal("30 messages: the history is not fully loaded")
	}
	row := func(i int) string {
		v := m.View()
		checkFrame(t, v, m.c.width, m.c.height)
		return strings.Split(ansi.Strip(v), "\n")[i]
	}
	if r := row(1); strings.Contains(r, "beginning of the conversation") {
		t.Fatalf("at the newest message, row 1 is %q", r)
	}
	_, cmd := m.Update(keyMsg("ctrl+home"))
	drive(t, m, cmd, "")
	if r := row(1); !strings.Contains(r, "│ beginning of the conversation") {
		t.Fatalf("at the top of the history, the first row under the header is %q", r)
	}
	if r := row(3); !strings.Contains(r, "old 0") {
		t.Fatalf("at the top of the history, the oldest message is not right below the day: %q", r)
	}
}

// TestLongWordWrapsInPlace: a word wider than the message column (a URL) starts where
// it is and breaks at the column's edge, as in iamb or gomuks; it was moved to a line
// of its own, which left "see" alone on the first line. Every cell of it is shown.
func TestLongWordWrapsInPlace(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width = 60
	url := "https://example.com/" + strings.Repeat("abcdefghij", 8)
	b := m.b.(*memBackend)
	b.addMessage(chat.Message{Contact: "bob", Text: "see " + url + " today", SentAt: fixedNow})
	drive(t, m, m.openContact("bob"), "")
	r := m.renderer()
	var body []string // the message column of the message's lines
	for _, l := range r.lines(m.conv().items[0]) {
		l = ansi.Strip(l)
		if w := ansi.StringWidth(l); w != r.width {
			t.Fatalf("a line %d wide, want %d: %q", w, r.width, l)
		}
		if strings.HasPrefix(l, "09:30 ") || len(body) > 0 {
			body = append(body, strings.TrimSpace(ansi.Cut(l, 5+1+r.senderW+1, r.width)))
		}
	}
	if len(body) == 0 || !strings.HasPrefix(body[0], "see https://") {
		t.Fatalf("the URL did not start beside \"see\": %q", body)
	}
	if got := strings.Join(body, ""); got != "see "+url+" today" {
		t.Fatalf("the message is not whole: %q", got)
	}
}
