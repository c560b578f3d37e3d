package ui

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

func (m *mainScreen) renderer() *convRenderer {
	me := m.b.Me()
	them := m.displayName(m.open) // the nickname, when the user gave one (contactsections.go)
	sw := max(ansi.StringWidth(me), ansi.StringWidth(them))
	width := max(1, m.convWidth()-2)
	return &convRenderer{c: m.c, me: me, contact: them, width: width, senderW: senderWidth(sw, width), previews: m.previews}
}

// senderWidth is the width of the sender column for names up to sw cells in a pane
// width cells wide: the longest name, at least 3 and at most 12 cells, nor more than a
// quarter of the pane — a long nickname on a narrow pane left the messages a column
// of a few cells. Longer names end in "…".
func senderWidth(sw, width int) int {
	return max(3, min(sw, 12, width/4))
}

// conversationView returns exactly h lines of exactly w cells.
func (m *mainScreen) conversationView(w, h int) []string {
	s := &m.c.styles
	cv := m.conv()
	if cv == nil {
		msg := "No conversation yet.\n\nAdd a contact with ctrl+n or /add NAME,\nthen compare safety numbers with /verify."
		msg = strings.Join(wrapText(msg, max(1, w-2)), "\n") // whole on a narrow pane (it was cut at 60 columns)
		return splitLines(fitBlock(lipgloss.Place(w, h, lipgloss.Center, lipgloss.Center, s.Empty.Render(msg)), w, h))
	}
	lines := []string{m.convHeader(cv, w)}
	bh := h - 1
	var footer []string // rows below the messages
	covered := 0        // message lines the "↓ N new" row covers
	if n := m.unreadBelow(cv, bh); n > 0 {
		// Scrolled back with unread messages below: say how many, on the pane's
		// bottom edge, until they are in view.
		footer = append(footer, m.unseenLine(n, w))
		bh--
		covered = 1
	}
	// Files on their way up have no message yet: their lines go below the messages.
	if len(cv.uploads) > 0 && cv.loaded {
		r := m.renderer()
		var ups []string
		for _, u := range cv.uploads {
			for _, l := range r.lines(uploadItem(u)) {
				ups = append(ups, " "+l+" ")
			}
		}
		if len(ups) > bh-1 {
			ups = ups[len(ups)-(bh-1):]
		}
		bh -= len(ups)
		footer = append(footer, ups...)
	}
	switch {
	case !cv.loaded && cv.loadErr != nil:
		lines = append(lines, fitLine(s.Error.Render(" could not load messages: "+errText(cv.loadErr)), w))
	case !cv.loaded:
		lines = append(lines, fitLine(s.Muted.Render(" loading…"), w))
	case len(cv.items) == 0 && len(footer) > 0:
	case len(cv.items) == 0:
		for _, l := range splitLines(hangWrap(" ", "No messages yet. Say hello — it is end-to-end encrypted.", w-1)) {
			lines = append(lines, fitLine(s.Empty.Render(l), w))
		}
	default:
		r := m.renderer()
		// The "↓ N new" row covers the view's bottom line instead of pushing the view
		// up a line when the first new message arrives: the lines being read stay
		// where they were (new messages do not move the view).
		view, top := cv.view(r, bh+covered)
		view = view[:bh]
		// Messages sit at the bottom; the mark of the history's top goes on the blank
		// row just above the first of them, not across the gap at the screen's top.
		above := 0
		for above < len(view) && strings.TrimSpace(view[above]) == "" {
			above++
		}
		above--
		// ("beginning of the conversation" is a line of the oldest message: markBeginning.)
		if top && cv.loading {
			view[max(above, 0)] = fitLine(s.Muted.Render("loading older messages…"), r.width)
		}
		// Cached message lines are exactly r.width = w-2 wide: a margin each side.
		for _, l := range view {
			lines = append(lines, " "+l+" ")
		}
	}
	if len(footer) > 0 {
		lines = append(padRows(lines, w, h-len(footer)), footer...)
	}
	return padRows(lines, w, h)
}

