package ui

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"pfschat/assets"
	"pfschat/chat"
)

// dialogWidth is the inner width of dialogs, shrunk on narrow terminals.
func (c *common) dialogWidth(want int) int {
	return max(20, min(want, c.width-8))
}

// frame draws a dialog w cells wide. One taller than the terminal shows a window of its
// lines at b.scroll, with "↑ more" / "↓ more" where lines are hidden, so it always fits.
func (c *common) frame(b *dialogBase, title, body string, w int) string {
	s := &c.styles
	full := s.Dialog.Width(w + 6).Render(s.DialogTitle.Render(title) + "\n" + body)
	chrome := s.Dialog.GetVerticalFrameSize()
	if lipgloss.Height(full) <= c.height || c.height-chrome < 3 {
		b.overflow, b.scroll = false, 0
		return full
	}
	b.overflow = true
	inner := strings.Split(lipgloss.Wrap(s.DialogTitle.Render(title)+"\n"+body, w+6-s.Dialog.GetHorizontalFrameSize(), ""), "\n")
	rows := c.height - chrome
	b.scroll = min(max(b.scroll, 0), len(inner)-rows)
	view := append([]string(nil), inner[b.scroll:b.scroll+rows]...)
	if b.scroll > 0 {
		view[0] = s.Muted.Render("↑ more (pgup)")
	}
	if b.scroll+rows < len(inner) {
		view[rows-1] = s.Muted.Render("↓ more (pgdn)")
	}
	return s.Dialog.Width(w + 6).Render(strings.Join(view, "\n"))
}

func (c *common) hint(pairs ...string) string {
	s := &c.styles
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		parts = append(parts, s.Accent.Render(pairs[i])+" "+s.Muted.Render(pairs[i+1]))
	}
	return strings.Join(parts, s.Subtle.Render("  •  "))
}

// operation is a dialog's one operation in flight: busy until its result arrives, and
// the error it ended with, which the dialog shows.
type operation struct {
	busy bool
	err  string
}

// settle records an operation's result and reports whether it succeeded.
func (o *operation) settle(err error) bool {
	o.busy = false
	if err != nil {
		o.err = errText(err)
		return false
	}
	return true
}

// ---------------------------------------------------------------- add contact

type addContactDialog struct {
	dialogBase
	c     *common
	b     Backend
	input textinput.Model
	operation
	pending string
}

func newAddContactDialog(c *common, b Backend, name string) *addContactDialog {
	name = strings.ToLower(name) // names are lower case: "/add Bob" is bob, as onboarding and the CLI take it
	ti := textinput.New()
	ti.Prompt = "name: "
	ti.Placeholder = "their user name, e.g. bob"
	ti.CharLimit = 32
	ti.SetStyles(c.styles.TextInput)
	ti.SetValue(name)
	ti.Focus()
	d := &addContactDialog{c: c, b: b, input: ti}
	if name != "" {
		d.busy, d.pending = true, name
	}
	return d
}

// start is used when /add NAME already named the contact: the lookup begins at once.
func (d *addContactDialog) startCmd() tea.Cmd {
	if d.pending == "" {
		return nil
	}
	return d.c.addContact(d.b, d.pending)
}

func (d *addContactDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	switch msg := msg.(type) {
	case addedMsg:
		if msg.name != d.pending {
			return d, nil
		}
		if !d.settle(msg.err) {
			return d, nil
		}
		d.finish()
		return d, nil
	case tea.KeyPressMsg:
		k := d.c.keys
		switch {
		case key.Matches(msg, k.Close):
			d.finish()
			return d, nil
		case key.Matches(msg, k.Confirm):
			name := strings.TrimSpace(d.input.Value())
			if name == "" || d.busy {
				return d, nil
			}
			d.busy, d.pending, d.err = true, name, ""
			return d, d.c.addContact(d.b, name)
		}
	}
	if d.busy {
		return d, nil
	}
	var cmd tea.Cmd
	d.input, cmd = d.input.Update(msg)
	lowerName(&d.input)
	return d, cmd
}

