package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// node is one relay node of a test: a server on the shared directory (its own NATS
// connection), its messages in a SQLite queue of its own (these tests are about the
// directory and the caches in front of it).
type node struct {
	url string
	srv *server.Server
}

func startNode(t *testing.T, natsURL string, limits server.Limits) *node {
	return startNodeWith(t, natsURL, limits, false)
}

// startNodeWith starts a node, with its blobs in the shared object store when blobs.
func startNodeWith(t *testing.T, natsURL string, limits server.Limits, blobs bool) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc := connect(t, natsURL)
	dir := newTestDirectory(t, nc)
	var bs server.BlobStore
	if blobs {
		b, err := NewBlobs(ctx, nc, dir, BlobOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bs = b
	}
	q, err := storage.OpenRelay(ctx, filepath.Join(t.TempDir(), "queue.db"), storage.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if limits.ConnectionsPerAddress == 0 {
		limits.ConnectionsPerAddress = -1
	}
	srv, err := server.New(ctx, server.Config{Dir: dir, Queue: q, Limits: limits, Blobs: bs})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		hs.Close()
	})
	return &node{url: "ws://" + hs.Listener.Addr().String() + relay.WSPath, srv: srv}
}

type nodeUser struct {
	name string
	key  *ratchet.IdentityKey
	card *ratchet.Card
	c    *client.Client
}

func newKey(t *testing.T, name string) (*ratchet.IdentityKey, *ratchet.Card) {
	t.Helper()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(k, name, "username", "test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, card
}

// joinAt registers name on n and logs it in there.
func joinAt(t *testing.T, n *node, name string) *nodeUser {
	t.Helper()
	ctx := testCtx(t)
	k, card := newKey(t, name)
	anon := client.New(client.Config{URL: n.url})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(ctx, card)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	u := &nodeUser{name: name, key: k, card: signed}
	u.c = client.New(client.Config{URL: n.url, Identity: k, Card: signed, PinnedRelayKey: n.srv.RelayKey()})
	t.Cleanup(func() { u.c.Close() })
	if err := u.c.Connect(ctx); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return u
}

// eventually retries check until it returns nil: another node's change reaches this
// node's caches through the directory's watch, asynchronously. It fails the test with
// check's last error after the deadline.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: not seen within 10 s: %v", what, err)
		case <-tick.C:
		}
	}
}