// convHeader is the conversation's first row, exactly w cells: the contact's name, its
// state (the longest form that fits), on a narrow terminal the unread count of the other
// conversations, and "↓ newer below" while scrolled back. Room is given in that order
// from the right: the count and "newer below" stay whole, the state goes short, and a
// name too long for what is left ends in "…" (cut, a 64-byte nickname hid the rest).
func (m *mainScreen) convHeader(cv *conversation, w int) string {
	s := &m.c.styles
	var labels []string // the state's forms, longest first
	tagStyle := s.KeyChanged
	if ct, ok := m.contact(m.open); ok {
		switch {
		case ct.Blocked:
			labels = []string{"⊘ blocked — /unblock to write again", "⊘ blocked"}
		case ct.Request:
			// What to do with a request is the point of the line: on 80 columns the long
			// form lost "/remove", so shorter ones keep all three.
			labels = []string{"✉ message request — /accept-request, /block or /remove",
				"✉ request: /accept-request /block /remove", "✉ /accept-request /block /remove", "✉ request"}
		case ct.KeyChanged:
			labels = []string{"⚠ identity key changed — /accept to review", "⚠ key changed"}
		case ct.Verified:
			labels, tagStyle = []string{"✔"}, s.Verified
		}
	}
	badge := ""
	if m.narrow() {
		// No contact list on screen: say when other conversations wait (muted ones
		// do not call for attention: they are counted in the list only).
		elsewhere := 0
		for _, ct := range m.contacts {
			if ct.Name != m.open && !ct.Muted {
				elsewhere += ct.Unread
			}
		}
		if elsewhere > 0 {
			badge = "  " + s.Unread.Render(fmt.Sprintf(" %d ", elsewhere)) + s.Muted.Render(" tab")
		}
	}
	newer := ""
	if !cv.atBottom() {
		newer = s.Muted.Render("↓ newer below")
	}
	room := w - 1 - ansi.StringWidth(badge) // for the name and the state, after " "
	if newer != "" {
		room -= 14 // "↓ newer below" and a space before it
	}
	name := m.displayName(m.open)
	if len(labels) > 0 {
		name = ellipsize(name, max(1, room-2-ansi.StringWidth(labels[len(labels)-1])))
	} else {
		name = ellipsize(name, max(1, room))
	}
	header := " " + s.ConvHeader.Render(name)
	if len(labels) > 0 {
		label := labels[len(labels)-1]
		for _, l := range labels {
			if ansi.StringWidth(name)+2+ansi.StringWidth(l) <= room {
				label = l
				break
			}
		}
		header += "  " + tagStyle.Render(label)
	}
	header += badge
	if newer != "" {
		header = fitLine(header, w-14) + newer
	}
	return fitLine(header, w)
}

// unseenLine is the "↓ 3 new · ctrl+end" line, right-aligned in a pane w wide: n
// unread messages are below the view (unreadBelow).
func (m *mainScreen) unseenLine(n, w int) string {
	s := &m.c.styles
	label := s.NewBelow.Render(fmt.Sprintf("↓ %d new", n))
	if full := label + s.Muted.Render(" · "+m.c.keys.Bottom.Help().Key); ansi.StringWidth(full)+2 <= w {
		label = full
	}
	return fitLine(spaces(w-ansi.StringWidth(label)-1)+label, w)
}

// unreadBelow is the number the "↓ N new" row shows on the bottom edge of the open
// conversation's message view, bh lines high: its unread messages below the view (the
// unread ones are the newest incoming messages, the list's count of them), 0 for no
// row. The row covers the view's bottom line (the lines being read stay where they were
// when it appears), so a message there counts as below. It counted the messages that
// arrived while the view was scrolled back: 25 after 16 of them had been read, and 3
// with 272 unread below.
func (m *mainScreen) unreadBelow(cv *conversation, bh int) int {
	if cv == nil || !cv.loaded || cv.atBottom() || bh <= 1 {
		return 0
	}
	ct, ok := m.contact(cv.contact)
	if !ok || ct.Unread == 0 || cv.incomingAfter(cv.lastInView(bh, false)) == 0 {
		return 0
	}
	return min(ct.Unread, cv.incomingAfter(cv.lastInView(bh, true)))
}

// convRenderer renders one message into lines of exactly the given width.
type convRenderer struct {
	c       *common
	me      string
	contact string
	width   int
	senderW int
	// previews are the pictures of images ready to draw, by message (preview.go).
	previews map[int64]*preview
}

func (r *convRenderer) lines(it *msgItem) []string {
	if it.lines != nil && it.width == r.width && it.name == r.contact && it.senderW == r.senderW {
		return it.lines
	}
	it.lines = r.render(it)
	it.width, it.name, it.senderW = r.width, r.contact, r.senderW
	return it.lines
}

