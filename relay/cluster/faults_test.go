package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/cluster/natstest"
)

// bodies are n message bodies named by prefix.
func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// sendAll sends every body from workers goroutines at once (each retrying with its
// client_id until accepted) and calls after(k) once k of them were accepted.
func sendAll(ctx context.Context, c *client.Client, to string, all []string, workers int, at int, after func()) error {
	var accepted atomic.Int64
	var once sync.Once
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(all); i += workers {
				if err := sendRetrying(ctx, c, to, all[i]); err != nil {
					errs <- err
					return
				}
				if accepted.Add(1) == int64(at) && after != nil {
					// Apart from the senders: they go on while the fault happens.
					once.Do(func() { wg.Add(1); go func() { defer wg.Done(); after() }() })
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() (out []error) {
		for err := range errs {
			out = append(out, err)
		}
		return
	}()...)
}

// streamThroughFault sends all from ac to bob (online on bc) with fault() run once
// a third of them were accepted, then a marker; bob receives live until the marker,
// then logs in again at again and takes the backlog. Every message must come exactly
// once, none again after its ack. A live push lost with a node is allowed (the hub
// is at most once) as long as the message comes with the backlog; the test logs how
// many did. It returns bob's new client.
func streamThroughFault(ctx context.Context, t *testing.T, ac *client.Client, bob *testUser, bc *client.Client, again string, all []string, workers int, fault func()) *client.Client {
	t.Helper()
	marker := all[0] + "-marker"
	in := newInbox()
	live := make(chan error, 1)
	go func() { live <- in.take(ctx, bc, func(b string) bool { return b == marker }) }()
	if err := sendAll(ctx, ac, "bob", all, workers, len(all)/3, fault); err != nil {
		t.Fatal(err)
	}
	if err := sendRetrying(ctx, ac, "bob", marker); err != nil {
		t.Fatal(err)
	}
	if err := <-live; err != nil {
		t.Fatalf("live, through the fault: %v", err)
	}
	lost := in.missing(all)
	bc.Close()
	bc2 := bob.online(t, again)
	if err := in.take(ctx, bc2, nil); err != nil {
		t.Fatalf("the backlog after it: %v", err)
	}
	if m := in.missing(all); len(m) > 0 {
		t.Fatalf("%d accepted messages never delivered: %v", len(m), m)
	}
	if len(lost) > 0 {
		t.Logf("%d live pushes lost with the fault, delivered with the backlog: %v", len(lost), lost)
	}
	return bc2
}

// TestKillNodeMidStream: alice sends a stream of messages through node A (her client
// knows A and B, in that order) to bob on node B; A is killed mid-stream, as a crash:
// sockets cut, nothing answered. Alice's client comes back on B by itself and resends
// what had no answer with the same client_id. Bob gets every message exactly once
// (none lost, none twice), and nothing is delivered again after its ack.
func TestKillNodeMidStream(t *testing.T) {
	nc := natstest.Cluster(t, 3)
	a := startNode(t, "A", rotate(nc.URLs(), 0), 3)
	b := startNode(t, "B", rotate(nc.URLs(), 1), 3)
	ctx := testCtx(t, 60*time.Second) // bounds a hang; a re-election on two loaded cores can take tens of seconds
	alice := register(t, a.URL, "alice")
	bob := register(t, b.URL, "bob")
	ac := alice.online(t, a.URL+","+b.URL)
	bc := bob.online(t, b.URL)
	if ac.ConnectedURL() != a.URL {
		t.Fatalf("alice on %s, want node A", ac.ConnectedURL())
	}
	bc = streamThroughFault(ctx, t, ac, bob, bc, b.URL, bodies("m", 60), 4, a.Kill)
	if ac.ConnectedURL() != b.URL {
		t.Errorf("alice on %s after A died, want node B", ac.ConnectedURL())
	}
	bc.Close()
	noBacklog(ctx, t, bob, b.URL)
}

// TestNATSServerLoss: with R3, stopping one of the three NATS servers mid-stream (the
// one node A is connected to) loses nothing and the relay keeps accepting; stopping a
// second makes sends fail with the named unavailable error — never accepted and then
// lost — and once one returns they are accepted again, the refused ones too (same
// client_id), each delivered once.
func TestNATSServerLoss(t *testing.T) {
	nc := natstest.Cluster(t, 3)
	a := startNode(t, "A", rotate(nc.URLs(), 0), 3)
	b := startNode(t, "B", rotate(nc.URLs(), 1), 3)
	ctx := testCtx(t, 60*time.Second) // bounds a hang; a re-election on two loaded cores can take tens of seconds
	alice := register(t, a.URL, "alice")
	bob := register(t, b.URL, "bob")
	ac := alice.online(t, a.URL)
	bc := bob.online(t, b.URL)

	// One server stops mid-stream: everything is accepted, and delivered once.
	bc = streamThroughFault(ctx, t, ac, bob, bc, b.URL, bodies("one-down", 24), 3, func() { nc.Stop(0) })

	// A second server stops: no quorum. A send is refused unavailable, not accepted.
	nc.Stop(1)
	var refused []string
	for i := 0; len(refused) == 0; i++ {
		body := fmt.Sprintf("no-quorum-%d", i)
		_, err := ac.Send(ctx, "bob", []byte(body), body)
		if err == nil {
			t.Fatalf("%q accepted by one NATS server of three", body)
		}
		var pe *relay.ProtocolError
		if errors.As(err, &pe) && pe.Code == relay.CodeUnavailable {
			refused = append(refused, body)
			continue
		}
		if !isRetryable(err) || ctx.Err() != nil {
			t.Fatalf("send without a quorum: %v, want the unavailable error", err)
		}
	}

	// The node says so to a load balancer: reachable NATS, JetStream without a quorum
	// (once JetStream's leader has stepped down, which takes it a few seconds).
	healthz := "http://" + strings.TrimSuffix(strings.TrimPrefix(a.URL, "ws://"), relay.WSPath) + "/healthz"
	for tick := time.NewTicker(200 * time.Millisecond); ; {
		resp, err := http.Get(healthz)
		if err != nil {
			t.Fatal(err)
		}
		health, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(health), "degraded: jetstream") {
			tick.Stop()
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("/healthz without a quorum: %d %q, want 200 degraded: jetstream: …", resp.StatusCode, health)
		}
	}

	// One returns: the refused send goes through (same client_id), all delivered once.
	nc.Restart(1)
	bc = streamThroughFault(ctx, t, ac, bob, bc, b.URL, append(refused, bodies("back", 8)...), 2, nil)
	bc.Close()
	noBacklog(ctx, t, bob, a.URL)
}
