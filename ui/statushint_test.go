package ui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
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
