package ui

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
)

// recoveringBackend holds a new account's recovery code, as a controller made by Create
// does.
type recoveringBackend struct{ *memBackend }

func (recoveringBackend) TakeRecoveryCode() string { return "0000-1111-2222" }

// With Options.Start the UI draws its starting screen at once; the main screen's first
// frame already lists the contacts and opens Options.OpenContact; a new account's
// recovery code is shown as after onboarding; and keys typed before the backend is
// there go nowhere: an Enter among them does not dismiss that code unseen.
func TestStartShowsTheBackendOnceMade(t *testing.T) {
	release := make(chan struct{})
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", LastActivity: fixedNow})
	b.addMessage(chat.Message{Contact: "bob", Text: "hello from bob", SentAt: fixedNow, ReceivedAt: fixedNow})
	start := func(ctx context.Context) (Backend, error) {
		select {
		case <-release:
			return recoveringBackend{b}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	tm, fr := startUI(t, Options{Start: start, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "starting…")
	tm.Type("early")
	press(tm, "enter")
	close(release)
	frame := fr.WaitText(t, "0000-1111-2222") // the recovery code's dialog, over the main screen
	if !strings.Contains(frame, "bob") {
		t.Fatalf("the first frames after the start do not list bob:\n%s", frame)
	}
	press(tm, "enter") // "I wrote it down"
	frame = fr.WaitFor(t, "the main screen without the dialog", func(f string) bool {
		return strings.Contains(f, "hello from bob") && !strings.Contains(f, "0000-1111-2222")
	})
	if strings.Contains(frame, "early") {
		t.Fatalf("keys typed while starting reached the main screen:\n%s", frame)
	}
}

// Run returns Options.Start's error once the terminal is restored, and nothing when the
// start ended because ctx did (Ctrl+C, SIGTERM: ordinary ways out).
func TestStartErrorEndsRun(t *testing.T) {
	stdin, _ := io.Pipe() // a terminal nobody types on
	refused := errors.New("relay store: no space left on device")
	err := Run(t.Context(), Options{Start: func(context.Context) (Backend, error) { return nil, refused }}, stdin, io.Discard)
	if !errors.Is(err, refused) {
		t.Fatalf("Run with a failing start: %v, want %v", err, refused)
	}

	ctx, cancel := context.WithCancel(t.Context())
	waiting := make(chan struct{})
	go func() { <-waiting; cancel() }()
	err = Run(ctx, Options{Start: func(ctx context.Context) (Backend, error) {
		close(waiting)
		<-ctx.Done()
		return nil, ctx.Err()
	}}, stdin, io.Discard)
	if err != nil {
		t.Fatalf("Run whose start ended with ctx: %v, want nil", err)
	}
}
