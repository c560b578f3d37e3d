package ui

import (
	"context"
	"errors"
	"io"

	tea "charm.land/bubbletea/v2"
)

// Run runs the UI on stdin and stdout until it quits, then closes whatever backend it
// ended with (quitting from the UI has closed it already). Ctrl+C and the end of ctx
// are ordinary ways out and return nil; a panic in the UI, or Options.Start's error,
// is returned as an error.
func Run(ctx context.Context, opts Options, stdin io.Reader, stdout io.Writer) error {
	app := New(ctx, opts)
	// Bubble Tea writes a changed frame at its next tick, so the frame rate bounds how
	// long a keystroke or an arriving message waits to be seen: 120 a second (its
	// maximum) halves the 60's wait of up to 17 ms (issue 14: the demo's first frame
	// 46–48 → 39–42 ms, alternated). Every tick wakes the process, changed or not:
	// about 150 µs of CPU on the project's VM, so an idle UI uses about 18 ms of CPU a
	// second against 9 at 60.
	p := tea.NewProgram(app, tea.WithContext(ctx), tea.WithInput(stdin), tea.WithOutput(stdout), tea.WithFPS(120))
	_, err := p.Run()
	if st, ok := app.screen.(*starting); ok && st.err != nil {
		return st.err // Options.Start failed: nothing else ran
	}
	if b := app.backend; b != nil && !app.quitting {
		if cerr := b.Close(); cerr != nil {
			app.c.log.Warn("closing chat backend", "err", cerr)
		}
	}
	switch {
	case errors.Is(err, tea.ErrProgramPanic): // first: a panic reads as "killed" too
		return err
	case errors.Is(err, tea.ErrInterrupted), errors.Is(err, tea.ErrProgramKilled):
		return nil
	}
	return err
}
