package ui

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// Local deletion of messages (issue 13 point 12): /delete and /clear.

// messageDeleter is implemented by backends that can delete messages locally
// (*chat.Controller).
type messageDeleter interface {
	DeleteMessage(ctx context.Context, contact string, id int64) error
	ClearConversation(ctx context.Context, contact string) (int, error)
}

// runDelete is /delete [N]: delete the N-th newest message (1, the newest, by default)
// of the open conversation on this device, loaded or not, after a confirmation quoting
// it (it said "scroll up to load older ones" for one not loaded).
func runDelete(m *mainScreen, args []string) tea.Cmd {
	md, ok := m.b.(messageDeleter)
	if !ok {
		m.setNotice("this profile cannot delete messages", true)
		return nil
	}
	n := 1
	if len(args) > 1 {
		m.setNotice("usage: /delete [N] (N = 1 the newest message, 2 the one before …)", true)
		return nil
	}
	if len(args) == 1 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			m.setNotice("usage: /delete [N] (N = 1 the newest message, 2 the one before …)", true)
			return nil
		}
		n = v
	}
	name := m.open
	if name == "" {
		m.setNotice("no message here to delete", false)
		return nil
	}
	// The N-th newest message of the conversation, loaded or not: the loaded messages
	// are the newest ones, and an older one is read from the store (deleteTargetMsg).
	if cv := m.conv(); cv.loaded && len(cv.items) >= n {
		return m.confirmDelete(md, name, n, cv.items[len(cv.items)-n].m)
	} else if cv.loaded && cv.exhausted {
		m.noDelete(n, len(cv.items))
		return nil
	}
	b := m.b
	return func() tea.Msg {
		ctx, cancel := m.c.opCtx()
		defer cancel()
		res := deleteTargetMsg{contact: name, n: n}
		var before int64
		for res.have < n { // pages of at most 1000 (History's bound)
			want := min(n-res.have, 1000)
			page, err := b.History(ctx, name, before, want)
			if err != nil {
				res.err = err
				break
			}
			res.have += len(page)
			if len(page) > 0 {
				res.msg = page[len(page)-1]
				before = res.msg.ID
			}
			if len(page) < want {
				break
			}
		}
		return res
	}
}

// deleteTargetMsg: the n-th newest message of contact's conversation (msg), read for
// /delete N when fewer are loaded; have: how many of the n there are.
type deleteTargetMsg struct {
	contact string
	n, have int
	msg     chat.Message
	err     error
}

func (m *mainScreen) onDeleteTarget(msg deleteTargetMsg) tea.Cmd {
	md, ok := m.b.(messageDeleter)
	switch {
	case !ok || msg.contact != m.open: // another conversation opened meanwhile
		return nil
	case msg.err != nil:
		m.setNotice("delete: "+errText(msg.err), true)
		return nil
	case msg.have < msg.n:
		m.noDelete(msg.n, msg.have)
		return nil
	}
	return m.confirmDelete(md, msg.contact, msg.n, msg.msg)
}

func (m *mainScreen) noDelete(n, have int) {
	if have == 0 {
		m.setNotice("no message here to delete", false)
		return
	}
	m.setNotice(fmt.Sprintf("no message %d to delete: this conversation has %s", n, countOf(have, "message")), true)
}

// confirmDelete asks before deleting msg, the n-th newest message of name's
// conversation: the dialog says which it is (the newest, which may not have been on
// screen), from whom and when, and quotes it — a file by its name.
func (m *mainScreen) confirmDelete(md messageDeleter, name string, n int, msg chat.Message) tea.Cmd {
	who := m.displayName(name) // as the conversation shows them
	if msg.Outgoing {
		who = "you"
	}
	text := strings.ReplaceAll(msg.Text, "\n", " ")
	if a := msg.Attachment; a != nil {
		file := "📎 " + chat.SafeFileName(a.FileName)
		if text != "" {
			file += ": " + text
		}
		text = file
	}
	if text == "" {
		text = "(" + msg.Reason + ")"
	}
	text = ansi.Truncate(text, 80, "…")
	which := "the newest message"
	if n > 1 {
		which = "the " + ordinal(n) + " newest message"
	}
	when := msgTime(msg).In(m.c.loc)
	at := when.Format("15:04")
	if !sameDay(when, m.c.now().In(m.c.loc)) {
		at = when.Format("2 Jan 2006 15:04")
	}
	id := msg.ID
	return pushDialog(newConfirmDialog(m.c, "Delete message",
		fmt.Sprintf("Delete %s of this conversation, from %s at %s, on this device?\n\n%s\n\n%s keeps their copy.",
			which, who, at, text, m.displayName(name)),
		m.c.op("delete", name, func(ctx context.Context) error { return md.DeleteMessage(ctx, name, id) })))
}

// ordinal is n as "2nd", "3rd", "11th", "21st".
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// runClear is /clear: delete every message of the open conversation on this device.
func runClear(m *mainScreen, _ []string) tea.Cmd {
	md, ok := m.b.(messageDeleter)
	if !ok {
		m.setNotice("this profile cannot delete messages", true)
		return nil
	}
	name := m.open
	return pushDialog(newConfirmDialog(m.c, "Clear conversation",
		fmt.Sprintf("Delete every message of the conversation with %s on this device?\n%s keeps their copy; the contact stays.", name, name),
		m.c.op("clear", name, func(ctx context.Context) error { _, err := md.ClearConversation(ctx, name); return err })))
}

// onDeleted applies a deletion on this device (/delete or /clear, or a deletion through
// the owner socket) to a loaded conversation without reading it again: the deleted
// message leaves the view, which keeps its place (a reload put it at the newest and
// marked read what was never on screen), and no blank "loading…" frame is drawn (the
// reload's was). A cleared conversation is emptied at once, and read again in place
// for a message that arrived while it was cleared.
func (m *mainScreen) onDeleted(name string, id int64) tea.Cmd {
	cv, ok := m.convs[name]
	if !ok {
		return nil
	}
	if id != 0 {
		if !cv.remove(id, m.c.loc) || !cv.loaded {
			return nil
		}
		if name == m.open {
			return tea.Batch(m.c.loadGaps(m.b, name, 0), m.maybeLoadMore())
		}
		return m.c.loadGaps(m.b, name, 0)
	}
	cv.clearAll()
	cv.exhausted = false
	cv.loading = cv.loaded || name == m.open
	if !cv.loading {
		return nil // read when opened
	}
	return cv.stamp(m.c.loadHistory(m.b, name, 0))
}

// countOf is n and noun, plural unless n is 1: "1 message", "118 messages".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
