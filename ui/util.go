package ui

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

func splitLines(s string) []string { return strings.Split(s, "\n") }
func joinLines(l []string) string  { return strings.Join(l, "\n") }

func spaces(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat(" ", n)
}

// hangWrap puts prefix before text wrapped to w cells in all, and starts every later
// line under the text's first column (a hanging indent), so a wrapped line does not
// begin at the left edge under a label or a command.
func hangWrap(prefix, text string, w int) string {
	pw := ansi.StringWidth(prefix)
	lines := splitLines(lipgloss.Wrap(text, max(w-pw, 10), ""))
	for i := range lines {
		if i == 0 {
			lines[i] = prefix + lines[i]
		} else {
			lines[i] = spaces(pw) + lines[i]
		}
	}
	return joinLines(lines)
}

// ellipsize cuts plain text (a name) to at most w cells, ending it with "…" when it was
// wider, measured as fitLine measures (whole grapheme clusters, ansi.StringWidth): a
// nickname may be 64 bytes, and cut without the mark it read as a whole name.
func ellipsize(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return truncateCells(s, w-1) + "…"
}
