// Package chattest holds the test helpers that the tests of chat, ui, chat/cli and the
// top-level crash tests share: a user with a cheap profile registered on a relaytest
// relay, waiting for a controller's events, two users conversing, and paging through a
// whole conversation.
//
//	r := relaytest.Start(t)
//	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
//	chattest.Converse(t, alice, bob) // contacts with an acknowledged session
//	m := chattest.Send(t, alice, bob, "hello")
//	chattest.WaitState(t, alice, m.ID, chat.Delivered)
//
// Every wait wakes on the controller's events (channels), never on a timer tick, and
// fails the test after a generous deadline. Everything is cleaned up when the test ends.
//
// It is a normal package so that tests of several packages can import it, but only
// tests may: no production package imports it (TestNoProductionPackageImportsChattest).
// Package chat's own internal tests (package chat) cannot import it, since it imports
// chat; chat's external tests (package chat_test) can.
package chattest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// KDF makes stores cheap to unlock in tests (production uses storage.DefaultKDF).
var KDF = storage.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// StoreOptions are the client store options of test profiles: the cheap KDF, and
// NORMAL sync, which takes the disk's fsync out of tests that do not measure it.
var StoreOptions = storage.ClientOptions{KDF: KDF, Synchronous: "NORMAL"}

// Passphrase seals the stores of the users NewUser makes.
var Passphrase = []byte("correct horse battery staple")

// OneTimeKeys is how many one-time prekeys of each kind a test user keeps on the relay:
// fewer than production's, so a profile is quick to create.
const OneTimeKeys = 10

// waitTimeout is how long a wait lasts before it fails the test: long enough for a
// loaded machine, short enough to fail well before the test binary's own timeout.
const waitTimeout = 30 * time.Second

// Logger is the logger of test controllers: nil (discard) unless PFSCHAT_TEST_LOG is
// set, then debug output on stderr, tagged with the test's name.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("PFSCHAT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// NewProfile returns a profile for name in a fresh temporary directory, with the test
// store options, logger and number of one-time keys; mods then change what a test
// needs (preferences, relay dialer, store options).
func NewProfile(t testing.TB, name string, mods ...func(*chat.Profile)) chat.Profile {
	p := chat.Profile{Dir: filepath.Join(t.TempDir(), name), StoreOptions: StoreOptions}
	p.Prefs.Logger = Logger(t)
	p.Prefs.OneTimeKeys = OneTimeKeys
	for _, m := range mods {
		m(&p)
	}
	return p
}

// AllowOffline is a NewProfile / NewUser option: the controller opens even when the
// relay cannot be reached.
func AllowOffline(p *chat.Profile) { p.Prefs.AllowOffline = true }

// StayUp is a NewProfile / NewUser option for a controller that keeps running, as the
// UI's and the daemon's do (chat.Preferences.StayUp); it implies AllowOffline.
func StayUp(p *chat.Profile) { p.Prefs.AllowOffline, p.Prefs.StayUp = true, true }

// User is one person in a test: a profile directory and, while open, its controller,
// whose methods it has (alice.Send(ctx, "bob", "hi")).
type User struct {
	*chat.Controller
	Name       string
	Profile    chat.Profile
	Passphrase []byte

	t testing.TB
}

// NewUser creates name's profile (NewProfile with mods), registers it on r and returns
// the user online. The controller is closed when the test ends.
func NewUser(t testing.TB, r *relaytest.Relay, name string, mods ...func(*chat.Profile)) *User {
	t.Helper()
	return NewUserAt(t, r.URL, name, mods...)
}

// NewUserAt is NewUser on the relay at url (several comma-separated URLs: a relay
// cluster's nodes).
func NewUserAt(t testing.TB, url, name string, mods ...func(*chat.Profile)) *User {
	t.Helper()
	u := &User{Name: name, Profile: NewProfile(t, name, mods...), Passphrase: Passphrase, t: t}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := u.Profile.Create(ctx, name, u.Passphrase, url)
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	u.Controller = c
	t.Cleanup(func() { u.Close() })
	return u
}

// OpenUser opens name's existing profile p, sealed under Passphrase, and returns the
// user online. The controller is closed when the test ends.
func OpenUser(t testing.TB, name string, p chat.Profile) *User {
	t.Helper()
	u := &User{Name: name, Profile: p, Passphrase: Passphrase, t: t}
	u.Reopen()
	t.Cleanup(func() { u.Close() })
	return u
}

