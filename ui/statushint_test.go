package ui

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// TestStatusBarHelpHintMatchesKeys: the status bar names the help keys that work where
// the focus is, and each key it names opens the help there. It said "?/f1 help" in the
// input, where "?" is text.
func TestStatusBarHelpHintMatchesKeys(t *testing.T) {
	for _, inList := range []bool{false, true} {
		m := newTestMainScreen(t)
		if inList {
			m.focus = focusContacts
			m.input.Blur()
		}
		hint := m.c.keys.HelpHint(inList)
		bar := ansi.Strip(m.statusView(m.c.width))
		if want := hint.Help().Key + " " + hint.Help().Desc; !strings.Contains(bar, want) {
			t.Errorf("inList=%v: status bar %q does not show %q", inList, bar, want)
		}
		for _, k := range hint.Keys() {
			_, cmd := m.handleKey(keyMsg(k))
			if cmd == nil {
				t.Errorf("inList=%v: the status bar names %q for help, but it does nothing", inList, k)
				continue
			}
			if _, ok := cmd().(pushDialogMsg); cmd == nil || !ok {
				t.Errorf("inList=%v: the status bar names %q for help, but it does not open the help", inList, k)
			}
		}
	}
	// In the input "?" is text, and the hint there does not name it.
	m := newTestMainScreen(t)
	if bar := ansi.Strip(m.statusView(m.c.width)); strings.Contains(bar, "?") {
		t.Errorf("status bar in the input names \"?\": %q", bar)
	}
	m.handleKey(keyMsg("?"))
	if m.input.Value() != "?" {
		t.Errorf("\"?\" in the input = %q, want it typed", m.input.Value())
	}
}

// TestStatusBarAt80Columns: with a contact's whole fingerprint on the line, the help
// hint keeps whole keys ("f1 help", not "f1 help • ctrl…"), and a notice that does not
// fit on the line beside the compact state wraps there, not cut ("…unblock carol to
// write to th…").
func TestStatusBarAt80Columns(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width = 80
	m.conn.Status = chat.Online
	m.contacts = []chat.Contact{{Name: "bob", CardID: strings.Repeat("b", 64), Verified: true, Fingerprint: "e16e d008 48b8 4721 fb04"}}
	m.open = "bob"
	bar := ansi.Strip(m.statusView(80))
	if !strings.Contains(bar, "relay connected") || !strings.Contains(bar, "f1 help") || strings.Contains(bar, "…") {
		t.Errorf("status bar at 80 columns: %q, want the state whole and \"f1 help\" uncut", bar)
	}
	const notice = "not sent: contact is blocked: unblock carol to write to them"
	m.contacts[0].Verified = false
	m.setNotice(notice, true)
	// At 79, 80 and 81 columns alike: beside the compact state, whole (wrapped where
	// it does not fit on the line). At 76 to 80 columns it went on one line beside the
	// connection's mark alone, and the contact's state left the bar that narrower and
	// wider terminals kept (a tester).
	m.c.height = 24
	for _, w := range []int{79, 80, 81} {
		rows := m.statusLines(w)
		bar := ansi.Strip(strings.Join(rows, "\n"))
		if !strings.HasPrefix(bar, " ● bob unverified │ not sent:") || strings.Join(strings.Fields(bar), " ") != "● bob unverified │ "+notice {
			t.Errorf("status bar at %d columns: %q, want the compact state, the separator and the whole notice", w, bar)
		}
	}
	for _, w := range []int{40, 60, 80, 120} {
		for i, l := range m.statusLines(w) { // at 40 the notice wraps (TestLongNoticeWraps)
			if got := ansi.StringWidth(l); got != w {
				t.Errorf("status bar at %d columns: line %d is %d wide", w, i, got)
			}
		}
	}
}

// TestStatusBarReconnectingAt80Columns: when the whole state does not fit, the
// fingerprint goes before the words do — "◌ 12s alice unverified" said neither what
// waits 12 s nor how to verify.
func TestStatusBarReconnectingAt80Columns(t *testing.T) {
	m := newTestMainScreen(t)
	m.conn.Status = chat.Reconnecting
	m.retryDeadline = fixedNow.Add(12 * time.Second)
	m.contacts = []chat.Contact{{Name: "alice", CardID: strings.Repeat("a", 64), Fingerprint: "a97f ba4f 0534 611e f13e"}}
	m.open = "alice"
	bar := ansi.Strip(m.statusView(80))
	if !strings.Contains(bar, "reconnecting in 12 s") || !strings.Contains(bar, "alice not verified (/verify)") {
		t.Errorf("status bar at 80 columns: %q, want the connection's state and the trust in words", bar)
	}
	if bar := ansi.Strip(m.statusView(40)); !strings.Contains(bar, "12s") {
		t.Errorf("status bar at 40 columns: %q, want the compact state", bar)
	}
}

