package chat

// The helpers of chat's internal tests (package chat: receive_test.go, enums_test.go,
// bench_test.go), which reach into the controller's store, relay client and sessions.
// They are a small copy of chat/chattest's, which the internal tests cannot import:
// chattest imports chat. Tests that need only the exported API (and the hooks in
// export_test.go) are external tests and use chattest.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// testKDF makes stores cheap to unlock in tests (production uses storage.DefaultKDF).
var testKDF = storage.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

var testPass = []byte("correct horse battery staple")

// user is one person in a test: a profile directory and, while open, a controller.
type user struct {
	t    testing.TB
	name string
	p    Profile
	c    *Controller
	id   *ratchet.IdentityKey
	card *ratchet.Card
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PFSCHAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return nil
}

// newUser creates and registers name on r and returns it online.
func newUser(t testing.TB, r *relaytest.Relay, name string, mod ...func(*Profile)) *user {
	t.Helper()
	p := Profile{Dir: filepath.Join(t.TempDir(), name), StoreOptions: storage.ClientOptions{KDF: testKDF, Synchronous: "NORMAL"}}
	p.Prefs.Logger = testLogger(t)
	p.Prefs.OneTimeKeys = 10
	for _, m := range mod {
		m(&p)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := p.Create(ctx, name, testPass, r.URL)
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	u := &user{t: t, name: name, p: p, c: c, id: c.id, card: c.card}
	t.Cleanup(func() { u.close() })
	return u
}

// c2id and c2card return the identity the user's profile holds (also after close).
func (u *user) c2id() *ratchet.IdentityKey { return u.id }
func (u *user) c2card() *ratchet.Card      { return u.card }

func (u *user) close() {
	if u.c != nil {
		u.c.Close()
		u.c = nil
	}
}

// reopen closes the controller and opens the profile again from its store.
func (u *user) reopen() {
	u.t.Helper()
	u.close()
	ctx, cancel := context.WithTimeout(u.t.Context(), 30*time.Second)
	defer cancel()
	c, err := u.p.Open(ctx, testPass)
	if err != nil {
		u.t.Fatalf("reopening %s: %v", u.name, err)
	}
	u.c = c
}

// waitEvent reads events until match returns true, failing after the timeout.
func waitEvent(t testing.TB, c *Controller, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
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

func waitReceived(t testing.TB, c *Controller, from, text string) Message {
	t.Helper()
	ev := waitEvent(t, c, fmt.Sprintf("%q from %s", text, from), func(e Event) bool {
		return e.Kind == MessageReceived && e.Contact == from && e.Message.Text == text
	})
	return *ev.Message
}

func waitState(t testing.TB, c *Controller, id int64, st DeliveryState) {
	t.Helper()
	waitEvent(t, c, fmt.Sprintf("message %d %s", id, st), func(e Event) bool {
		return e.Kind == DeliveryChanged && e.Message.ID == id && e.Message.State >= st
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