func (d *addContactDialog) View() string {
	w := d.c.dialogWidth(52)
	s := &d.c.styles
	d.input.SetWidth(w - 8)
	lines := []string{
		s.Muted.Render(lipgloss.Wrap("Their card is fetched from the relay and checked; "+
			"compare safety numbers afterwards with /verify.", w, "")),
		"",
		d.input.View(),
		"",
	}
	switch {
	case d.busy:
		lines = append(lines, s.Muted.Render("looking up "+d.pending+"…"))
	case d.err != "":
		lines = append(lines, s.Error.Render(lipgloss.Wrap(d.err, w, "")))
	default:
		lines = append(lines, d.c.hint("enter", "add", "esc", "cancel"))
	}
	return d.c.frame(&d.dialogBase, "Add a contact", strings.Join(lines, "\n"), w)
}

// ---------------------------------------------------------------- verify

type verifyDialog struct {
	dialogBase
	c        *common
	b        Backend
	contact  string
	sn       *chat.SafetyNumber
	verified bool
	operation
}

func newVerifyDialog(c *common, b Backend, contact string) *verifyDialog {
	return &verifyDialog{c: c, b: b, contact: contact, operation: operation{busy: true}}
}

func (d *verifyDialog) startCmd() tea.Cmd { return d.c.safetyNumber(d.b, d.contact) }

func (d *verifyDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	switch msg := msg.(type) {
	case safetyMsg:
		if msg.contact != d.contact || d.sn != nil {
			return d, nil
		}
		if !d.settle(msg.err) {
			return d, nil
		}
		sn := msg.current
		d.sn = &sn
	case opDoneMsg:
		if msg.op != "verify" || msg.contact != d.contact {
			return d, nil
		}
		if !d.settle(msg.err) {
			return d, nil
		}
		d.verified = true
		d.finish()
		return d, nil
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, d.c.keys.Close), msg.String() == "n", msg.String() == "q":
			d.finish()
			return d, nil
		case (msg.String() == "v" || msg.String() == "y") && d.sn != nil && !d.busy:
			d.busy = true
			b, name := d.b, d.contact
			return d, d.c.op("verify", name, func(ctx context.Context) error { return b.Verify(ctx, name) })
		}
	}
	return d, nil
}

func (d *verifyDialog) View() string {
	w := d.c.dialogWidth(56)
	s := &d.c.styles
	var lines []string
	switch {
	case d.err != "":
		lines = append(lines, s.Error.Render(lipgloss.Wrap(d.err, w, "")), "", d.c.hint("esc", "close"))
	case d.sn == nil:
		lines = append(lines, s.Muted.Render("computing the safety number…"))
	default:
		lines = append(lines,
			s.Muted.Render(lipgloss.Wrap("Compare these 60 digits with the ones "+d.contact+
				" sees for you, in person or on a call. If they match, nobody is in the middle.", w, "")),
			"",
			safetyBlock(s, *d.sn),
			"",
			d.c.hint("v", "they match: mark verified", "esc", "not now"))
	}
	return d.c.frame(&d.dialogBase, "Verify "+d.contact, strings.Join(lines, "\n"), w)
}

// safetyBlock shows the 12 groups of 5 digits as 3 rows of 4, like Signal.
func safetyBlock(s *Styles, sn chat.SafetyNumber) string {
	groups := strings.Fields(sn.Digits())
	var rows []string
	for i := 0; i < len(groups); i += 4 {
		rows = append(rows, "  "+strings.Join(groups[i:min(i+4, len(groups))], "  "))
	}
	return s.SafetyNumber.Render(strings.Join(rows, "\n"))
}

// ---------------------------------------------------------------- key changed

type keyChangedDialog struct {
	dialogBase
	c       *common
	b       Backend
	contact string
	old     *chat.SafetyNumber
	new     *chat.SafetyNumber
	loaded  bool
	operation
}

func newKeyChangedDialog(c *common, b Backend, contact string) *keyChangedDialog {
	return &keyChangedDialog{c: c, b: b, contact: contact}
}

func (d *keyChangedDialog) startCmd() tea.Cmd { return d.c.safetyNumber(d.b, d.contact) }

