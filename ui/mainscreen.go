package ui

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textarea"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// Layout constants of the main screen.
const (
	contactsWidth     = 26 // including the border
	narrowWidth       = 60 // below this the contact list collapses
	inputLines        = 3
	minTerminalWidth  = 20
	minTerminalHeight = 8
)

type focusArea int

const (
	focusInput focusArea = iota
	focusContacts
)

// mainScreen is the messenger: contacts, conversation, input and status bar.
type mainScreen struct {
	c *common
	b Backend

	contacts []chat.Contact
	selected int    // highlighted row in the contact list
	open     string // contact whose conversation is shown
	convs    map[string]*conversation

	input textarea.Model
	help  help.Model
	focus focusArea

	conn          chat.ConnState
	relayKey      *chat.RelayKeyChangedError // the relay presents another key: the banner (relaykey.go)
	retryDeadline time.Time
	retryDigits   int // the countdown's width, in digits (statusLines)
	ticking       bool

	notice    string
	noticeErr bool
	// noticeSeq counts notices; noticeArmed is the last one whose expiry is armed.
	noticeSeq, noticeArmed int
	uploadNotice           int // the noticeSeq of the last "uploading" notice
	noticeTTL              time.Duration

	wantOpen string // contact to open once contacts arrive
	listed   bool   // the contact list has arrived once (an unknown --open name is refused then)

	// pictured: a paste put control characters into the input as their Control
	// Pictures (the widget cannot hold them); inputText turns them back.
	pictured bool

	// fetching: the messages whose files this UI is downloading (attachments.go).
	fetching map[int64]bool
	// previews: the pictures of images, by message (preview.go).
	previews map[int64]*preview
	// resumed: the uploads an earlier run left were started again (the first time the
	// relay connection came up).
	resumed bool
}

func newMainScreen(c *common, b Backend, openContact string) *mainScreen {
	ta := textarea.New()
	ta.Placeholder = "Write a message, /help for commands"
	ta.ShowLineNumbers = false
	ta.Prompt = " "
	// No rune or line limit in the widget: it would cut a paste silently. Text over
	// the one limit (chat.MaxTextBytes) is refused instead (guardPaste, submit).
	ta.CharLimit = 0
	ta.MaxHeight = 0
	ta.SetHeight(inputLines)
	ta.KeyMap.InsertNewline = c.keys.Newline
	ta.KeyMap.Paste.SetEnabled(true)
	ta.SetStyles(c.styles.TextArea)
	ta.Focus()
	h := help.New()
	h.Styles = c.styles.Help
	m := &mainScreen{
		c: c, b: b, convs: make(map[string]*conversation),
		input: ta, help: h, wantOpen: openContact, noticeTTL: noticeTTL,
		conn: chat.ConnState{Status: chat.Connecting}, fetching: make(map[int64]bool), previews: make(map[int64]*preview),
	}
	m.layout()
	return m
}

// Init loads the contact list, unless it came with the backend, and starts listening
// to the controller's events.
func (m *mainScreen) Init() tea.Cmd {
	var resume tea.Cmd
	if o, ok := m.b.(interface{ Online() bool }); ok && o.Online() {
		m.resumed, resume = true, m.resumeUploads() // else at the first "online" event
	}
	var contacts tea.Cmd
	if !m.listed { // else the starting screen read them with the backend (backendReadyMsg)
		contacts = m.c.loadContacts(m.b)
	}
	return tea.Batch(contacts, waitEvent(m.b.Events()), m.loadNotifySettings(), resume)
}

func (m *mainScreen) narrow() bool { return m.c.width < narrowWidth }

// convWidth is the width of the conversation pane.
func (m *mainScreen) convWidth() int {
	if m.narrow() {
		return max(1, m.c.width)
	}
	return max(1, m.c.width-contactsWidth)
}

// bodyHeight is the number of rows above the input and the status area (one row, more
// while a long notice is wrapped there).
func (m *mainScreen) bodyHeight() int {
	return max(1, m.c.height-(inputLines+1)-m.statusRows()-len(m.bannerRows(m.c.width)))
}

// convBodyHeight is the number of message lines (the pane minus its header).
func (m *mainScreen) convBodyHeight() int { return max(1, m.bodyHeight()-1) }

func (m *mainScreen) layout() {
	m.input.SetWidth(max(4, m.c.width))
	m.input.SetHeight(inputLines)
	m.help.SetWidth(m.c.width)
}

func (m *mainScreen) conv() *conversation {
	if m.open == "" {
		return nil
	}
	cv, ok := m.convs[m.open]
	if !ok {
		cv = newConversation(m.open)
		m.convs[m.open] = cv
	}
	return cv
}

