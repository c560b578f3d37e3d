package ui

import (
	"context"

	tea "charm.land/bubbletea/v2"

	"pfschat/assets"
)

// starting is the screen shown while Options.Start makes the backend: the program, and
// with it Bubble Tea's frame ticker, starts at once instead of after the backend, so the
// first frame with the backend's data waits for at most one tick (issue 14: the demo
// starts a relay and two profiles behind it). Keys typed meanwhile are dropped, as the
// unlock screen's are once it opens the profile: the main screen may open with a
// dialog (a new account's recovery code) that a stray Enter would dismiss unseen. An
// error from Start ends Run with that error.
type starting struct {
	c     *common
	start func(context.Context) (Backend, error)
	err   error
}

// startedMsg carries Start's result, and the backend's contact list when it came.
type startedMsg struct {
	b        Backend
	err      error
	contacts *contactsMsg
}

func newStarting(c *common, start func(context.Context) (Backend, error)) *starting {
	return &starting{c: c, start: start}
}

func (s *starting) Init() tea.Cmd {
	start, c := s.start, s.c
	return func() tea.Msg {
		b, err := start(c.ctx)
		if err != nil {
			return startedMsg{err: err}
		}
		// Read the contact list here, at once: through the main screen's first command
		// it would come a few frames later, behind that screen's other starts.
		listed := c.loadContacts(b)().(contactsMsg)
		return startedMsg{b: b, contacts: &listed}
	}
}

func (s *starting) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case startedMsg:
		if msg.err != nil {
			if s.c.ctx.Err() == nil { // else the end of ctx stopped it: an ordinary way out
				s.err = msg.err
			}
			return s, tea.Quit
		}
		return s, func() tea.Msg { return backendReadyMsg{b: msg.b, contacts: msg.contacts} }
	}
	return s, nil
}

func (s *starting) View() string {
	st := &s.c.styles
	return placeForm(s.c, []string{st.Logo.Render(assets.Logo()), "", st.Muted.Render("starting…")})
}
