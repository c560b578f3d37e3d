package cli

import (
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat/chattest"
	"pfschat/chat/profile"
	"pfschat/ui"
)

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
	s := new(chattest.Frames)
	app := ui.New(t.Context(), ui.Options{Backend: d.Me, OpenContact: EchoName, OnFrame: s.Record, Location: time.UTC})
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(100, 30))
	s.WaitText(t, "I am echo", "relay connected")
	tm.Type("hello echo")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	s.WaitText(t, "ohce olleh", "message #")
	tm.Send(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl})
	tm.WaitFinished(t, teatest.WithFinalTimeout(15*time.Second))
}
