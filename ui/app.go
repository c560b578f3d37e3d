package ui

import (
	"context"
	"log/slog"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// Options configure the root model.
type Options struct {
	// Profile is opened (unlock) or created (onboarding) when Backend is nil.
	Profile Profile
	// Backend, when set, skips onboarding and unlock.
	Backend Backend
	// Start, when set and Backend is not, makes the backend while a starting screen is
	// shown, so that the UI draws at once (the demo starts its relay and throwaway
	// profiles so). Run returns Start's error, if any, once the terminal is restored.
	Start func(context.Context) (Backend, error)
	// Passphrase, when set, unlocks an existing profile without asking (from
	// --passphrase-file or PFSCHAT_PASSPHRASE); a wrong one falls back to the unlock
	// screen with the error.
	Passphrase []byte
	// OpenContact is the conversation shown first, if it exists.
	OpenContact string
	// Bell rings the terminal bell for messages not on screen: in conversations that
	// are not open, or in the open one while it is scrolled back, covered or unfocused.
	Bell bool
	// Notifier raises desktop notifications (DetectNotifier; zero: the bell only).
	Notifier Notifier
	// Now and Location pin the clock and time zone (tests, golden files).
	Now      func() time.Time
	Location *time.Location
	// Logger receives diagnostics; it must never write to the terminal.
	Logger *slog.Logger
	// OnFrame, when set, receives every rendered frame as plain text (tests).
	OnFrame func(frame string)
	// AutoDownloadMax: a file up to this many bytes from a contact downloads as it
	// arrives (never from a stranger or a message request); bigger ones wait for
	// ctrl+o or /download. 0: DefaultAutoDownloadMax; negative: never at once.
	AutoDownloadMax int64
	// DownloadDir is where files are saved ("": $XDG_DOWNLOAD_DIR, else ~/Downloads).
	DownloadDir string
	// Graphics previews images inline (DetectGraphics; zero: no previews).
	Graphics Graphics
}

// common is the state every screen and dialog shares: size, styles, keys, clock.
type common struct {
	ctx    context.Context
	styles Styles
	keys   KeyMap
	width  int
	height int
	now    func() time.Time
	loc    *time.Location
	log    *slog.Logger
	bell   bool

	// Desktop notifications (notify.go): how, the profile's settings, whether the
	// terminal has the focus (Bubble Tea reports it), and the last kitty id used.
	notifier  Notifier
	notify    chat.NotifySettings
	focused   bool
	notifySeq int
	notified  map[string]time.Time // when each contact last raised one
	// covered: a dialog is drawn over the screen (the App keeps it): what it covers is
	// not in view, so no message under it is marked read (readSeen).
	covered bool

	// Attachments (attachments.go): the auto-download limit, where files go, and the
	// terminal's image protocol for previews (preview.go).
	autoDownloadMax int64
	downloadDir     string
	graphics        Graphics
}

func (c *common) localTime(t time.Time) time.Time { return t.In(c.loc) }

// screen is one full-window model: onboarding, unlock or the main screen.
type screen interface {
	Init() tea.Cmd
	Update(tea.Msg) (screen, tea.Cmd)
	View() string
}

// dialog is a model drawn over the current screen; the top of the stack gets the keys.
type dialog interface {
	Update(tea.Msg) (dialog, tea.Cmd)
	View() string
}

// App is the root model: it routes messages to the active screen and the dialog stack.
type App struct {
	c        *common
	opts     Options
	screen   screen
	dialogs  []dialog
	backend  Backend
	quitting bool
}

// Internal messages of the root model.
type (
	// backendReadyMsg switches from onboarding/unlock to the main screen; contacts,
	// when set, is the contact list read already (the starting screen reads it with
	// the backend, so that the main screen's first frame has it).
	backendReadyMsg struct {
		b        Backend
		contacts *contactsMsg
	}
	// pushDialogMsg opens a dialog on top of the stack.
	pushDialogMsg struct{ d dialog }
	// quitMsg closes the backend and leaves.
	quitMsg struct{}
)

func pushDialog(d dialog) tea.Cmd { return func() tea.Msg { return pushDialogMsg{d} } }

// dialogBase is embedded by every dialog: finish marks it done and the root removes it
// right after the Update that finished it, so the next key never reaches a dialog that
// is already closing.
// A dialog taller than the terminal scrolls (PgUp/PgDn, ↑/↓): scroll is its first shown
// line, overflow whether its last rendering was cut to fit.
type dialogBase struct {
	done     bool
	scroll   int
	overflow bool
}

func (b *dialogBase) finish()           { b.done = true }
func (b *dialogBase) isDone() bool      { return b.done }
func (b *dialogBase) base() *dialogBase { return b }

// scrollDialog moves an overflowing dialog's view for PgUp/PgDn and ↑/↓ and reports
// whether the key was used so; frame clamps the offset.
func (a *App) scrollDialog(d dialog, k tea.KeyPressMsg) bool {
	b, ok := d.(interface{ base() *dialogBase })
	if !ok || !b.base().overflow {
		return false
	}
	step := max(1, a.c.height/2)
	switch k.String() {
	case "pgdown":
		b.base().scroll += step
	case "pgup":
		b.base().scroll = max(0, b.base().scroll-step)
	case "down":
		b.base().scroll++
	case "up":
		b.base().scroll = max(0, b.base().scroll-1)
	default:
		return false
	}
	return true
}

// toFront hands typed input to the top dialog, or to the screen when none is open.
func (a *App) toFront(msg tea.Msg) tea.Cmd {
	n := len(a.dialogs)
	if n == 0 {
		return a.toScreen(msg)
	}
	if k, ok := msg.(tea.KeyPressMsg); ok && a.scrollDialog(a.dialogs[n-1], k) {
		return nil
	}
	d, cmd := a.dialogs[n-1].Update(msg)
	a.dialogs[n-1] = d
	a.pruneDialogs()
	return cmd
}

// pruneDialogs removes finished dialogs.
func (a *App) pruneDialogs() {
	kept := a.dialogs[:0]
	for _, d := range a.dialogs {
		if f, ok := d.(interface{ isDone() bool }); ok && f.isDone() {
			continue
		}
		kept = append(kept, d)
	}
	a.dialogs = kept
	a.c.covered = len(a.dialogs) > 0
}

// New builds the root model.
func New(ctx context.Context, opts Options) *App {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &common{
		ctx: ctx, styles: NewStyles(true), keys: DefaultKeyMap(),
		width: 80, height: 24, now: opts.Now, loc: opts.Location, log: opts.Logger, bell: opts.Bell,
		notifier: opts.Notifier, notify: chat.NotifySettings{On: true}, focused: true,
		autoDownloadMax: opts.AutoDownloadMax, downloadDir: opts.DownloadDir, graphics: opts.Graphics,
	}
	if c.autoDownloadMax == 0 {
		c.autoDownloadMax = DefaultAutoDownloadMax
	}
	if c.downloadDir == "" {
		c.downloadDir = downloadDir()
	}
	a := &App{c: c, opts: opts}
	switch {
	case opts.Backend != nil:
		a.backend = opts.Backend
		a.screen = newMainScreen(c, opts.Backend, opts.OpenContact)
	case opts.Start != nil:
		a.screen = newStarting(c, opts.Start)
	case opts.Profile != nil && opts.Profile.Exists():
		u := newUnlock(c, opts.Profile)
		u.preset = opts.Passphrase
		a.screen = u
	default:
		a.screen = newOnboarding(c, opts.Profile)
	}
	return a
}

// Init asks the terminal for its background colour and starts the first screen.
func (a *App) Init() tea.Cmd {
	return tea.Batch(tea.RequestBackgroundColor, a.screen.Init())
}

// Update routes a message (update) and, when the last dialog went, lets the main screen
// mark read what the dialog covered and is in view now.
func (a *App) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	covered := a.c.covered
	model, cmd := a.update(msg)
	if covered && !a.c.covered {
		if ms, ok := a.screen.(*mainScreen); ok {
			cmd = tea.Batch(cmd, ms.readSeen())
		}
	}
	return model, cmd
}