func (m *mainScreen) contact(name string) (chat.Contact, bool) {
	if i := m.indexOf(name); i >= 0 {
		return m.contacts[i], true
	}
	return chat.Contact{}, false
}

func (m *mainScreen) setNotice(s string, isErr bool) {
	m.notice, m.noticeErr = s, isErr
	m.noticeSeq++
}

// Notices expire: a plain one after noticeTTL, an error after twice that (there is more
// to read, and it says what to do). A newer notice restarts the clock.
const noticeTTL = 8 * time.Second

// noticeExpiredMsg clears the notice it was armed for, if no newer one replaced it.
type noticeExpiredMsg struct{ seq int }

// Update handles keys, mouse, the results of backend commands and controller events,
// and arms the expiry of a notice any of them set.
func (m *mainScreen) Update(msg tea.Msg) (screen, tea.Cmd) {
	if e, ok := msg.(noticeExpiredMsg); ok {
		if e.seq == m.noticeSeq {
			m.notice, m.noticeErr = "", false
		}
		return m, nil
	}
	sc, cmd := m.update(msg)
	// Whatever brought the newest messages into view (a key, the wheel, a message
	// while at the bottom, the contacts read again) marks them read.
	cmd = tea.Batch(cmd, m.readSeen())
	if m.notice != "" && m.noticeArmed != m.noticeSeq {
		m.noticeArmed = m.noticeSeq
		ttl, seq := m.noticeTTL, m.noticeSeq
		if m.noticeErr {
			ttl *= 2
		}
		cmd = tea.Batch(cmd, tea.Tick(ttl, func(time.Time) tea.Msg { return noticeExpiredMsg{seq} }))
	}
	return sc, cmd
}

func (m *mainScreen) update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.layout()
		if cv := m.conv(); cv != nil {
			cv.clampAnchor(m.renderer())
		}
		return m, m.maybeLoadMore()
	case stylesChangedMsg:
		m.input.SetStyles(m.c.styles.TextArea)
		m.help.Styles = m.c.styles.Help
		for _, cv := range m.convs {
			cv.invalidate()
		}
		return m, nil
	case tea.KeyPressMsg:
		return m.handleKey(msg)
	case tea.PasteMsg:
		var ok bool
		if msg, ok = m.guardPaste(msg); !ok {
			return m, nil
		}
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		return m, cmd
	case tea.MouseClickMsg:
		if msg.Button != tea.MouseLeft {
			return m, nil
		}
		if i := m.contactAt(msg.X, msg.Y); i >= 0 {
			cmd := m.openIndex(i)
			if m.focus != focusInput {
				m.focus = focusInput
				cmd = tea.Batch(cmd, m.input.Focus())
			}
			return m, cmd
		}
		return m, nil
	case tea.MouseWheelMsg:
		cv := m.conv()
		if cv == nil {
			return m, nil
		}
		switch msg.Button {
		case tea.MouseWheelUp:
			cv.scrollUp(m.renderer(), 3, m.convBodyHeight())
			return m, m.maybeLoadMore()
		case tea.MouseWheelDown:
			cv.scrollDown(m.renderer(), 3)
		}
		return m, nil
	case eventMsg:
		return m, tea.Batch(m.handleEvent(msg.ev), waitEvent(m.b.Events()))
	case eventsClosedMsg:
		m.conn = chat.ConnState{Status: chat.Offline}
		return m, nil
	case tickMsg:
		if m.conn.Status == chat.Reconnecting && time.Time(msg).Before(m.retryDeadline) {
			return m, tick()
		}
		m.ticking = false
		return m, nil
	case contactsMsg:
		return m, m.onContacts(msg)
	case historyMsg:
		return m, m.onHistory(msg)
	case gapsMsg:
		if cv, ok := m.convs[msg.contact]; ok && cv.loaded {
			cv.setGaps(msg.gaps)
		}
		return m, nil
	case sentMsg:
		if msg.err != nil {
			m.setNotice("not sent: "+errText(msg.err), true)
			if m.input.Value() == "" {
				m.setInput(msg.text) // give the text back rather than lose it
			}
			return m, nil
		}
		if cv, ok := m.convs[msg.contact]; ok {
			cv.clearNew() // answering: the new messages have been seen
			if a := msg.msg.Attachment; a != nil {
				cv.dropUpload(a.ClientID) // its "uploading" line becomes the message
				if m.uploadNotice == m.noticeSeq {
					m.notice, m.noticeErr = "", false // the message line says "sent" now
				}
			}
			cv.appendMsg(msg.msg, m.c.loc)
			cv.toBottom()
		}
		return m, tea.Batch(m.c.loadContacts(m.b), m.wantPreview(msg.msg))
	case sentElsewhereMsg:
		if cv, ok := m.convs[msg.contact]; ok && cv.loaded {
			cv.appendMsg(msg.msg, m.c.loc)
		}
		return m, tea.Batch(m.c.loadContacts(m.b), m.wantPreview(msg.msg))
	case addedMsg:
		if msg.err == nil {
			m.wantOpen = msg.contact.Name
			if msg.contact.KeyChanged {
				m.setNotice("⚠ "+msg.contact.Name+"'s identity key changed — /accept to review it", true)
			} else if msg.contact.Verified {
				m.setNotice(msg.contact.Name+" is already a verified contact; the key has not changed", false)
			} else {
				m.setNotice("added "+msg.contact.Name+" — compare safety numbers with /verify", false)
			}
			return m, m.c.loadContacts(m.b)
		}
		return m, nil
	case opDoneMsg:
		return m, m.onOpDone(msg)
	case deleteTargetMsg:
		return m, m.onDeleteTarget(msg)
	case notifySettingsMsg:
		m.c.notify = chat.NotifySettings(msg)
		return m, nil
	case downloadedMsg:
		return m, m.onDownloaded(msg)
	case pendingMsg:
		return m, m.onPending(msg) // attachments.go
	case resumedMsg:
		return m, m.onResumed(msg)
	case previewMsg:
		return m, m.onPreview(msg)
	}
	return m, nil
}

