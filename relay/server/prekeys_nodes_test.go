package server_test

import (
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
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
