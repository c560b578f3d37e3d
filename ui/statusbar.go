package ui

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// tickMsg drives the reconnect countdown in the status bar.
type tickMsg time.Time

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// maxStatusRows is how many rows a notice too long for the status line may wrap onto,
// and minBodyRows the rows the panes keep while it does (a header and three lines).
const (
	maxStatusRows = 3
	minBodyRows   = 4
)

// statusView is the status area, one line or (a long notice, wrapped) up to
// maxStatusRows, each exactly w cells.
func (m *mainScreen) statusView(w int) string { return joinLines(m.statusLines(w)) }

// statusRows is the height of the status area at the terminal's size.
func (m *mainScreen) statusRows() int { return len(m.statusLines(m.c.width)) }

// statusLines is the connection's state, the open contact's and the help hint on one
// line, or a notice in place of the hint. A notice too long for the line wraps onto
// up to maxStatusRows, under the compact state, rather than being cut: it says what
// happened and what to do, and with "…" the part that did (a file's name, the command
// to type) was lost. Only where the terminal is too low for the extra rows is it cut.
func (m *mainScreen) statusLines(w int) []string {
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
			// Padded to the width of the countdown's first number (retryDigits).
			conn = s.StatusWarn.Render(fmt.Sprintf("◌ reconnecting in %*d s", m.retryDigits, secs))
			connShort = s.StatusWarn.Render(fmt.Sprintf("◌ %*ds", m.retryDigits, secs))
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
		right = m.help.ShortHelpView(m.hintKeys())
	}
	rw := ansi.StringWidth(right)
	lw, sw := ansi.StringWidth(left), ansi.StringWidth(short)
	if m.notice == "" && m.drafting() {
		// While there is a draft, how to clear it (Esc does not) outranks the
		// fingerprint and "f1 help": it was never shown below about 100 columns.
		clear := m.help.ShortHelpView([]key.Binding{m.c.keys.ClearDraft})
		for _, state := range []string{left, mid, short} {
			sw := ansi.StringWidth(state)
			for _, hint := range []string{right, clear} {
				if hw := ansi.StringWidth(hint); sw+2+hw <= w {
					return oneLine(state+spaces(w-sw-hw-1)+hint, w)
				}
			}
		}
	}
	if m.notice != "" {
		for _, state := range []string{left, short} {
			if l := besideState(state, right, s.Subtle.Render(" │ "), w); l != nil {
				return l
			}
		}
	}
	switch {
	case m.notice == "" && lw+2+rw <= w:
		return oneLine(left+spaces(w-lw-rw-1)+right, w)
	case m.notice == "" && lw <= w:
		// Only the help hint does not fit: keep the state whole and as many whole keys
		// as fit (cut, it read "f1 help • ctrl…").
		if hint := m.help.ShortHelpView(m.hintKeys()[:1]); lw+2+ansi.StringWidth(hint) <= w {
			return oneLine(left+spaces(w-lw-ansi.StringWidth(hint)-1)+hint, w)
		}
		return oneLine(left, w)
	case m.notice == "" && ansi.StringWidth(mid) <= w:
		// The fingerprint goes first: "◌ 12s alice unverified" did not say what waits
		// 12 s, nor how to verify.
		return oneLine(mid, w)
	case m.notice == "":
		return oneLine(short, w)
	}
	rows := m.maxNoticeRows()
	style := s.OK
	if m.noticeErr {
		style = s.Error
	}
	// Beside the compact state when the notice fits there (wrapped, where the terminal
	// has the rows; after the bar's separator, as on one line, besideState), else beside the connection's mark, else alone: the most state that
	// leaves it whole. The same at every width: the one line beside the mark came
	// first, and from 76 to 80 columns the contact's state went from the bar while
	// narrower terminals kept it (a tester at 79, 80 and 81 columns).
	if rows > 1 {
		if lines, whole := m.wrapNotice(short, s.Subtle.Render(" │ "), style, w, rows); whole {
			return lines
		}
	}
	if ansi.StringWidth(connShort)+3+rw <= w {
		// The whole notice beside the connection's mark rather than cut: it says what
		// happened and what to do, and it goes after a few seconds.
		return oneLine(" "+connShort+spaces(w-ansi.StringWidth(connShort)-rw-2)+right, w)
	}
	if rows > 1 {
		// Beside the connection's mark, whole or, too long to be whole anywhere, cut
		// there: the mark says whether anything works at all (alone, the notice had
		// three cells more).
		if lines, _ := m.wrapNotice(" "+connShort, "  ", style, w, rows); lines != nil {
			return lines
		}
		lines, _ := m.wrapNotice("", "", style, w, rows)
		return lines
	}
	if w-sw-2 >= 10 {
		// A notice matters more than the full state: compact state, then the notice.
		return oneLine(short+"  "+ansi.Truncate(right, w-sw-2, "…"), w)
	}
	return oneLine(" "+ansi.Truncate(right, w-2, "…"), w)
}