// TestOfflineSaysWhy: a connection that stopped for good says why above the
// conversation — here the identity replaced by a recovery on another device — where
// the status bar said only "○ offline"; the frame keeps its size.
func TestOfflineSaysWhy(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width, m.c.height = 80, 24
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.handleEvent(chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Offline,
		Err: errors.New("chat: this profile's identity was replaced on the relay by a newer card (a reset or a recovery on another device)")}})
	v := m.View()
	checkFrame(t, v, 80, 24)
	flat := strings.Join(strings.Fields(ansi.Strip(v)), " ")
	if !strings.Contains(flat, "offline: this profile's identity was replaced on the relay") {
		t.Fatalf("offline for good, the screen does not say why:\n%s", ansi.Strip(v))
	}
	m.handleEvent(chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Online}})
	if v := ansi.Strip(m.View()); strings.Contains(v, "identity was replaced") {
		t.Fatalf("online again, the reason stays:\n%s", v)
	}
}

// TestLongNoticeWraps: a notice longer than a narrow status line wraps onto up to
// maxStatusRows under the compact state, whole, instead of being cut with "…"; the
// conversation pane gives up those rows while it shows and gets them back when it
// goes. One longer than all the rows ends with "…", and a terminal too low for the
// extra rows keeps the one cut line. Every frame stays exactly the terminal's size.
func TestLongNoticeWraps(t *testing.T) {
	m, status := narrowStatusScreen(t)
	body := m.bodyHeight()
	flat := func(lines []string) string { return strings.Join(strings.Fields(strings.Join(lines, " ")), " ") }

	// Beside the compact state when it fits there whole, else beside the
	// connection's mark.
	const medium = "unknown command /nonsense — /help lists them"
	const long = "kept the key you trusted for bob; the rejected key's messages stay held (/accept to take it after all)"
	var rows []string
	for _, c := range []struct{ notice, state string }{{medium, "● bob unverified │ "}, {long, "● "}} {
		m.setNotice(c.notice, true)
		rows = status()
		if len(rows) < 2 || len(rows) > maxStatusRows {
			t.Fatalf("a %d-character notice at 40 columns takes %d rows, want 2..%d: %q", len(c.notice), len(rows), maxStatusRows, rows)
		}
		if got := flat(rows); got != c.state+c.notice {
			t.Fatalf("status area %q, want %q", got, c.state+c.notice)
		}
	}
	if got := m.bodyHeight(); got != body-(len(rows)-1) {
		t.Fatalf("with a %d-row notice the panes are %d rows, want %d", len(rows), got, body-(len(rows)-1))
	}

	// Longer than every row: the last says it goes on.
	huge := strings.Repeat("a long notice that goes on ", 12)
	m.setNotice(huge, true)
	rows = status()
	if len(rows) != maxStatusRows || !strings.HasSuffix(strings.TrimSpace(rows[len(rows)-1]), "…") {
		t.Fatalf("a %d-character notice: %q, want %d rows, the last ending in \"…\"", len(huge), rows, maxStatusRows)
	}

	// It expires: one row again, and the panes have their rows back.
	m.Update(noticeExpiredMsg{m.noticeSeq})
	if rows = status(); len(rows) != 1 || m.bodyHeight() != body {
		t.Fatalf("after the notice expired: %d status rows, panes %d rows (want 1 and %d)", len(rows), m.bodyHeight(), body)
	}

	// Too low for extra rows (8 rows: the panes would keep fewer than minBodyRows):
	// the one line, cut.
	m.c.height = 8
	m.Update(tea.WindowSizeMsg{Width: 40, Height: 8})
	m.setNotice(long, false)
	if rows = status(); len(rows) != 1 || !strings.HasSuffix(strings.TrimSpace(rows[0]), "…") {
		t.Fatalf("at 40×8: %q, want one line ending in \"…\"", rows)
	}
}

// TestLongWordNoticeKeepsTheMark: a notice with one long unbroken word (a path) at 40
// columns starts the word on its first row — it left that row almost empty and so
// needed a row more than the status area has — and stays whole beside the
// connection's mark; one too long for every row is cut with "…" (in its middle) but
// keeps the mark (it was dropped to give the notice three more cells).
func TestLongWordNoticeKeepsTheMark(t *testing.T) {
	m, status := narrowStatusScreen(t)
	word := "/home/alice/" + strings.Repeat("y", 80)
	m.setNotice("no file: "+word, true)
	rows := status()
	if len(rows) > maxStatusRows || !strings.HasPrefix(rows[0], " ●  no file: /home") {
		t.Fatalf("status %q: want the word begun on the first row, beside the mark", rows)
	}
	if got := strings.Join(strings.Fields(strings.Join(rows, " ")), ""); got != "●nofile:"+word {
		t.Fatalf("status %q: the notice is not whole", rows)
	}

	m.setNotice("no file: /"+strings.Repeat("z", 200), true)
	rows = status()
	// (The "…" in the word's middle, its end kept: TestLongNoticeKeepsItsEnd.)
	if len(rows) != maxStatusRows || !strings.HasPrefix(rows[0], " ●  no file: /zz") || !strings.Contains(strings.Join(rows, ""), "…") ||
		!strings.HasSuffix(strings.TrimSpace(rows[len(rows)-1]), "zz") {
		t.Fatalf("status %q: want %d rows beside the mark, cut with \"…\", the word's end kept", rows, maxStatusRows)
	}
}

