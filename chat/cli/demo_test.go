package cli

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat/profile"
	"pfschat/ui"
)

// screen keeps the UI's latest frame, as plain text, and wakes a waiting test on each
// new one.
type screen struct {
	mu     sync.Mutex
	last   string
	signal chan struct{}
}

func (s *screen) record(frame string) {
	s.mu.Lock()
	s.last = ansi.Strip(frame)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// waitText blocks until a frame shows every text, failing with the last frame after the
// deadline. It wakes on every new frame; no polling, no sleeps.
func (s *screen) waitText(t *testing.T, texts ...string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		if !missing(last, texts) {
			return
		}
		select {
		case <-s.signal:
		case <-deadline.C:
			t.Fatalf("no frame with %q; last frame:\n%s", texts, last)
		}
	}
}

// missing reports whether frame lacks one of texts.
func missing(frame string, texts []string) bool {
	return slices.ContainsFunc(texts, func(x string) bool { return !strings.Contains(frame, x) })
}

// The demo's wiring end to end: in-process relay, throwaway profiles, the echo contact
// answering through its own ratchet session. The demo reads no passphrase, so even an
// empty $PFSCHAT_PASSPHRASE (refused by every other command) does not stop it.
func TestDemoEchoAnswers(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "")
	d, err := StartDemo(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := &screen{signal: make(chan struct{}, 1)}
	app := ui.New(t.Context(), ui.Options{Backend: d.Me, OpenContact: EchoName, OnFrame: s.record, Location: time.UTC})
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(100, 30))
	s.waitText(t, "I am echo", "relay connected")
	tm.Type("hello echo")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	s.waitText(t, "ohce olleh", "message #")
	tm.Send(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl})
	tm.WaitFinished(t, teatest.WithFinalTimeout(15*time.Second))
}
