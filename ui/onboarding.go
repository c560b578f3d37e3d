package ui

import (
	"errors"
	"regexp"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/assets"
	"pfschat/chat"
	"pfschat/chat/profile"
	"pfschat/relay"
)

// ErrWrongPassphrase is what Profile.Open returns (wrapped) for a wrong passphrase.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// minPassphrase is the shortest passphrase onboarding accepts, as the headless commands
// do (profile.CheckNewPassphrase): the passphrase is the only thing between a stolen
// laptop and the message history.
const minPassphrase = profile.MinNewPassphrase

var nameRE = regexp.MustCompile(`^[a-z0-9._-]{1,32}$`)

// nameRule is what a name may be, said the same way as it is typed (live, under the
// field) and when Enter refuses it.
const nameRule = "a name is 1–32 characters: lower-case letters, digits, '.', '_' or '-'"

type onboardStep int

// The steps in the order they are asked: the relay first, so that its key is shown and
// the name can be checked against it as it is typed, and an invite asked for only when
// the relay registers by invitation.
const (
	stepRelay onboardStep = iota
	stepName
	stepInvite
	stepCode // recovering a taken name: its recovery code (recovering only)
	stepPass
	stepPass2
	stepCreating
	stepDone
	numInputs = int(stepPass2) + 1
)

// nameCheckDelay is how long typing must pause before the name is looked up (a
// debounce: one lookup per pause, not per key).
var nameCheckDelay = 300 * time.Millisecond

// nameState is what onboarding knows about the typed name.
type nameState int

const (
	nameUnchecked nameState = iota
	nameChecking
	nameFree
	nameTaken
	nameUnknown // the relay could not be asked; registration will tell
	nameInvalid // a character no name has: the rule is shown under the field
)

// onboarding creates the identity on first run: relay (its key shown), name (checked as
// it is typed), an invite code when the relay needs one, passphrase twice; then it
// shows the new identity's name and fingerprint.
type onboarding struct {
	c       *common
	profile Profile
	step    onboardStep
	inputs  [numInputs]textinput.Model
	err     string

	// The relay, once probed (Onboarder profiles only).
	probing      bool
	relayURL     string
	relayFP      string
	registration string

	// The name check: nameSeq numbers the typed values; a result for an older one is
	// dropped. enterWaiting: Enter was pressed while the check ran, so the step moves on
	// (or says why not) as soon as it answers — the key is not lost.
	nameSeq      int
	nameFor      string
	name         nameState
	nameErr      string
	enterWaiting bool

	created Backend // stepDone: the new identity's backend
	myFP    string

	// recovering: the user said the taken name is theirs (ctrl+r); the steps are then
	// the recovery code and the passphrase, and the end is Recoverer.RecoverWith —
	// what `pfschat recover` does. recovered: it succeeded (the done screen says so).
	recovering bool
	recovered  bool

	// queued holds what was typed while the relay was being probed: it goes to the name
	// step once the relay answered, so nothing typed early is lost.
	queued []tea.Msg
}

type createdMsg struct {
	b         Backend
	err       error
	recovered bool // the backend came from RecoverWith
}

type probedMsg struct {
	url  string
	info RelayInfo
	err  error
}

type nameCheckDueMsg struct{ seq int }

type nameCheckedMsg struct {
	seq       int
	available bool
	err       error
}

func newOnboarding(c *common, p Profile) *onboarding {
	o := &onboarding{c: c, profile: p}
	labels := [numInputs]string{"relay: ", "name: ", "invite: ", "recovery code: ", "passphrase: ", "again: "}
	for i := range o.inputs {
		ti := textinput.New()
		ti.Prompt = labels[i]
		ti.SetStyles(c.styles.TextInput)
		ti.SetWidth(40)
		o.inputs[i] = ti
	}
	o.inputs[stepName].Placeholder = "a-z 0-9 . _ -, up to 32"
	o.inputs[stepName].CharLimit = 32
	o.inputs[stepInvite].Placeholder = "the code the relay's operator gave you"
	o.inputs[stepInvite].CharLimit = 128
	// (No placeholder: the textinput cuts one at its width without an ellipsis; what to
	// type goes on a wrapped line under the field, codeLine.)
	o.inputs[stepCode].CharLimit = 128 // relay.ParseRecoveryCode reads no more
	// The recovery code takes the name for whoever reads it off the screen (or a
	// screen share, or the scrollback of a recorded session): masked like the
	// passphrase, as `pfschat recover` reads it.
	for _, i := range []onboardStep{stepPass, stepPass2, stepCode} {
		o.inputs[i].EchoMode = textinput.EchoPassword
		o.inputs[i].EchoCharacter = '•'
	}
	relay := profile.DefaultRelayURL
	if p != nil && p.DefaultRelayURL() != "" {
		relay = p.DefaultRelayURL()
	}
	o.inputs[stepRelay].SetValue(relay)
	o.inputs[stepRelay].Focus()
	return o
}

