package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// register makes an identity and registers it through an anonymous client.
func register(t *testing.T, r *relaytest.Relay, name string) (*ratchet.IdentityKey, *ratchet.Card) {
	t.Helper()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(k, name, "username", "test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(client.Config{URL: r.URL})
	defer anon.Close()
	if err := anon.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(t.Context(), card)
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	return k, signed
}

// TestPacedUnderRelayRate: a client making many requests at once never gets
// rate_limited from a relay with a low frame rate, because it paces itself by the
// limits the relay announces; and when the relay restarts with a lower rate, the new
// hello sets the client's pace again.
func TestPacedUnderRelayRate(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 40, FrameBurst: 20}})
	key, card := register(t, r, "alice")
	register(t, r, "bob")
	c := client.New(client.Config{URL: r.URL, Identity: key, Card: card, PinnedRelayKey: r.Server.RelayKey(),
		MinBackoff: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	defer func() {
		c.Close()
		<-ran
	}()

	// burst sends n requests of every kind from several goroutines at once; a request
	// that finds the connection down (the restart) waits for it and goes again.
	burst := func(round string, n int) {
		t.Helper()
		requests := []func(i int) error{
			func(int) error { return c.Ping(ctx) },
			func(int) error { _, err := c.LookupCard(ctx, "bob"); return err },
			func(int) error { _, err := c.PreKeyStatus(ctx); return err },
			func(i int) error { _, err := c.Send(ctx, "bob", []byte("hi"), fmt.Sprint(round, i)); return err },
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 4 {
					err := requests[i%len(requests)](i)
					for errors.Is(err, client.ErrNotConnected) || errors.Is(err, client.ErrConnectionLost) {
						select {
						case <-c.Online():
						case <-ctx.Done():
						}
						err = requests[i%len(requests)](i)
					}
					if err != nil {
						errs <- fmt.Errorf("%s: request %d: %w", round, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if errors.Is(err, &relay.ProtocolError{Code: relay.CodeRateLimited}) {
				t.Fatalf("the relay refused a paced request: %v", err)
			}
			t.Fatal(err)
		}
	}

	<-c.Online()
	burst("40/s", 80) // the relay allows a burst of 20, then 40/s
	r.RestartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 10, FrameBurst: 4}})
	burst("10/s after restart", 30) // at the old pace, rate_limited within a fraction of a second
}

// TestFramesScarce: requests waiting for the frame rate make frames scarce; a relay
// without a rate limit never does.
func TestFramesScarce(t *testing.T) {
	unlimited := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}})
	c := client.New(client.Config{URL: unlimited.URL})
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if c.FramesScarce() {
		t.Fatal("frames scarce on a relay without a rate limit")
	}

	slow := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 1, FrameBurst: 40}})
	c = client.New(client.Config{URL: slow.URL})
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The client sends 0.9 frames/s with a burst of one: of five pings, one goes at
	// once and four wait, seconds' worth of frames owed.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 5)
	for range 5 {
		go func() { done <- c.Ping(ctx) }()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	scarce := c.FramesScarce()
	cancel()
	for range 4 {
		<-done
	}
	if !scarce {
		t.Fatal("frames not scarce while requests wait for the frame rate")
	}
}
