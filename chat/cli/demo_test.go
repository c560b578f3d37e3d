package cli

import (
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat"
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
	app := ui.New(t.Context(), ui.Options{Backend: d.Backend(), OpenContact: EchoName, OnFrame: s.Record, Location: time.UTC})
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(100, 30))
	s.WaitText(t, "I am echo", "relay connected")
	tm.Type("hello echo")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	s.WaitText(t, "ohce olleh", "message #")
	tm.Send(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl})
	tm.WaitFinished(t, teatest.WithFinalTimeout(15*time.Second))
}

// The demo's profiles start with a few one-time prekeys (the first frame does not wait
// for 400), and both hold chat.DefaultOneTimeKeys of each kind after the greeting.
func TestDemoTopsUpPrekeys(t *testing.T) {
	d, err := StartDemo(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.topUpDelay = 0
	for _, c := range []*chat.Controller{d.Me, d.Echo} {
		x, k, err := c.OneTimeKeysOnRelay(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if x > demoFirstKeys || k > demoFirstKeys {
			t.Errorf("%s starts with %d X25519 and %d ML-KEM one-time prekeys on the relay, want at most %d each", c.Me(), x, k, demoFirstKeys)
		}
	}
	d.greet()
	select {
	case <-d.toppedUp:
	case <-time.After(20 * time.Second):
		t.Fatal("the demo's prekeys were not topped up within 20 s")
	}
	for _, c := range []*chat.Controller{d.Me, d.Echo} {
		x, k, err := c.OneTimeKeysOnRelay(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if x < chat.DefaultOneTimeKeys || k < chat.DefaultOneTimeKeys {
			t.Errorf("%s holds %d X25519 and %d ML-KEM one-time prekeys on the relay, want %d each", c.Me(), x, k, chat.DefaultOneTimeKeys)
		}
	}
}
