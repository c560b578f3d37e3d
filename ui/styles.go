package ui

import (
	"image/color"
	"sync"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textarea"
	"charm.land/bubbles/v2/textinput"
	"charm.land/lipgloss/v2"

	"pfschat/assets"
)

// Styles is every lipgloss style the UI uses, in one place. It is rebuilt when the
// terminal reports its background colour, so colours suit light and dark terminals.
type Styles struct {
	IsDark bool

	App        lipgloss.Style
	Logo       lipgloss.Style
	Title      lipgloss.Style
	Muted      lipgloss.Style
	Subtle     lipgloss.Style
	Error      lipgloss.Style
	Warn       lipgloss.Style
	OK         lipgloss.Style
	Accent     lipgloss.Style
	FieldLabel lipgloss.Style

	// Contact list.
	PaneBorder      lipgloss.Style
	ContactsTitle   lipgloss.Style
	Contact         lipgloss.Style
	ContactSelected lipgloss.Style
	Unread          lipgloss.Style
	UnreadMuted     lipgloss.Style // a muted contact's unread count: greyed, as Signal does
	Verified        lipgloss.Style
	KeyChanged      lipgloss.Style
	Activity        lipgloss.Style

	// Conversation.
	ConvHeader    lipgloss.Style
	DaySeparator  lipgloss.Style
	NewDivider    lipgloss.Style
	NewBelow      lipgloss.Style // "↓ 3 new": messages arrived below a scrolled-back view
	Time          lipgloss.Style
	SenderMe      lipgloss.Style
	SenderThem    lipgloss.Style
	Body          lipgloss.Style
	Undecryptable lipgloss.Style
	MarkPending   lipgloss.Style
	MarkSent      lipgloss.Style
	MarkDelivered lipgloss.Style
	MarkRead      lipgloss.Style
	MarkFailed    lipgloss.Style
	Empty         lipgloss.Style

	// Input and status bar.
	InputBorder lipgloss.Style
	InputMore   lipgloss.Style // "↑ 2 more lines" on the input's top border: a draft scrolled
	StatusBar   lipgloss.Style
	StatusOK    lipgloss.Style
	StatusWarn  lipgloss.Style
	StatusBad   lipgloss.Style
	StatusNote  lipgloss.Style

	// Dialogs.
	Dialog       lipgloss.Style
	DialogTitle  lipgloss.Style
	SafetyNumber lipgloss.Style
	Button       lipgloss.Style

	Help      help.Styles
	TextArea  textarea.Styles
	TextInput textinput.Styles

	BorderColor color.Color
}

// theme loads the default embedded theme; a broken asset is a build-time mistake, so a
// plain fallback palette keeps the UI usable rather than failing.
var theme = sync.OnceValue(func() assets.Theme {
	ts, err := assets.Themes()
	if err != nil {
		return assets.Theme{Name: "fallback", Dark: fallbackPalette, Light: fallbackPalette}
	}
	return ts[0]
})

var fallbackPalette = assets.Palette{Text: "#FFFFFF", Muted: "#AAAAAA", Subtle: "#666666",
	Accent: "#AF87FF", AccentText: "#000000", Mine: "#5FD7FF", Theirs: "#FF87FF",
	OK: "#5FD75F", Warn: "#FFD700", Danger: "#FF5F5F", Border: "#585858",
	Selection: "#5F5F87", SelectionText: "#FFFFFF"}

// NewStyles builds the styles for a dark or light background.
func NewStyles(isDark bool) Styles {
	t := theme()
	p := t.Light
	if isDark {
		p = t.Dark
	}
	c := func(hex string) color.Color { return lipgloss.Color(hex) }
	text, muted, subtle := c(p.Text), c(p.Muted), c(p.Subtle)
	accent, ok, warn, danger := c(p.Accent), c(p.OK), c(p.Warn), c(p.Danger)
	border := c(p.Border)
	fg := func(col color.Color) lipgloss.Style { return lipgloss.NewStyle().Foreground(col) }

	s := Styles{IsDark: isDark, BorderColor: border}
	s.App = lipgloss.NewStyle()
	s.Logo = fg(accent).Bold(true)
	s.Title = fg(accent).Bold(true)
	s.Muted = fg(muted)
	s.Subtle = fg(subtle)
	s.Error = fg(danger).Bold(true)
	s.Warn = fg(warn).Bold(true)
	s.OK = fg(ok)
	s.Accent = fg(accent)
	s.FieldLabel = fg(text).Bold(true)

	s.PaneBorder = fg(border)
	s.ContactsTitle = fg(muted).Bold(true)
	s.Contact = fg(text)
	s.ContactSelected = lipgloss.NewStyle().Foreground(c(p.SelectionText)).Background(c(p.Selection)).Bold(true)
	s.Unread = lipgloss.NewStyle().Foreground(c(p.AccentText)).Background(accent).Bold(true)
	s.UnreadMuted = lipgloss.NewStyle().Foreground(c(p.AccentText)).Background(muted)
	s.Verified = fg(ok)
	s.KeyChanged = fg(warn).Bold(true)
	s.Activity = fg(muted)

	s.ConvHeader = fg(text).Bold(true)
	s.DaySeparator = fg(muted)
	s.NewDivider = fg(accent)
	s.NewBelow = fg(accent).Bold(true)
	s.Time = fg(muted)
	s.SenderMe = fg(c(p.Mine)).Bold(true)
	s.SenderThem = fg(c(p.Theirs)).Bold(true)
	s.Body = fg(text)
	s.Undecryptable = fg(warn).Italic(true)
	s.MarkPending = fg(muted)
	s.MarkSent = fg(muted)
	s.MarkDelivered = fg(text)
	s.MarkRead = fg(ok).Bold(true)
	s.MarkFailed = fg(danger).Bold(true)
	s.Empty = fg(muted).Italic(true)

	s.InputBorder = lipgloss.NewStyle().BorderStyle(lipgloss.NormalBorder()).BorderTop(true).BorderForeground(border)
	s.InputMore = fg(muted)
	s.StatusBar = fg(muted)
	s.StatusOK = fg(ok)
	s.StatusWarn = fg(warn)
	s.StatusBad = fg(danger)
	s.StatusNote = fg(text)

	s.Dialog = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(accent).Padding(1, 2)
	s.DialogTitle = fg(accent).Bold(true).MarginBottom(1)
	s.SafetyNumber = fg(text).Bold(true)
	s.Button = lipgloss.NewStyle().Foreground(c(p.AccentText)).Background(accent).Padding(0, 1)

	s.Help = help.DefaultStyles(isDark)
	s.TextArea = textarea.DefaultStyles(isDark)
	s.TextArea.Focused.CursorLine = lipgloss.NewStyle()
	s.TextArea.Focused.Placeholder = fg(muted)
	s.TextArea.Blurred.Placeholder = fg(subtle)
	s.TextArea.Cursor.Blink = false
	s.TextInput = textinput.DefaultStyles(isDark)
	s.TextInput.Cursor.Blink = false
	return s
}
