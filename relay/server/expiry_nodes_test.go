package server_test

import (
	"context"
	"testing"
	"time"

	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// TestAccountExpiryAcrossNodes: two relay nodes share one JetStream directory; "live"
// stays connected to node B only, "idle" never logs in. Before the expiry, B's sweep
// records live's connection; node A, which cannot see it, then sweeps past the
// expiry: idle goes, live stays.
func TestAccountExpiryAcrossNodes(t *testing.T) {
	const day = 24 * time.Hour
	ns := natstest.Single(t)
	clk := &clock{t: time.Now()}
	var dir *cluster.Directory
	node := func() *relaytest.Relay {
		var r *relaytest.Relay
		r, dir = startClusterNode(t, ns.URL(), relaytest.Options{Clock: clk.now, AccountExpiry: 30 * day})
		return r
	}
	a, b := node(), node()
	ctx := testCtx(t)
	register(t, a, "idle")
	live := register(t, b, "live")
	live.login(t, b)
	waitSynced(t, live.c)

	clk.add(30*day - time.Hour) // within two sweeps of the expiry
	if n := b.Server.SweepAccounts(ctx); n != 0 {
		t.Fatalf("node B's sweep before the expiry deleted %d", n)
	}
	clk.add(2 * time.Hour) // past the expiry of a login at the start
	if n := a.Server.SweepAccounts(ctx); n != 1 {
		t.Fatalf("node A's sweep deleted %d accounts, want 1 (idle)", n)
	}
	if _, err := dir.AccountByName(ctx, "idle"); !errorsIs(err, storage.ErrNotFound) {
		t.Fatalf("idle after the expiry: %v", err)
	}
	if _, err := dir.AccountByName(ctx, "live"); err != nil {
		t.Fatalf("live, connected to node B, expired by node A: %v", err)
	}
}

// startClusterNode starts a relay node whose queue, hub and directory are on the
// JetStream at url (onCluster), shared with every other node started on it; opts
// gives the rest.
func startClusterNode(t *testing.T, url string, opts relaytest.Options) (*relaytest.Relay, *cluster.Directory) {
	t.Helper()
	opts, _ = clusterNodeOptions(t, url, opts)
	return relaytest.StartWith(t, opts), opts.Dir.(*cluster.Directory)
}

// clusterNodeOptions connects to the NATS server at url and fills opts with a node's
// stores on it (onCluster); the connection closes with the test.
func clusterNodeOptions(t *testing.T, url string, opts relaytest.Options) (relaytest.Options, *cluster.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Connect(ctx, cluster.Options{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return onCluster(t, ctx, c, opts), c
}
