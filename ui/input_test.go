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

// submitted runs the input's submit and returns the text the backend was given.
func submitted(t *testing.T, m *mainScreen) (string, bool) {
	t.Helper()
	m.open = "bob"
	cmd := m.submit()
	if cmd == nil {
		return "", false
	}
	runCmd(cmd)
	b := m.b.(*memBackend)
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs := b.msgs["bob"]
	if len(msgs) == 0 {
		return "", false
	}
	return msgs[len(msgs)-1].Text, true
}

// runCmd runs a command and the batches it returns.
func runCmd(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	if batch, ok := cmd().(tea.BatchMsg); ok {
		for _, c := range batch {
			runCmd(c)
		}
	}
}

// A paste arrives as pasted: tabs, NUL and every other character (the widget shows
// control characters as Control Pictures), leading and trailing white space included —
// but its line breaks, which terminals send as CR (xterm, VTE, tmux) or CRLF, are line
// breaks (a paste of three lines arrived as one, with U+FFFD for each break).
func TestPasteArrivesAsTyped(t *testing.T) {
	for pasted, want := range map[string]string{
		"first\rsecond\rthird\tend": "first\nsecond\nthird\tend",
		"windows\r\nline\r\n":       "windows\nline\n",
		"mixed\r\rgap\n":            "mixed\n\ngap\n",
	} {
		m := newTestMainScreen(t)
		m.Update(tea.PasteMsg{Content: pasted})
		if got, ok := submitted(t, m); !ok || got != want {
			t.Fatalf("pasted %q, sent %q (%v), want %q", pasted, got, ok, want)
		}
	}
	for _, text := range []string{"a\tb", "nul\x00", "del\x7f", " spaced \n",
		"👨\u200d👩\u200d👧\u200d👦 and 👍🏽", "שלום עולם", "\u202eoverride", "?question", "␉ a real picture, no tab"} {
		m := newTestMainScreen(t)
		if _, ok := m.guardPaste(tea.PasteMsg{Content: text}); !ok {
			t.Fatalf("%q refused: %s", text, m.notice)
		}
		m.Update(tea.PasteMsg{Content: text})
		got, ok := submitted(t, m)
		if !ok || got != text {
			t.Fatalf("pasted %q, sent %q (%v)", text, got, ok)
		}
	}
}

// A paste longer than one message can carry is refused with a clear notice and the input
// keeps what it had; a long one within the limit is kept whole, not cut at the widget's
// old limits (16 KiB of runes, 99 lines).
func TestPasteIsNeverCut(t *testing.T) {
	m := newTestMainScreen(t)
	m.Update(tea.PasteMsg{Content: "keep me "})
	m.Update(tea.PasteMsg{Content: strings.Repeat("x", chat.MaxTextBytes)})
	if !strings.Contains(m.notice, "at most") || m.inputText() != "keep me " {
		t.Fatalf("over-long paste: notice %q, input %q", m.notice, m.inputText())
	}
	m = newTestMainScreen(t)
	long := strings.Repeat("line of text that goes on\n", 1500)
	m.Update(tea.PasteMsg{Content: long})
	if got, _ := submitted(t, m); got != long {
		t.Fatalf("a %d-byte paste was sent as %d bytes", len(long), len(got))
	}
}

// Typed text over the limit is refused at send, and stays in the input.
func TestTypedTextOverTheLimitStays(t *testing.T) {
	m := newTestMainScreen(t)
	over := strings.Repeat("y", chat.MaxTextBytes+1)
	m.input.SetValue(over)
	if _, ok := submitted(t, m); ok {
		t.Fatal("sent")
	}
	if !strings.Contains(m.notice, "at most") || m.inputText() != over {
		t.Fatalf("notice %q, input kept %v", m.notice, m.inputText() == over)
	}
}

