package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/cluster"
	"pfschat/relay/cluster/clustertest"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// storeWithoutPush puts a message for to into the relay's queue the way a node does,
// but without its live push: as when the node that committed it died before the push
// (or a NATS server lost it). urls: NATS servers to reach the queue through.
func storeWithoutPush(ctx context.Context, t *testing.T, urls []string, replicas, shards int, to, body string) int64 {
	t.Helper()
	return storeManyWithoutPush(ctx, t, urls, replicas, shards, to, []string{body})[0]
}

// storeManyWithoutPush is storeWithoutPush for several messages, in one batch.
func storeManyWithoutPush(ctx context.Context, t *testing.T, urls []string, replicas, shards int, to string, bodies []string) []int64 {
	t.Helper()
	conn, err := cluster.Connect(ctx, cluster.Options{URLs: urls, Replicas: replicas, Timeout: 5 * time.Second, Name: "no-push"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q, err := cluster.NewQueue(ctx, conn, cluster.QueueOptions{MaxPerRecipient: 1000, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []storage.QueuedMessage
	for i, body := range bodies {
		msgs = append(msgs, storage.QueuedMessage{To: to, From: "carol", FromCardID: strings.Repeat("c0", 32),
			ClientID: fmt.Sprintf("no-push-%d", i), Body: []byte(body), ReceivedAt: time.Now()})
	}
	res, err := q.Enqueue(ctx, msgs)
	if err != nil {
		t.Fatalf("storing %d messages: %v", len(bodies), err)
	}
	var ids []int64
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("storing message %d: %v", i, r.Err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// onlineSynced brings u online at url and waits for the end of its (empty) backlog.
func onlineSynced(ctx context.Context, t *testing.T, u *testUser, url string) *client.Client {
	t.Helper()
	c := u.online(t, url)
	if m, err := nextPush(ctx, c); err != nil || m != nil {
		t.Fatalf("%s's empty backlog: %v, %v", u.name, m, err)
	}
	return c
}

// pushesNow returns the bodies of the pushed messages already waiting at c.
func pushesNow(c *client.Client) []string {
	var got []string
	for {
		p, ok := c.Pushes().Pop()
		if !ok {
			return got
		}
		if p.Message != nil {
			got = append(got, string(p.Message.Body))
		}
	}
}

// waitResyncs waits until node's hub has read connections' queues at least n more
// times than before.
func waitResyncs(ctx context.Context, t *testing.T, node *clustertest.Node, before uint64, n uint64) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if reads, _ := node.Node.Hub.Resyncs(); reads >= before+n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the hub did not resync %d more times", n)
		case <-tick.C:
		}
	}
}

// A live push that never came (the message stored, its push lost between nodes)
// reaches the connected recipient at the hub's next periodic resync, once: neither a
// message delivered live nor the resynced one is delivered again on that connection,
// before or after their acks.
func TestLostPushComesWithPeriodicResync(t *testing.T) {
	ns := natstest.Single(t)
	a := clustertest.StartWith(t, "A", []string{ns.URL()}, 1, clustertest.Limits, func(o *cluster.NodeOptions) {
		o.Hub.ResyncEvery = 300 * time.Millisecond // every name every 300 ms
	})
	ctx := testCtx(t, 20*time.Second)
	bob := register(t, a.URL, "bob")
	alice := register(t, a.URL, "alice")
	bc := onlineSynced(ctx, t, bob, a.URL)
	ac := alice.online(t, a.URL)
	live, err := ac.Send(ctx, "bob", []byte("live"), "live")
	if err != nil {
		t.Fatal(err)
	}
	ac.Close()
	if m, err := nextPush(ctx, bc); err != nil || m == nil || string(m.Body) != "live" {
		t.Fatalf("the live message: %v, %v", m, err)
	}

	lost := storeWithoutPush(ctx, t, []string{ns.URL()}, 1, 1, "bob", "lost")
	m, err := nextPush(ctx, bc)
	if err != nil || m == nil || string(m.Body) != "lost" || m.ID != lost {
		t.Fatalf("the message whose push was lost: %v, %v", m, err)
	}
	// counted once the pass that delivered it is over
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for _, n := a.Node.Hub.Resyncs(); n != 1; _, n = a.Node.Hub.Resyncs() {
		if n > 1 || ctx.Err() != nil {
			t.Fatalf("resynced messages counted %d, want 1", n)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	// Neither comes again while unacked (bob's name has been read twice more: every
	// name is read once per 300 ms, in slices).
	reads, _ := a.Node.Hub.Resyncs()
	waitResyncs(ctx, t, a, reads, 2)
	if again := pushesNow(bc); len(again) != 0 {
		t.Fatalf("delivered again on the same connection before the ack: %q", again)
	}
	if err := bc.Ack(ctx, live, lost); err != nil {
		t.Fatal(err)
	}
	reads, _ = a.Node.Hub.Resyncs()
	waitResyncs(ctx, t, a, reads, 2)
	if again := pushesNow(bc); len(again) != 0 {
		t.Fatalf("delivered again after the ack: %q", again)
	}
}

// A push that was only late — its message brought first by a resync, and acked — is
// not handed over a second time when it arrives.
func TestLatePushAfterResyncIsNotRedelivered(t *testing.T) {
	ns := natstest.Single(t)
	a := clustertest.StartWith(t, "A", []string{ns.URL()}, 1, clustertest.Limits, func(o *cluster.NodeOptions) {
		o.Hub.ResyncEvery = 300 * time.Millisecond
	})
	b := clustertest.Start(t, "B", []string{ns.URL()}, 1)
	ctx := testCtx(t, 20*time.Second)
	bob := register(t, a.URL, "bob")
	alice := register(t, b.URL, "alice")
	bc := onlineSynced(ctx, t, bob, a.URL)
	ac := alice.online(t, b.URL)
	late := storeWithoutPush(ctx, t, []string{ns.URL()}, 1, 1, "bob", "late")
	m, err := nextPush(ctx, bc)
	if err != nil || m == nil || m.ID != late {
		t.Fatalf("the message brought by a resync: %v, %v", m, err)
	}
	if err := bc.Ack(ctx, late); err != nil {
		t.Fatal(err)
	}
	// Its push arrives now, from node B, and then a new message by the same way.
	b.Node.Hub.Forward(&storage.QueuedMessage{ID: late, To: "bob", From: "carol", FromCardID: strings.Repeat("c0", 32),
		ClientID: "no-push-0", Body: []byte("late"), ReceivedAt: time.Now()})
	if _, err := ac.Send(ctx, "bob", []byte("after"), "after"); err != nil {
		t.Fatal(err)
	}
	if m, err := nextPush(ctx, bc); err != nil || m == nil || string(m.Body) != "after" {
		t.Fatalf("after the late push, bob got %v (%v); want only the new message", m, err)
	}
}

// A message delivered live and acked is not handed over again on that connection when
// its push comes once more (from another node, or from this one): the relay remembers
// the connection's recent acks, whichever way their messages came.
func TestAckedMessageIsNotRedelivered(t *testing.T) {
	ns := natstest.Single(t)
	a := clustertest.Start(t, "A", []string{ns.URL()}, 1)
	b := clustertest.Start(t, "B", []string{ns.URL()}, 1)
	ctx := testCtx(t, 20*time.Second)
	bob := register(t, a.URL, "bob")
	alice := register(t, b.URL, "alice")
	bc := onlineSynced(ctx, t, bob, a.URL)
	ac := alice.online(t, b.URL)
	if _, err := ac.Send(ctx, "bob", []byte("once"), "once"); err != nil {
		t.Fatal(err)
	}
	m, err := nextPush(ctx, bc)
	if err != nil || m == nil || string(m.Body) != "once" {
		t.Fatalf("the live message: %v, %v", m, err)
	}
	if err := bc.Ack(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	again := &storage.QueuedMessage{ID: m.ID, To: "bob", From: m.From, FromCardID: m.FromCardID,
		ClientID: "once", Body: m.Body, ReceivedAt: m.ReceivedAt}
	b.Node.Hub.Forward(again)
	a.Node.Hub.LocalHub().Publish(again)
	if _, err := ac.Send(ctx, "bob", []byte("after"), "after"); err != nil {
		t.Fatal(err)
	}
	if m, err := nextPush(ctx, bc); err != nil || m == nil || string(m.Body) != "after" {
		t.Fatalf("after the message came again, bob got %v (%v); want only the new message", m, err)
	}
}

// Many lost pushes at once (a long outage) come over several resyncs, each filling at
// most half the connection's outbound queue, however slowly the recipient reads: a
// full queue would close the connection as a slow reader's. Bob's connection here
// reads nothing until the hub has resynced it a few times, so the relay's writes to it
// back up.
func TestManyLostPushesDoNotOverflowTheConnection(t *testing.T) {
	ns := natstest.Single(t)
	limits := clustertest.Limits
	limits.OutboundQueue = 16
	a := clustertest.StartWith(t, "A", []string{ns.URL()}, 1, limits, func(o *cluster.NodeOptions) {
		o.Hub.ResyncEvery = 60 * time.Millisecond
	})
	ctx := testCtx(t, 30*time.Second)
	u, err := relaytest.NewLoadUser("bob")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := relaytest.DialLoad(ctx, a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := bob.Login(u); err != nil {
		t.Fatal(err)
	}
	// More than the socket buffers hold: the relay's writer blocks until bob reads.
	pad := strings.Repeat("x", 40<<10)
	var bodies []string
	for i := range 300 {
		bodies = append(bodies, fmt.Sprintf("lost-%03d-%s", i, pad))
	}
	reads, _ := a.Node.Hub.Resyncs()
	storeManyWithoutPush(ctx, t, []string{ns.URL()}, 1, 1, "bob", bodies)
	// Bob reads nothing while the hub resyncs him a few times (a connection closed
	// meanwhile is resynced no more: then the reads below find it closed).
	wait, cancel := context.WithTimeout(ctx, 3*time.Second)
	for r, _ := a.Node.Hub.Resyncs(); r < reads+5 && wait.Err() == nil; r, _ = a.Node.Hub.Resyncs() {
		select {
		case <-wait.Done():
		case <-time.After(2 * time.Millisecond):
		}
	}
	cancel()
	seen := map[string]bool{}
	var acks []int64
	for len(seen) < len(bodies) {
		ev, err := bob.Next()
		if err != nil {
			t.Fatalf("after %d of %d: the connection failed: %v", len(seen), len(bodies), err)
		}
		if ev.Type != relay.TypeDeliver {
			continue
		}
		b := string(ev.Body[:8])
		if seen[b] {
			t.Fatalf("%s delivered twice", b)
		}
		seen[b] = true
		// Acks in batches, as chat's receive loop sends them while it streams (quiet:
		// the relay answers none).
		if acks = append(acks, ev.MsgID); len(acks) == 64 || len(seen) == len(bodies) {
			bob.QueueAck(acks)
			if err := bob.Flush(); err != nil {
				t.Fatal(err)
			}
			acks = acks[:0]
		}
	}
}

// cutProxy forwards TCP connections to a NATS server until cut: then it closes every
// connection it carries and refuses new ones until resumed.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: strings.TrimPrefix(target, "nats://")}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go p.serve()
	return p
}

func (p *cutProxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() { io.Copy(c, s); c.Close() }()
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// A push published while this node was cut off from NATS never reaches it; when its
// NATS connection comes back, the hub makes every connection read its queue at once
// (here the periodic resync is off, so only that can deliver it).
func TestLostPushComesAfterReconnect(t *testing.T) {
	ns := natstest.Single(t)
	proxy := newCutProxy(t, ns.URL())
	a := clustertest.StartWith(t, "A", []string{proxy.URL()}, 1, clustertest.Limits, func(o *cluster.NodeOptions) {
		o.Hub.ResyncEvery = -1
	})
	ctx := testCtx(t, 30*time.Second)
	bob := register(t, a.URL, "bob")
	bc := onlineSynced(ctx, t, bob, a.URL)
	proxy.setCut(true) // node A's NATS connection is down, and stays down
	lost := storeWithoutPush(ctx, t, []string{ns.URL()}, 1, 1, "bob", "while cut off")
	reads, _ := a.Node.Hub.Resyncs()
	proxy.setCut(false)
	m, err := nextPush(ctx, bc)
	if err != nil || m == nil || string(m.Body) != "while cut off" || m.ID != lost {
		t.Fatalf("the message stored while node A was cut off: %v, %v", m, err)
	}
	// The hub counts a pass once it is over, after its deliveries: the push can be
	// read before the count moves.
	waitResyncs(ctx, t, a, reads, 1)
}
