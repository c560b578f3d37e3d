package ui

import (
	"context"
	"strings"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// Message requests, blocking, nicknames and muting in the UI (issue 13 points 10, 11):
// the contact list has a "Requests" and a "Blocked" section under the contacts, and the
// slash commands below act on the open contact.

// contactManager is implemented by backends that keep requests, blocks, nicknames and
// mutes (*chat.Controller).
type contactManager interface {
	AcceptRequest(ctx context.Context, name string) error
	Block(ctx context.Context, name string) error
	Unblock(ctx context.Context, name string) error
	RemoveContact(ctx context.Context, name string) error
	SetNickname(ctx context.Context, name, nickname string) error
	SetMuted(ctx context.Context, name string, muted bool) error
}

// section is where a contact is listed: 0 contacts, 1 requests, 2 blocked.
func section(ct chat.Contact) int {
	switch {
	case ct.Blocked:
		return 2
	case ct.Request:
		return 1
	}
	return 0
}

func sectionTitle(ct chat.Contact) string {
	if ct.Blocked {
		return "Blocked"
	}
	return "Requests"
}

// sectionStarts reports whether a section header goes above contact i (the first
// request, the first blocked contact).
func (m *mainScreen) sectionStarts(i int) bool {
	s := section(m.contacts[i])
	return s > 0 && (i == 0 || section(m.contacts[i-1]) != s)
}

// sectionHeaders counts the header rows of the list.
func (m *mainScreen) sectionHeaders() int {
	n := 0
	for i := range m.contacts {
		if m.sectionStarts(i) {
			n++
		}
	}
	return n
}

// displayName is the contact's nickname when the user gave one, else the name.
func (m *mainScreen) displayName(name string) string {
	if ct, ok := m.contact(name); ok && ct.Nickname != "" {
		return ct.Nickname
	}
	return name
}

// contactOp runs one contactManager call on the open contact, reporting done.
func contactOp(m *mainScreen, op string, f func(cm contactManager, ctx context.Context, name string) error) tea.Cmd {
	cm, ok := m.b.(contactManager)
	if !ok {
		m.setNotice("this profile cannot "+op, true)
		return nil
	}
	name := m.open
	return m.c.op(op, name, func(ctx context.Context) error { return f(cm, ctx, name) })
}

func runAcceptRequest(m *mainScreen, _ []string) tea.Cmd {
	if ct, ok := m.contact(m.open); ok && !ct.Request {
		m.setNotice(m.open+" is not a message request; nothing to accept", false)
		return nil
	}
	return contactOp(m, "accept-request", contactManager.AcceptRequest)
}

func runBlock(m *mainScreen, _ []string) tea.Cmd {
	name := m.open
	cm, ok := m.b.(contactManager)
	if !ok {
		m.setNotice("this profile cannot block", true)
		return nil
	}
	return pushDialog(newConfirmDialog(m.c, "Block "+name,
		"Block "+name+"? Their messages are dropped unread, nothing is sent to them, and the relay refuses their messages to you. /unblock takes it back.",
		m.c.op("block", name, func(ctx context.Context) error { return cm.Block(ctx, name) })))
}

func runUnblock(m *mainScreen, _ []string) tea.Cmd {
	if ct, ok := m.contact(m.open); ok && !ct.Blocked {
		// It said "unblocked bob" of a contact who was never blocked.
		m.setNotice(m.open+" is not blocked; nothing to unblock", false)
		return nil
	}
	return contactOp(m, "unblock", contactManager.Unblock)
}

func runRemove(m *mainScreen, _ []string) tea.Cmd {
	name := m.open
	cm, ok := m.b.(contactManager)
	if !ok {
		m.setNotice("this profile cannot remove contacts", true)
		return nil
	}
	return pushDialog(newConfirmDialog(m.c, "Remove "+name,
		"Remove "+name+" and the whole conversation from this device? If they write again, it arrives as a message request.",
		m.c.op("remove", name, func(ctx context.Context) error { return cm.RemoveContact(ctx, name) })))
}

func runNick(m *mainScreen, args []string) tea.Cmd {
	nick, op := strings.Join(args, " "), "nick"
	if nick == "" {
		if ct, ok := m.contact(m.open); ok && ct.Nickname == "" {
			m.setNotice(m.open+" has no nickname; nothing to remove (/nick NICKNAME gives one)", false)
			return nil
		}
		op = "unnick" // the notice says it went, not that it was saved
	}
	return contactOp(m, op, func(cm contactManager, ctx context.Context, name string) error {
		return cm.SetNickname(ctx, name, nick)
	})
}

func runMute(m *mainScreen, args []string) tea.Cmd {
	muted, op := true, "mute"
	if ct, ok := m.contact(m.open); ok && ct.Muted {
		muted, op = false, "unmute" // the notice says which way it went
	}
	return contactOp(m, op, func(cm contactManager, ctx context.Context, name string) error { return cm.SetMuted(ctx, name, muted) })
}

// contactOpDone is the notice of a finished contact operation; ok is false for others.
func (m *mainScreen) contactOpDone(msg opDoneMsg) (string, bool) {
	switch msg.op {
	case "accept-request":
		return "accepted " + msg.contact + " — compare safety numbers with /verify", true
	case "block":
		return "blocked " + msg.contact, true
	case "unblock":
		return "unblocked " + msg.contact, true
	case "remove":
		if m.open == msg.contact {
			m.open = ""
		}
		delete(m.convs, msg.contact)
		return "removed " + msg.contact, true
	case "nick":
		for _, cv := range m.convs {
			cv.invalidate() // sender labels
		}
		return "nickname of " + msg.contact + " saved", true
	case "unnick":
		return "nickname of " + msg.contact + " removed", true
	case "mute":
		return msg.contact + " muted: no notifications from them (/mute again to undo)", true
	case "unmute":
		return msg.contact + " unmuted: notifications from them are on again", true
	}
	return "", false
}
