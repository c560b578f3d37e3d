package main

import (
	"context"
	"testing"

	"pfschat/relay/cluster/clustertest"
	"pfschat/relay/cluster/natstest"
)

// TestRecvSurvivesSIGKILLCluster is TestRecvSurvivesSIGKILL against a relay cluster:
// two relay nodes on one JetStream (R1, syncing every write). alice is on node A; bob's
// recv --follow, SIGKILLed again and again, is given both nodes (--relay B,A) and
// connects to B, so every message crosses from one node to the other. The same checks
// hold: bob's store has every message once, in order; nothing is printed twice after
// a clean exit; the cluster's queue for bob is empty at the end; alice sees every
// message read.
func TestRecvSurvivesSIGKILLCluster(t *testing.T) {
	ns := natstest.Single(t)
	a := clustertest.Start(t, "A", []string{ns.URL()}, 1)
	b := clustertest.Start(t, "B", []string{ns.URL()}, 1)
	recvCrashSoak(t, false, soakRelay{aliceURL: a.URL, bobURL: b.URL + "," + a.URL,
		queued: func(ctx context.Context, name string) (int, error) {
			msgs, err := b.Node.Queue.Pending(ctx, name, 0, 1000)
			return len(msgs), err
		}})
}
