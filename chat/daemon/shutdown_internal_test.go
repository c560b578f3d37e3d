package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/profile"
)

// A subscribe that passed call's look at the server while it still ran, on a connection
// with all its subscriptions, reaches the limit once Close has begun: it is refused as
// closing, not too_many (the client would otherwise be told to unsubscribe and retry).
func TestSubscribeRefusedWhileClosingIsClosing(t *testing.T) {
	events := make(chan chat.Event)
	hub := NewHub(events)
	t.Cleanup(func() { close(events); <-hub.Done() })
	s := New(Config{Hub: hub, Owner: profile.OwnerDaemon})
	c := &conn{s: s, subs: make(map[int64]*Sub)}
	for i := range int64(MaxSubscriptions) {
		sub := hub.Subscribe()
		t.Cleanup(sub.Close)
		c.subs[i+1] = sub
	}
	// while the server runs, the ninth is too many
	if _, e := c.subscribe(t.Context()); e == nil || e.Code != CodeTooMany {
		t.Fatalf("a subscription beyond %d while running: %v; want too_many", MaxSubscriptions, e)
	}
	// Close has begun (its first step) and call's look is behind this request
	s.stop()
	if _, e := c.subscribe(t.Context()); e == nil || e.Code != CodeClosing || e.Data == nil || e.Data.Name != "closing" {
		t.Fatalf("a subscription beyond %d while closing: %v; want closing", MaxSubscriptions, e)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNoNotificationAfterUnsubscribe: once unsubscribe has taken a subscription out (its
// answer is written after that), a notification of it that the stream already had in
// hand is not written; the subscription's notifications before it were.
func TestNoNotificationAfterUnsubscribe(t *testing.T) {
	events := make(chan chat.Event)
	hub := NewHub(events)
	t.Cleanup(func() { close(events); <-hub.Done() })
	s := New(Config{Hub: hub, Owner: profile.OwnerDaemon})
	t.Cleanup(func() { s.Close() })
	ours, theirs := net.Pipe()
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	c := &conn{s: s, nc: ours, subs: make(map[int64]*Sub)}
	sub := hub.Subscribe()
	t.Cleanup(sub.Close)
	c.subs[7] = sub
	n := notification(NotifyMessage, Event{Subscription: 7})
	read := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(theirs).ReadString('\n')
		read <- line
	}()
	if err := c.notify(7, n); err != nil {
		t.Fatalf("a live subscription's notification: %v", err)
	}
	if line := <-read; !strings.Contains(line, `"subscription":7`) {
		t.Fatalf("written: %q", line)
	}
	if _, e := s.call(t.Context(), c, &Request{Method: "unsubscribe", Params: json.RawMessage(`{"subscription":7}`), ID: ID("1")}); e != nil {
		t.Fatal(e)
	}
	// Nobody reads the pipe now: a write would block until the deadline and fail with
	// a timeout instead of errSubscriptionEnded.
	ours.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.notify(7, n); !errors.Is(err, errSubscriptionEnded) {
		t.Fatalf("a notification after unsubscribe: %v, want errSubscriptionEnded", err)
	}
}

// TestEventsRefusedWhileClosing: an event stream asked for once Close has begun is
// refused 503 (it was answered 200, streamed and cut), as a subscription is refused
// closing on the socket.
func TestEventsRefusedWhileClosing(t *testing.T) {
	events := make(chan chat.Event)
	hub := NewHub(events)
	t.Cleanup(func() { close(events); <-hub.Done() })
	s := New(Config{Hub: hub, Owner: profile.OwnerDaemon})
	s.stop()
	rec := httptest.NewRecorder()
	s.httpEvents(rec, httptest.NewRequest("GET", "/api/v1/events", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("events while closing: %d %q, want 503 saying the owner is shutting down", rec.Code, rec.Body.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
