package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	if st.name == "jetstream" {
		queues.Store(r, o.Queue)
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
var queues sync.Map // *relaytest.Relay -> server.Queue

// queued is how many messages r holds for name, in whichever queue it has.
func queued(t *testing.T, r *relaytest.Relay, name string) int {
	t.Helper()
	if q, ok := queues.Load(r); ok {
		msgs, err := q.(server.Queue).Pending(testCtx(t), name, 0, 1000)
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

// jetstreamOptions puts o's queue, hub, directory and blobs on the package's
// in-process JetStream server, under a prefix of their own, with the relay's limits
// and clock.
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
	// Each JetStream request may take as long as the relay gives an operation (10 s,
	// its opCtx), not the 5 s default. The server runs in this process, under -race,
	// on the cores the relay and the test's clients use; a direct get of a backlog
	// page (256 messages of 32 KiB, 8 MiB) or of the messages an ack covers (up to
	// 16 MiB) took over 5 s there on a loaded two-core machine, and the relay then
	// closes the connection whose queue it could not read, as it should — a client
	// that does not reconnect then waits in vain (TestSlowRecipientNeverStallsSender
	// failed so). The tests check what is delivered and in what order, not how fast
	// this JetStream answers.
	c, err := cluster.Connect(ctx, cluster.Options{URLs: []string{ns.URL()}, Prefix: prefix, Timeout: 10 * time.Second})
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

// onCluster puts o's queue, hub, directory and blobs on the JetStream c reaches, with
// the relay's limits and clock, built and put into the relay's configuration as
// `pfschat relay --nats` does (cluster.OpenNode, Node.Configure).
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
	// cluster.OpenNode, as `pfschat relay --nats` opens its node: the queue measured by
	// cluster.Ops and every extension of it the relay looks for, not the bare
	// *cluster.Queue (twice a method the measured queue lacked hid a bug from tests that
	// ran the bare one).
	node, err := cluster.OpenNode(ctx, c, cluster.NodeOptions{SealKey: testSealKey, MaxPerRecipient: maxCount,
		Queue: cluster.QueueOptions{MaxBytesPerRecipient: maxBytes, SenderQuota: quota, Clock: o.Clock}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Hub.Close) // the connection is the caller's
	cfg := server.Config{Logger: o.Logger}
	node.Configure(&cfg)
	d := node.Dir
	conns.Store(d, c)
	t.Cleanup(func() { conns.Delete(d) })
	o.Queue, o.Hub, o.Dir, o.Blobs = cfg.Queue, cfg.Hub, cfg.Dir, cfg.Blobs
	return o
}

// conns are the JetStream connections of the test directories.
var conns sync.Map // *cluster.Directory -> *cluster.Conn

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

// blobsKept is how many blobs r keeps, committed and uploading: on SQLite the files in
// the blob directory beside the database and in its partial/, on JetStream the blob
// records in the directory's bucket, committed when the object store holds the
// object's info. Bytes in the object store of a blob the directory does not record
// fail the test (nothing else could ever delete them).
func blobsKept(t *testing.T, r *relaytest.Relay) (committed, uploading int) {
	t.Helper()
	d, ok := dirs.Load(r)
	if !ok {
		files := func(dir string) int {
			ents, err := os.ReadDir(dir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			n := 0
			for _, e := range ents {
				if !e.IsDir() {
					n++
				}
			}
			return n
		}
		return files(r.Path + ".blobs"), files(r.Path + ".blobs/partial")
	}
	c, ok := conns.Load(d)
	if !ok {
		t.Fatal("blobsKept: the relay's directory has no JetStream connection recorded")
	}
	conn := c.(*cluster.Conn)
	ctx := testCtx(t)
	js := conn.JetStream()
	kv, err := js.KeyValue(ctx, conn.Prefix()+"_dir")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(ctx, "blob.>")
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{} // blob id -> committed
	for k := range keys.Keys() {
		recorded[strings.TrimPrefix(k, "blob.")] = false
	}
	bucket := conn.Prefix() + "_blobs"
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("$O."+bucket+".>"))
	if err != nil {
		t.Fatal(err)
	}
	for subj := range info.State.Subjects {
		var id string
		switch rest := strings.TrimPrefix(subj, "$O."+bucket+"."); {
		case strings.HasPrefix(rest, "C."):
			id = rest[len("C."):]
		case strings.HasPrefix(rest, "M."):
			raw, err := base64.URLEncoding.DecodeString(rest[len("M."):])
			if err != nil {
				t.Fatalf("object store subject %s: %v", subj, err)
			}
			id = string(raw)
			if _, ok := recorded[id]; ok {
				recorded[id] = true
			}
		default:
			t.Fatalf("object store subject %s: neither chunks nor an object's info", subj)
		}
		if _, ok := recorded[id]; !ok {
			t.Errorf("the object store holds %s of blob %s, which the directory does not record", subj, id)
		}
	}
	for _, done := range recorded {
		if done {
			committed++
		} else {
			uploading++
		}
	}
	return committed, uploading
}

// storedFiles is what r's store wrote to disk, concatenated: the SQLite database and
// its write-ahead log, or every file of the JetStream server's store directory (the
// package's shared server: other tests' streams too, which only adds bytes).
func storedFiles(t *testing.T, r *relaytest.Relay) []byte {
	t.Helper()
	var out []byte
	if _, ok := dirs.Load(r); !ok {
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(r.Path + suffix)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	}
	ns, err := natstest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	dir := ns.Server().StoreDir()
	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // another test's stream, deleted meanwhile
		}
		files++
		out = append(out, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files in the JetStream store %s", dir)
	}
	return out
}