// besideState is the status line with a notice at its right end after state, or nil
// when they do not fit. Fewer than 5 cells apart, the bar's separator goes between
// them: "✔ verified bob is verified" read as one (a tester at 80 columns).
func besideState(state, notice, sep string, w int) []string {
	gap := w - ansi.StringWidth(state) - ansi.StringWidth(notice) - 1
	switch {
	case gap >= 5:
		return oneLine(state+spaces(gap)+notice, w)
	case gap >= ansi.StringWidth(sep):
		return oneLine(state+spaces(gap-ansi.StringWidth(sep))+sep+notice, w)
	}
	return nil
}

// hintKeys are the keys the status bar names, the help key first: while a draft is
// in the input, how to clear it (Esc does not); else how to add a contact.
func (m *mainScreen) hintKeys() []key.Binding {
	k := m.c.keys
	if m.drafting() {
		return []key.Binding{k.HelpHint(false), k.ClearDraft}
	}
	return []key.Binding{k.HelpHint(m.focus == focusContacts), k.AddContact}
}

// drafting: the input has focus and holds a draft.
func (m *mainScreen) drafting() bool { return m.focus == focusInput && m.input.Value() != "" }

func oneLine(l string, w int) []string { return []string{fitLine(l, w)} }

// maxNoticeRows is how many rows a notice may take: maxStatusRows, fewer when the
// panes would keep less than minBodyRows.
func (m *mainScreen) maxNoticeRows() int {
	room := m.c.height - (inputLines + 1) - len(m.bannerRows(m.c.width)) - minBodyRows
	return min(max(room, 1), maxStatusRows)
}

// wrapNotice lays the notice out beside prefix (a form of the state, or nothing) after
// sep (at least two cells), wrapped with a hanging indent onto at most rows lines of w
// cells, and reports whether it is whole; cut, the last line ends with "…". Beside a
// prefix that leaves it fewer than 10 columns it is not whole.
func (m *mainScreen) wrapNotice(prefix, sep string, style lipgloss.Style, w, rows int) ([]string, bool) {
	indent := ansi.StringWidth(prefix) + ansi.StringWidth(sep)
	if prefix == "" {
		indent = 1
	}
	tw := w - indent - 1
	if tw < 10 && prefix != "" {
		return nil, false
	}
	tw = max(1, tw)
	lines := wrapFill(m.notice, tw) // a long word starts on the first row, not below it
	whole := len(lines) <= rows
	if !whole {
		if cut := middleCut(m.notice, tw, rows); cut != nil {
			lines = cut
		} else {
			lines = lines[:rows]
			lines[rows-1] = strings.TrimRight(truncateCells(lines[rows-1], tw-1), " ") + "…"
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		lead := spaces(indent)
		if i == 0 && prefix != "" {
			lead = prefix + sep
		}
		out[i] = fitLine(lead+style.Render(l), w)
	}
	return out, whole
}

// middleCut wraps s to at most rows lines of width cells with "…" in the middle of its
// longest word (a path, most often) in place of what does not fit: the rest of the
// notice stays, and the word's end — a file's name after the path's last "/" — with it
// (a cut at the end lost them). Nil when even that does not fit.
func middleCut(s string, width, rows int) []string {
	s = sanitize(s)
	long := ""
	for _, w := range strings.Fields(s) {
		if ansi.StringWidth(w) > ansi.StringWidth(long) {
			long = w
		}
	}
	lw := ansi.StringWidth(long)
	if lw < 3 {
		return nil
	}
	i := strings.Index(s, long)
	before, after := s[:i], s[i+len(long):]
	tail := lw / 2
	if j := strings.LastIndex(long, "/"); j >= 0 {
		tail = ansi.StringWidth(long[j:])
	}
	tail = min(tail, width-1, lw-2)
	end := ansi.TruncateLeft(long, lw-tail, "")
	for head := lw - tail - 1; head > 0; head-- {
		if lines := wrapFill(before+truncateCells(long, head)+"…"+end+after, width); len(lines) <= rows {
			return lines
		}
	}
	return nil
}

// errText is an error for the status bar: one line, no wrapping chain noise.
func errText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out: is the relay reachable?"
	}
	return chat.Sentence(err) // no package prefixes, no repeats, an address once, the first line
}
