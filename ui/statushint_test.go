package ui

import (
	"errors"
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
// fit beside the compact state is shown whole beside the connection's mark instead of
// being cut ("…unblock carol to write to th…").
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
	bar = ansi.Strip(m.statusView(80))
	if !strings.Contains(bar, notice) || !strings.HasPrefix(bar, " ●") {
		t.Errorf("status bar at 80 columns: %q, want the connection's mark and the whole notice", bar)
	}
	for _, w := range []int{40, 60, 80, 120} {
		if got := ansi.StringWidth(m.statusView(w)); got != w {
			t.Errorf("status bar at %d columns is %d wide", w, got)
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