func (o *onboarding) onboarder() (Onboarder, bool) {
	ob, ok := o.profile.(Onboarder)
	return ob, ok
}

func (o *onboarding) recoverer() (Recoverer, bool) {
	r, ok := o.profile.(Recoverer)
	return r, ok
}

// takenText says the typed name is taken and, when the profile can recover names,
// how to take it back.
func (o *onboarding) takenText(name string) string {
	if _, ok := o.recoverer(); ok {
		return "“" + name + "” is taken on this relay — pick another name, or, if it is yours, press ctrl+r to recover it with your recovery code"
	}
	// identity recovery (recoverycode.go)
	return "“" + name + "” is taken on this relay — pick another name; if it is yours and you lost its device, get it back with your recovery code: quit and run 'pfschat recover " + name + "'"
}

// startRecovery: the taken name is the user's; ask for its recovery code.
func (o *onboarding) startRecovery() tea.Cmd {
	o.recovering, o.err, o.enterWaiting = true, "", false
	o.inputs[stepCode].Reset()
	return o.focus(stepCode)
}

// recoveryErr turns a refused recovery into what to do, and the step to do it at.
func (o *onboarding) recoveryErr(err error) (string, onboardStep) {
	name := o.inputs[stepName].Value()
	var limited *chat.RecoveryLimitedError
	switch {
	case errors.Is(err, chat.ErrRecoveryFailed):
		return "the relay refused this recovery code for “" + name + "” — check it against the one you wrote down; nothing was changed", stepCode
	case errors.As(err, &limited):
		return "too many recovery attempts for “" + name + "” — " + limited.Message + "; nothing was changed", stepCode
	case errors.Is(err, relay.ErrRecoveryCodeChecksum), errors.Is(err, relay.ErrRecoveryCodeMalformed):
		return codeErrText(err), stepCode
	case errors.Is(err, chat.ErrUnknownUser):
		o.recovering = false
		return "“" + name + "” has no account on this relay any more, so there is nothing to recover — press enter to create it", stepName
	}
	return "could not recover “" + name + "”: " + errText(err), stepPass
}

// codeErrText is a recovery code parse error as a sentence.
func codeErrText(err error) string {
	if errors.Is(err, relay.ErrRecoveryCodeChecksum) {
		return "this recovery code does not check out — a letter or digit is mistyped: compare it with the one you wrote down"
	}
	return "this is not a recovery code: it is 32 letters and digits in groups of four (1A2B-3C4D-…), as you were shown when you made the name"
}

func (o *onboarding) Init() tea.Cmd { return nil }

