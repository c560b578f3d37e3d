package ui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// contactsView returns exactly h lines of exactly w cells.
func (m *mainScreen) contactsView(w, h int) []string {
	s := &m.c.styles
	lines := []string{fitLine(s.ContactsTitle.Render(" Contacts"), w)}
	if len(m.contacts) == 0 {
		lines = append(lines, fitLine(s.Empty.Render(" none yet: ctrl+n"), w))
	}
	first := m.contactsFirst(h)
	for i := first; i < len(m.contacts) && len(lines)+contactRows <= h; i++ {
		ct := m.contacts[i]
		if m.sectionStarts(i) {
			if len(lines)+1+contactRows > h {
				break
			}
			lines = append(lines, fitLine(s.ContactsTitle.Render(" "+sectionTitle(ct)), w))
		}
		name := m.displayName(ct.Name)
		nameStyle, badgeStyle := s.Contact, s.Unread
		if ct.Unread > 0 && !ct.Muted {
			nameStyle = nameStyle.Bold(true)
		}
		if ct.Muted {
			badgeStyle = s.UnreadMuted // counted, but not calling for attention
		}
		marker := " "
		if ct.Name == m.open {
			marker = s.Accent.Render("▌")
		}
		badge := ""
		if ct.Unread > 0 {
			badge = badgeStyle.Render(fmt.Sprintf(" %d ", ct.Unread))
		}
		bw := ansi.StringWidth(badge)
		row1 := marker + nameStyle.Render(ellipsize(name, max(1, w-2-bw)))
		row1 = fitLine(row1, w-bw) + badge
		row2 := "   " + strings.Join(m.contactFlags(ct, false), s.Muted.Render(" · "))
		if ansi.StringWidth(row2) > w {
			// "✔ verified · muted · 09:30" is wider than the list: the marks go short
			// rather than the time or "muted" being cut.
			row2 = "   " + strings.Join(m.contactFlags(ct, true), s.Muted.Render(" · "))
		}
		if i == m.selected && m.focus == focusContacts {
			row1 = s.ContactSelected.Render(ansi.Strip(fitLine(row1, w)))
			row2 = s.ContactSelected.Render(ansi.Strip(fitLine(row2, w)))
		}
		lines = append(lines, fitLine(row1, w), fitLine(row2, w))
	}
	return padRows(lines, w, h)
}

// contactFlags are the marks under a contact's name: trust or state (short: the
// symbol only), "muted" when muted (/mute), and the last activity.
func (m *mainScreen) contactFlags(ct chat.Contact, short bool) []string {
	s := &m.c.styles
	mark := func(st lipgloss.Style, symbol, word string) string {
		if short {
			return st.Render(symbol)
		}
		return st.Render(symbol + " " + word)
	}
	var flags []string
	switch {
	case ct.Blocked:
		flags = append(flags, mark(s.Muted, "⊘", "blocked"))
	case ct.Request:
		flags = append(flags, mark(s.KeyChanged, "✉", "request"))
	case ct.KeyChanged:
		flags = append(flags, mark(s.KeyChanged, "⚠", "key changed"))
	case ct.Verified:
		flags = append(flags, mark(s.Verified, "✔", "verified"))
	}
	if ct.Muted {
		// A word, not 🔕: the list's marks are one-cell symbols in the style's colour,
		// and an emoji can be neither dimmed nor relied on to be two cells everywhere.
		flags = append(flags, s.Muted.Render("muted"))
	}
	if !ct.LastActivity.IsZero() {
		flags = append(flags, s.Activity.Render(m.activity(ct.LastActivity)))
	}
	return flags
}

// contactRows is the number of screen rows per contact in the list.
const contactRows = 2

// contactsFirst is the index of the first contact shown in a list of height h: the
// selection stays in view.
func (m *mainScreen) contactsFirst(h int) int {
	if visible := (h - 1 - m.sectionHeaders()) / contactRows; visible > 0 && m.selected >= visible {
		return m.selected - visible + 1
	}
	return 0
}

// contactAt maps a click in the contact list to a contact index, or -1.
func (m *mainScreen) contactAt(x, y int) int {
	y -= len(m.bannerRows(m.c.width)) // the relay-key banner sits above the panes
	if y < 1 || y >= m.bodyHeight() {
		return -1
	}
	if !m.narrow() && x >= contactsWidth-1 {
		return -1
	}
	if m.narrow() && m.focus != focusContacts {
		return -1
	}
	// Walk the rows as contactsView lays them out: section headers take a row.
	row := 1
	for i := m.contactsFirst(m.bodyHeight()); i < len(m.contacts); i++ {
		if m.sectionStarts(i) {
			row++
		}
		if y >= row && y < row+contactRows {
			return i
		}
		row += contactRows
	}
	return -1
}

// activity formats a last-activity time: the time today, the weekday this week, else
// the date.
func (m *mainScreen) activity(t time.Time) string {
	now := m.c.localTime(m.c.now())
	lt := m.c.localTime(t)
	switch {
	case sameDay(now, lt):
		return lt.Format("15:04")
	case now.Sub(lt) < 6*24*time.Hour:
		return lt.Format("Mon")
	case now.Year() == lt.Year():
		return lt.Format("2 Jan")
	}
	return lt.Format("Jan 2006")
}