// update routes a message: global messages first, then the top dialog for keys, then the
// screen for everything else.
func (a *App) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		a.c.width, a.c.height = msg.Width, msg.Height
		return a, a.toScreen(msg)
	case tea.BackgroundColorMsg:
		a.c.styles = NewStyles(msg.IsDark())
		return a, a.toScreen(stylesChangedMsg{})
	case backendReadyMsg:
		a.backend = msg.b
		ms := newMainScreen(a.c, msg.b, a.opts.OpenContact)
		a.screen = ms
		a.dialogs, a.c.covered = nil, false
		var listed tea.Cmd
		if msg.contacts != nil {
			listed = ms.onContacts(*msg.contacts)
		}
		return a, tea.Batch(listed, ms.Init(), recoveryCodeCmd(a.c, msg.b)) // a new account's code, once (recoverycode.go)
	case pushDialogMsg:
		a.dialogs = append(a.dialogs, msg.d)
		a.c.covered = true
		if st, ok := msg.d.(interface{ startCmd() tea.Cmd }); ok {
			return a, st.startCmd()
		}
		return a, nil
	case tea.FocusMsg:
		a.c.focused = true
		if ms, ok := a.screen.(*mainScreen); ok {
			return a, ms.readSeen() // what arrived meanwhile is on screen now
		}
		return a, nil
	case tea.BlurMsg:
		a.c.focused = false
		return a, nil
	case quitMsg:
		return a, a.quit()
	case tea.KeyPressMsg:
		if msg.String() == "ctrl+c" {
			return a, a.quit()
		}
		return a, a.toFront(msg)
	case tea.PasteMsg:
		return a, a.toFront(msg)
	}
	// Results of dialog commands go to every dialog (each ignores what is not its own)
	// and to the screen, which owns the data.
	var cmds []tea.Cmd
	for i := range a.dialogs {
		d, cmd := a.dialogs[i].Update(msg)
		a.dialogs[i] = d
		cmds = append(cmds, cmd)
	}
	a.pruneDialogs()
	cmds = append(cmds, a.toScreen(msg))
	return a, tea.Batch(cmds...)
}

