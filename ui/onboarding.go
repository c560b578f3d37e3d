package ui

import (
	"errors"
	"regexp"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"pfschat/assets"
	"pfschat/chat"
	"pfschat/chat/profile"
)

// ErrWrongPassphrase is what Profile.Open returns (wrapped) for a wrong passphrase.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// minPassphrase is the shortest passphrase onboarding accepts: the passphrase is the
// only thing between a stolen laptop and the message history.
const minPassphrase = 8

var nameRE = regexp.MustCompile(`^[a-z0-9._-]{1,32}$`)

type onboardStep int

const (
	stepName onboardStep = iota
	stepPass
	stepPass2
	stepRelay
	stepCreating
)

// onboarding creates the identity on first run: name, passphrase twice, relay URL.
type onboarding struct {
	c       *common
	profile Profile
	step    onboardStep
	inputs  [4]textinput.Model
	err     string
}

type createdMsg struct {
	b   Backend
	err error
}

func newOnboarding(c *common, p Profile) *onboarding {
	o := &onboarding{c: c, profile: p}
	labels := []string{"name: ", "passphrase: ", "again: ", "relay: "}
	for i := range o.inputs {
		ti := textinput.New()
		ti.Prompt = labels[i]
		ti.SetStyles(c.styles.TextInput)
		ti.SetWidth(40)
		o.inputs[i] = ti
	}
	o.inputs[stepName].Placeholder = "a-z 0-9 . _ -, up to 32"
	o.inputs[stepName].CharLimit = 32
	for _, i := range []onboardStep{stepPass, stepPass2} {
		o.inputs[i].EchoMode = textinput.EchoPassword
		o.inputs[i].EchoCharacter = '•'
	}
	relay := profile.DefaultRelayURL
	if p != nil && p.DefaultRelayURL() != "" {
		relay = p.DefaultRelayURL()
	}
	o.inputs[stepRelay].SetValue(relay)
	o.inputs[stepName].Focus()
	return o
}

func (o *onboarding) Init() tea.Cmd { return nil }

func (o *onboarding) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case stylesChangedMsg:
		for i := range o.inputs {
			o.inputs[i].SetStyles(o.c.styles.TextInput)
		}
		return o, nil
	case createdMsg:
		if msg.err != nil {
			o.err = "could not create your identity: " + errText(msg.err)
			if errors.Is(msg.err, chat.ErrNameTaken) { // identity recovery (recoverycode.go)
				o.err += " — if the name is yours and you lost its device, get it back with your recovery code: quit and run 'pfschat recover NAME'"
			}
			o.step = stepRelay
			return o, o.inputs[stepRelay].Focus()
		}
		return o, func() tea.Msg { return backendReadyMsg{msg.b} }
	case tea.KeyPressMsg:
		if o.step == stepCreating {
			return o, nil
		}
		switch msg.String() {
		case "enter":
			return o, o.next()
		case "esc", "shift+tab":
			if o.step > stepName {
				o.err = ""
				return o, o.focus(o.step - 1)
			}
			return o, nil
		}
	}
	if o.step == stepCreating {
		return o, nil
	}
	var cmd tea.Cmd
	o.inputs[o.step], cmd = o.inputs[o.step].Update(msg)
	return o, cmd
}

func (o *onboarding) focus(s onboardStep) tea.Cmd {
	for i := range o.inputs {
		o.inputs[i].Blur()
	}
	o.step = s
	if int(s) < len(o.inputs) {
		return o.inputs[s].Focus()
	}
	return nil
}

func (o *onboarding) next() tea.Cmd {
	o.err = ""
	switch o.step {
	case stepName:
		name := strings.TrimSpace(o.inputs[stepName].Value())
		if !nameRE.MatchString(name) {
			o.err = "a name is 1–32 characters: lower-case letters, digits, '.', '_' or '-'"
			return nil
		}
		return o.focus(stepPass)
	case stepPass:
		if len([]rune(o.inputs[stepPass].Value())) < minPassphrase {
			o.err = "use at least 8 characters: the passphrase protects your keys and history on this machine"
			return nil
		}
		return o.focus(stepPass2)
	case stepPass2:
		if o.inputs[stepPass2].Value() != o.inputs[stepPass].Value() {
			o.err = "the passphrases differ — type it again"
			o.inputs[stepPass].Reset()
			o.inputs[stepPass2].Reset()
			return o.focus(stepPass)
		}
		return o.focus(stepRelay)
	case stepRelay:
		url := strings.TrimSpace(o.inputs[stepRelay].Value())
		if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
			o.err = "the relay URL starts with ws:// or wss://"
			return nil
		}
		if o.profile == nil {
			o.err = "no profile store configured"
			return nil
		}
		o.focus(stepCreating)
		name := strings.TrimSpace(o.inputs[stepName].Value())
		pass := []byte(o.inputs[stepPass].Value())
		p, c := o.profile, o.c
		return func() tea.Msg {
			ctx, cancel := c.opCtx()
			defer cancel()
			b, err := p.Create(ctx, name, pass, url)
			clear(pass)
			return createdMsg{b, err}
		}
	}
	return nil
}