func (d *keyChangedDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	switch msg := msg.(type) {
	case safetyMsg:
		if msg.contact != d.contact || d.loaded {
			return d, nil
		}
		d.loaded = true
		if msg.err != nil {
			d.err = errText(msg.err)
			return d, nil
		}
		cur := msg.current
		if msg.pending != nil {
			d.old, d.new = msg.trusted, msg.pending
		} else {
			d.new = &cur
		}
	case opDoneMsg:
		if (msg.op != "accept" && msg.op != "reject") || msg.contact != d.contact {
			return d, nil
		}
		if !d.settle(msg.err) {
			return d, nil
		}
		d.finish()
		return d, nil
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, d.c.keys.Close), msg.String() == "n":
			d.finish()
			return d, nil
		case msg.String() == "a" && !d.busy && d.new != nil:
			// Only with the new safety number on screen: nothing is accepted unseen.
			d.busy, d.err = true, ""
			b, name := d.b, d.contact
			return d, d.c.op("accept", name, func(ctx context.Context) error { return b.AcceptKey(ctx, name) })
		case msg.String() == "r" && !d.busy && d.old != nil && !d.new.Rejected:
			// Only with the trusted key's number on screen: the user keeps what they
			// compared before.
			d.busy, d.err = true, ""
			b, name := d.b, d.contact
			return d, d.c.op("reject", name, func(ctx context.Context) error { return b.RejectKey(ctx, name) })
		}
	}
	return d, nil
}

func (d *keyChangedDialog) View() string {
	w := d.c.dialogWidth(60)
	s := &d.c.styles
	rejected := d.new != nil && d.new.Rejected
	lines := []string{
		s.Warn.Render(lipgloss.Wrap("⚠ "+d.contact+"'s identity key has changed.", w, "")),
		s.Muted.Render(lipgloss.Wrap("They may have a new device or reinstalled pfschat — or someone may be "+
			"impersonating them. Sending is paused until you accept the new key (or reject it). "+
			"Check the new safety number with them first.", w, "")),
		"",
	}
	if rejected {
		lines[0] = s.Warn.Render(lipgloss.Wrap("⚠ You rejected this new identity key of "+d.contact+"'s.", w, ""))
		lines[1] = s.Muted.Render(lipgloss.Wrap("Messages it signs stay held here; sending goes to the key you trusted. "+
			"Accept it only once you have checked the new safety number with them.", w, ""))
	}
	switch {
	case !d.loaded:
		lines = append(lines, s.Muted.Render("loading safety numbers…"))
	case d.err != "" && d.new == nil:
		lines = append(lines, s.Error.Render(lipgloss.Wrap(d.err, w, "")))
	default:
		if d.old != nil {
			lines = append(lines, s.Muted.Render("old safety number (the key you trusted):"), safetyBlock(s, *d.old), "")
		} else {
			lines = append(lines, s.Muted.Render("old safety number: no longer available"), "")
		}
		lines = append(lines, s.FieldLabel.Render("new safety number:"), safetyBlock(s, *d.new))
		if d.err != "" {
			lines = append(lines, "", s.Error.Render(lipgloss.Wrap(d.err, w, "")))
		}
	}
	switch {
	case rejected:
		lines = append(lines, "", d.c.hint("a", "accept it after all", "esc", "close (it stays rejected)"))
	case d.old != nil:
		lines = append(lines, "", d.c.hint("a", "accept the new key", "r", "reject it, keep the trusted one", "esc", "not now (sending stays paused)"))
	default:
		lines = append(lines, "", d.c.hint("a", "accept the new key", "esc", "not now (sending stays paused)"))
	}
	return d.c.frame(&d.dialogBase, "Identity key changed: "+d.contact, strings.Join(lines, "\n"), w)
}

// ---------------------------------------------------------------- help

type helpDialog struct {
	dialogBase
	c *common
}

func newHelpDialog(c *common) *helpDialog { return &helpDialog{c: c} }

func (d *helpDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		if key.Matches(k, d.c.keys.Close, d.c.keys.Help, d.c.keys.ListHelp) || k.String() == "q" || k.String() == "enter" {
			d.finish()
			return d, nil
		}
	}
	return d, nil
}

