package ui

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// pinnedEnv and pinnedProfile make rendering identical on every machine: golden files
// depend on them.
var pinnedEnv = []string{"TERM=xterm-256color", "COLORTERM="}

const pinnedProfile = colorprofile.ANSI256

// frames records every frame the App renders, as plain text, and lets a test wait for
// one that satisfies a condition. It watches View() itself rather than the renderer's
// diff stream, which only carries changed cells.
type frames struct {
	mu     sync.Mutex
	last   string
	styled string
	n      int
	signal chan struct{}
}

func newFrames() *frames { return &frames{signal: make(chan struct{}, 1)} }

func (f *frames) record(frame string) {
	f.mu.Lock()
	f.styled = frame
	f.last = ansi.Strip(frame)
	f.n++
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

func (f *frames) Last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// waitFor blocks until a frame satisfies cond, failing the test with the last frame
// after the deadline. It wakes on every new frame; no polling interval, no sleeps.
func (f *frames) waitFor(t testing.TB, what string, cond func(frame string) bool) string {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		if last := f.Last(); cond(last) {
			return last
		}
		select {
		case <-f.signal:
		case <-deadline.C:
			t.Fatalf("no frame with %s; last frame:\n%s", what, f.Last())
		}
	}
}

// next waits for the next frame (or a short while when nothing changes on screen).
func (f *frames) next(t testing.TB) {
	t.Helper()
	select {
	case <-f.signal:
	case <-time.After(200 * time.Millisecond):
	}
}

func (f *frames) waitText(t testing.TB, texts ...string) string {
	t.Helper()
	return f.waitFor(t, strings.Join(texts, " & "), func(s string) bool {
		for _, x := range texts {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// fixedNow is the pinned clock of golden tests: Thursday 26 November 2026, 09:30 UTC.
var fixedNow = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

// startUI runs an App in teatest at w×h with the pinned terminal.
func startUI(t *testing.T, opts Options, w, h int) (*teatest.TestModel, *frames) {
	t.Helper()
	fr := newFrames()
	opts.OnFrame = fr.record
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	app := New(ctx, opts)
	tm := teatest.NewTestModel(t, app,
		teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithEnvironment(pinnedEnv), tea.WithColorProfile(pinnedProfile)),
	)
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	})
	return tm, fr
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