func (r *convRenderer) render(it *msgItem) []string {
	s := &r.c.styles
	m := it.m
	var out []string
	if it.first {
		out = append(out, fitLine(s.Subtle.Render("beginning of the conversation"), r.width))
	}
	if it.withDay {
		out = append(out, r.daySeparator(msgTime(m)))
	}
	if it.gap {
		out = append(out, fitLine(s.Undecryptable.Render("  ⚠ a message from "+r.contact+" has not arrived"), r.width))
	}
	if it.keyChange {
		out = append(out, fitLine(s.KeyChanged.Render("  ⚠ "+r.contact+"'s safety number changed"), r.width))
	}
	if it.newMark > 0 {
		label := fmt.Sprintf("%d new", it.newMark)
		if it.newMark == 1 {
			label = "1 new"
		}
		out = append(out, fitLine(s.NewDivider.Render("── "+label+" "+strings.Repeat("─", max(0, r.width-ansi.StringWidth(label)-4))), r.width))
	}
	t := s.Time.Render(r.c.localTime(msgTime(m)).Format("15:04"))
	sender, senderStyle := r.contact, s.SenderThem
	if m.Outgoing {
		sender, senderStyle = r.me, s.SenderMe
	}
	sender = senderStyle.Render(padRight(ellipsize(sender, r.senderW), r.senderW))
	prefixW := 5 + 1 + r.senderW + 1
	mark, markW := r.mark(m)
	textW := max(2, r.width-prefixW-markW) // 2: one wide cluster; narrower panes cut the line

	var body []string
	switch {
	case !m.Outgoing && m.State == chat.Failed && m.Reason == chat.WithdrawnReason:
		body = wrapText("⚠ a message from "+r.contact+" was not delivered: "+m.Reason, textW)
		for i := range body {
			body[i] = s.Undecryptable.Render(body[i])
		}
	case chat.RetryRequested(m):
		// Asked for again (chat/PAYLOAD.md §4.3): the resend takes this line's place.
		body = wrapText("⚠ a message from "+r.contact+" could not be decrypted; asked "+r.contact+"'s pfschat to re-send it", textW)
		for i := range body {
			body[i] = s.Undecryptable.Render(body[i])
		}
	case isPreviousKeySummary(m):
		// Messages sent to our previous identity key (chat/previouskey.go): one line
		// per conversation, counted, never a placeholder each.
		body = wrapText("⚠ "+m.Reason+" (they were encrypted for the identity key this name had before)", textW)
		for i := range body {
			body[i] = s.Undecryptable.Render(body[i])
		}
	case !m.Outgoing && m.State == chat.UndecryptableState && m.Reason == chat.KeyGoneReason:
		// A late message whose skipped key expired: asking for it again is the only way.
		body = wrapText("⚠ a message from "+r.contact+" could not be decrypted: "+m.Reason, textW)
		for i := range body {
			body[i] = s.Undecryptable.Render(body[i])
		}
	case m.State == chat.UndecryptableState || (!m.Outgoing && m.State == chat.Failed):
		reason := m.Reason
		if reason == "" {
			reason = "unknown reason"
		}
		body = wrapText("⚠ this message could not be decrypted ("+reason+"); ask "+r.contact+" to send it again", textW)
		for i := range body {
			body[i] = s.Undecryptable.Render(body[i])
		}
	case m.KeyPending:
		// Behind the key-change warning: the text is not shown as the contact's.
		body = wrapText("⚠ message from "+r.contact+"'s new, not yet accepted identity key — /accept to review the key and read it", textW)
		for i := range body {
			body[i] = s.KeyChanged.Render(body[i])
		}
	case m.Attachment != nil:
		body = wrapFill(attachmentLine(m), textW)
		if m.Text != "" {
			body = append(body, wrapFill(m.Text, textW)...)
		}
		for i := range body {
			body[i] = s.Body.Render(body[i])
		}
		if p := r.previews[m.ID]; p != nil && p.ready && m.ID != 0 && p.cols <= textW {
			body = append(body, placeholderRows(p)...)
		}
	default:
		// A word wider than the column (a URL, a path) goes on where it starts, as in
		// iamb or gomuks: moved to a line of its own it left the line before half empty.
		body = wrapFill(m.Text, textW)
		for i := range body {
			body[i] = s.Body.Render(body[i])
		}
	}
	indent := spaces(prefixW)
	for i, b := range body {
		line := indent + b
		if i == 0 {
			line = t + " " + sender + " " + b
		}
		if i == len(body)-1 && mark != "" {
			line = fitLine(line, r.width-markW) + mark
		}
		out = append(out, fitLine(line, r.width))
	}
	if !m.Outgoing && m.Reason == chat.ResentReason && m.State != chat.UndecryptableState {
		// It took the place of a message that could not be read (a retry request).
		out = append(out, fitLine(indent+s.Muted.Render("re-sent by "+r.contact+"'s pfschat"), r.width))
	}
	if m.Outgoing && m.State == chat.Failed && m.Reason != "" {
		for _, l := range wrapText("not sent: "+m.Reason, textW) {
			out = append(out, fitLine(indent+s.MarkFailed.Render(l), r.width))
		}
	}
	return out
}