func (o *onboarding) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case stylesChangedMsg:
		for i := range o.inputs {
			o.inputs[i].SetStyles(o.c.styles.TextInput)
		}
		return o, nil
	case probedMsg:
		cmd := o.probed(msg)
		queued := o.queued
		o.queued = nil
		if msg.err != nil || o.step != stepName {
			return o, cmd // the relay step again: what was typed for the name is moot
		}
		cmds := []tea.Cmd{cmd}
		for _, q := range queued {
			var c tea.Cmd
			_, c = o.Update(q)
			cmds = append(cmds, c)
		}
		return o, tea.Batch(cmds...)
	case tea.PasteMsg:
		if o.probing {
			o.queued = append(o.queued, msg)
			return o, nil
		}
	case nameCheckDueMsg:
		return o, o.checkName(msg.seq)
	case nameCheckedMsg:
		return o, o.nameChecked(msg)
	case createdMsg:
		if msg.err != nil && msg.recovered {
			var at onboardStep
			o.err, at = o.recoveryErr(msg.err)
			if at == stepName {
				o.name = nameFree
			}
			return o, o.focus(at)
		}
		if msg.err != nil && errors.Is(msg.err, chat.ErrNameTaken) {
			// Taken meanwhile: said once, under the field (nameLine), with how to get it
			// back when it is the user's (identity recovery, recoverycode.go).
			o.name, o.nameFor, o.err = nameTaken, o.inputs[stepName].Value(), ""
			return o, o.focus(stepName)
		}
		if msg.err != nil {
			o.err = "could not create your identity: " + errText(msg.err)
			if o.registration == "invite" && strings.Contains(msg.err.Error(), "invite") {
				return o, o.focus(stepInvite) // the code was refused: fix it there
			}
			return o, o.focus(stepPass)
		}
		o.created, o.step, o.recovered = msg.b, stepDone, msg.recovered
		o.inputs[stepCode].Reset() // the spent code leaves the screen
		if f, ok := msg.b.(identityReporter); ok {
			o.myFP = f.Fingerprint()
		}
		return o, nil
	case tea.KeyPressMsg:
		switch {
		case o.step == stepCreating:
			return o, nil
		case o.step == stepDone:
			if msg.String() == "enter" {
				b := o.created
				return o, func() tea.Msg { return backendReadyMsg{b: b} }
			}
			return o, nil
		case o.probing:
			o.queued = append(o.queued, msg)
			return o, nil
		}
		switch msg.String() {
		case "enter":
			return o, o.next()
		case "ctrl+r":
			if _, ok := o.recoverer(); ok && o.step == stepName && o.name == nameTaken {
				return o, o.startRecovery()
			}
			return o, nil
		case "esc", "shift+tab":
			if o.step > stepRelay && !o.probing {
				o.err, o.enterWaiting = "", false
				prev := o.step - 1
				if prev == stepCode && !o.recovering {
					prev--
				}
				if prev == stepInvite && (o.registration != "invite" || o.recovering) {
					prev--
				}
				if prev == stepName {
					o.recovering = false // back to choosing the name
				}
				return o, o.focus(prev)
			}
			return o, nil
		}
	}
	if o.step >= stepCreating || o.probing {
		return o, nil
	}
	var cmd tea.Cmd
	before := o.inputs[o.step].Value()
	o.inputs[o.step], cmd = o.inputs[o.step].Update(msg)
	if o.inputs[o.step].Value() != before {
		// The error was about this field (next and the answers that refuse it focus
		// it): edited, it no longer says what is on screen.
		o.err = ""
	}
	if o.step == stepName {
		lowerName(&o.inputs[stepName])
	}
	if o.step == stepName && o.inputs[stepName].Value() != before {
		return o, tea.Batch(cmd, o.nameChanged())
	}
	if o.step == stepRelay && o.inputs[stepRelay].Value() != before {
		o.relayFP, o.registration, o.relayURL = "", "", "" // another relay: probe again
	}
	return o, cmd
}

