package ui

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// Local deletion of messages (issue 13 point 12): /delete and /clear.

// messageDeleter is implemented by backends that can delete messages locally
// (*chat.Controller).
type messageDeleter interface {
	DeleteMessage(ctx context.Context, contact string, id int64) error
	ClearConversation(ctx context.Context, contact string) (int, error)
}

// runDelete is /delete [N]: delete the N-th newest shown message (1, the newest, by
// default) of the open conversation on this device, after a confirmation quoting it.
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
	cv := m.conv()
	if cv == nil || len(cv.items) == 0 {
		m.setNotice("no message here to delete", false)
		return nil
	}
	if len(cv.items) < n {
		if cv.exhausted { // every message is loaded: there are no older ones to load
			m.setNotice(fmt.Sprintf("no message %d to delete: this conversation has %s", n, countOf(len(cv.items), "message")), true)
		} else {
			m.setNotice(fmt.Sprintf("no message %d to delete here (scroll up to load older ones)", n), true)
		}
		return nil
	}
	msg := cv.items[len(cv.items)-n].m
	who := m.displayName(m.open) // as the conversation shows them
	if msg.Outgoing {
		who = "you"
	}
	text := strings.ReplaceAll(msg.Text, "\n", " ")
	if text == "" {
		text = "(" + msg.Reason + ")"
	}
	text = ansi.Truncate(text, 80, "…")
	name, id := m.open, msg.ID
	return pushDialog(newConfirmDialog(m.c, "Delete message",
		fmt.Sprintf("Delete this message from %s on this device?\n\n%s\n\n%s keeps their copy.", who, text, m.displayName(name)),
		m.c.op("delete", name, func(ctx context.Context) error { return md.DeleteMessage(ctx, name, id) })))
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
// marked read what was never on screen), and the old lines stay until then (a reload
// drew a blank "loading…" frame first). A cleared conversation is read again in place,
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
	if !cv.loaded && name != m.open {
		return nil
	}
	cv.loading, cv.exhausted = true, false
	return m.c.loadHistory(m.b, name, 0)
}

// countOf is n and noun, plural unless n is 1: "1 message", "118 messages".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