// TestNoticeIsApartFromTheState: at 80 columns the status bar read "✔ verified bob is
// verified" (a tester): a notice that ends up close to the state has the bar's
// separator before it, at every width.
func TestNoticeIsApartFromTheState(t *testing.T) {
	m := newTestMainScreen(t)
	m.contacts[0].Verified, m.contacts[0].Fingerprint = true, "3f2a 9c1d 5e07 b1a4 02c8"
	m.open = "bob"
	m.conn.Status = chat.Online
	m.setNotice("bob is verified", false)
	close := regexp.MustCompile(`(✔|verified) {1,4}bob is verified`)
	for w := 30; w <= 140; w++ {
		for _, l := range m.statusLines(w) {
			if l = ansi.Strip(l); close.MatchString(l) {
				t.Errorf("at %d columns the notice runs into the state: %q", w, l)
			}
		}
	}
}

// narrowStatusScreen is a 40×20 main screen, online, in bob's conversation, and a
// reader of its status rows that checks each frame is the terminal's size.
func narrowStatusScreen(t *testing.T) (*mainScreen, func() []string) {
	t.Helper()
	m := newTestMainScreen(t)
	m.Update(tea.WindowSizeMsg{Width: 40, Height: 20})
	m.c.width, m.c.height = 40, 20
	m.conn.Status = chat.Online
	drive(t, m, m.openContact("bob"), "")
	status := func() []string {
		t.Helper()
		v := m.View()
		checkFrame(t, v, 40, m.c.height)
		lines := strings.Split(ansi.Strip(v), "\n")
		return lines[len(lines)-m.statusRows():]
	}
	return m, status
}

// TestReconnectCountdownKeepsTheLayout: the status line's layout does not change as the
// reconnect countdown goes from two digits to one: at 79 columns the fingerprint went
// while it had two and came back below 10 s (a tester saw it flicker).
func TestReconnectCountdownKeepsTheLayout(t *testing.T) {
	m := newTestMainScreen(t)
	m.contacts[0].Fingerprint = "3f2a 9c1d 77e0 1b4f"
	drive(t, m, m.openContact("bob"), "")
	m.handleEvent(chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Reconnecting, RetryIn: 15 * time.Second}})
	at := func(w int, left time.Duration) string {
		m.c.width = w
		m.c.now = func() time.Time { return m.retryDeadline.Add(-left) }
		return ansi.Strip(m.statusView(w))
	}
	for w := 40; w <= 120; w++ {
		two, one := at(w, 12*time.Second), at(w, 5*time.Second)
		if strings.Contains(two, "fp ") != strings.Contains(one, "fp ") ||
			strings.Index(two, "bob") != strings.Index(one, "bob") {
			t.Errorf("at %d columns the layout changed with the countdown:\n12 s: %q\n 5 s: %q", w, two, one)
		}
	}
}

// TestLongNoticeKeepsItsEnd: a notice too long for the status rows at 60 columns loses
// its middle, not its end: the file's name at the end of a long path stays (it was
// cut after three rows with "…").
func TestLongNoticeKeepsItsEnd(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width, m.c.height = 60, 24
	drive(t, m, m.openContact("bob"), "")
	path := "/home/alice/" + strings.Repeat("projects/archive/2026/", 8) + "quarterly-report.pdf"
	m.setNotice("could not send "+path+": the relay refused it (too large); try a smaller file", true)
	lines := m.statusLines(60)
	text := ansi.Strip(strings.Join(lines, "\n"))
	if len(lines) > maxStatusRows {
		t.Fatalf("%d status rows, want at most %d:\n%s", len(lines), maxStatusRows, text)
	}
	var flat string // the rows put together again, their margins and indent taken off
	for _, l := range strings.Split(text, "\n") {
		flat += strings.TrimSpace(l)
	}
	if !strings.Contains(flat, "quarterly-report.pdf") || !strings.Contains(flat, "try a smaller file") ||
		!strings.Contains(flat, "could not send /home/alice/") || !strings.Contains(flat, "…") {
		t.Fatalf("the notice lost its end or its start:\n%s", text)
	}
	for _, l := range lines {
		if w := ansi.StringWidth(l); w != 60 {
			t.Fatalf("a status row is %d cells wide:\n%s", w, text)
		}
	}
}
