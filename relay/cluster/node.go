package cluster

// A relay node on JetStream: the queue, hub, directory and blob store over one
// connection, put into a server.Config. `pfschat relay --nats` and the tests build
// their nodes with OpenNode, so both run the same assembly.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/server"
)

// NodeOptions configure OpenNode.
type NodeOptions struct {
	// SealKey seals the relay's secrets in the directory (LoadSealKey); required, the
	// same on every node.
	SealKey []byte
	// MaxPerRecipient caps the messages queued for one name (QueueOptions).
	MaxPerRecipient int
	// Queue tunes the queue beyond MaxPerRecipient (its MaxPerRecipient is ignored).
	Queue QueueOptions
	// Hub tunes the hub between nodes (HubOptions).
	Hub HubOptions
}

// Node is one relay node's view of the cluster.
type Node struct {
	Conn *Conn
	// Queue is the JetStream queue, measured by Ops.
	Queue server.Queue
	Hub   *Hub
	Dir   *Directory
	Blobs *Blobs
	Ops   *Ops
	raw   *Queue
}

// OpenNode opens (creating on first use) the relay's streams and buckets on c.
func OpenNode(ctx context.Context, c *Conn, o NodeOptions) (*Node, error) {
	qo := o.Queue
	qo.MaxPerRecipient = o.MaxPerRecipient
	q, err := NewQueue(ctx, c, qo)
	if err != nil {
		return nil, replicaHint(c, err)
	}
	dir, err := NewDirectory(ctx, c, DirOptions{SealKey: o.SealKey})
	if err != nil {
		return nil, replicaHint(c, err)
	}
	blobs, err := NewBlobs(ctx, c, dir, BlobOptions{})
	if err != nil {
		return nil, replicaHint(c, err)
	}
	ops := NewOps(c)
	// /healthz's quorum probe: the directory's bucket, on the same servers as the queue.
	ops.CheckQuorum("KV_" + c.Prefix() + "_dir")
	hub := NewHubWith(context.Background(), c, o.Hub) // until Close
	ops.hub = hub
	return &Node{Conn: c, Queue: ops.Queue(q), Hub: hub, Dir: dir, Blobs: blobs, Ops: ops, raw: q}, nil
}

// replicaHint adds what to do when JetStream cannot place the replicas asked for: a
// single server (replicas > 1 not supported in non-clustered mode), or a cluster with
// fewer servers than replicas (no suitable peers, insufficient resources).
func replicaHint(c *Conn, err error) error {
	err = notReady(c.nc, err) // in a cluster: too few servers up (yet)
	var apiErr *jetstream.APIError
	if c.Replicas() > 1 && errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10074, 10005, 10023:
			return fmt.Errorf("%w (JetStream cannot place %d replicas: start that many servers in its cluster, or pass --nats-replicas 1 for a single NATS server)", err, c.Replicas())
		}
	}
	return err
}

// Configure puts the node's stores into cfg (Store stays nil: the directory is Dir).
func (n *Node) Configure(cfg *server.Config) {
	cfg.Store = nil
	cfg.Dir = n.Dir
	cfg.Queue = n.Queue
	cfg.Hub = n.Hub
	cfg.Blobs = n.Blobs
	if cfg.Logger != nil {
		n.Hub.SetLogger(cfg.Logger)
	}
}

// Close stops the hub and closes the NATS connection (after the server's Shutdown:
// everything accepted is in JetStream already).
func (n *Node) Close() {
	n.Hub.Close()
	n.Conn.Close()
}

// AdminHandler serves the node's /healthz and /metrics in front of h, the relay's
// admin handler (Ops.Handler).
func (n *Node) AdminHandler(h http.Handler) http.Handler { return n.Ops.Handler(h) }

// PublicHandler serves the node's /healthz in front of h, the relay's public handler.
func (n *Node) PublicHandler(h http.Handler) http.Handler { return n.Ops.PublicHandler(h) }

// HasRelayKey reports whether the cluster holds a relay key already (a node makes one
// when not, which `pfschat relay --nats` allows only with --init).
func (n *Node) HasRelayKey(ctx context.Context) (bool, error) {
	return server.HasRelayKey(ctx, n.Dir)
}