func (m *mainScreen) handleKey(msg tea.KeyPressMsg) (screen, tea.Cmd) {
	k := m.c.keys
	switch {
	case key.Matches(msg, k.AddContact):
		return m, pushDialog(newAddContactDialog(m.c, m.b, ""))
	case key.Matches(msg, k.Download):
		if m.open == "" {
			return m, nil
		}
		return m, m.downloadCommand()
	// "?" opens help from the contact list only: in the input it is text (a message may
	// start with "?"); f1 works everywhere.
	case key.Matches(msg, k.Help) || (m.focus == focusContacts && key.Matches(msg, k.ListHelp)):
		return m, pushDialog(newHelpDialog(m.c))
	case key.Matches(msg, k.FocusSwitch):
		// In "/file PATH" Tab completes the path (attachments.go).
		if v := m.input.Value(); m.focus == focusInput && strings.HasPrefix(v, "/file ") && !strings.Contains(v, "\n") {
			typed := strings.TrimPrefix(v, "/file ")
			switch more, names := completePath(typed); {
			case more != "":
				m.setInput(v + more)
			case len(names) > 1: // what a shell's second Tab shows
				m.setNotice(completionNotice(names), false)
			case len(names) == 0:
				m.setNotice("no file or folder starts with "+sanitize(filepath.Base(expandPath(typed))), true)
			}
			return m, nil
		}
		if m.focus == focusInput {
			m.focus = focusContacts
			m.input.Blur()
			if i := m.indexOf(m.open); i >= 0 {
				m.selected = i
			}
			return m, nil
		}
		m.focus = focusInput
		return m, m.input.Focus()
	case key.Matches(msg, k.NextContact):
		return m, m.openIndex(m.indexOf(m.open) + 1)
	case key.Matches(msg, k.PrevContact):
		return m, m.openIndex(m.indexOf(m.open) - 1)
	case key.Matches(msg, k.ScrollUp):
		if cv := m.conv(); cv != nil {
			cv.scrollUp(m.renderer(), max(1, m.convBodyHeight()-2), m.convBodyHeight())
			return m, m.maybeLoadMore()
		}
		return m, nil
	case key.Matches(msg, k.ScrollDown):
		if cv := m.conv(); cv != nil {
			cv.scrollDown(m.renderer(), max(1, m.convBodyHeight()-2))
		}
		return m, nil
	case key.Matches(msg, k.Bottom):
		if cv := m.conv(); cv != nil {
			cv.toBottom()
		}
		return m, nil
	case key.Matches(msg, k.Top):
		if cv := m.conv(); cv != nil {
			// The oldest message, not the oldest loaded: the pages still to come
			// follow (onHistory).
			cv.seekOldest = !cv.exhausted
			cv.scrollUp(m.renderer(), math.MaxInt32, m.convBodyHeight())
			return m, m.maybeLoadMore()
		}
		return m, nil
	}

	if m.focus == focusContacts {
		switch {
		case key.Matches(msg, k.Up):
			m.selected = max(0, m.selected-1)
		case key.Matches(msg, k.Down):
			m.selected = min(len(m.contacts)-1, m.selected+1)
		case key.Matches(msg, k.Open):
			cmd := m.openIndex(m.selected)
			m.focus = focusInput
			return m, tea.Batch(cmd, m.input.Focus())
		case key.Matches(msg, k.Close):
			m.focus = focusInput
			return m, m.input.Focus()
		case msg.Text != "" && msg.Mod&^tea.ModShift == 0:
			// Text typed while the list has the focus is for the input (it vanished, and
			// the Enter after it opened a conversation): the focus goes back, the key
			// with it. j and k, matched above, still move in the list.
			// The conversation the list highlights is the one written to: with j/k moved
			// to another, the text went to the open one.
			var open tea.Cmd
			if m.selected >= 0 && m.selected < len(m.contacts) && m.contacts[m.selected].Name != m.open {
				open = m.openIndex(m.selected)
			}
			m.focus = focusInput
			focus := m.input.Focus()
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			return m, tea.Batch(open, focus, cmd)
		}
		return m, nil
	}

	switch {
	case key.Matches(msg, k.Send):
		return m, m.submit()
	case key.Matches(msg, k.Close):
		// The notice goes; the draft stays (ClearDraft clears it).
		m.setNotice("", false)
		return m, nil
	case key.Matches(msg, k.ClearDraft):
		// All of it: the textarea's own ctrl+u cleared only the line the cursor is on.
		m.resetInput()
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *mainScreen) indexOf(name string) int {
	return slices.IndexFunc(m.contacts, func(ct chat.Contact) bool { return ct.Name == name })
}

// openIndex opens the conversation of the i-th contact (wrapping around).
func (m *mainScreen) openIndex(i int) tea.Cmd {
	if len(m.contacts) == 0 {
		return nil
	}
	i = (i%len(m.contacts) + len(m.contacts)) % len(m.contacts)
	return m.openContact(m.contacts[i].Name)
}

// openContact shows a contact's conversation, loading its newest page the first time,
// and marks it read.
func (m *mainScreen) openContact(name string) tea.Cmd {
	prev := m.open
	if name != m.open {
		m.switchDraft(name)
	}
	m.open = name
	if i := m.indexOf(name); i >= 0 {
		m.selected = i
	}
	cv := m.conv()
	var cmds []tea.Cmd
	if !cv.loaded && !cv.loading {
		cv.loading = true
		if ct, ok := m.contact(name); ok && ct.Unread > 0 {
			// From the first unread message: thousands of them cost one read, not a
			// page each back to it (openAtNew).
			cmds = append(cmds, cv.stamp(m.c.loadFromUnread(m.b, name, ct.Unread)))
		} else {
			cmds = append(cmds, cv.stamp(m.c.loadHistory(m.b, name, 0)))
		}
	}
	// The "N new" divider is this visit's: over the messages unread as it opens, none
	// when all were read (a divider left from an earlier visit sat over messages read
	// long ago).
	switch ct, ok := m.contact(name); {
	case ok && ct.Unread > 0 && cv.loaded:
		cmds = append(cmds, m.openAtNew(cv, ct.Unread))
	case ok && ct.Unread > 0:
		cv.pendingNew = ct.Unread
	case name != prev:
		cv.clearNew()
		cv.reading = false
	}
	return tea.Batch(cmds...) // marked read once in view (readSeen)
}

// openAtNew puts the "N new" divider above the n unread messages and, when the
// conversation is open, the view at it (showNew): loading older pages first while
// fewer than n incoming messages are loaded.
func (m *mainScreen) openAtNew(cv *conversation, n int) tea.Cmd {
	if cv.incoming() < n && !cv.exhausted {
		cv.pendingNew = n
		if cv.loading {
			return nil
		}
		cv.loading = true
		return cv.stamp(m.c.loadHistory(m.b, cv.contact, cv.oldestID()))
	}
	m.placeNew(cv, n)
	return nil
}

// placeNew puts the "N new" divider above the n newest incoming messages loaded and,
// when the conversation is open, the view at it.
func (m *mainScreen) placeNew(cv *conversation, n int) {
	cv.pendingNew = 0
	cv.markNew(n)
	cv.reading = cv.newItem != nil
	if cv.contact == m.open {
		cv.showNew(m.renderer(), m.convBodyHeight())
	}
}

// switchDraft keeps what is typed for the conversation being left and brings back
// the draft of the one being opened, as Signal does: with one input for all of them, a
// text begun for one contact was sent to the next one opened. Text typed before any
// conversation was open stays in the input.
func (m *mainScreen) switchDraft(to string) {
	if cv := m.conv(); cv != nil {
		cv.draft, cv.draftPictured = m.input.Value(), m.pictured
		m.resetInput()
	}
	if cv, ok := m.convs[to]; ok && cv.draft != "" && m.input.Value() == "" {
		m.setInput(cv.draft)
		m.pictured = cv.draftPictured
		cv.draft, cv.draftPictured = "", false
	}
}

// paneInView: the open conversation's pane is what the user looks at — the terminal
// has the focus (Bubble Tea's FocusMsg / BlurMsg, reported since View asks for them),
// no dialog is drawn over it, and it is on screen (not the folded-away list of a narrow
// terminal). Where in the conversation the view is, is the caller's to ask.
func (m *mainScreen) paneInView() bool {
	return m.c.focused && !m.c.covered && !(m.narrow() && m.focus == focusContacts)
}

// readSeen marks the open conversation read when its unread messages are in view, as
// Signal does, and not before — a read receipt tells the sender they were seen: the
// pane is in view (paneInView: focused, no dialog over it, not the list of a narrow
// terminal), its messages are loaded and the view is at the newest one (not scrolled
// back with them below it, "↓ N new"). Messages held so get the "N new" divider when
// they are read.
func (m *mainScreen) readSeen() tea.Cmd {
	if m.open == "" {
		return nil
	}
	ct, ok := m.contact(m.open)
	cv := m.convs[m.open]
	if !ok || ct.Unread == 0 || cv == nil || !cv.loaded || cv.pendingNew > 0 {
		return nil // (pendingNew: older pages on their way to the first unread, openAtNew)
	}
	if !m.paneInView() {
		cv.heldUnread = !cv.reading
		return nil
	}
	if !cv.atBottom() {
		cv.heldUnread = !cv.reading
		return m.markReadThrough(cv, ct)
	}
	if cv.heldUnread && !cv.reading {
		cv.markNew(ct.Unread)
	}
	cv.heldUnread, cv.reading = false, false
	return m.markRead(m.open)
}

// markReadThrough marks read the unread messages up to the newest one in view, when the
// backend can (ReadThroughMarker); the messages below the view stay unread.
func (m *mainScreen) markReadThrough(cv *conversation, ct chat.Contact) tea.Cmd {
	rt, ok := m.b.(ReadThroughMarker)
	h := m.convBodyHeight()
	through := cv.lastInView(h, m.unreadBelow(cv, h) > 0)
	if !ok || through <= cv.readThrough {
		return nil
	}
	left := min(ct.Unread, cv.incomingAfter(through))
	if left >= ct.Unread {
		return nil // nothing unread in view
	}
	cv.readThrough = through
	m.setUnread(ct.Name, left)
	name := ct.Name
	return m.c.op("markread", name, func(ctx context.Context) error { return rt.MarkReadThrough(ctx, name, through) })
}

func (m *mainScreen) markRead(name string) tea.Cmd {
	m.setUnread(name, 0)
	b := m.b
	return m.c.op("markread", name, func(ctx context.Context) error { return b.MarkRead(ctx, name) })
}

// maybeLoadMore asks for an older page when the top of the loaded history is near.
func (m *mainScreen) maybeLoadMore() tea.Cmd {
	cv := m.conv()
	if cv == nil || !cv.loaded || cv.loading || cv.exhausted {
		return nil
	}
	h := m.convBodyHeight()
	if cv.linesAbove(m.renderer(), 2*h+1) > 2*h {
		return nil
	}
	cv.loading = true
	return cv.stamp(m.c.loadHistory(m.b, cv.contact, cv.oldestID()))
}

func (m *mainScreen) onContacts(msg contactsMsg) tea.Cmd {
	if msg.err != nil {
		m.setNotice("contacts: "+errText(msg.err), true)
		return nil
	}
	list := append([]chat.Contact(nil), msg.list...)
	sortContacts(list)
	// While a conversation is open its messages are read as they arrive in view
	// (readSeen, after this).
	var cmds []tea.Cmd
	m.contacts = list
	if m.open != "" && m.indexOf(m.open) < 0 {
		// Removed by a headless 'pfschat remove' through the owner socket (/remove
		// closes it itself): its conversation is gone from the store, and a draft for
		// them must not go to the contact opened instead.
		m.setNotice(m.open+" was removed from this profile", false)
		delete(m.convs, m.open)
		m.open = ""
		m.resetInput()
	}
	first := !m.listed
	m.listed = true
	if first && m.wantOpen != "" && m.indexOf(m.wantOpen) < 0 {
		// --open NAME with a name that is no contact: say so rather than open another.
		m.setNotice(fmt.Sprintf("cannot open %q: no such contact; add them with /add %s", m.wantOpen, m.wantOpen), true)
		m.wantOpen = ""
	}
	switch {
	case m.wantOpen != "" && m.indexOf(m.wantOpen) >= 0:
		name := m.wantOpen
		m.wantOpen = ""
		cmds = append(cmds, m.openContact(name))
	case m.open == "" && len(list) > 0:
		cmds = append(cmds, m.openContact(list[0].Name))
	default:
		if i := m.indexOf(m.open); i >= 0 && m.focus == focusInput {
			m.selected = i
		}
		m.selected = min(max(m.selected, 0), max(0, len(list)-1))
	}
	return tea.Batch(cmds...)
}

// sortContacts puts the contacts in the list's order: by section (contacts, requests,
// blocked), then those with unread messages, then by last activity.
func sortContacts(list []chat.Contact) {
	sort.SliceStable(list, func(i, j int) bool {
		if si, sj := section(list[i]), section(list[j]); si != sj { // contacts, requests, blocked
			return si < sj
		}
		// Unread conversations first, except muted ones: as in Signal, a muted chat does
		// not jump up when messages arrive (it keeps its place by last activity).
		ui, uj := list[i].Unread > 0 && !list[i].Muted, list[j].Unread > 0 && !list[j].Muted
		if ui != uj {
			return ui
		}
		return list[i].LastActivity.After(list[j].LastActivity)
	})
}

// setUnread changes a contact's count in the list at once (the backend call that marks
// them read confirms it) and sorts it to its place: a message read as it arrived in the
// open conversation had sorted that contact above others with unread messages.
func (m *mainScreen) setUnread(name string, n int) {
	i := m.indexOf(name)
	if i < 0 {
		return
	}
	m.contacts[i].Unread = n
	var sel string
	if m.selected >= 0 && m.selected < len(m.contacts) {
		sel = m.contacts[m.selected].Name
	}
	sortContacts(m.contacts)
	if j := m.indexOf(sel); j >= 0 {
		m.selected = j
	}
}

func (m *mainScreen) onHistory(msg historyMsg) tea.Cmd {
	cv, ok := m.convs[msg.contact]
	if !ok || msg.epoch != cv.epoch { // (read before the conversation was cleared)
		return nil
	}
	cv.loading = false
	if msg.err != nil {
		cv.loadErr = msg.err
		m.setNotice("history: "+errText(msg.err), true)
		if cv.loaded && cv.pendingNew > 0 {
			// An older page on the way to the first unread failed: the divider goes
			// over what is loaded rather than hold back readSeen for good.
			m.placeNew(cv, cv.pendingNew)
		}
		return nil
	}
	cv.loaded = true
	if (msg.window && !msg.more) || (!msg.window && len(msg.msgs) < historyPage) {
		cv.exhausted = true
	}
	cv.prepend(msg.msgs, m.c.loc)
	cv.markBeginning()
	cv.setGaps(msg.gaps)
	var previews []tea.Cmd
	for _, hm := range msg.msgs {
		previews = append(previews, m.wantPreview(hm))
	}
	if cv.pendingNew > 0 {
		previews = append(previews, m.openAtNew(cv, cv.pendingNew))
	}
	if cv.seekOldest && msg.contact == m.open {
		cv.scrollUp(m.renderer(), math.MaxInt32, m.convBodyHeight())
		cv.seekOldest = !cv.exhausted
	}
	if msg.contact == m.open {
		return tea.Batch(append(previews, m.maybeLoadMore())...)
	}
	return tea.Batch(previews...)
}

func (m *mainScreen) onOpDone(msg opDoneMsg) tea.Cmd {
	if msg.err != nil {
		if msg.op != "markread" {
			m.setNotice(msg.op+": "+errText(msg.err), true)
		}
		return nil
	}
	switch msg.op {
	case "verify":
		m.setNotice(msg.contact+" is verified", false)
	case "accept":
		m.setNotice("accepted "+msg.contact+"'s new key — verify it with /verify", false)
		// Messages held behind the key change are readable now: load the conversation
		// again from the store.
		delete(m.convs, msg.contact)
		if m.open == msg.contact {
			return tea.Batch(m.openContact(msg.contact), m.c.loadContacts(m.b))
		}
	case "reject":
		m.setNotice("kept the key you trusted for "+msg.contact+"; the rejected key's messages stay held (/accept to take it after all)", false)
		if m.open == msg.contact {
			return m.c.loadContacts(m.b)
		}
	case "rotate":
		m.setNotice("prekeys rotated", false)
	case "reset":
		m.setNotice("session with "+msg.contact+" reset; the next message starts a new one", false)
	case "repin":
		if m.relayKey != nil {
			m.setNotice("relay key re-pinned to "+m.relayKey.Presented+"; reconnecting", false)
		}
		m.relayKey = nil
	case "markread":
		return nil
	case "accept-request", "block", "unblock", "remove", "nick", "unnick", "mute", "unmute":
		text, _ := m.contactOpDone(msg)
		m.setNotice(text, false)
		return m.c.loadContacts(m.b)
	case "notify":
		return nil
	case "delete", "clear":
		// The conversation and the list change on the controller's MessagesDeleted
		// event (onDeleted), as for a deletion through the owner socket: doing it here
		// too did it twice (the event comes before or after this).
		m.setNotice(map[string]string{"delete": "message deleted on this device", "clear": "conversation cleared on this device"}[msg.op], false)
		return nil
	}
	return m.c.loadContacts(m.b)
}

// handleEvent applies one controller event.
func (m *mainScreen) handleEvent(ev chat.Event) tea.Cmd {
	switch ev.Kind {
	case chat.ConnectionChanged:
		m.conn = ev.State
		if rk := relayKeyMismatch(ev.State); rk != nil {
			m.relayKey = rk
		} else if ev.State.Status == chat.Online {
			m.relayKey = nil
		}
		if ev.State.Status == chat.Online && !m.resumed {
			m.resumed = true
			return m.resumeUploads() // attachments.go
		}
		if ev.State.Status == chat.Reconnecting && ev.State.RetryIn > 0 {
			m.retryDeadline = m.c.now().Add(ev.State.RetryIn)
			// The countdown keeps the width of its first number: the layout does not
			// change when it goes below 10 s (the fingerprint went and came back).
			m.retryDigits = len(strconv.Itoa(int(math.Ceil(ev.State.RetryIn.Seconds()))))
			if !m.ticking {
				m.ticking = true
				return tick()
			}
		}
		return nil
	case chat.MessageReceived, chat.Undecryptable:
		var cmds []tea.Cmd
		if ev.Message != nil {
			// Appended even while the first page is still loading: the page may have been
			// read before this message was committed, and prepend drops duplicates.
			fresh := true // not shown before (an event again for a message shown is not counted twice)
			if cv, ok := m.convs[ev.Contact]; ok {
				fresh = cv.appendMsg(*ev.Message, m.c.loc)
				cmds = append(cmds, m.c.loadGaps(m.b, ev.Contact, 0), m.c.loadGaps(m.b, ev.Contact, chat.GapWait+time.Second))
			}
			if ct, ok := m.contact(ev.Contact); ok && fresh && !ev.Message.Outgoing {
				// Unread until seen: counted at once (the list read again below
				// confirms it), for the "↓ N new" row (unreadBelow) and readSeen.
				m.setUnread(ev.Contact, ct.Unread+1)
			}
			cmds = append(cmds, m.maybeAutoDownload(*ev.Message)) // attachments.go
		}
		cmds = append(cmds, m.notification(ev)) // desktop notification and bell (notify.go)
		cmds = append(cmds, m.c.loadContacts(m.b))
		return tea.Batch(cmds...)
	case chat.DeliveryChanged:
		if ev.Message == nil {
			return nil
		}
		cv, ok := m.convs[ev.Contact]
		if ok {
			if cv.sentElsewhere(*ev.Message) {
				return m.c.loadSentElsewhere(m.b, ev.Contact, ev.Message.ID)
			}
			cv.update(*ev.Message)
		}
		if (!ok || !cv.loaded) && ev.Message.Outgoing && (ev.Message.State == chat.Sent || ev.Message.State == chat.Failed) {
			// A message sent through the owner socket ('pfschat send' or 'send-file') to
			// a contact whose conversation is not shown: it moved their last activity,
			// so the list is read again (sentElsewhereMsg does it for a shown one).
			return m.c.loadContacts(m.b)
		}
		return nil
	case chat.ContactKeyChanged:
		// A warning, not a pop-up: a dialog appearing while someone types could take a
		// keystroke as "accept". The dialog opens on /accept or /verify, never by itself.
		m.setNotice("⚠ "+ev.Contact+"'s identity key changed — /accept to review it", true)
		return m.c.loadContacts(m.b)
	case chat.ContactAdded:
		return m.c.loadContacts(m.b)
	case chat.ContactChanged:
		// Muted, nicknamed, blocked, removed, …: by this screen's own commands, or by a
		// headless command ('pfschat mute NAME') through the owner socket into this
		// controller. The list is read again; the conversation's lines name the
		// contact (a nickname).
		if cv, ok := m.convs[ev.Contact]; ok {
			cv.invalidate()
		}
		// A request or a new key accepted: the contact's files that waited may now
		// download by themselves (attachments.go).
		return tea.Batch(m.c.loadContacts(m.b), m.fetchWaiting(ev.Contact))
	case chat.MessagesRead:
		// Marked read through this controller: by this screen (readSeen), or by a
		// headless 'pfschat recv' or an API client's markRead through the owner socket.
		// The list is read again for its unread counts.
		return m.c.loadContacts(m.b)
	case chat.MessagesDeleted:
		// Deleted by /delete or /clear here (onOpDone leaves it to this), or by a headless
		// 'pfschat delete-message' or 'clear' through the owner socket: a loaded
		// conversation loses them in place (onDeleted: a deleted message that is not
		// loaded changes nothing shown), and the list is read again for its counts.
		var id int64
		if ev.Message != nil {
			id = ev.Message.ID
		}
		return tea.Batch(m.onDeleted(ev.Contact, id), m.c.loadContacts(m.b))
	case chat.TransferProgress:
		return m.onTransfer(ev) // attachments.go
	}
	if ev.Err != nil {
		m.c.log.Warn("chat event", "kind", ev.Kind, "err", ev.Err)
	}
	return nil
}

// submit sends the input, or runs it as a slash command.
func (m *mainScreen) submit() tea.Cmd {
	text := m.inputText() // exactly as typed or pasted: never trimmed
	if strings.TrimSpace(text) == "" {
		return nil
	}
	if cmd := strings.TrimRight(text, " \n"); strings.HasPrefix(cmd, "/") && !strings.HasPrefix(cmd, "//") {
		text = cmd
	}
	if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
		m.resetInput()
		return m.command(strings.Fields(text))
	}
	if strings.HasPrefix(text, "//") {
		text = text[1:] // "//" escapes a message that starts with a slash
	}
	if m.open == "" {
		m.setNotice("no conversation open: add a contact with /add NAME", true)
		return nil
	}
	if ct, ok := m.contact(m.open); ok && ct.KeyChanged {
		// Sending is blocked until the new key is accepted; the text stays in the input.
		// A notice, not the dialog: this Enter ends a line someone is typing, and the
		// dialog opening under their next keystrokes took the "a" of the next word as
		// "accept" (found by a user typing on). It opens on /accept or /verify, asked for.
		m.setNotice(m.open+"'s identity key changed: sending is paused; review the new key with /accept", true)
		return nil
	}
	if len(text) > chat.MaxTextBytes {
		m.setNotice(tooLong(len(text)), true) // the text stays in the input
		return nil
	}
	m.resetInput()
	m.setNotice("", false)
	return m.c.send(m.b, m.open, text)
}