func (o *onboarding) View() string {
	s := &o.c.styles
	w := min(60, max(20, o.c.width-4))
	lines := []string{
		s.Logo.Render(assets.Logo()), "",
		s.Title.Render("Welcome. Let's create your identity."),
		s.Muted.Render(lipgloss.Wrap("Your keys are made on this machine and sealed under your passphrase; "+
			"the relay only ever sees ciphertext.", w, "")),
		"",
	}
	for i := range o.inputs {
		if onboardStep(i) > o.step && o.step != stepCreating {
			break
		}
		lines = append(lines, o.inputs[i].View())
	}
	lines = append(lines, "")
	switch {
	case o.step == stepCreating:
		lines = append(lines, s.Muted.Render("creating keys and registering with the relay…"))
	case o.err != "":
		lines = append(lines, s.Error.Render(lipgloss.Wrap(o.err, w, "")))
	default:
		lines = append(lines, o.c.hint("enter", "next", "esc", "back", "ctrl+c", "quit"))
	}
	return placeForm(o.c, lines)
}

// unlock asks for the passphrase of an existing profile; a wrong one says so and asks
// again.
type unlock struct {
	c        *common
	profile  Profile
	input    textinput.Model
	err      string
	busy     bool
	attempts int
	preset   []byte // passphrase given up front; tried once at start
}

type openedMsg struct {
	b   Backend
	err error
}

func newUnlock(c *common, p Profile) *unlock {
	ti := textinput.New()
	ti.Prompt = "passphrase: "
	ti.EchoMode = textinput.EchoPassword
	ti.EchoCharacter = '•'
	ti.SetStyles(c.styles.TextInput)
	ti.SetWidth(40)
	ti.Focus()
	return &unlock{c: c, profile: p, input: ti}
}

// Init tries a passphrase given up front.
func (u *unlock) Init() tea.Cmd {
	if len(u.preset) == 0 {
		return nil
	}
	pass := u.preset
	u.preset = nil
	u.busy = true
	return u.open(pass)
}

func (u *unlock) open(pass []byte) tea.Cmd {
	p, c := u.profile, u.c
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		b, err := p.Open(ctx, pass)
		clear(pass)
		return openedMsg{b, err}
	}
}

func (u *unlock) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case stylesChangedMsg:
		u.input.SetStyles(u.c.styles.TextInput)
		return u, nil
	case openedMsg:
		u.busy = false
		if msg.err != nil {
			u.attempts++
			if errors.Is(msg.err, ErrWrongPassphrase) {
				u.err = "wrong passphrase — try again"
			} else {
				u.err = "could not open your profile: " + errText(msg.err)
			}
			u.input.Reset()
			return u, u.input.Focus()
		}
		return u, func() tea.Msg { return backendReadyMsg{msg.b} }
	case tea.KeyPressMsg:
		if u.busy {
			return u, nil
		}
		if msg.String() == "enter" {
			if u.input.Value() == "" {
				return u, nil
			}
			u.busy, u.err = true, ""
			return u, u.open([]byte(u.input.Value()))
		}
	}
	if u.busy {
		return u, nil
	}
	var cmd tea.Cmd
	u.input, cmd = u.input.Update(msg)
	return u, cmd
}

func (u *unlock) View() string {
	s := &u.c.styles
	w := min(60, max(20, u.c.width-4))
	lines := []string{s.Logo.Render(assets.Logo()), "", s.Title.Render("Unlock your profile"), "", u.input.View(), ""}
	switch {
	case u.busy:
		lines = append(lines, s.Muted.Render("unlocking…"))
	case u.err != "":
		lines = append(lines, s.Error.Render(lipgloss.Wrap(u.err, w, "")))
	default:
		lines = append(lines, u.c.hint("enter", "unlock", "ctrl+c", "quit"))
	}
	return placeForm(u.c, lines)
}

// placeForm centres a form as one block: its lines stay left-aligned with each other
// (lipgloss.Place alone would centre every line on its own).
func placeForm(c *common, lines []string) string {
	block := strings.Split(strings.Join(lines, "\n"), "\n")
	w := 0
	for _, l := range block {
		w = max(w, lipgloss.Width(l))
	}
	for i, l := range block {
		block[i] = fitLine(l, w)
	}
	return lipgloss.Place(c.width, c.height, lipgloss.Center, lipgloss.Center, strings.Join(block, "\n"))
}