func (d *helpDialog) View() string {
	w := d.c.dialogWidth(86)
	h := help.New()
	h.Styles = d.c.styles.Help
	keys := keyHelpRows(h, d.c.keys.FullHelp(), w)
	bell := "off"
	if d.c.bell {
		bell = "on"
	}
	body := keys + "\n\n" + d.c.styles.Muted.Render(slashCommandsHelp(w)+"\n\n"+hangWrapLabelled(assets.Help(), w)) +
		"\n\n" + d.c.styles.Subtle.Render(fmt.Sprintf("bell: %s", bell)) + "\n" + d.c.hint("esc", "close")
	return d.c.frame(&d.dialogBase, "Help", body, w)
}

// hangWrapLabelled wraps each line of text to w cells, its later lines under the
// line's text: after its indentation, or after a leading "Label: " ("Marks: ◷ pending…").
func hangWrapLabelled(text string, w int) string {
	lines := splitLines(text)
	for i, l := range lines {
		rest := strings.TrimLeft(l, " ")
		prefix := l[:len(l)-len(rest)]
		if word, after, ok := strings.Cut(rest, " "); prefix == "" && ok && strings.HasSuffix(word, ":") {
			text := strings.TrimLeft(after, " ")
			prefix, rest = rest[:len(rest)-len(text)], text
		}
		lines[i] = hangWrap(prefix, rest, w)
	}
	return joinLines(lines)
}

// keyHelpRows sets the key groups side by side as far as they fit in w cells and
// starts a row below for the rest: bubbles' help cuts the groups that do not fit to
// "…", which hid the add-contact, help, close and quit keys below ~92 columns.
func keyHelpRows(h help.Model, groups [][]key.Binding, w int) string {
	h.SetWidth(0) // no cut: the rows are sized here
	var rows []string
	for start := 0; start < len(groups); {
		end := start + 1
		for end < len(groups) && lipgloss.Width(h.FullHelpView(groups[start:end+1])) <= w {
			end++
		}
		rows = append(rows, h.FullHelpView(groups[start:end]))
		start = end
	}
	return strings.Join(rows, "\n\n")
}

// ---------------------------------------------------------------- confirm

type confirmDialog struct {
	dialogBase
	c      *common
	title  string
	text   string
	action tea.Cmd
}

func newConfirmDialog(c *common, title, text string, action tea.Cmd) *confirmDialog {
	return &confirmDialog{c: c, title: title, text: text, action: action}
}

func (d *confirmDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		// Only "y" confirms: every action asked about here deletes, blocks, re-pins or
		// opens a file from the network, and an Enter typed ahead (the end of the next
		// command, a pasted line) must not answer for the user.
		switch k.String() {
		case "y", "Y":
			d.finish()
			return d, d.action
		case "n", "N", "esc", "q":
			d.finish()
			return d, nil
		}
	}
	return d, nil
}

func (d *confirmDialog) View() string {
	w := d.c.dialogWidth(52)
	body := lipgloss.Wrap(d.text, w, "") + "\n\n" + d.c.hint("y", "yes", "n", "no")
	return d.c.frame(&d.dialogBase, d.title, body, w)
}

// ---------------------------------------------------------------- info

// infoDialog shows lines too long for the status bar's notice; any of Esc, Enter or q
// closes it.
type infoDialog struct {
	dialogBase
	c     *common
	title string
	lines []string
}

func newInfoDialog(c *common, title string, lines ...string) *infoDialog {
	return &infoDialog{c: c, title: title, lines: lines}
}

func (d *infoDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		if key.Matches(k, d.c.keys.Close) || k.String() == "enter" || k.String() == "q" {
			d.finish()
		}
	}
	return d, nil
}

func (d *infoDialog) View() string {
	w := d.c.dialogWidth(52)
	body := lipgloss.Wrap(strings.Join(d.lines, "\n"), w, "") + "\n\n" + d.c.hint("esc", "close")
	return d.c.frame(&d.dialogBase, d.title, body, w)
}