func protocolCode(err error) string {
	var pe *relay.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestNodesShareOneRelayKey: nodes on one directory serve one relay key (the first
// node makes it, sealed; the next opens it).
func TestNodesShareOneRelayKey(t *testing.T) {
	ns := natstest.Single(t)
	a := startNode(t, ns.URL(), server.Limits{})
	b := startNode(t, ns.URL(), server.Limits{})
	if !a.srv.RelayKey().Equal(b.srv.RelayKey()) {
		t.Fatalf("node keys differ: %s, %s", a.srv.Fingerprint(), b.srv.Fingerprint())
	}
}

// TestNodeCachesFollowOtherNodes: what node B caches of the directory follows what
// node A changes: a block made on A refuses the blocked sender on B, a card replaced
// on A is the card B serves, and an account deleted on A is not_found on B, though B
// had cached each before the change.
func TestNodeCachesFollowOtherNodes(t *testing.T) {
	ns := natstest.Single(t)
	a := startNode(t, ns.URL(), server.Limits{})
	b := startNode(t, ns.URL(), server.Limits{})
	ctx := testCtx(t)
	bob := joinAt(t, a, "bob")
	mallory := joinAt(t, b, "mallory")

	// B learns bob (its account cache, mallory's connection's recipients).
	if _, err := mallory.c.Send(ctx, "bob", []byte("hi"), "m1"); err != nil {
		t.Fatal(err)
	}
	if c, err := mallory.c.LookupCard(ctx, "bob"); err != nil || c.ID() != bob.card.ID() {
		t.Fatalf("lookup bob on B: %v", err)
	}

	// A block made on A.
	if err := bob.c.Block(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	n := 0
	eventually(t, "bob's block on node B", func() error {
		n++
		_, err := mallory.c.Send(ctx, "bob", []byte("hi"), "m-blocked-"+strings.Repeat("x", n))
		if protocolCode(err) == relay.CodeBlocked {
			return nil
		}
		return errors.New("mallory's send was not refused")
	})
	if err := bob.c.Unblock(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's unblock on node B", func() error {
		n++
		_, err := mallory.c.Send(ctx, "bob", []byte("hi"), "m-unblocked-"+strings.Repeat("x", n))
		return err
	})

	// A card replaced on A.
	k2, card2 := newKey(t, "bob")
	signed2, err := bob.c.ReplaceCard(ctx, card2)
	if err != nil {
		t.Fatal(err)
	}
	_ = k2
	eventually(t, "bob's new card on node B", func() error {
		c, err := mallory.c.LookupCard(ctx, "bob")
		if err != nil {
			return err
		}
		if c.ID() != signed2.ID() {
			return errors.New("node B serves bob's old card")
		}
		return nil
	})

	// An account deleted on A.
	carol := joinAt(t, a, "carol")
	if _, err := mallory.c.Send(ctx, "carol", []byte("hi"), "c1"); err != nil {
		t.Fatal(err)
	}
	if err := carol.c.DeleteAccount(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol's deletion on node B", func() error {
		n++
		_, err := mallory.c.Send(ctx, "carol", []byte("hi"), "c-gone-"+strings.Repeat("x", n))
		if protocolCode(err) == relay.CodeNotFound {
			return nil
		}
		return errors.New("node B still takes messages for the deleted carol")
	})
}

// TestRegistrationLimitAcrossNodes: registrations per address count across nodes:
// with 2 an hour, two registrations on A and B use the address's allowance, and a
// third on either node is rate_limited.
func TestRegistrationLimitAcrossNodes(t *testing.T) {
	ns := natstest.Single(t)
	l := server.Limits{RegistrationsPerHour: 2}
	nodes := []*node{startNode(t, ns.URL(), l), startNode(t, ns.URL(), l)}
	ctx := testCtx(t)
	for i, name := range []string{"r0", "r1", "r2", "r3"} {
		n := nodes[i%2]
		_, card := newKey(t, name)
		anon := client.New(client.Config{URL: n.url})
		if err := anon.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := anon.Register(ctx, card)
		anon.Close()
		switch {
		case i < 2 && err != nil:
			t.Fatalf("registration %d: %v", i, err)
		case i >= 2 && protocolCode(err) != relay.CodeRateLimited:
			t.Fatalf("registration %d on node %d: %v, want rate_limited (the limit counts across nodes)", i, i%2, err)
		}
	}
}

// TestBundleLimitPerTargetAcrossNodes: bundles with one-time prekeys per target count
// across nodes: with 2 an hour, one fetch of bob's bundle through A and one through B
// carry one-time keys, and the third, through either, carries none (bob's one-time
// keys are not drained twice as fast by using two nodes).
func TestBundleLimitPerTargetAcrossNodes(t *testing.T) {
	ns := natstest.Single(t)
	l := server.Limits{FetchBundlePerTargetPerHour: 2, FetchBundlePerMinute: 1000, FetchBundleBurst: 1000}
	a, b := startNode(t, ns.URL(), l), startNode(t, ns.URL(), l)
	ctx := testCtx(t)
	bob := joinAt(t, a, "bob")
	var keys []ratchet.PublicPreKey
	for _, k := range []struct {
		kind ratchet.PreKeyKind
		n    int
	}{{ratchet.SignedPreKey, 1}, {ratchet.KEMLastResort, 1}, {ratchet.OneTimePreKey, 10}} {
		for i := range k.n {
			p, err := ratchet.GeneratePreKey(rand.Reader, bob.key, k.kind, uint32(i+1), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, p.Public())
		}
	}
	if err := bob.c.UploadPreKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	fetchers := []*nodeUser{joinAt(t, a, "mallory"), joinAt(t, b, "eve"), joinAt(t, b, "trudy")}
	for i, f := range fetchers {
		bundle, err := f.c.FetchBundle(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if got := bundle.OneTimePreKey != nil; got != (i < 2) {
			t.Fatalf("fetch %d (%s): one-time key %v, want %v", i, f.name, got, i < 2)
		}
	}
}

// TestNodesStartingTogetherShareOneKey: nodes starting at once on an empty directory
// each make a relay key; the first stored is every node's.
func TestNodesStartingTogetherShareOneKey(t *testing.T) {
	ns := natstest.Single(t)
	const n = 4
	type started struct {
		srv *server.Server
		err error
	}
	cfgs := make([]server.Config, n)
	for i := range cfgs {
		q, err := storage.OpenRelay(t.Context(), filepath.Join(t.TempDir(), "queue.db"), storage.RelayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		cfgs[i] = server.Config{Dir: newTestDirectory(t, connect(t, ns.URL())), Queue: q}
	}
	out := make(chan started, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv, err := server.New(ctx, cfgs[i])
			out <- started{srv, err}
		}()
	}
	close(start)
	var keys []string
	for range n {
		s := <-out
		if s.err != nil {
			t.Fatal(s.err)
		}
		keys = append(keys, s.srv.Fingerprint())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s.srv.Shutdown(ctx)
		})
	}
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatalf("nodes started together hold different relay keys: %v", keys)
		}
	}
}
