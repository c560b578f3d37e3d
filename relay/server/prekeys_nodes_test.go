package server_test

import (
	"sync"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// TestUploadPreKeysLimitAcrossNodes: prekey uploads are writes to the store the
// nodes share, so upload_prekeys_per_card counts there: an account logged in on two
// nodes gets one burst, not one per node.
func TestUploadPreKeysLimitAcrossNodes(t *testing.T) {
	const burst = 4
	ns := natstest.Single(t)
	clk := &clock{t: time.Now()}
	limits := server.Limits{UploadPreKeysPerHour: 60, UploadPreKeysBurst: burst}
	node := func() *relaytest.Relay {
		r, _ := startClusterNode(t, ns.URL(), relaytest.Options{Clock: clk.now, Limits: limits})
		return r
	}
	a, b := node(), node()
	mallory := register(t, a, "mallory")
	ctx := testCtx(t)
	var clients []*client.Client
	for _, r := range []*relaytest.Relay{a, b} {
		c := client.New(client.Config{URL: r.URL, Identity: mallory.key, Card: mallory.card, PinnedRelayKey: r.Server.RelayKey(), RootCAs: r.RootCAs()})
		t.Cleanup(func() { c.Close() })
		if err := c.Connect(ctx); err != nil {
			t.Fatalf("login on %s: %v", r.URL, err)
		}
		clients = append(clients, c)
	}
	upload := func(node, id int) error {
		return clients[node].UploadPreKeys(ctx, makePreKeys(t, mallory, ratchet.SignedPreKey, id, 1))
	}
	for i := range burst {
		if err := upload(i%2, 1+i); err != nil {
			t.Fatalf("upload %d of the burst, on node %d: %v", i+1, i%2, err)
		}
	}
	for node := range 2 {
		err := upload(node, 100+node)
		wantCode(t, err, relay.CodeRateLimited)
		if pe := (*relay.ProtocolError)(nil); !errorsAs(err, &pe) || pe.Limit != server.LimitUploadPreKeysPerCard {
			t.Fatalf("node %d: %v, want limit %s", node, err, server.LimitUploadPreKeysPerCard)
		}
	}
}

// TestConcurrentPreKeyUploadsAcrossNodes: one card's one-time prekey uploads on two
// nodes at the same instant are judged in turn by the store they share, as one node
// judges them under its lock: every upload answered as stored has all its keys
// stored, every other one is refused too_many_prekeys, and the card never holds more
// than max_one_time_prekeys. (Before, each node judged the count on its own and the
// store dropped the keys over the cap unsaid: uploads answered as stored lost their
// keys in most rounds.)
func TestConcurrentPreKeyUploadsAcrossNodes(t *testing.T) {
	const (
		rounds  = 8
		perNode = 4  // connections (and uploads per round) on each node
		frame   = 30 // one-time keys per upload: at most 3 of the 8 fit in 100
	)
	ns := natstest.Single(t)
	limits := server.Limits{UploadPreKeysPerHour: 100000, UploadPreKeysBurst: 100000}
	var dir *cluster.Directory
	node := func() *relaytest.Relay {
		var r *relaytest.Relay
		r, dir = startClusterNode(t, ns.URL(), relaytest.Options{Limits: limits})
		return r
	}
	a, b := node(), node()
	bob := register(t, a, "bob")
	ctx := testCtx(t)
	var conns []*client.Client
	for _, r := range []*relaytest.Relay{a, b} {
		for range perNode {
			c := client.New(client.Config{URL: r.URL, Identity: bob.key, Card: bob.card, PinnedRelayKey: r.Server.RelayKey(), RootCAs: r.RootCAs()})
			t.Cleanup(func() { c.Close() })
			if err := c.Connect(ctx); err != nil {
				t.Fatalf("login on %s: %v", r.URL, err)
			}
			conns = append(conns, c)
		}
	}
	max := server.DefaultLimits.MaxOneTimePreKeys
	kind := uint8(ratchet.OneTimePreKey)
	next := 1
	for round := range rounds {
		keys := make([][]ratchet.PublicPreKey, len(conns))
		for i := range keys {
			keys[i] = makePreKeys(t, bob, ratchet.OneTimePreKey, next, frame)
			next += frame
		}
		start := make(chan struct{})
		errs := make([]error, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = c.UploadPreKeys(ctx, keys[i])
			}()
		}
		close(start)
		wg.Wait()
		ids, err := dir.PreKeyIDs(ctx, bob.card.ID(), kind)
		if err != nil {
			t.Fatal(err)
		}
		have := map[uint32]bool{}
		for _, id := range ids {
			have[id] = true
		}
		ok := 0
		for i, err := range errs {
			if err != nil {
				wantCode(t, err, relay.CodeTooManyPreKeys)
				continue
			}
			ok++
			for _, k := range keys[i] {
				if !have[k.ID] {
					t.Fatalf("round %d: upload %d (node %c) was answered as stored, but its key %d is not stored (%d keys stored, %d uploads answered as stored)",
						round, i, "AB"[i/perNode], k.ID, len(ids), ok)
				}
			}
		}
		if len(ids) > max || len(ids) != ok*frame {
			t.Fatalf("round %d: %d keys stored after %d uploads of %d answered as stored (max %d)", round, len(ids), ok, frame, max)
		}
		for range ids { // empty the card for the next round
			if _, err := dir.TakePreKey(ctx, bob.card.ID(), kind); err != nil {
				t.Fatal(err)
			}
		}
	}
}
