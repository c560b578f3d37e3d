package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat/chattest"
)

// pinnedEnv and pinnedProfile make rendering identical on every machine: golden files
// depend on them.
var pinnedEnv = []string{"TERM=xterm-256color", "COLORTERM="}

const pinnedProfile = colorprofile.ANSI256

// fixedNow is the pinned clock of golden tests: Thursday 26 November 2026, 09:30 UTC.
var fixedNow = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

// startUI runs an App in teatest at w×h with the pinned terminal.
func startUI(t *testing.T, opts Options, w, h int) (*teatest.TestModel, *chattest.Frames) {
	t.Helper()
	fr := new(chattest.Frames)
	opts.OnFrame = fr.Record
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	gate := &sizeGate{App: New(t.Context(), opts), settled: make(chan struct{})}
	tm := teatest.NewTestModel(t, gate,
		teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithEnvironment(pinnedEnv), tea.WithColorProfile(pinnedProfile)),
	)
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	})
	select {
	case <-gate.settled:
	case <-time.After(20 * time.Second):
		t.Fatal("the UI did not get its initial window size twice within 20 s")
	}
	return tm, fr
}

// sizeGate passes every message to the App and closes settled once the App has had
// both initial WindowSizeMsgs: teatest's, and the one Bubble Tea sends from a goroutine
// of its own at start (tea.go: go p.Send(resizeMsg)), which on a loaded machine can
// otherwise arrive after a test's own resize and undo it (TestResizeTo40ColumnsAndBack
// saw a 100-column frame after its 40-column one, once in CI).
type sizeGate struct {
	*App
	sizes   int
	settled chan struct{}
}

func (g *sizeGate) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(tea.WindowSizeMsg); ok && g.sizes < 2 {
		if g.sizes++; g.sizes == 2 {
			close(g.settled)
		}
	}
	m, cmd := g.App.Update(msg)
	g.App = m.(*App)
	return g, cmd
}

// finalApp is the App a finished test program ended with.
func finalApp(t *testing.T, tm *teatest.TestModel) *App {
	t.Helper()
	return tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*sizeGate).App
}

// typePassphraseTwice types pass at the passphrase prompt on screen, then again at its
// confirmation ("again:"), each with enter.
func typePassphraseTwice(t *testing.T, tm *teatest.TestModel, fr *chattest.Frames, pass string) {
	t.Helper()
	tm.Type(pass)
	press(tm, "enter")
	fr.WaitText(t, "again:")
	tm.Type(pass)
	press(tm, "enter")
}

// press sends one key press; names as tea prints them ("enter", "ctrl+n", "alt+enter").
func press(tm *teatest.TestModel, name string) {
	tm.Send(keyMsg(name))
}

func keyMsg(name string) tea.KeyPressMsg {
	var k tea.KeyPressMsg
	parts := strings.Split(name, "+")
	base := parts[len(parts)-1]
	for _, p := range parts[:len(parts)-1] {
		switch p {
		case "ctrl":
			k.Mod |= tea.ModCtrl
		case "alt":
			k.Mod |= tea.ModAlt
		case "shift":
			k.Mod |= tea.ModShift
		}
	}
	switch base {
	case "enter":
		k.Code = tea.KeyEnter
	case "esc":
		k.Code = tea.KeyEscape
	case "tab":
		k.Code = tea.KeyTab
	case "up":
		k.Code = tea.KeyUp
	case "down":
		k.Code = tea.KeyDown
	case "pgup":
		k.Code = tea.KeyPgUp
	case "pgdown":
		k.Code = tea.KeyPgDown
	case "backspace":
		k.Code = tea.KeyBackspace
	case "end":
		k.Code = tea.KeyEnd
	case "home":
		k.Code = tea.KeyHome
	case "f1":
		k.Code = tea.KeyF1
	default:
		r := []rune(base)
		k.Code = r[0]
		if k.Mod == 0 {
			k.Text = base
		}
	}
	return k
}

// downsample renders a styled frame as the pinned terminal would receive it.
func downsample(styled string) []byte {
	var buf bytes.Buffer
	w := colorprofile.NewWriter(&buf, pinnedEnv)
	w.Profile = pinnedProfile
	_, _ = w.WriteString(styled)
	return buf.Bytes()
}
