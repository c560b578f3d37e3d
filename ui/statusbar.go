package ui

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// tickMsg drives the reconnect countdown in the status bar.
type tickMsg time.Time

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *mainScreen) statusView(w int) string {
	s := &m.c.styles
	// Full and compact forms of each part; the compact ones are used when the line is
	// too narrow (down to 40 columns), so the state stays visible.
	var conn, connShort string
	switch m.conn.Status {
	case chat.Online:
		conn, connShort = s.StatusOK.Render("● relay connected"), s.StatusOK.Render("●")
	case chat.Connecting:
		conn, connShort = s.StatusWarn.Render("◌ connecting…"), s.StatusWarn.Render("◌")
	case chat.Reconnecting:
		secs := int(math.Ceil(m.retryDeadline.Sub(m.c.now()).Seconds()))
		if secs > 0 {
			conn = s.StatusWarn.Render(fmt.Sprintf("◌ reconnecting in %d s", secs))
			connShort = s.StatusWarn.Render(fmt.Sprintf("◌ %ds", secs))
		} else {
			conn, connShort = s.StatusWarn.Render("◌ reconnecting…"), s.StatusWarn.Render("◌")
		}
	default:
		conn, connShort = s.StatusBad.Render("○ offline"), s.StatusBad.Render("○ offline")
	}
	if m.relayKey != nil && m.conn.Status != chat.Online {
		conn, connShort = s.KeyChanged.Render("⚠ relay key changed (/repin)"), s.KeyChanged.Render("⚠ relay key")
	}
	left, short := " "+conn, " "+connShort
	mid := left // the full state without the fingerprint, before the compact one
	if ct, ok := m.contact(m.open); ok {
		fp := ct.Fingerprint
		if fp != "" {
			fp = " " + s.Muted.Render("fp "+fp)
		}
		var trust, trustShort string
		switch {
		case ct.KeyChanged:
			trust, trustShort = s.KeyChanged.Render("⚠ key changed"), s.KeyChanged.Render("⚠ key changed")
		case ct.Verified:
			trust, trustShort = s.Verified.Render("✔ verified"), s.Verified.Render("✔")
		default:
			trust, trustShort = s.Muted.Render("not verified (/verify)"), s.Muted.Render("unverified")
		}
		sep := s.Subtle.Render(" │ ")
		left += sep + s.StatusNote.Render(ct.Name) + fp + " " + trust
		mid += sep + s.StatusNote.Render(ct.Name) + " " + trust
		short += " " + s.StatusNote.Render(ct.Name) + " " + trustShort
	}
	var right string
	switch {
	case m.notice != "" && m.noticeErr:
		right = s.Error.Render(m.notice)
	case m.notice != "":
		right = s.OK.Render(m.notice)
	default:
		right = m.help.ShortHelpView([]key.Binding{m.c.keys.HelpHint(m.focus == focusContacts), m.c.keys.AddContact})
	}
	rw := ansi.StringWidth(right)
	lw, sw := ansi.StringWidth(left), ansi.StringWidth(short)
	switch {
	case lw+2+rw <= w:
		return fitLine(left+spaces(w-lw-rw-1)+right, w)
	case m.notice == "" && lw <= w:
		// Only the help hint does not fit: keep the state whole and as many whole keys
		// as fit (cut, it read "f1 help • ctrl…").
		if hint := m.help.ShortHelpView([]key.Binding{m.c.keys.HelpHint(m.focus == focusContacts)}); lw+2+ansi.StringWidth(hint) <= w {
			return fitLine(left+spaces(w-lw-ansi.StringWidth(hint)-1)+hint, w)
		}
		return fitLine(left, w)
	case m.notice == "" && ansi.StringWidth(mid) <= w:
		// The fingerprint goes first: "◌ 12s alice unverified" did not say what waits
		// 12 s, nor how to verify.
		return fitLine(mid, w)
	case m.notice == "":
		return fitLine(short, w)
	case sw+2+rw <= w:
		return fitLine(short+spaces(w-sw-rw-1)+right, w)
	case ansi.StringWidth(connShort)+3+rw <= w:
		// The whole notice beside the connection's mark rather than cut: it says what
		// happened and what to do, and it goes after a few seconds.
		return fitLine(" "+connShort+spaces(w-ansi.StringWidth(connShort)-rw-2)+right, w)
	case w-sw-2 >= 10:
		// A notice matters more than the full state: compact state, then the notice.
		return fitLine(short+"  "+ansi.Truncate(right, w-sw-2, "…"), w)
	}
	return fitLine(" "+ansi.Truncate(right, w-2, "…"), w)
}

// errText is an error for the status bar: one line, no wrapping chain noise.
func errText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out: is the relay reachable?"
	}
	return chat.Sentence(err) // no package prefixes, no repeats, the first line
}