func (a *App) toScreen(msg tea.Msg) tea.Cmd {
	s, cmd := a.screen.Update(msg)
	a.screen = s
	return cmd
}

// quit closes the backend (in a command: Close may wait for the relay connection) and
// then ends the program.
func (a *App) quit() tea.Cmd {
	if a.quitting {
		return nil
	}
	a.quitting = true
	b := a.backend
	return tea.Sequence(func() tea.Msg {
		if b != nil {
			if err := b.Close(); err != nil {
				a.c.log.Warn("closing chat backend", "err", err)
			}
		}
		return nil
	}, tea.Quit)
}

// View draws the screen and the top dialog centred over it.
func (a *App) View() tea.View {
	content := a.render()
	if a.opts.OnFrame != nil {
		a.opts.OnFrame(ansi.Strip(content))
	}
	v := tea.NewView(content)
	v.AltScreen = true
	v.MouseMode = tea.MouseModeCellMotion
	v.ReportFocus = true // unfocused: notifications for any message (notify.go), none marked read (readSeen)
	v.WindowTitle = "pfschat"
	if a.backend != nil {
		v.WindowTitle = "pfschat — " + a.backend.Me()
	}
	return v
}

func (a *App) render() string {
	base := a.screen.View()
	if ex, ok := a.screen.(interface{ exactSize() bool }); !ok || !ex.exactSize() {
		base = fitBlock(base, a.c.width, a.c.height)
	}
	if len(a.dialogs) == 0 {
		return base
	}
	d := a.dialogs[len(a.dialogs)-1].View()
	dw, dh := lipgloss.Width(d), lipgloss.Height(d)
	x, y := max(0, (a.c.width-dw)/2), max(0, (a.c.height-dh)/2)
	out := lipgloss.NewCompositor(
		lipgloss.NewLayer(base),
		lipgloss.NewLayer(d).X(x).Y(y).Z(1),
	).Render()
	// Exactly the terminal's size: the compositor may drop trailing blank cells, and a
	// dialog wider than a tiny terminal is cut, never wraps.
	return fitBlock(out, a.c.width, a.c.height)
}

// stylesChangedMsg tells screens to re-style their widgets and drop cached renderings.
type stylesChangedMsg struct{}

// fitBlock pads or cuts s to exactly w×h cells, so a frame never garbles the layout of
// the next one after a resize.
func fitBlock(s string, w, h int) string {
	if w <= 0 || h <= 0 {
		return ""
	}
	lines := splitLines(s)
	if len(lines) > h {
		lines = lines[:h]
	}
	out := make([]string, h)
	for i := range out {
		var l string
		if i < len(lines) {
			l = lines[i]
		}
		out[i] = fitLine(l, w)
	}
	return joinLines(out)
}

// fitLine cuts a styled line to w cells or pads it with spaces to w.
func fitLine(l string, w int) string {
	lw := ansi.StringWidth(l)
	if lw > w {
		// A wide character cut at the edge leaves the line a cell short: pad it.
		l = truncateCells(l, w)
		lw = ansi.StringWidth(l)
	}
	if lw < w {
		return l + spaces(w-lw)
	}
	return l
}

// truncateCells cuts a styled line to at most w cells, whole grapheme clusters only,
// measured as ansi.StringWidth measures them (ansi.Truncate counts a keycap such as "1️⃣"
// as one cell and lets the line overflow). Escape sequences are kept, so styles still end.
func truncateCells(l string, w int) string {
	var b strings.Builder
	used, full := 0, false
	for i := 0; i < len(l); {
		if l[i] == 0x1b {
			n := escapeLen(l[i:])
			b.WriteString(l[i : i+n])
			i += n
			continue
		}
		c, cw := ansi.FirstGraphemeCluster(l[i:], ansi.GraphemeWidth)
		if c == "" {
			c = l[i : i+1]
		}
		i += len(c)
		if full || used+cw > w {
			full = true
			continue
		}
		b.WriteString(c)
		used += cw
	}
	return b.String()
}

// escapeLen is the length of the escape sequence at the start of s: CSI (ESC [ … final
// byte), OSC (ESC ] … BEL or ST), else ESC and the byte after it.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for j := 2; j < len(s); j++ {
			if s[j] >= 0x40 && s[j] <= 0x7e {
				return j + 1
			}
		}
		return len(s)
	case ']':
		for j := 2; j < len(s); j++ {
			if s[j] == 0x07 {
				return j + 1
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return j + 2
			}
		}
		return len(s)
	}
	return 2
}