// mark is the delivery state of an outgoing message, right-aligned.
func (r *convRenderer) mark(m chat.Message) (string, int) {
	if !m.Outgoing {
		return "", 0
	}
	s := &r.c.styles
	switch m.State {
	case chat.Pending:
		return " " + s.MarkPending.Render("◷ "), 3
	case chat.Sent:
		return " " + s.MarkSent.Render("✓ "), 3
	case chat.Delivered:
		return s.MarkDelivered.Render(" ✓✓"), 3
	case chat.Read:
		return s.MarkRead.Render(" ✓✓"), 3
	case chat.Failed:
		return " " + s.MarkFailed.Render("✗ "), 3
	}
	return "", 0
}

func (r *convRenderer) daySeparator(t time.Time) string {
	label := " " + r.c.localTime(t).Format("Monday, 2 January 2006") + " "
	lw := ansi.StringWidth(label)
	if lw >= r.width {
		return r.c.styles.DaySeparator.Render(ansi.Truncate(label, r.width, ""))
	}
	left := (r.width - lw) / 2
	right := r.width - lw - left
	return r.c.styles.DaySeparator.Render(strings.Repeat("─", left) + label + strings.Repeat("─", right))
}

// wrapText wraps plain text to width cells, keeping the person's own line breaks.
// Control characters from the network are replaced so a message cannot move the cursor
// or recolour the terminal.
func wrapText(s string, width int) []string { return wrapParas(s, width, false) }

// wrapFill wraps as wrapText does, except that a word too long for a whole line starts
// where it is rather than on a line of its own: a status notice of one long word (a
// path, a URL) left its first row almost empty and needed a row more than it has. A
// message's text is wrapped so too.
func wrapFill(s string, width int) []string { return wrapParas(s, width, true) }

func wrapParas(s string, width int, fill bool) []string {
	s = sanitize(s)
	var out []string
	for _, para := range strings.Split(s, "\n") {
		out = append(out, wrapClusters(para, width, fill)...)
	}
	return out
}

// wrapClusters wraps one plain paragraph to width cells, breaking at a space where one
// is on the line, else between grapheme clusters — never inside one (a ZWJ sequence, a
// skin tone, a keycap, a combining mark) — and measuring each cluster as the Charm stack
// does (ansi.GraphemeWidth), so a line is never wider than the renderer believes.
//
// With fill, a word wider than a whole line is not moved to the next line but fills
// this one and goes on on the next.
func wrapClusters(para string, width int, fill bool) []string {
	var out []string
	var line []cluster
	lineW, lastSpace := 0, -1
	emit := func(cs []cluster) {
		var b strings.Builder
		for _, c := range cs {
			b.WriteString(c.s)
		}
		out = append(out, b.String())
	}
	for rest := para; rest != ""; {
		s, w := ansi.FirstGraphemeCluster(rest, ansi.GraphemeWidth)
		if s == "" {
			break
		}
		rest = rest[len(s):]
		c := cluster{s, w}
		if lineW+c.w > width && len(line) > 0 {
			switch {
			case c.s == " ": // the break eats the space
				emit(line)
				line, lineW, lastSpace = nil, 0, -1
				continue
			case lastSpace >= 0 && fill && longWord(line[lastSpace+1:], c.w, rest, width):
				// Too long for any line: it fills this one (below) instead.
			case lastSpace >= 0:
				emit(line[:lastSpace])
				line = append([]cluster(nil), line[lastSpace+1:]...)
				lineW, lastSpace = 0, -1
				for _, k := range line {
					lineW += k.w
				}
			}
			if lineW+c.w > width && len(line) > 0 {
				emit(line)
				line, lineW, lastSpace = nil, 0, -1
			}
		}
		line = append(line, c)
		lineW += c.w
		if c.s == " " {
			lastSpace = len(line) - 1
		}
	}
	emit(line)
	return out
}

// cluster is one grapheme cluster of a line being wrapped, with its width in cells.
type cluster struct {
	s string
	w int
}

// longWord: the word begun by the clusters before and one of width cw, and going on in
// rest up to its next space, is wider than width.
func longWord(before []cluster, cw int, rest string, width int) bool {
	ww := cw
	for _, k := range before {
		ww += k.w
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	return ww+ansi.StringWidth(rest) > width
}

// sanitize replaces invalid UTF-8, escape sequences and control characters other than
// newline and tab.
func sanitize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "�")
	}
	if !strings.ContainsFunc(s, unsafeControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString("    ")
		case r == '\n':
			b.WriteRune(r)
		case unsafeControl(r):
			b.WriteRune('�')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unsafeControl reports a control character that may not reach the terminal from the
// network: C0 other than newline, DEL and C1.
func unsafeControl(r rune) bool {
	return (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0)
}

func padRight(s string, w int) string { return s + spaces(w-ansi.StringWidth(s)) }

func isPreviousKeySummary(m chat.Message) bool {
	_, ok := chat.PreviousKeyCount(m)
	return ok
}
