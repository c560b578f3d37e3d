package ui

import (
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// conversation is the scrollback of one contact. It is a lazy list: messages are loaded
// from the backend a page at a time as the person scrolls up, each message is rendered
// once per width and cached, and a frame renders only the lines it shows. Long histories
// (gomuks#141) therefore cost the same per frame as short ones.
//
// The scroll position is anchored at the bottom: anchor is the index of the message
// whose line is at the bottom of the view and anchorOff how many of its lines are hidden
// below. At anchor == last and anchorOff == 0 the view follows new messages.
type conversation struct {
	contact string
	// draft is what was typed for this conversation and not sent when another was
	// opened (switchDraft), with whether it holds control pictures (mainScreen.pictured).
	draft         string
	draftPictured bool
	items         []*msgItem // oldest first
	byID          map[int64]*msgItem

	anchor    int
	anchorOff int

	loading   bool // a history page is on its way
	exhausted bool // the oldest message has been loaded
	loaded    bool // the first page arrived
	loadErr   error

	// seekOldest: ctrl+home was pressed; each page that arrives scrolls to its top and
	// asks for the next until the oldest message is on screen.
	seekOldest bool

	late map[int64]chat.Message // delivery updates that arrived before their page
	// lateFiles: the files of messages not loaded yet whose download ended while a page
	// was on its way (updateFile), applied when the page arrives.
	lateFiles map[int64]*chat.Attachment
	// deleted: the messages deleted on this device while shown (remove); a page read
	// before the deletion does not show them again.
	deleted map[int64]bool
	// epoch counts the times the conversation was cleared (clearAll): a page read
	// before (stamp) is not shown.
	epoch int

	pendingNew int      // unread count to mark once the messages are loaded
	newItem    *msgItem // the message carrying the "N new" divider
	beginning  *msgItem // the message carrying "beginning of the conversation" (markBeginning)
	// heldUnread: unread messages waited here out of view (scrolled back, the
	// terminal without the focus): they get the "N new" divider once read (readSeen).
	heldUnread bool
	// reading: opened with unread messages, the view put at their "N new" divider
	// (showNew) and not all of them marked read yet: the divider stays where it is
	// while they are read (readSeen).
	reading bool
	// readThrough is the newest message this screen marked read through (readSeen).
	readThrough int64

	// uploads are files on their way to the relay, shown below the messages until
	// their message exists (attachments.go).
	uploads []*upload
}

// markNew puts a "N new" divider above the n-th newest incoming message, or above the
// oldest loaded incoming one when fewer are loaded; N counts the incoming messages it sits
// above. It replaces any earlier divider; with no incoming message loaded there is none.
func (cv *conversation) markNew(n int) {
	cv.clearNew()
	seen, at := 0, -1
	for i := len(cv.items) - 1; i >= 0 && seen < n; i-- {
		if !cv.items[i].m.Outgoing {
			seen, at = seen+1, i
		}
	}
	if at < 0 {
		return
	}
	it := cv.items[at]
	it.newMark, it.lines = seen, nil
	cv.newItem = it
}

// showNew puts the "N new" divider on the top row of a view h lines high, as Signal
// opens a conversation at its first unread message: opened at the newest, the unread
// messages above the view were marked read without ever being on screen. When the
// divider and everything below it fit, the view stays at the newest.
func (cv *conversation) showNew(r *convRenderer, h int) {
	at := slices.Index(cv.items, cv.newItem)
	if at < 0 {
		return
	}
	n := len(r.lines(cv.newItem))
	cv.anchor, cv.anchorOff = at, max(0, n-h)
	if n < h {
		cv.scrollDown(r, h-n)
	}
}

// lastInView is the newest message whose last line is in view (0 when none is) in a
// view bh lines high; covered: the "↓ N new" row hides the view's bottom line
// (mainScreen.unreadBelow), so the message there is not in view.
func (cv *conversation) lastInView(bh int, covered bool) int64 {
	i := cv.anchor
	if cv.anchorOff > 0 || (covered && bh > 1) {
		i--
	}
	if i < 0 || i >= len(cv.items) {
		return 0
	}
	return cv.items[i].m.ID
}

// incomingAfter counts the loaded incoming messages newer than message id.
func (cv *conversation) incomingAfter(id int64) int {
	n := 0
	for _, it := range cv.items {
		if !it.m.Outgoing && it.m.ID > id {
			n++
		}
	}
	return n
}

// incoming counts the loaded incoming messages.
func (cv *conversation) incoming() int { return cv.incomingAfter(-1 << 62) }

func (cv *conversation) clearNew() {
	if cv.newItem != nil {
		cv.newItem.newMark, cv.newItem.lines = 0, nil
		cv.newItem = nil
	}
}

// stamp gives the history page load reads the conversation's epoch: onHistory drops a
// page read before the conversation was cleared.
func (cv *conversation) stamp(load tea.Cmd) tea.Cmd {
	epoch := cv.epoch
	return func() tea.Msg {
		msg := load()
		if hm, ok := msg.(historyMsg); ok {
			hm.epoch = epoch
			return hm
		}
		return msg
	}
}

// msgItem is one message with its cached rendering.
type msgItem struct {
	m       chat.Message
	first   bool // the oldest message, and no older one exists: "beginning of the conversation" above it
	withDay bool // a day separator goes above this message
	gap     bool // "a message from NAME has not arrived" goes above this message
	newMark int  // > 0: a "N new" divider goes above this message
	// keyChange: "NAME's safety number changed" goes above this message, the first
	// from a card other than the previous incoming message's (setKeyChange).
	keyChange bool

	lines []string // rendered at width, naming the contact name; nil = stale
	width int
	// name and senderW: the contact's name as shown and the sender column's width the
	// lines were rendered with (a /nick changes both).
	name    string
	senderW int
}

func newConversation(contact string) *conversation {
	return &conversation{contact: contact, byID: make(map[int64]*msgItem)}
}

func (cv *conversation) atBottom() bool {
	return len(cv.items) == 0 || (cv.anchor >= len(cv.items)-1 && cv.anchorOff == 0)
}

func (cv *conversation) oldestID() int64 {
	if len(cv.items) == 0 {
		return 0
	}
	return cv.items[0].m.ID
}

// sentElsewhere reports whether m is an outgoing message newer than any shown that
// this screen did not send (`pfschat send` through the owner): its delivery event is
// the first the UI hears of it. An unknown message older than the newest shown is one
// of the pages not loaded yet, and stays there.
func (cv *conversation) sentElsewhere(m chat.Message) bool {
	if !m.Outgoing || !cv.loaded || cv.loading || cv.byID[m.ID] != nil {
		return false
	}
	for _, it := range cv.items {
		if it.m.ID > m.ID {
			return false
		}
	}
	return true
}

// prepend adds an older page (given newest first, as History returns it).
func (cv *conversation) prepend(newestFirst []chat.Message, loc *time.Location) {
	if len(newestFirst) == 0 {
		return
	}
	older := make([]*msgItem, 0, len(newestFirst))
	for i := len(newestFirst) - 1; i >= 0; i-- {
		m := newestFirst[i]
		if _, dup := cv.byID[m.ID]; dup || cv.deleted[m.ID] {
			continue
		}
		if up, ok := cv.late[m.ID]; ok {
			delete(cv.late, m.ID)
			if up.State >= m.State { // delivery states only move forward
				m = up
			}
		}
		if a, ok := cv.lateFiles[m.ID]; ok && m.Attachment != nil {
			delete(cv.lateFiles, m.ID)
			m.Attachment = a
		}
		it := &msgItem{m: m}
		cv.byID[m.ID] = it
		older = append(older, it)
	}
	if len(older) == 0 {
		return
	}
	wasEmpty := len(cv.items) == 0
	cv.items = append(older, cv.items...)
	if wasEmpty {
		cv.anchor = len(cv.items) - 1
		cv.anchorOff = 0
	} else {
		cv.anchor += len(older)
	}
	// Day separators of the new page, and of the message that used to be the oldest.
	for i := 0; i <= len(older) && i < len(cv.items); i++ {
		cv.setDay(i, loc)
	}
	// Key changes in the new page, and at the first incoming message after it.
	for i := range cv.items {
		if cv.setKeyChange(i) && i >= len(older) {
			break
		}
	}
}

// appendMsg adds a new message in its place — at the bottom, or, for a late message
// (chat.Message.Order lower than messages already shown), before those — or updates it
// when already known (a delivery state change). It reports whether the message was new.
func (cv *conversation) appendMsg(m chat.Message, loc *time.Location) bool {
	if it, ok := cv.byID[m.ID]; ok {
		if m.Outgoing && m.State == chat.Pending && it.m.State != chat.Pending {
			// Send's answer after the message's sent event was shown: keep the mark.
			m.State, m.Reason = it.m.State, it.m.Reason
		}
		it.m = m
		it.lines = nil
		return false
	}
	follow := cv.atBottom()
	it := &msgItem{m: m}
	cv.byID[m.ID] = it
	at := len(cv.items)
	for m.Order != 0 && at > 0 && cv.items[at-1].m.Order > m.Order {
		at--
	}
	cv.items = slices.Insert(cv.items, at, it)
	cv.setDay(at, loc)
	cv.setKeyChange(at)
	if at+1 < len(cv.items) {
		cv.setDay(at+1, loc)
		for j := at + 1; j < len(cv.items); j++ { // the next incoming message's mark
			if cv.setKeyChange(j) {
				break
			}
		}
		if cv.anchor >= at && !follow {
			cv.anchor++ // the view stays on the message it showed
		}
	}
	if follow {
		cv.anchor, cv.anchorOff = len(cv.items)-1, 0
	}
	if at == 0 {
		cv.markBeginning() // a late message older than all shown
	}
	return true
}

// remove takes message id out of the loaded messages (deleted on this device) and
// reports whether it was loaded. The view keeps its place: the message at its bottom
// stays there (the one before it when that is the one removed), and at the newest it
// stays at the newest. The "N new" divider counts the incoming messages left under it.
func (cv *conversation) remove(id int64, loc *time.Location) bool {
	if cv.deleted == nil {
		cv.deleted = make(map[int64]bool)
	}
	cv.deleted[id] = true // a page read before the deletion does not bring it back
	it, ok := cv.byID[id]
	if !ok {
		return false
	}
	at := slices.Index(cv.items, it)
	follow := cv.atBottom()
	delete(cv.byID, id)
	cv.items = slices.Delete(cv.items, at, at+1)
	if cv.newItem != nil && !it.m.Outgoing && (it == cv.newItem || it.m.ID > cv.newItem.m.ID) {
		n := cv.newItem.newMark - 1
		cv.newItem.newMark, cv.newItem.lines = 0, nil
		if it == cv.newItem { // the divider goes to the next incoming message
			cv.newItem = nil
			for _, next := range cv.items[at:] {
				if !next.m.Outgoing {
					cv.newItem = next
					break
				}
			}
		}
		if cv.newItem != nil && n > 0 {
			cv.newItem.newMark, cv.newItem.lines = n, nil
		} else {
			cv.newItem = nil
		}
	}
	if cv.beginning == it {
		cv.beginning = nil
	}
	switch {
	case follow || len(cv.items) == 0:
		cv.anchor, cv.anchorOff = max(0, len(cv.items)-1), 0
	case at < cv.anchor:
		cv.anchor--
	case at == cv.anchor:
		cv.anchor, cv.anchorOff = max(0, at-1), 0
	}
	if at < len(cv.items) {
		cv.setDay(at, loc)
		for j := at; j < len(cv.items); j++ { // the next incoming message's mark
			if cv.setKeyChange(j) {
				break
			}
		}
	}
	cv.markBeginning()
	return true
}

// clearAll forgets every loaded message (the conversation was cleared on this device):
// what is not a message — the draft, the uploads — stays.
func (cv *conversation) clearAll() {
	cv.epoch++ // the pages on their way were read before
	cv.items, cv.byID = nil, make(map[int64]*msgItem)
	cv.anchor, cv.anchorOff = 0, 0
	cv.newItem, cv.beginning, cv.late, cv.lateFiles = nil, nil, nil, nil
	cv.seekOldest, cv.reading, cv.heldUnread, cv.pendingNew = false, false, false, 0
}

// markBeginning puts "beginning of the conversation" above the oldest message once the
// oldest has been loaded (exhausted), and takes it from any other. It is one of that
// message's lines, so scrolling reaches it: laid over the blank row above the messages,
// it was never seen at the top of a history longer than the pane.
func (cv *conversation) markBeginning() {
	var want *msgItem
	if cv.exhausted && len(cv.items) > 0 {
		want = cv.items[0]
	}
	if want == cv.beginning {
		return
	}
	if cv.beginning != nil {
		cv.beginning.first, cv.beginning.lines = false, nil
	}
	if want != nil {
		want.first, want.lines = true, nil
	}
	cv.beginning = want
}

// update replaces a known message (delivery state). An update for a message not loaded
// yet is kept until its page arrives, in case the page was read before the change.
func (cv *conversation) update(m chat.Message) {
	if it, ok := cv.byID[m.ID]; ok {
		if m.Attachment == nil { // delivery events carry no attachment: keep the one shown
			m.Attachment = it.m.Attachment
		}
		it.m = m
		it.lines = nil
		return
	}
	if cv.loading || !cv.loaded {
		if cv.late == nil {
			cv.late = make(map[int64]chat.Message)
		}
		if old, ok := cv.late[m.ID]; !ok || m.State >= old.State {
			cv.late[m.ID] = m
		}
	}
}

// updateFile sets the file of message id, whose download ended, and returns its item.
// A message not loaded while a page is on its way keeps it until the page arrives, as
// update does a delivery state: the page may have been read before the download ended
// (the conversation read again after /accept while its files download by themselves).
func (cv *conversation) updateFile(id int64, a *chat.Attachment) *msgItem {
	if it, ok := cv.byID[id]; ok {
		it.m.Attachment = a
		it.lines = nil
		return it
	}
	if cv.loading || !cv.loaded {
		if cv.lateFiles == nil {
			cv.lateFiles = make(map[int64]*chat.Attachment)
		}
		cv.lateFiles[id] = a
	}
	return nil
}

func (cv *conversation) setDay(i int, loc *time.Location) {
	it := cv.items[i]
	day := true
	if i > 0 {
		day = !sameDay(msgTime(cv.items[i-1].m).In(loc), msgTime(it.m).In(loc))
	}
	if day != it.withDay {
		it.withDay = day
		it.lines = nil
	}
}

// setKeyChange marks item i when it is an incoming message from another card than
// the incoming message before it (a changed identity key: "NAME's safety number
// changed" above it). It reports whether item i is an incoming message with a card.
func (cv *conversation) setKeyChange(i int) bool {
	it := cv.items[i]
	change := false
	incoming := !it.m.Outgoing && it.m.SenderCardID != ""
	if incoming {
		for j := i - 1; j >= 0; j-- {
			if p := cv.items[j].m; !p.Outgoing && p.SenderCardID != "" {
				change = p.SenderCardID != it.m.SenderCardID
				break
			}
		}
	}
	if change != it.keyChange {
		it.keyChange = change
		it.lines = nil
	}
	return incoming
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

// msgTime is when a message happened from the reader's point of view.
func msgTime(m chat.Message) time.Time {
	if m.Outgoing || m.SentAt.IsZero() {
		if !m.SentAt.IsZero() {
			return m.SentAt
		}
		return m.ReceivedAt
	}
	return m.SentAt
}

// view returns exactly h lines: the visible part of the conversation, bottom-aligned.
// It also reports whether the top of the loaded history is in view (time to load more).
func (cv *conversation) view(r *convRenderer, h int) (lines []string, topReached bool) {
	rev := make([]string, 0, h)
	i, skip := cv.anchor, cv.anchorOff
	for i >= 0 && i < len(cv.items) && len(rev) < h {
		ls := r.lines(cv.items[i])
		for j := len(ls) - 1 - skip; j >= 0 && len(rev) < h; j-- {
			rev = append(rev, ls[j])
		}
		skip = 0
		i--
	}
	topReached = i < 0
	lines = make([]string, h)
	pad := h - len(rev)
	for k := range lines {
		if k < pad {
			lines[k] = spaces(r.width)
		} else {
			lines[k] = rev[len(rev)-1-(k-pad)]
		}
	}
	return lines, topReached
}

// linesAbove counts rendered lines above the bottom of the view, up to limit, so
// scrolling can stop when the oldest message reaches the top.
func (cv *conversation) linesAbove(r *convRenderer, limit int) int {
	n := 0
	i, skip := cv.anchor, cv.anchorOff
	for i >= 0 && i < len(cv.items) && n < limit {
		n += len(r.lines(cv.items[i])) - skip
		skip = 0
		i--
	}
	return n
}

// scrollUp moves the view n lines towards older messages, stopping when the oldest
// loaded message is at the top of a view of height h.
func (cv *conversation) scrollUp(r *convRenderer, n, h int) {
	for ; n > 0; n-- {
		if cv.linesAbove(r, h+1) <= h {
			return
		}
		ls := len(r.lines(cv.items[cv.anchor]))
		if cv.anchorOff+1 < ls {
			cv.anchorOff++
			continue
		}
		if cv.anchor == 0 {
			return
		}
		cv.anchor--
		cv.anchorOff = 0
	}
}

// scrollDown moves the view n lines towards the newest message.
func (cv *conversation) scrollDown(r *convRenderer, n int) {
	cv.seekOldest = false // scrolling back down ends a ctrl+home still loading pages
	for ; n > 0; n-- {
		if cv.anchorOff > 0 {
			cv.anchorOff--
			continue
		}
		if cv.anchor >= len(cv.items)-1 {
			break
		}
		cv.anchor++
		cv.anchorOff = len(r.lines(cv.items[cv.anchor])) - 1
	}
}

func (cv *conversation) toBottom() {
	cv.seekOldest = false
	cv.anchor = max(0, len(cv.items)-1)
	cv.anchorOff = 0
}

// clampAnchor keeps the anchor valid after a resize changed line counts.
func (cv *conversation) clampAnchor(r *convRenderer) {
	if len(cv.items) == 0 {
		cv.anchor, cv.anchorOff = 0, 0
		return
	}
	cv.anchor = min(max(cv.anchor, 0), len(cv.items)-1)
	if n := len(r.lines(cv.items[cv.anchor])); cv.anchorOff >= n {
		cv.anchorOff = n - 1
	}
}

// invalidate drops every cached rendering (styles changed).
func (cv *conversation) invalidate() {
	for _, it := range cv.items {
		it.lines = nil
	}
}

// setGaps marks the loaded messages that have a missing message before them (chat.Gap)
// and unmarks the others: a message that arrived late clears its gap.
func (cv *conversation) setGaps(gaps []chat.Gap) {
	before := make(map[int64]bool, len(gaps))
	for _, g := range gaps {
		before[g.Before] = true
	}
	for _, it := range cv.items {
		if it.gap != before[it.m.ID] {
			it.gap, it.lines = !it.gap, nil
		}
	}
}

// upload is a file being uploaded: it has no message yet.
type upload struct {
	t     chat.Transfer
	since time.Time
}

// setUpload shows or moves on the upload t.
func (cv *conversation) setUpload(t chat.Transfer, now time.Time) {
	for _, u := range cv.uploads {
		if u.t.ClientID == t.ClientID {
			u.t = t
			return
		}
	}
	cv.uploads = append(cv.uploads, &upload{t: t, since: now})
}

// dropUpload removes the upload of clientID, if shown.
func (cv *conversation) dropUpload(clientID string) {
	cv.uploads = slices.DeleteFunc(cv.uploads, func(u *upload) bool { return u.t.ClientID == clientID })
}

// holdsKeyPending reports whether a message shown here waits behind its sender's
// changed identity key.
func (cv *conversation) holdsKeyPending() bool {
	for _, it := range cv.items {
		if it.m.KeyPending {
			return true
		}
	}
	return false
}