// A late message (lower Order than messages shown) is inserted in its place.
func TestLateMessageInsertedInPlace(t *testing.T) {
	cv := newConversation("bob")
	for i, o := range []int64{10, 30, 40} {
		cv.appendMsg(chat.Message{ID: int64(i + 1), Order: o, Text: "m"}, time.UTC)
	}
	cv.appendMsg(chat.Message{ID: 4, Order: 20, Text: "late"}, time.UTC)
	cv.appendMsg(chat.Message{ID: 5, Text: "no order: at the bottom"}, time.UTC)
	var got []int64
	for _, it := range cv.items {
		got = append(got, it.m.ID)
	}
	if want := []int64{1, 4, 2, 3, 5}; !equalIDs(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMessageMayStartWithQuestionMark: typing "?" into the empty input types it (the
// question "?" alone, or "?? really"); help stays on f1, and on "?" in the contact list.
func TestMessageMayStartWithQuestionMark(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = "bob"
	for _, k := range []string{"?", "?", " ", "o", "k"} {
		if _, cmd := m.Update(keyMsg(k)); cmd != nil {
			if _, ok := cmd().(pushDialogMsg); ok {
				t.Fatalf("typing %q into the input (holding %q) opened a dialog", k, m.input.Value())
			}
		}
	}
	if got, ok := submitted(t, m); !ok || got != "?? ok" {
		t.Fatalf("typed \"?? ok\", sent %q (%v)", got, ok)
	}
	if _, cmd := m.Update(keyMsg("f1")); cmd == nil {
		t.Error("f1 in the input opened no help")
	} else if _, ok := cmd().(pushDialogMsg); !ok {
		t.Error("f1 in the input opened no help")
	}
}

// TestUnreadDividerCountsWhatItSitsAbove: the "N new" divider goes above the n-th newest
// incoming message and says how many incoming messages sit below it — fewer when fewer
// are loaded — and there is none when nothing incoming is loaded.
func TestUnreadDividerCountsWhatItSitsAbove(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outgoing []bool // the loaded messages, oldest first
		unread   int
		at, want int // index of the marked message and its count; at -1: no divider
	}{
		{"exact", []bool{false, false, true, false}, 2, 1, 2},
		{"one", []bool{false, true, false}, 1, 2, 1},
		{"fewer loaded", []bool{true, false, false}, 5, 1, 2},
		{"only outgoing", []bool{true, true}, 1, -1, 0},
	} {
		cv := newConversation("bob")
		for i, out := range tc.outgoing {
			cv.appendMsg(chat.Message{ID: int64(i + 1), Order: int64(i + 1), Outgoing: out, Text: "m"}, time.UTC)
		}
		cv.markNew(tc.unread)
		at, got := -1, 0
		for i, it := range cv.items {
			if it.newMark > 0 {
				at, got = i, it.newMark
			}
		}
		if at != tc.at || got != tc.want {
			t.Errorf("%s: divider above message %d saying %d new, want above %d saying %d", tc.name, at, got, tc.at, tc.want)
		}
	}
}

// TestEscKeepsTheDraftCtrlUClearsIt: Esc in the input dismisses the notice and keeps
// the draft (as Signal and iamb do), and the draft still follows its conversation;
// while there is one, the status bar names ctrl+u, which clears all of it — every line,
// where the textarea's own ctrl+u cleared only the cursor's line — and the help lists it.
func TestEscKeepsTheDraftCtrlUClearsIt(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	carol := chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)}
	b.addContact(carol)
	m.contacts = append(m.contacts, carol)
	drive(t, m, m.openContact("bob"), "")
	bar := func() string { return ansi.Strip(m.statusView(m.c.width)) }
	if strings.Contains(bar(), "clear draft") || !strings.Contains(bar(), "ctrl+n add contact") {
		t.Fatalf("empty input: status bar %q, want ctrl+n and no ctrl+u", bar())
	}

	for _, k := range []string{"h", "i", "alt+enter", "t", "w", "o"} {
		m.handleKey(keyMsg(k))
	}
	const draft = "hi\ntwo"
	if got := m.input.Value(); got != draft {
		t.Fatalf("typed %q, input holds %q", draft, got)
	}
	if !strings.Contains(bar(), "ctrl+u clear draft") {
		t.Errorf("with a draft, the status bar %q does not say how to clear it", bar())
	}
	// At 60 and 80 columns too: the hint outranks the fingerprint and "f1 help" (it
	// showed only from about 100 columns).
	for _, w := range []int{60, 80} {
		if got := ansi.Strip(m.statusView(w)); !strings.Contains(got, "ctrl+u clear draft") || ansi.StringWidth(got) != w {
			t.Errorf("with a draft at %d columns, the status bar %q does not say how to clear it", w, got)
		}
	}
	m.setNotice("a notice", false)
	m.handleKey(keyMsg("esc"))
	if m.notice != "" || m.input.Value() != draft {
		t.Fatalf("after esc: notice %q, input %q; want the notice gone and the draft %q kept", m.notice, m.input.Value(), draft)
	}
	drive(t, m, m.openContact("carol"), "")
	drive(t, m, m.openContact("bob"), "")
	if got := m.input.Value(); got != draft {
		t.Fatalf("back in bob's conversation the input holds %q, want the draft %q", got, draft)
	}

	m.handleKey(keyMsg("ctrl+u"))
	if got := m.input.Value(); got != "" {
		t.Fatalf("after ctrl+u the input holds %q, want it empty", got)
	}
	if strings.Contains(bar(), "clear draft") {
		t.Errorf("no draft left, the status bar %q still names ctrl+u", bar())
	}
	if help := ansi.Strip(newHelpDialog(m.c).View()); !strings.Contains(help, "ctrl+u") || !strings.Contains(help, "clear draft") {
		t.Errorf("the help does not list ctrl+u:\n%s", help)
	}
}