// Close closes the user's controller, if open; the profile stays for Reopen.
func (u *User) Close() error {
	if u.Controller == nil {
		return nil
	}
	err := u.Controller.Close()
	u.Controller = nil
	return err
}

// Reopen closes the controller and opens the profile again from its store.
func (u *User) Reopen() {
	u.t.Helper()
	u.Close()
	ctx, cancel := context.WithTimeout(u.t.Context(), waitTimeout)
	defer cancel()
	c, err := u.Profile.Open(ctx, u.Passphrase)
	if err != nil {
		u.t.Fatalf("reopening %s: %v", u.Name, err)
	}
	u.Controller = c
}

// Must fails the test on an error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// EventSource is what the waits read: a *chat.Controller, a *User, or any backend
// with the controller's event stream.
type EventSource interface {
	Events() <-chan chat.Event
}

// WaitEvent reads events until match returns true and returns that event, failing the
// test after a deadline or when the stream closes.
func WaitEvent(t testing.TB, c EventSource, what string, match func(chat.Event) bool) chat.Event {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("waiting for %s: event stream closed", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// WaitReceived waits for the message text from contact and returns it.
func WaitReceived(t testing.TB, c EventSource, from, text string) chat.Message {
	t.Helper()
	ev := WaitEvent(t, c, fmt.Sprintf("%q from %s", text, from), func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Contact == from && e.Message.Text == text
	})
	return *ev.Message
}

// WaitState waits for the event that moves outgoing message id to state st or later.
func WaitState(t testing.TB, c EventSource, id int64, st chat.DeliveryState) {
	t.Helper()
	WaitEvent(t, c, fmt.Sprintf("message %d %s", id, st), func(e chat.Event) bool {
		return e.Kind == chat.DeliveryChanged && e.Message.ID == id && e.Message.State >= st
	})
}

// HistorySource is what the history helpers read: a *chat.Controller, a *User, or a
// UI backend.
type HistorySource interface {
	History(ctx context.Context, contact string, before int64, n int) ([]chat.Message, error)
}

// WaitStored waits until message id with contact is stored at state st or later,
// looking again after each event, and returns it. Unlike WaitState it also sees a
// change whose event an earlier wait consumed.
func WaitStored(t testing.TB, c interface {
	EventSource
	HistorySource
}, contact string, id int64, st chat.DeliveryState) chat.Message {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		h, err := c.History(t.Context(), contact, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h {
			if m.ID == id && m.State >= st {
				return m
			}
		}
		select {
		case <-c.Events():
		case <-timeout.C:
			t.Fatalf("timed out waiting for message %d to be %s", id, st)
		}
	}
}

// historyPage is how many messages FullHistory asks for at a time.
const historyPage = 500

// FullHistory pages through the whole conversation with contact and returns it oldest
// first (History pages newest first).
func FullHistory(t testing.TB, c HistorySource, contact string) []chat.Message {
	t.Helper()
	var newestFirst []chat.Message
	for before := int64(0); ; {
		page, err := c.History(t.Context(), contact, before, historyPage)
		if err != nil {
			t.Fatalf("history with %s: %v", contact, err)
		}
		newestFirst = append(newestFirst, page...)
		if len(page) < historyPage {
			break
		}
		before = page[len(page)-1].ID
	}
	oldestFirst := make([]chat.Message, len(newestFirst))
	for i, m := range newestFirst {
		oldestFirst[len(newestFirst)-1-i] = m
	}
	return oldestFirst
}

// AddContact makes name a contact of u, failing the test when it cannot.
func AddContact(t testing.TB, u *User, name string) chat.Contact {
	t.Helper()
	ct, err := u.AddContact(t.Context(), name)
	if err != nil {
		t.Fatalf("%s adding %s: %v", u.Name, name, err)
	}
	return ct
}

// Send sends text from one user to another and waits until the recipient has it. It
// returns the sender's message (its delivery receipt may still be on its way).
func Send(t testing.TB, from, to *User, text string) chat.Message {
	t.Helper()
	m, err := from.Send(t.Context(), to.Name, text)
	if err != nil {
		t.Fatalf("%s sending %q to %s: %v", from.Name, text, to.Name, err)
	}
	WaitReceived(t, to, from.Name, text)
	return m
}

// Converse makes b a contact of a, and they exchange one message each way until the
// reply is delivered: both then hold an acknowledged session.
func Converse(t testing.TB, a, b *User) {
	t.Helper()
	AddContact(t, a, b.Name)
	Send(t, a, b, "hi")
	m := Send(t, b, a, "hi back")
	WaitState(t, b, m.ID, chat.Delivered)
}