// View draws the main screen at exactly the terminal's size.
func (m *mainScreen) View() string {
	w, h := m.c.width, m.c.height
	if w < minTerminalWidth || h < minTerminalHeight {
		// Wrapped to the width it has: at 20×5 the one line was cut ("pfschat needs at lea").
		return m.c.styles.Muted.Render(lipgloss.Wrap("pfschat needs at least 20×8", max(1, w), " "))
	}
	bodyH := m.bodyHeight()
	var rows []string
	switch {
	case m.narrow() && m.focus == focusContacts:
		rows = m.contactsView(w, bodyH)
	case m.narrow():
		rows = m.conversationView(w, bodyH)
	default:
		// Both panes are exactly sized line by line, so joining is concatenation: no
		// width measuring of the whole frame.
		left := m.contactsView(contactsWidth-1, bodyH)
		right := m.conversationView(m.convWidth(), bodyH)
		sep := m.c.styles.PaneBorder.Render("│")
		rows = make([]string, bodyH)
		for i := range rows {
			rows[i] = left[i] + sep + right[i]
		}
	}
	rows = append(m.bannerRows(w), rows...)
	input := m.c.styles.InputBorder.Width(w).Render(m.input.View())
	input = m.inputMore(fitBlock(input, w, inputLines+1), w)
	return joinLines(rows) + "\n" + input + "\n" + m.statusView(w)
}

