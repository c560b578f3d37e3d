package cluster_test

// Two relay nodes on one JetStream cluster, built as `pfschat relay --nats` builds a
// node (cluster.OpenNode), and the faults of issue 16: a relay node killed
// mid-stream, NATS servers stopped and restarted.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/cluster/clustertest"
	"pfschat/relay/cluster/natstest"
)

// testSealKey seals the test cluster's relay key.
var testSealKey = clustertest.SealKey

var (
	startNode = clustertest.Start
	rotate    = clustertest.Rotate
)

type testUser struct {
	name string
	key  *ratchet.IdentityKey
	card *ratchet.Card
	pin  []byte
}

// register makes name's identity and registers it at url.
func register(t *testing.T, url, name string) *testUser {
	t.Helper()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(k, name, "username", "test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(client.Config{URL: url})
	defer anon.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(ctx, card)
	if err != nil {
		t.Fatalf("registering %s at %s: %v", name, url, err)
	}
	return &testUser{name: name, key: k, card: signed, pin: anon.RelayKey()}
}

// online logs u in at urls (comma-separated, tried in order) and keeps it connected
// (client.Run) until the test ends or the returned client is closed.
func (u *testUser) online(t *testing.T, urls string) *client.Client {
	t.Helper()
	c := client.New(client.Config{URL: urls, Identity: u.key, Card: u.card, PinnedRelayKey: u.pin,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	ran := make(chan error, 1)
	go func() { ran <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		c.Close()
		<-ran
	})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	select {
	case <-c.Online():
	case <-ctx.Done():
		t.Fatalf("%s never came online at %s within 15 s", u.name, urls)
	}
	return c
}

// nextPush waits for the next message (or, with synced, the end of the backlog: nil).
func nextPush(ctx context.Context, c *client.Client) (*client.Incoming, error) {
	for {
		p, err := c.Pushes().Wait(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case p.Message != nil:
			return p.Message, nil
		case p.Synced:
			return nil, nil
		}
	}
}

// inbox is what a recipient received: every body once, each acked (the ack repeated
// while the store cannot take it), and no message delivered again after its ack.
type inbox struct {
	bodies map[string]int64 // body → id
	acked  map[int64]int    // id → how many backlog ends (logins) the client had seen at its ack
	synced int              // backlog ends seen: the client logged in again after one
}

func newInbox() *inbox { return &inbox{bodies: map[string]int64{}, acked: map[int64]int{}} }

// take receives on c and acks until stop says so after a message, or, with stop nil,
// until the end of the backlog.
func (in *inbox) take(ctx context.Context, c *client.Client, stop func(body string) bool) error {
	for {
		m, err := nextPush(ctx, c)
		if err != nil {
			return fmt.Errorf("receiving (have %d): %w", len(in.bodies), err)
		}
		if m == nil {
			in.synced++
			if stop == nil {
				return nil
			}
			continue
		}
		b := string(m.Body)
		if at, ok := in.acked[m.ID]; ok {
			// Which way it came again says where to look: on the same connection (a push
			// or a resync repeating it) or after a login (the store still had it).
			return fmt.Errorf("%q (id %d) delivered again after its ack (%d backlog ends since the ack: %s)",
				b, m.ID, in.synced-at, map[bool]string{true: "on the same connection", false: "after a login"}[in.synced == at])
		}
		if id, ok := in.bodies[b]; ok && id != m.ID {
			return fmt.Errorf("%q stored twice (ids %d and %d)", b, id, m.ID)
		}
		in.bodies[b] = m.ID
		for {
			err := c.Ack(ctx, m.ID)
			if err == nil {
				break
			}
			if !isRetryable(err) {
				return fmt.Errorf("ack of %q: %w", b, err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("ack of %q: %w (last: %v)", b, ctx.Err(), err)
			case <-time.After(50 * time.Millisecond): // the store's leader election
			}
		}
		in.acked[m.ID] = in.synced
		if stop != nil && stop(b) {
			return nil
		}
	}
}

// missing is what of want the inbox has not got.
func (in *inbox) missing(want []string) []string {
	var out []string
	for _, b := range want {
		if _, ok := in.bodies[b]; !ok {
			out = append(out, b)
		}
	}
	return out
}

// recvBodies receives on c until every body of want came, once, acking each.
func recvBodies(ctx context.Context, t *testing.T, c *client.Client, want []string) {
	t.Helper()
	in := newInbox()
	left := map[string]bool{}
	for _, b := range want {
		left[b] = true
	}
	err := in.take(ctx, c, func(b string) bool {
		delete(left, b)
		return len(left) == 0
	})
	if err != nil {
		t.Fatalf("waiting for %v: %v", keys(left), err)
	}
	if len(in.bodies) != len(want) {
		t.Fatalf("got %d messages, want %d", len(in.bodies), len(want))
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = append(out[:5], "…")
	}
	return out
}

// noBacklog logs u in afresh at url and checks that nothing is waiting: the first
// push is the end of the backlog.
func noBacklog(ctx context.Context, t *testing.T, u *testUser, url string) {
	t.Helper()
	c := client.New(client.Config{URL: url, Identity: u.key, Card: u.card, PinnedRelayKey: u.pin})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := nextPush(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if m != nil {
		t.Fatalf("%s: %q (id %d) delivered again after its ack", u.name, m.Body, m.ID)
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestTwoNodes: alice on node A, bob on node B of one 3-server JetStream cluster (R3):
// one relay key; they talk both ways live; bob's offline backlog is delivered in
// order on the other node, once, and acked for good; a repeated client_id is stored
// once; bob's one-time prekeys, fetched at once from both nodes, are each handed out
// once.
func TestTwoNodes(t *testing.T) {
	nc := natstest.Cluster(t, 3)
	a := startNode(t, "A", rotate(nc.URLs(), 0), 3)
	b := startNode(t, "B", rotate(nc.URLs(), 1), 3)
	if !bytes.Equal(a.Server.RelayKey(), b.Server.RelayKey()) {
		t.Fatal("the nodes present different relay keys")
	}
	ctx := testCtx(t, 15*time.Second)
	alice := register(t, a.URL, "alice")
	bob := register(t, b.URL, "bob")
	ac := alice.online(t, a.URL)
	bc := bob.online(t, b.URL)

	// Live, both ways, across the nodes.
	if _, err := ac.Send(ctx, "bob", []byte("a1"), "a1"); err != nil {
		t.Fatal(err)
	}
	recvBodies(ctx, t, bc, []string{"a1"})
	if _, err := bc.Send(ctx, "alice", []byte("b1"), "b1"); err != nil {
		t.Fatal(err)
	}
	recvBodies(ctx, t, ac, []string{"b1"})

	// Dedup: the same client_id twice is one message with one id.
	id1, err := ac.Send(ctx, "bob", []byte("a2"), "a2")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := ac.Send(ctx, "bob", []byte("a2"), "a2")
	if err != nil || id2 != id1 {
		t.Fatalf("resend of a2: id %d, %v; want the first id %d", id2, err, id1)
	}
	if _, err := ac.Send(ctx, "bob", []byte("a3"), "a3"); err != nil {
		t.Fatal(err)
	}
	recvBodies(ctx, t, bc, []string{"a2", "a3"})

	// Offline backlog, delivered on the other node in order.
	bc.Close()
	var backlog []string
	for i := range 5 {
		body := fmt.Sprintf("offline-%d", i)
		if _, err := ac.Send(ctx, "bob", []byte(body), body); err != nil {
			t.Fatal(err)
		}
		backlog = append(backlog, body)
	}
	bc = bob.online(t, a.URL)
	var got []string
	for {
		m, err := nextPush(ctx, bc)
		if err != nil {
			t.Fatalf("backlog on node A: %v (got %q)", err, got)
		}
		if m == nil {
			break
		}
		got = append(got, string(m.Body))
		if err := bc.Ack(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, backlog) {
		t.Fatalf("backlog on the other node: %q, want %q in order", got, backlog)
	}
	noBacklog(ctx, t, bob, b.URL)

	// Prekeys: 24 one-time keys, 24 fetches at once from both nodes, each key once.
	const n = 24
	var keys []ratchet.PublicPreKey
	for i, kind := range []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.KEMLastResort} {
		p, err := ratchet.GeneratePreKey(rand.Reader, bob.key, kind, uint32(i+1), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p.Public())
	}
	for i := range n {
		p, err := ratchet.GeneratePreKey(rand.Reader, bob.key, ratchet.OneTimePreKey, uint32(100+i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p.Public())
	}
	if err := bc.UploadPreKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	carol := register(t, b.URL, "carol")
	fetchers := []*client.Client{ac, carol.online(t, b.URL)}
	var mu sync.Mutex
	taken := map[uint32]int{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bundle, err := fetchers[i%2].FetchBundle(ctx, "bob")
			if err != nil {
				errs <- err
				return
			}
			if bundle.OneTimePreKey == nil {
				errs <- errors.New("a bundle without a one-time key while some were left")
				return
			}
			mu.Lock()
			taken[bundle.OneTimePreKey.ID]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for id, c := range taken {
		if c > 1 {
			t.Errorf("one-time prekey %d handed out %d times", id, c)
		}
	}
	if len(taken) != n {
		t.Errorf("%d distinct one-time keys handed out, want %d", len(taken), n)
	}
}

// isRetryable says whether a send may be repeated with the same client_id: the
// connection went (the send may or may not have been stored; the client_id makes the
// retry safe), or the store could not take it (unavailable: nothing was stored).
func isRetryable(err error) bool {
	var pe *relay.ProtocolError
	return errors.Is(err, client.ErrConnectionLost) || errors.Is(err, client.ErrNotConnected) ||
		(errors.As(err, &pe) && (pe.Code == relay.CodeUnavailable || pe.Code == relay.CodeGoingAway))
}

// sendRetrying sends body until it is accepted, repeating it with the same client_id
// across lost connections and unavailable answers, as chat's outbox does.
func sendRetrying(ctx context.Context, c *client.Client, to, body string) error {
	for {
		_, err := c.Send(ctx, to, []byte(body), body)
		if err == nil || !isRetryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%q never accepted: %w (last: %v)", body, ctx.Err(), err)
		case <-c.Online():
		}
		if errors.Is(err, client.ErrConnectionLost) || errors.Is(err, client.ErrNotConnected) {
			continue
		}
		// unavailable: the store needs a moment (a leader election); the client's
		// own pacing spaces the retries.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%q never accepted: %w (last: %v)", body, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
