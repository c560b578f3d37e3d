package ui

import "charm.land/bubbles/v2/key"

// KeyMap is every key binding of the UI, in one place; the help dialog and the short help
// in the status area are generated from it.
type KeyMap struct {
	Send    key.Binding
	Newline key.Binding
	// ClearDraft empties the input, every line of it. Esc does not: it dismisses a
	// notice, and a draft stays with its conversation (as in Signal and iamb) until
	// sent or cleared.
	ClearDraft  key.Binding
	NextContact key.Binding
	PrevContact key.Binding
	FocusSwitch key.Binding
	Up          key.Binding
	Down        key.Binding
	Open        key.Binding
	ScrollUp    key.Binding
	ScrollDown  key.Binding
	Top         key.Binding
	Bottom      key.Binding
	AddContact  key.Binding
	// Download fetches the newest file of the conversation that is not downloaded yet.
	Download key.Binding
	// Help opens the help dialog from anywhere; ListHelp is "?", which opens it only
	// from the contact list (in the input "?" is text: a message may start with it).
	Help     key.Binding
	ListHelp key.Binding
	Close    key.Binding
	Confirm  key.Binding
	Quit     key.Binding
}

// DefaultKeyMap returns the bindings pfschat ships with.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Send:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "send")),
		Newline:     key.NewBinding(key.WithKeys("alt+enter", "shift+enter", "ctrl+j"), key.WithHelp("alt+enter", "new line")),
		ClearDraft:  key.NewBinding(key.WithKeys("ctrl+u"), key.WithHelp("ctrl+u", "clear draft")),
		NextContact: key.NewBinding(key.WithKeys("ctrl+down", "alt+down"), key.WithHelp("ctrl+↓", "next contact")),
		PrevContact: key.NewBinding(key.WithKeys("ctrl+up", "alt+up"), key.WithHelp("ctrl+↑", "previous contact")),
		FocusSwitch: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "contacts / input")),
		Up:          key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:        key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Open:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open conversation")),
		ScrollUp:    key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "scroll up")),
		ScrollDown:  key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "scroll down")),
		Top:         key.NewBinding(key.WithKeys("ctrl+home"), key.WithHelp("ctrl+home", "oldest")),
		Bottom:      key.NewBinding(key.WithKeys("ctrl+end"), key.WithHelp("ctrl+end", "newest")),
		AddContact:  key.NewBinding(key.WithKeys("ctrl+n"), key.WithHelp("ctrl+n", "add contact")),
		Download:    key.NewBinding(key.WithKeys("ctrl+o"), key.WithHelp("ctrl+o", "download newest file")),
		Help:        key.NewBinding(key.WithKeys("f1"), key.WithHelp("f1", "help")),
		ListHelp:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help in the list")),
		Close:       key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close, dismiss notice")),
		Confirm:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm")),
		Quit:        key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
	}
}

// ShortHelp is the one-line help under the input.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Send, k.Newline, k.ClearDraft, k.FocusSwitch, k.AddContact, k.Help, k.Quit}
}

// HelpHint is the help key the status bar names: f1 in the input, where "?" is text;
// "?" or f1 in the contact list. Every key it lists opens the help there.
func (k KeyMap) HelpHint(inList bool) key.Binding {
	if !inList {
		return k.Help
	}
	return key.NewBinding(key.WithKeys(append(k.ListHelp.Keys(), k.Help.Keys()...)...),
		key.WithHelp(k.ListHelp.Help().Key+"/"+k.Help.Help().Key, k.Help.Help().Desc))
}

// FullHelp is the help dialog, grouped by area.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Send, k.Newline, k.ClearDraft, k.ScrollUp, k.ScrollDown, k.Top, k.Bottom, k.Download},
		{k.FocusSwitch, k.NextContact, k.PrevContact, k.Up, k.Down, k.Open},
		{k.AddContact, k.Help, k.ListHelp, k.Close, k.Quit},
	}
}