// inputMore says on the input's top border how many rows of a draft longer than the
// input are above its view ("↑ 2 more lines"): it scrolled with no sign of them.
func (m *mainScreen) inputMore(input string, w int) string {
	above := m.input.ScrollYOffset()
	if above <= 0 {
		return input
	}
	label := fmt.Sprintf(" ↑ %d more lines ", above)
	if above == 1 {
		label = " ↑ 1 more line "
	}
	lw := ansi.StringWidth(label)
	if lw+4 > w {
		return input
	}
	s := &m.c.styles
	top := s.PaneBorder.Render(strings.Repeat("─", w-lw-2)) + s.InputMore.Render(label) + s.PaneBorder.Render("──")
	if _, rest, ok := strings.Cut(input, "\n"); ok {
		return top + "\n" + rest
	}
	return input
}

// exactSize tells the root model this screen always renders exactly width×height.
func (m *mainScreen) exactSize() bool {
	return m.c.width >= minTerminalWidth && m.c.height >= minTerminalHeight
}

// padRows pads lines (each already exactly w wide) with blank lines to h.
func padRows(lines []string, w, h int) []string {
	if len(lines) > h {
		return lines[:h]
	}
	blank := spaces(w)
	for len(lines) < h {
		lines = append(lines, blank)
	}
	return lines
}
