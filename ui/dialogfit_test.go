package ui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// TestDialogsFitAndScrollAt40x12: at 40×12 every dialog fits whole (its border drawn on
// all sides), and one taller than the terminal scrolls with PgDn until its last line —
// the key hint — shows, then back with PgUp.
func TestDialogsFitAndScrollAt40x12(t *testing.T) {
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 40, height: 12,
		now: func() time.Time { return fixedNow }, loc: time.UTC}
	b := newMemBackend("alice", c.now)
	sn := chat.SafetyNumber{Contact: "bob"}
	kc := newKeyChangedDialog(c, b, "bob")
	kc.loaded, kc.old, kc.new = true, &sn, &sn
	vd := newVerifyDialog(c, b, "bob")
	vd.busy, vd.sn = false, &sn
	for _, tc := range []struct {
		name string
		d    dialog
		last string // the dialog's last line, reached by scrolling
	}{
		{"help", newHelpDialog(c), "esc"},
		{"key changed", kc, "paused)"},
		{"verify", vd, "esc"},
		{"add", newAddContactDialog(c, b, ""), "esc"},
		{"confirm", newConfirmDialog(c, "Reset session", "Drop the encrypted session with bob and start a fresh one?\nMessages already received stay readable.", nil), "n no"},
		{"recovery code", newRecoveryCodeDialog(c, "000G-40R4-0M30-E209-185G-R38E-1W9W-02QX"), "wrote it down"},
		{"repin", newConfirmDialog(c, "Re-pin the relay key", relayRepinText(&chat.RelayKeyChangedError{Pinned: "8313 1686 323a 22c1 1a6e", Presented: "153c 2f20 4a6a cd89 d316"}), nil), "n no"},
	} {
		a := &App{c: c, dialogs: []dialog{tc.d}}
		fits := func(what string) string {
			t.Helper()
			v := tc.d.View()
			lines := strings.Split(ansi.Strip(v), "\n")
			if lipgloss.Width(v) > 40 || len(lines) > 12 {
				t.Fatalf("%s %s: %d×%d, want within 40×12:\n%s", tc.name, what, lipgloss.Width(v), len(lines), ansi.Strip(v))
			}
			if !strings.HasPrefix(lines[0], "╭") || !strings.HasPrefix(lines[len(lines)-1], "╰") {
				t.Fatalf("%s %s: border cut:\n%s", tc.name, what, ansi.Strip(v))
			}
			return ansi.Strip(v)
		}
		v := fits("at first")
		for range 20 {
			if strings.Contains(v, tc.last) {
				break
			}
			a.toFront(keyMsg("pgdown"))
			v = fits("scrolled")
		}
		if !strings.Contains(v, tc.last) {
			t.Fatalf("%s: its last line %q never shows:\n%s", tc.name, tc.last, v)
		}
		for range 20 {
			a.toFront(keyMsg("pgup"))
		}
		fits("back at the top")
		a.toFront(tea.KeyPressMsg{Code: tea.KeyEscape})
	}
}

// The key-change dialog takes "a" only once the new safety number is on screen: a key
// that arrives while the numbers load (typed on, or pressed unseen) accepts nothing.
func TestKeyChangedDialogAcceptsNothingUnseen(t *testing.T) {
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 80, height: 30,
		now: func() time.Time { return fixedNow }, loc: time.UTC}
	d := newKeyChangedDialog(c, newMemBackend("alice", c.now), "bob")
	a := tea.KeyPressMsg{Code: 'a', Text: "a"}
	if _, cmd := d.Update(a); cmd != nil || d.busy {
		t.Fatalf("\"a\" before the safety numbers loaded started an accept (busy %v)", d.busy)
	}
	sn := chat.SafetyNumber{Contact: "bob"}
	d.Update(safetyMsg{contact: "bob", current: sn, trusted: &sn, pending: &sn})
	if _, cmd := d.Update(a); cmd == nil || !d.busy {
		t.Fatal("\"a\" with the new safety number on screen did not accept")
	}
}
