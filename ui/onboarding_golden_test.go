package ui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"
)

// fakeOnboarder is a deterministic Onboarder for the golden files: a fixed relay key,
// a relay that registers by invitation, and one taken name. The behaviour tests
// (chat_test.go) run onboarding against a real relay.
type fakeOnboarder struct{ exists bool }

type fpBackend struct{ *memBackend }

func (fpBackend) Fingerprint() string      { return "9c01 3f2a 0b45 77de e210" }
func (fpBackend) RelayFingerprint() string { return "3f2a 9c01 77de 0b45 e210" }

func (f *fakeOnboarder) Exists() bool            { return f.exists }
func (f *fakeOnboarder) DefaultRelayURL() string { return "wss://relay.example.org" }
func (f *fakeOnboarder) Create(ctx context.Context, name string, _ []byte, _ string) (Backend, error) {
	return f.CreateWith(ctx, CreateRequest{Name: name})
}
func (f *fakeOnboarder) Open(context.Context, []byte) (Backend, error) {
	return nil, errors.New("not in the golden tests")
}
func (f *fakeOnboarder) ProbeRelay(context.Context, string) (RelayInfo, error) {
	return RelayInfo{Fingerprint: "3f2a 9c01 77de 0b45 e210", Registration: "invite"}, nil
}
func (f *fakeOnboarder) NameAvailable(_ context.Context, _, name string) (bool, error) {
	return name != "bob", nil
}
func (f *fakeOnboarder) CreateWith(_ context.Context, req CreateRequest) (Backend, error) {
	return fpBackend{newMemBackend(req.Name, func() time.Time { return fixedNow })}, nil
}
func (f *fakeOnboarder) ProfileName() (string, string) {
	return "alice", "/home/alice/.local/share/pfschat"
}

// golden renders the UI's final frame after the test quit it.
func golden(t *testing.T, tm *teatest.TestModel) {
	t.Helper()
	tm.Quit()
	final := finalApp(t, tm)
	teatest.RequireEqualOutput(t, downsample(final.render()))
}

// TestGoldenOnboarding pins onboarding's screens at 100×30: the name step with the
// relay's key and the name check, the invite step, and the end with the new identity.
func TestGoldenOnboarding(t *testing.T) {
	t.Run("name", func(t *testing.T) {
		tm, fr := startUI(t, Options{Profile: &fakeOnboarder{}}, 100, 30)
		fr.WaitText(t, "relay:")
		press(tm, "enter")
		fr.WaitText(t, "relay key 3f2a", "name:")
		tm.Type("bob")
		fr.WaitText(t, "✗ “bob” is taken")
		golden(t, tm)
	})
	t.Run("invite", func(t *testing.T) {
		tm, fr := startUI(t, Options{Profile: &fakeOnboarder{}}, 100, 30)
		fr.WaitText(t, "relay:")
		press(tm, "enter")
		fr.WaitText(t, "name:")
		tm.Type("alice")
		press(tm, "enter")
		fr.WaitText(t, "invite:")
		press(tm, "enter")
		fr.WaitText(t, "registers by invitation")
		golden(t, tm)
	})
	t.Run("done", func(t *testing.T) {
		tm, fr := startUI(t, Options{Profile: &fakeOnboarder{}}, 100, 30)
		fr.WaitText(t, "relay:")
		press(tm, "enter")
		fr.WaitText(t, "name:")
		tm.Type("alice")
		press(tm, "enter")
		fr.WaitText(t, "invite:")
		tm.Type("c0de")
		press(tm, "enter")
		tm.Type("correct horse battery")
		press(tm, "enter")
		tm.Type("correct horse battery")
		press(tm, "enter")
		fr.WaitText(t, "You are alice.", "9c01 3f2a")
		golden(t, tm)
	})
}

// TestGoldenUnlock pins the unlock screen, which names the profile it opens.
func TestGoldenUnlock(t *testing.T) {
	tm, fr := startUI(t, Options{Profile: &fakeOnboarder{exists: true}}, 100, 30)
	fr.WaitText(t, "Unlock alice's profile")
	golden(t, tm)
}

// slowProbe is a fakeOnboarder whose relay answers only when the test lets it.
type slowProbe struct {
	fakeOnboarder
	release chan struct{}
}

func (s *slowProbe) ProbeRelay(ctx context.Context, url string) (RelayInfo, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return RelayInfo{}, ctx.Err()
	}
	return s.fakeOnboarder.ProbeRelay(ctx, url)
}

// What is typed while the relay is still being asked — the name and its Enter — is not
// lost: it lands on the name step once the relay answered.
func TestOnboardingKeepsEarlyTyping(t *testing.T) {
	p := &slowProbe{release: make(chan struct{})}
	tm, fr := startUI(t, Options{Profile: p}, 100, 30)
	fr.WaitText(t, "relay:")
	press(tm, "enter")
	fr.WaitText(t, "contacting the relay…")
	tm.Type("alice")
	press(tm, "enter")
	close(p.release)
	fr.WaitText(t, "name: alice", "invite:")
	tm.Quit()
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// gatedOpen is a profile whose first unlock (the passphrase given up front) answers
// only when the test lets it, wrongly; the second takes "typed early".
type gatedOpen struct {
	fakeOnboarder
	release chan struct{}
	calls   int
}

func (g *gatedOpen) Open(ctx context.Context, pass []byte) (Backend, error) {
	g.calls++
	if g.calls == 1 {
		select {
		case <-g.release:
		case <-ctx.Done():
		}
		return nil, ErrWrongPassphrase
	}
	if string(pass) != "typed early" {
		return nil, ErrWrongPassphrase
	}
	return fpBackend{newMemBackend("alice", func() time.Time { return fixedNow })}, nil
}

// A passphrase typed (with its Enter) while the one given up front is still being
// tried is not lost: when that one fails, it is tried next.
func TestUnlockKeepsEarlyTyping(t *testing.T) {
	p := &gatedOpen{fakeOnboarder: fakeOnboarder{exists: true}, release: make(chan struct{})}
	tm, fr := startUI(t, Options{Profile: p, Passphrase: []byte("stale")}, 100, 30)
	fr.WaitText(t, "Unlock alice's profile", "unlocking…")
	tm.Type("typed early")
	press(tm, "enter")
	close(p.release)
	fr.WaitText(t, "Write a message")
	tm.Quit()
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// TestOnboardingAt80Columns: on an 80×24 terminal the line under the relay field and
// the name check wrap instead of being cut at the edge ("…its operator publ"), and a
// passphrase refused as too short is emptied, so the next one typed is not appended to
// it (the field shows only dots; the confirmation then differed for no visible reason).
func TestOnboardingAt80Columns(t *testing.T) {
	tm, fr := startUI(t, Options{Profile: &fakeOnboarder{}}, 80, 24)
	fr.WaitText(t, "relay:")
	press(tm, "enter")
	frame := fr.WaitText(t, "relay key 3f2a", "name:")
	checkFrame(t, frame, 80, 24)
	if !strings.Contains(frame, "publishes") {
		t.Fatalf("the relay key's line is cut at 80 columns:\n%s", frame)
	}
	tm.Type("alice")
	press(tm, "enter")
	fr.WaitText(t, "invite:")
	tm.Type("c0de")
	press(tm, "enter")
	fr.WaitText(t, "passphrase:")
	tm.Type("short")
	press(tm, "enter")
	fr.WaitText(t, "use at least 8 characters")
	typePassphraseTwice(t, tm, fr, "correct horse")
	fr.WaitText(t, "You are alice.")
}
