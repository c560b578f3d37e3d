package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// forwarder is a TCP port that forwards every connection to target: a second "node"
// in front of the same relay (same key, same accounts), which a test can kill.
type forwarder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			f.mu.Unlock()
			f.wg.Add(2)
			go func() { defer f.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer f.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(f.kill)
	return f
}

func (f *forwarder) url() string { return "ws://" + f.ln.Addr().String() + relay.WSPath }

// kill closes the port and every connection through it, as a node that dies.
func (f *forwarder) kill() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "ws://" + ln.Addr().String() + relay.WSPath
	ln.Close()
	return u
}

func TestSplitURLs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                          nil,
		"ws://a:1":                  {"ws://a:1"},
		"wss://a, wss://b ,wss://c": {"wss://a", "wss://b", "wss://c"},
		" ,wss://a,,":               {"wss://a"},
	} {
		got := client.SplitURLs(in)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("SplitURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSeveralURLsInOrder: a client given several URLs connects to the first that
// answers, in order, and says which.
func TestSeveralURLsInOrder(t *testing.T) {
	r := relaytest.Start(t)
	dead := deadURL(t)
	c := client.New(client.Config{URL: dead + "," + r.URL, PinnedRelayKey: r.Server.RelayKey()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect over a dead node and a live one: %v", err)
	}
	if got := c.ConnectedURL(); got != r.URL {
		t.Errorf("ConnectedURL = %q, want the live node %q", got, r.URL)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	// Both live: the first is taken.
	f := startForwarder(t, r.Addr)
	c2 := client.New(client.Config{URL: f.url() + "," + r.URL, PinnedRelayKey: r.Server.RelayKey()})
	defer c2.Close()
	if err := c2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c2.ConnectedURL(); got != f.url() {
		t.Errorf("ConnectedURL = %q, want the first node %q", got, f.url())
	}
}

// TestSeveralURLsNoneAnswers: when no node answers, the error names every node.
func TestSeveralURLsNoneAnswers(t *testing.T) {
	a, b := deadURL(t), deadURL(t)
	c := client.New(client.Config{URL: a + "," + b})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := c.Connect(ctx)
	if err == nil {
		t.Fatal("Connect to two dead nodes succeeded")
	}
	if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q does not name both nodes on one line", err)
	}
}

// TestSeveralURLsKeyMismatchStops: a node presenting another key than the pinned one
// stops the client at once: the next node is not tried (every node of a cluster
// presents the same key, so a different one is an attack or a mistake, not a node to
// skip). An insecure URL anywhere in the list is refused before any dial.
func TestSeveralURLsKeyMismatchStops(t *testing.T) {
	other := relaytest.Start(t)
	r := relaytest.Start(t)
	f := startForwarder(t, r.Addr) // would answer with the pinned key, if tried
	c := client.New(client.Config{URL: other.URL + "," + f.url(), PinnedRelayKey: r.Server.RelayKey()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := c.Connect(ctx)
	if !errors.Is(err, client.ErrRelayKeyMismatch) {
		t.Fatalf("Connect = %v, want ErrRelayKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), other.URL) {
		t.Errorf("error %q does not name the node", err)
	}
	if got := c.ConnectedURL(); got != "" {
		t.Errorf("connected to %q after a key mismatch", got)
	}

	c2 := client.New(client.Config{URL: r.URL + ",ws://relay.example.org:7878"})
	defer c2.Close()
	if err := c2.Connect(ctx); !errors.Is(err, client.ErrInsecureTransport) {
		t.Fatalf("Connect with an insecure URL in the list = %v, want ErrInsecureTransport", err)
	}
}

// TestSeveralURLsFailover: Run on node A; A dies; the client comes back on node B by
// itself, logged in, and its unacked message arrives there.
func TestSeveralURLsFailover(t *testing.T) {
	r := relaytest.Start(t)
	aliceKey, aliceCard := register(t, r, "alice")
	bobKey, bobCard := register(t, r, "bob")
	nodeA := startForwarder(t, r.Addr)
	bob := client.New(client.Config{URL: nodeA.url() + "," + r.URL, Identity: bobKey, Card: bobCard,
		PinnedRelayKey: r.Server.RelayKey(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- bob.Run(ctx) }()
	defer func() {
		bob.Close()
		<-ran
	}()
	waitOnline(ctx, t, bob)
	if got := bob.ConnectedURL(); got != nodeA.url() {
		t.Fatalf("bob on %q, want node A %q", got, nodeA.url())
	}

	nodeA.kill()
	alice := client.New(client.Config{URL: r.URL, Identity: aliceKey, Card: aliceCard, PinnedRelayKey: r.Server.RelayKey()})
	defer alice.Close()
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", []byte("after the failover"), "m1"); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := bob.Pushes().Wait(ctx)
		if err != nil {
			t.Fatalf("waiting for the message on node B: %v", err)
		}
		if p.Message != nil {
			if string(p.Message.Body) != "after the failover" {
				t.Fatalf("got %q", p.Message.Body)
			}
			break
		}
	}
	if got := bob.ConnectedURL(); got != r.URL {
		t.Errorf("bob on %q after node A died, want node B %q", got, r.URL)
	}
}

func waitOnline(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case <-c.Online():
	case <-ctx.Done():
		t.Fatal("client never came online")
	}
}
