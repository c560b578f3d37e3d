package ui

import (
	"context"
	"errors"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// Every call into the chat backend runs here, in a tea.Cmd, so Update never blocks on
// storage or the network. Each result comes back as a message named after the call.

// opTimeout bounds one backend call; a relay that does not answer turns into an error
// the person sees rather than a frozen dialog.
const opTimeout = 30 * time.Second

// historyPage is how many messages one scrollback load fetches.
const historyPage = 50

type (
	eventMsg        struct{ ev chat.Event }
	eventsClosedMsg struct{}
	contactsMsg     struct {
		list []chat.Contact
		err  error
	}
	historyMsg struct {
		contact string
		before  int64
		msgs    []chat.Message
		err     error
		gaps    []chat.Gap // the contact's missing messages (GapReporter), nil without
		// window: read from the first unread message (loadFromUnread); then more says
		// whether older messages exist (a page says it by being full).
		window, more bool
		// epoch: the conversation's epoch when it was read (conversation.stamp).
		epoch int
	}
	gapsMsg struct {
		contact string
		gaps    []chat.Gap
	}
	sentMsg struct {
		contact string
		text    string
		msg     chat.Message
		err     error
	}
	// sentElsewhereMsg is an outgoing message this screen did not send — `pfschat send`
	// through the UI as the profile's owner — read back to be shown (loadSentElsewhere).
	sentElsewhereMsg struct {
		contact string
		msg     chat.Message
	}
	addedMsg struct {
		name    string
		contact chat.Contact
		err     error
	}
	safetyMsg struct {
		contact string
		current chat.SafetyNumber
		trusted *chat.SafetyNumber // set with pending while a key change waits
		pending *chat.SafetyNumber
		err     error
	}
	// opDoneMsg reports a finished action (verify, accept, rotate, reset, mark read).
	opDoneMsg struct {
		op      string
		contact string
		err     error
	}
)

func (c *common) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, opTimeout)
}

// waitEvent blocks (in its own goroutine) on the controller's event channel.
func waitEvent(ch <-chan chat.Event) tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return eventsClosedMsg{}
		}
		return eventMsg{ev}
	}
}

func (c *common) loadContacts(b Backend) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		list, err := b.Contacts(ctx)
		return contactsMsg{list, err}
	}
}

func (c *common) loadHistory(b Backend, contact string, before int64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		msgs, err := b.History(ctx, contact, before, historyPage)
		var gaps []chat.Gap
		if gr, ok := b.(GapReporter); ok && err == nil {
			gaps, _ = gr.Gaps(ctx, contact) // best effort: no gap lines is the old view
		}
		return historyMsg{contact: contact, before: before, msgs: msgs, err: err, gaps: gaps}
	}
}

// loadFromUnread reads contact's conversation from its first unread message (of unread)
// to the newest, with a page of older ones, in one call (UnreadHistorian); without it,
// the newest page (loadHistory) and the older pages after it, one by one.
func (c *common) loadFromUnread(b Backend, contact string, unread int) tea.Cmd {
	uh, ok := b.(UnreadHistorian)
	if !ok {
		return c.loadHistory(b, contact, 0)
	}
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		msgs, more, err := uh.HistoryFromUnread(ctx, contact, unread, historyPage)
		var gaps []chat.Gap
		if gr, ok := b.(GapReporter); ok && err == nil {
			gaps, _ = gr.Gaps(ctx, contact)
		}
		return historyMsg{contact: contact, msgs: msgs, err: err, gaps: gaps, window: true, more: more}
	}
}

// loadGaps reads contact's gaps after a delay (nil without a GapReporter backend): a
// gap shows GapWait after the message behind it arrived, and goes when it arrives.
func (c *common) loadGaps(b Backend, contact string, after time.Duration) tea.Cmd {
	gr, ok := b.(GapReporter)
	if !ok {
		return nil
	}
	return tea.Tick(after, func(time.Time) tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		gaps, err := gr.Gaps(ctx, contact)
		if err != nil {
			return nil
		}
		return gapsMsg{contact, gaps}
	})
}

// loadSentElsewhere reads outgoing message id back from the history, with its
// attachment: its first event (sent, or failed) carries neither the attachment nor a
// place in a conversation that never had it.
func (c *common) loadSentElsewhere(b Backend, contact string, id int64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		msgs, err := b.History(ctx, contact, id+1, 1)
		if err != nil || len(msgs) == 0 || msgs[0].ID != id { // deleted meanwhile
			return nil
		}
		return sentElsewhereMsg{contact, msgs[0]}
	}
}

func (c *common) send(b Backend, contact, text string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		m, err := b.Send(ctx, contact, text)
		return sentMsg{contact, text, m, err}
	}
}

func (c *common) addContact(b Backend, name string) tea.Cmd {
	if !nameRE.MatchString(strings.ToLower(name)) {
		// Said here, naming it once and short: the controller's error quoted a
		// 160-character word whole, twice (8 rows of the dialog).
		err := errors.New("“" + ellipsize(sanitize(name), 24) + "” is not a valid name — " + nameRule)
		return func() tea.Msg { return addedMsg{name, chat.Contact{}, err} }
	}
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		ct, err := b.AddContact(ctx, name)
		return addedMsg{name, ct, err}
	}
}

func (c *common) safetyNumber(b Backend, contact string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		sn, err := b.SafetyNumber(ctx, contact)
		res := safetyMsg{contact: contact, current: sn, err: err}
		if ki, ok := b.(KeyChangeInspector); ok && err == nil {
			p, perr := ki.PendingSafetyNumber(ctx, contact)
			t, terr := ki.TrustedSafetyNumber(ctx, contact)
			if perr == nil && terr == nil {
				res.pending, res.trusted = &p, &t
			}
		}
		return res
	}
}

// op runs one backend action that only reports success or failure.
func (c *common) op(name, contact string, f func(ctx context.Context) error) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		return opDoneMsg{name, contact, f(ctx)}
	}
}