// lowerName lower-cases the name as it is typed: names are lower case (the CLI takes
// "Bob" as bob too), and refusing "Alice" with a rule to read was a step for nothing.
func lowerName(in *textinput.Model) {
	v := in.Value()
	if l := strings.ToLower(v); l != v {
		pos := in.Position()
		in.SetValue(l)
		in.SetCursor(pos)
	}
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

// nameChanged starts the debounce for the new value; the check runs when typing pauses.
func (o *onboarding) nameChanged() tea.Cmd {
	o.nameSeq++
	o.name, o.nameErr, o.err, o.recovering = nameUnchecked, "", "", false
	name := o.inputs[stepName].Value()
	if name != "" && !nameRE.MatchString(name) {
		o.name = nameInvalid // said at once, not at Enter
		return nil
	}
	if _, ok := o.onboarder(); !ok || name == "" {
		return nil
	}
	seq := o.nameSeq
	return tea.Tick(nameCheckDelay, func(time.Time) tea.Msg { return nameCheckDueMsg{seq} })
}

// checkName looks the name up when typing has paused on value seq.
func (o *onboarding) checkName(seq int) tea.Cmd {
	ob, ok := o.onboarder()
	if !ok || seq != o.nameSeq || o.name == nameChecking {
		return nil
	}
	name := o.inputs[stepName].Value()
	if !nameRE.MatchString(name) {
		return nil
	}
	o.name, o.nameFor = nameChecking, name
	url, c := o.relayURL, o.c
	return func() tea.Msg {
		ctx, cancel := c.opCtx()
		defer cancel()
		ok, err := ob.NameAvailable(ctx, url, name)
		return nameCheckedMsg{seq: seq, available: ok, err: err}
	}
}

func (o *onboarding) nameChecked(msg nameCheckedMsg) tea.Cmd {
	if msg.seq != o.nameSeq {
		return o.checkName(o.nameSeq) // typed on meanwhile: check the current value
	}
	switch {
	case msg.err != nil:
		o.name, o.nameErr = nameUnknown, errText(msg.err)
	case msg.available:
		o.name = nameFree
	default:
		o.name = nameTaken
	}
	if o.enterWaiting && o.step == stepName {
		o.enterWaiting = false
		return o.next()
	}
	return nil
}

// probed records the relay's key and policy and moves on to the name.
func (o *onboarding) probed(msg probedMsg) tea.Cmd {
	o.probing = false
	if msg.err != nil {
		o.err = "could not reach the relay: " + errText(msg.err) + " — check the URL, or try again"
		return o.focus(stepRelay)
	}
	if msg.info.Registration == "closed" {
		o.err = "this relay takes no new registrations: ask its operator, or use another relay"
		return o.focus(stepRelay)
	}
	o.relayURL, o.relayFP, o.registration = msg.url, msg.info.Fingerprint, msg.info.Registration
	cmd := o.focus(stepName)
	return tea.Batch(cmd, o.nameChanged())
}

func (o *onboarding) next() tea.Cmd {
	o.err = ""
	switch o.step {
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
		ob, ok := o.onboarder()
		if !ok {
			o.relayURL = url
			return o.focus(stepName)
		}
		o.probing = true
		c := o.c
		return func() tea.Msg {
			ctx, cancel := c.opCtx()
			defer cancel()
			info, err := ob.ProbeRelay(ctx, url)
			return probedMsg{url: url, info: info, err: err}
		}
	case stepName:
		name := o.inputs[stepName].Value()
		switch {
		case name == "":
			o.err = "type the name others will find you by first"
			return nil
		case !nameRE.MatchString(name):
			o.name = nameInvalid // the rule, under the field (nameLine)
			return nil
		case o.name == nameTaken:
			return nil // said under the field (nameLine); saying it again here doubled it
		case o.name == nameChecking || o.name == nameUnchecked && o.hasOnboarder():
			// Enter before the check answered: wait for it instead of dropping the key.
			o.enterWaiting = true
			if o.name == nameUnchecked {
				return o.checkName(o.nameSeq)
			}
			return nil
		}
		if o.registration == "invite" {
			return o.focus(stepInvite)
		}
		return o.focus(stepPass)
	case stepInvite:
		if strings.TrimSpace(o.inputs[stepInvite].Value()) == "" {
			o.err = "this relay registers by invitation: paste the code its operator gave you (made with `pfschat relay invite`)"
			return nil
		}
		return o.focus(stepPass)
	case stepCode:
		code := strings.TrimSpace(o.inputs[stepCode].Value())
		if code == "" {
			o.err = "type the recovery code you were shown when you made “" + o.inputs[stepName].Value() + "”"
			return nil
		}
		if _, err := relay.ParseRecoveryCode(code); err != nil {
			o.err = codeErrText(err)
			return nil
		}
		return o.focus(stepPass)
	case stepPass:
		if len([]rune(o.inputs[stepPass].Value())) < minPassphrase {
			o.err = profile.ErrShortPassphrase.Error()
			// Emptied, as after a mismatch: the field shows only dots, and the next try
			// typed after the short one would otherwise become its continuation.
			o.inputs[stepPass].Reset()
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
		o.focus(stepCreating)
		if r, ok := o.recoverer(); ok && o.recovering {
			req := RecoverRequest{Name: o.inputs[stepName].Value(), Code: strings.TrimSpace(o.inputs[stepCode].Value()),
				Passphrase: []byte(o.inputs[stepPass].Value()), RelayURL: o.relayURL}
			c := o.c
			return func() tea.Msg {
				ctx, cancel := c.opCtx()
				defer cancel()
				b, err := r.RecoverWith(ctx, req)
				clear(req.Passphrase)
				return createdMsg{b: b, err: err, recovered: true}
			}
		}
		req := CreateRequest{Name: o.inputs[stepName].Value(), Passphrase: []byte(o.inputs[stepPass].Value()),
			RelayURL: o.relayURL, Invite: strings.TrimSpace(o.inputs[stepInvite].Value())}
		p, c := o.profile, o.c
		return func() tea.Msg {
			ctx, cancel := c.opCtx()
			defer cancel()
			var b Backend
			var err error
			if ob, ok := p.(Onboarder); ok {
				b, err = ob.CreateWith(ctx, req)
			} else {
				b, err = p.Create(ctx, req.Name, req.Passphrase, req.RelayURL)
			}
			clear(req.Passphrase)
			return createdMsg{b: b, err: err}
		}
	}
	return nil
}

func (o *onboarding) hasOnboarder() bool { _, ok := o.onboarder(); return ok }

func (o *onboarding) canRecover() bool { _, ok := o.recoverer(); return ok }

func (o *onboarding) View() string {
	s := &o.c.styles
	w := min(60, max(20, o.c.width-4))
	if o.step == stepDone {
		return placeForm(o.c, o.doneLines(w))
	}
	lines := []string{
		s.Logo.Render(assets.Logo()), "",
		s.Title.Render("Welcome. Let's create your identity."),
		s.Muted.Render(lipgloss.Wrap("Your keys are made on this machine and sealed under your passphrase; "+
			"the relay only ever sees ciphertext.", w, "")),
		"",
	}
	if o.recovering {
		lines[2] = s.Title.Render("Recover “" + o.inputs[stepName].Value() + "” with your recovery code.")
		lines[3] = s.Muted.Render(lipgloss.Wrap("A new identity key is made on this machine and takes the lost one's place on the relay; "+
			"your contacts will be asked to confirm it. Messages sent to the old key cannot be read here.", w, ""))
	}
	for i := range o.inputs {
		st := onboardStep(i)
		if st > o.step && o.step != stepCreating {
			break
		}
		if st == stepInvite && (o.registration != "invite" || o.recovering) || st == stepCode && !o.recovering {
			continue
		}
		lines = append(lines, o.inputs[i].View())
		switch {
		case st == stepRelay && o.relayFP != "":
			lines = append(lines, s.Muted.Render(hangWrap("  ", "relay key "+o.relayFP+" — compare it with the one its operator publishes", o.lineWidth(w))))
		case st == stepName && o.step == stepName:
			if l := o.nameLine(o.lineWidth(w)); l != "" {
				lines = append(lines, l)
			}
		case st == stepCode && o.step == stepCode && o.inputs[stepCode].Value() == "":
			lines = append(lines, s.Muted.Render(hangWrap("  ", "the code you were shown when you made “"+o.inputs[stepName].Value()+"”", o.lineWidth(w))))
		}
	}
	lines = append(lines, "")
	switch {
	case o.step == stepCreating && o.recovering:
		lines = append(lines, s.Muted.Render("creating new keys and recovering your name with the relay…"))
	case o.step == stepCreating:
		lines = append(lines, s.Muted.Render("creating keys and registering with the relay…"))
	case o.probing:
		lines = append(lines, s.Muted.Render("contacting the relay…"))
	case o.enterWaiting:
		lines = append(lines, s.Muted.Render("checking whether the name is free — one moment…"))
	default:
		// An error says what went wrong; the keys stay below it (they vanished, and
		// with them how to go back or quit).
		if o.err != "" {
			lines = append(lines, s.Error.Render(lipgloss.Wrap(o.err, w, "")), "")
		}
		if o.step == stepName && o.name == nameTaken && o.canRecover() {
			lines = append(lines, o.c.hint("ctrl+r", "it's mine: recover it", "esc", "back", "ctrl+c", "quit"))
		} else {
			lines = append(lines, o.c.hint("enter", "next", "esc", "back", "ctrl+c", "quit"))
		}
	}
	// The block is as wide as its lines under the fields may get: at 80 columns its
	// left edge jumped from 12 to 2 cells when the relay key's line appeared.
	return placeFormWidth(o.c, lines, o.lineWidth(w))
}

// lineWidth is how wide a line under a field may be: the form's width, or more when the
// terminal has room (up to 4 cells short of it, at most formLineMax), so that on 80
// columns the relay key's and the name check's lines wrap rather than being cut at
// the edge.
func (o *onboarding) lineWidth(w int) int { return max(w, min(o.c.width-4, formLineMax)) }

// formLineMax is the widest a line under an onboarding field gets.
const formLineMax = 76

// nameLine says what the relay said about the typed name, wrapped to w cells.
func (o *onboarding) nameLine(w int) string {
	s := &o.c.styles
	name := o.inputs[stepName].Value()
	switch o.name {
	case nameChecking:
		return s.Muted.Render("  checking…")
	case nameFree:
		return s.Muted.Render("  ✓ " + name + " is free")
	case nameTaken:
		return s.Error.Render(hangWrap("  ✗ ", o.takenText(name), w))
	case nameInvalid:
		return s.Error.Render(hangWrap("  ✗ ", nameRule, w))
	case nameUnknown:
		return s.Muted.Render(hangWrap("  ", "could not check the name ("+o.nameErr+"); registration will tell", w))
	}
	return ""
}

// doneLines is the last step: who you are now, and how others can check it.
func (o *onboarding) doneLines(w int) []string {
	s := &o.c.styles
	me := o.inputs[stepName].Value()
	if o.created != nil {
		me = o.created.Me()
	}
	lines := []string{s.Logo.Render(assets.Logo()), "", s.Title.Render("You are " + me + "."), ""}
	if o.myFP != "" {
		lines = append(lines, "your key fingerprint  "+o.myFP)
	}
	if o.relayFP != "" {
		lines = append(lines, "relay key fingerprint "+o.relayFP)
	}
	if o.recovered {
		lines = append(lines, "", s.Muted.Render(lipgloss.Wrap("Recovered with your recovery code: this is a new identity key. "+
			"Your contacts will be asked to confirm it. The old recovery code is used up — your new one is shown next, once.", w, "")))
	}
	lines = append(lines, "",
		s.Muted.Render(lipgloss.Wrap("Tell people your name; compare safety numbers with each contact (/verify) to be sure no one is in between. /whoami shows this again.", w, "")),
		"", o.c.hint("enter", "start", "ctrl+c", "quit"))
	return lines
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
	// whose and where: the profile being unlocked (ProfileNamer), shown in the title.
	whose, where string
	// queued: keys typed while a passphrase was being tried. A failed try gives them to
	// the passphrase field (nothing typed is lost); a successful one drops them, so
	// that a passphrase typed meanwhile never reaches the message input.
	queued []tea.Msg
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
	u := &unlock{c: c, profile: p, input: ti}
	if n, ok := p.(ProfileNamer); ok {
		u.whose, u.where = n.ProfileName()
	}
	return u
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
			switch {
			case errors.Is(msg.err, ErrWrongPassphrase):
				u.err = "wrong passphrase — try again"
			case errors.Is(msg.err, chat.ErrIdentityReplaced):
				u.err = "could not open your profile: " + errText(msg.err) + ". " + chat.IdentityReplacedAdvice
			default:
				u.err = "could not open your profile: " + errText(msg.err)
			}
			u.input.Reset()
			cmds := []tea.Cmd{u.input.Focus()}
			queued := u.queued
			u.queued = nil
			for _, q := range queued {
				_, c := u.Update(q)
				cmds = append(cmds, c)
			}
			return u, tea.Batch(cmds...)
		}
		clear(u.queued)
		u.queued = nil
		return u, func() tea.Msg { return backendReadyMsg{b: msg.b} }
	case tea.KeyPressMsg, tea.PasteMsg:
		if u.busy {
			u.queued = append(u.queued, msg)
			return u, nil
		}
	}
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
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
	title := "Unlock your profile"
	if u.whose != "" {
		title = "Unlock " + u.whose + "'s profile"
	}
	lines := []string{s.Logo.Render(assets.Logo()), "", s.Title.Render(title)}
	if u.where != "" {
		lines = append(lines, s.Muted.Render(ansi.Truncate("in "+u.where, w, "…")))
	}
	lines = append(lines, "", u.input.View(), "")
	switch {
	case u.busy:
		lines = append(lines, s.Muted.Render("unlocking…"))
	default:
		if u.err != "" { // the keys stay below the error, as in onboarding
			lines = append(lines, s.Error.Render(lipgloss.Wrap(u.err, w, "")), "")
		}
		lines = append(lines, u.c.hint("enter", "unlock", "ctrl+c", "quit"))
	}
	return placeForm(u.c, lines)
}

// placeForm centres a form as one block: its lines stay left-aligned with each other
// (lipgloss.Place alone would centre every line on its own).
func placeForm(c *common, lines []string) string { return placeFormWidth(c, lines, 0) }

// placeFormWidth is placeForm with a block at least minW cells wide (at most the
// terminal's), so that its left edge stays put as lines come and go.
func placeFormWidth(c *common, lines []string, minW int) string {
	block := strings.Split(strings.Join(lines, "\n"), "\n")
	w := min(minW, c.width)
	for _, l := range block {
		w = max(w, lipgloss.Width(l))
	}
	for i, l := range block {
		block[i] = fitLine(l, w)
	}
	return lipgloss.Place(c.width, c.height, lipgloss.Center, lipgloss.Center, strings.Join(block, "\n"))
}