// TestRestoredDraftShowsItsCursorLine: a draft of more lines than the input shows,
// brought back by opening its conversation again, shows the line its cursor is on (the
// last): the widget kept its view at the top, so the cursor sat on a hidden line and
// typing went where it could not be seen (a tester's finding).
func TestRestoredDraftShowsItsCursorLine(t *testing.T) {
	m := newTestMainScreen(t)
	m.contacts = append(m.contacts, chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	drive(t, m, m.openContact("bob"), "")
	for i := 1; i <= 6; i++ {
		if i > 1 {
			m.Update(keyMsg("alt+enter"))
		}
		for _, r := range fmt.Sprintf("line %d", i) {
			m.Update(keyMsg(string(r)))
		}
	}
	shown := func() string { return ansi.Strip(m.input.View()) }
	if v := shown(); !strings.Contains(v, "line 6") {
		t.Fatalf("while typing, the input shows %q, not the line being typed", v)
	}
	drive(t, m, m.openContact("carol"), "")
	drive(t, m, m.openContact("bob"), "")
	if got := m.input.Value(); !strings.HasSuffix(got, "line 6") || strings.Count(got, "\n") != 5 {
		t.Fatalf("bob's draft came back as %q", got)
	}
	if v := shown(); !strings.Contains(v, "line 6") || strings.Contains(v, "line 1") {
		t.Fatalf("the restored draft shows %q, want the cursor's line (line 6) in view", v)
	}
	m.Update(keyMsg("!"))
	if v := shown(); !strings.Contains(v, "line 6!") {
		t.Fatalf("typed on the restored draft, the input shows %q, not what was typed", v)
	}
}

// TestInputSaysWhatIsAboveItsView: a draft longer than the input's 3 rows scrolled
// with no sign that earlier lines exist (a tester): the input's top border says how
// many rows are above ("↑ 3 more lines"), and nothing when the whole draft shows.
func TestInputSaysWhatIsAboveItsView(t *testing.T) {
	m := newTestMainScreen(t)
	m.layout()
	drive(t, m, m.openContact("bob"), "")
	m.setInput("one\ntwo\nthree")
	if v := ansi.Strip(m.View()); strings.Contains(v, "more line") {
		t.Fatalf("a 3-line draft: a marker although all of it shows:\n%s", v)
	}
	m.setInput("one\ntwo\nthree\nfour\nfive\nsix")
	_, cmd := m.Update(keyMsg("end")) // the cursor on the last line, the view at the bottom
	drive(t, m, cmd, "")
	v := ansi.Strip(m.View())
	if !strings.Contains(v, "↑ 3 more lines") {
		t.Fatalf("a 6-line draft with the last 3 in view: no \"↑ 3 more lines\":\n%s", v)
	}
	checkFrame(t, m.View(), m.c.width, m.c.height)
}
