package cli

import (
	"bytes"
	"os"
	"path/filepath"
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

// The echo sends a file back, so the demo shows a file arriving as well as leaving; a
// file over echoFileLimit gets a sentence instead.
func TestDemoEchoSendsFileBack(t *testing.T) {
	d, err := StartDemo(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.greet()
	dir := t.TempDir()
	want := bytes.Repeat([]byte("pfschat "), 9000)
	path := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Me.SendFile(t.Context(), EchoName, path, "", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		var ev chat.Event
		select {
		case ev = <-d.Me.Events():
		case <-deadline:
			t.Fatal("the echo did not send the file back within 30 s")
		}
		if ev.Kind != chat.MessageReceived || ev.Message == nil || ev.Message.Attachment == nil {
			continue
		}
		saved, err := d.Me.Download(t.Context(), ev.Message.ID, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(saved)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("the echo's file has %d bytes, not the %d sent", len(got), len(want))
		}
		if name := filepath.Base(saved); name != "notes.txt" {
			t.Errorf("the echo's file was saved as %q, want notes.txt", name)
		}
		return
	}
}
