// Package clustertest runs relay nodes on JetStream inside a test, built as `pfschat
// relay --nats` builds one (cluster.OpenNode), each on its own NATS connection and
// port, so that a test can serve the same users from several nodes and kill one as a
// crash does.
//
//	nc := natstest.Cluster(t, 3)
//	a := clustertest.Start(t, "A", nc.URLs(), 3)
//	b := clustertest.Start(t, "B", clustertest.Rotate(nc.URLs(), 1), 3)
//	... clients on a.URL and b.URL ...
//	a.Kill()
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay"
	"pfschat/relay/cluster"
	"pfschat/relay/server"
)

// SealKey seals the test clusters' relay key.
var SealKey = bytes.Repeat([]byte{9}, cluster.SealKeySize)

// Limits are the limits of a test node: those a test would trip from one address are
// lifted.
var Limits = server.Limits{ConnectionsPerAddress: -1, RegistrationsPerHour: -1,
	FetchBundlePerMinute: 10000, FetchBundleBurst: 10000, FetchBundlePerTargetPerHour: 10000}

// Node is one relay node on the cluster.
type Node struct {
	Name   string
	URL    string // ws://127.0.0.1:port/v2/ws
	Server *server.Server
	Node   *cluster.Node

	t    testing.TB
	ln   *killListener
	hs   *http.Server
	once sync.Once
}

// Start runs a relay node whose NATS connection tries natsURLs in order, with
// replicas for its streams and buckets, and Limits. It stops with the test.
func Start(t testing.TB, name string, natsURLs []string, replicas int) *Node {
	t.Helper()
	return StartWith(t, name, natsURLs, replicas, Limits)
}

// StartWith is Start with other limits, and the node's options changed by mods.
func StartWith(t testing.TB, name string, natsURLs []string, replicas int, limits server.Limits, mods ...func(*cluster.NodeOptions)) *Node {
	t.Helper()
	// Generous: under the race detector, with other test binaries on the same two cores,
	// placing a node's R3 streams and buckets took over 15 s once.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, cluster.Options{URLs: natsURLs, Replicas: replicas, Timeout: 2 * time.Second, Name: name})
	if err != nil {
		t.Fatalf("clustertest: node %s: %v", name, err)
	}
	// As pfschat relay --nats: at R>1 the queue is split over three streams, so that
	// their leaders spread over the servers.
	shards := 1
	if replicas > 1 {
		shards = 3
	}
	// Right after a cluster starts its meta leader may not know every peer yet ("no
	// suitable peers for placement"), and a first placement of an R3 stream can take
	// longer than one request's timeout while another node creates the same streams:
	// try again, within the deadline (opening is idempotent).
	var node *cluster.Node
	for {
		o := cluster.NodeOptions{SealKey: SealKey, MaxPerRecipient: 1000, Queue: cluster.QueueOptions{Shards: shards}}
		for _, mod := range mods {
			mod(&o)
		}
		node, err = cluster.OpenNode(ctx, conn, o)
		var apiErr *jetstream.APIError
		noPeers := errors.As(err, &apiErr) && apiErr.ErrorCode == 10005
		slow := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		if err == nil || !(noPeers || slow) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		conn.Close()
		t.Fatalf("clustertest: node %s: %v", name, err)
	}
	cfg := server.Config{Limits: limits}
	node.Configure(&cfg)
	srv, err := server.New(ctx, cfg)
	if err != nil {
		node.Close()
		t.Fatalf("clustertest: node %s: %v", name, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: name, Server: srv, Node: node, t: t, ln: &killListener{Listener: ln},
		URL: "ws://" + ln.Addr().String() + relay.WSPath}
	n.hs = &http.Server{Handler: node.PublicHandler(srv)}
	go n.hs.Serve(n.ln)
	t.Cleanup(n.Stop)
	return n
}

// Kill stops the node as a crash does: every socket cut at once, the NATS connection
// closed, nothing drained or answered. (The server's goroutines are then stopped so
// that the test leaks nothing.)
func (n *Node) Kill() {
	n.once.Do(func() {
		n.ln.kill()
		n.Node.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n.shutdown(ctx)
		n.hs.Close()
	})
}

// shutdown runs the server's Shutdown, failing the test (instead of hanging it) when
// Shutdown has not returned 15 s after ctx ended.
func (n *Node) shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Server.Shutdown(ctx)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		n.t.Errorf("clustertest: node %s: Server.Shutdown has not returned 15 s after its context ended", n.Name)
	}
}

// Stop shuts the node down gracefully (clients are told to go away).
func (n *Node) Stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.hs.Close()
		n.shutdown(ctx)
		n.ln.kill()
		n.Node.Close()
	})
}

// Rotate is urls starting at the i-th, so that nodes prefer different NATS servers.
func Rotate(urls []string, i int) []string {
	return append(slices.Clone(urls[i:]), urls[:i]...)
}

// killListener tracks every connection it accepted, so that Kill can cut them all.
type killListener struct {
	net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

func (l *killListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns = append(l.conns, c)
	return c, nil
}

func (l *killListener) kill() {
	l.mu.Lock()
	l.killed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
}
