package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// store is a back end the relay's behaviour tests run over: "sqlite" (the default
// relay: queue and directory in one SQLite file, the in-memory hub) or "jetstream"
// (a relay node of a cluster: its queue on a JetStream stream, its hub on core NATS,
// its directory in a JetStream key-value bucket, against a real in-process
// nats-server with file storage syncing every write).
type store struct{ name string }

var stores = []store{{"sqlite"}, {"jetstream"}}

// eachStore runs f once per store, as a subtest named after it.
func eachStore(t *testing.T, f func(t *testing.T, st store)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) { f(t, st) })
	}
}

// Start is relaytest.Start on this store.
func (st store) Start(t *testing.T) *relaytest.Relay { return st.StartWith(t, relaytest.Options{}) }

// StartWith is relaytest.StartWith on this store.
func (st store) StartWith(t *testing.T, o relaytest.Options) *relaytest.Relay {
	t.Helper()
	if st.name == "jetstream" {
		o = jetstreamOptions(t, o)
	}
	r := relaytest.StartWith(t, o)
	if q, ok := o.Queue.(*cluster.Queue); ok {
		queues.Store(r, q)
		t.Cleanup(func() { queues.Delete(r) })
	}
	if o.Dir != nil {
		dirs.Store(r, o.Dir)
		t.Cleanup(func() { dirs.Delete(r) })
	}
	return r
}

// prefixes numbers the tests' prefixes on the shared JetStream server.
var prefixes atomic.Int64

// queues are the JetStream queues of running test relays.
var queues sync.Map // *relaytest.Relay -> *cluster.Queue

// queued is how many messages r holds for name, in whichever queue it has.
func queued(t *testing.T, r *relaytest.Relay, name string) int {
	t.Helper()
	if q, ok := queues.Load(r); ok {
		msgs, err := q.(*cluster.Queue).Pending(testCtx(t), name, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	n, _, err := r.Store.QueueUsage(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// jetstreamOptions puts o's queue and hub on a fresh in-process JetStream server,
// with the relay's limits and clock.
func jetstreamOptions(t *testing.T, o relaytest.Options) relaytest.Options {
	t.Helper()
	// One server for the package (a start each cost more than most tests), a prefix
	// of streams, buckets and subjects per test, deleted after it.
	ns, err := natstest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("T%d", prefixes.Add(1))
	c, err := cluster.Connect(ctx, cluster.Options{URLs: []string{ns.URL()}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		js := c.JetStream()
		names := js.StreamNames(ctx)
		var mine []string
		for n := range names.Name() {
			if strings.HasPrefix(n, prefix+"_") || strings.HasPrefix(n, "KV_"+prefix+"_") || strings.HasPrefix(n, "OBJ_"+prefix+"_") {
				mine = append(mine, n)
			}
		}
		for _, n := range mine {
			js.DeleteStream(ctx, n)
		}
	})
	return onCluster(t, ctx, c, o)
}

// onCluster puts o's queue, hub and directory on the JetStream c reaches, with the
// relay's limits and clock, as `pfschat relay --nats` does.
func onCluster(t *testing.T, ctx context.Context, c *cluster.Conn, o relaytest.Options) relaytest.Options {
	t.Helper()
	maxCount := o.Limits.MaxQueueCount
	if maxCount <= 0 {
		maxCount = server.DefaultLimits.MaxQueueCount
	}
	maxBytes := o.Limits.MaxQueueBytes
	if maxBytes <= 0 {
		maxBytes = server.DefaultLimits.MaxQueueBytes
	}
	quota := o.SenderQuota // as relaytest gives it to the SQLite store
	switch {
	case quota < 0:
		quota = 0
	case quota == 0:
		quota = server.DefaultSenderQuota
	}
	q, err := cluster.NewQueue(ctx, c, cluster.QueueOptions{MaxPerRecipient: maxCount, MaxBytesPerRecipient: maxBytes, SenderQuota: quota, Clock: o.Clock})
	if err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithCancel(context.Background())
	h := cluster.NewHub(hctx, c)
	t.Cleanup(func() { hcancel(); h.Close() })
	d, err := cluster.NewDirectory(ctx, c, cluster.DirOptions{SealKey: testSealKey})
	if err != nil {
		t.Fatal(err)
	}
	o.Queue, o.Hub, o.Dir = q, h, d
	return o
}

// testSealKey seals the test directories' secrets.
var testSealKey = bytes.Repeat([]byte{7}, cluster.SealKeySize)

// dirOf is the directory r runs on.
func dirOf(r *relaytest.Relay) server.Store {
	if d, ok := dirs.Load(r); ok {
		return d.(server.Store)
	}
	return r.Store
}

// dirs are the JetStream directories of running test relays.
var dirs sync.Map // *relaytest.Relay -> server.Store

// integrity checks r's SQLite database (a relay on JetStream has none).
func integrity(ctx context.Context, r *relaytest.Relay) error {
	if _, ok := dirs.Load(r); ok {
		return nil
	}
	return r.Store.IntegrityCheck(ctx)
}
