// Package cluster puts the relay's state on NATS JetStream so that many relay nodes
// serve the same users: Queue (a stream with one subject per recipient), Hub (core
// NATS subjects per recipient), Directory (key-value buckets) and blobs (an object
// store). Connect opens the one NATS connection a node shares between them.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options says where the NATS servers are and how the relay's streams and buckets
// are replicated.
type Options struct {
	// URLs of the NATS servers (nats://host:4222); the client fails over between them.
	URLs []string
	// CredsFile is a NATS credentials file (JWT and nkey seed); "" = none.
	CredsFile string
	// Replicas is the replication factor of the streams and buckets the relay creates
	// (1 or 3 usually; 0 = 1).
	Replicas int
	// Name is the connection's name shown by the NATS server's monitoring ("" = pfschat-relay).
	Name string
	// Prefix names the relay's streams, buckets and subjects, so that several relays
	// (or tests) can share a NATS system ("" = "PFSCHAT"). Letters, digits, '_' and '-'.
	Prefix string
	// Timeout bounds each JetStream request (0 = 5 s).
	Timeout time.Duration
	// echo, set by benchmarks only, keeps NATS's echo (a connection's publishes
	// delivered to its own subscriptions), as before NoEcho.
	echo bool
}

// Conn is a relay node's connection to the NATS system: the core connection (Hub)
// and its JetStream context (Queue, Directory, blobs).
type Conn struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	opts    Options
	ownsNC  bool
	timeout time.Duration
	mux     respMux
}

// ErrOptions is returned by Connect for options it cannot use.
var ErrOptions = errors.New("cluster: bad options")

// ErrNotReady wraps what Connect and OpenNode return when the NATS servers answer but
// their JetStream cluster cannot serve yet: no meta leader (most of its servers not
// running or not routed to each other), or too few servers up to place the replicas.
// It passes once enough servers are back, so a node may wait and try again.
var ErrNotReady = errors.New("cluster: JetStream is not ready")

// notReady wraps err in ErrNotReady when the server nc is connected to is part of a
// JetStream cluster and err is what such a cluster answers while it lacks a quorum or
// peers: a timeout, "temporarily unavailable", "no suitable peers". Elsewhere (a single
// server, JetStream off) the same errors are for good, and err is returned as it is.
func notReady(nc *nats.Conn, err error) error {
	if err == nil || nc.ConnectedClusterName() == "" {
		return err
	}
	if js, _ := nc.ConnectedServerJetStream(); !js {
		return err
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeClusterNotAvailable || apiErr.ErrorCode == errCodeNoSuitablePeers),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return err
}

// Connect dials the NATS servers (with reconnection forever: a relay node waits for
// the cluster rather than exit) and checks that JetStream answers.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	if len(o.URLs) == 0 {
		return nil, fmt.Errorf("%w: no NATS URL (give --nats nats://host:4222[,…])", ErrOptions)
	}
	if o.Replicas < 0 || o.Replicas > 5 {
		return nil, fmt.Errorf("%w: replicas %d (use 1, 3 or 5)", ErrOptions, o.Replicas)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Prefix == "" {
		o.Prefix = "PFSCHAT"
	}
	if !validToken(o.Prefix) {
		return nil, fmt.Errorf("%w: prefix %q (letters, digits, '_' and '-' only)", ErrOptions, o.Prefix)
	}
	if o.Name == "" {
		o.Name = "pfschat-relay"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	nopts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false),
		nats.ReconnectBufSize(-1), // never buffer publishes while disconnected: fail them
	}
	if !o.echo {
		// The hub's push for a recipient connected to this node is delivered here
		// already (Hub.Publish); without echo the server does not send it back to
		// this connection to be dropped. Nothing else here subscribes to what this
		// connection publishes (replies and consumers come from the servers).
		nopts = append(nopts, nats.NoEcho())
	}
	if o.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(o.CredsFile))
	}
	nc, err := nats.Connect(strings.Join(o.URLs, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", redactURLs(o.URLs), err)
	}
	c, err := newConn(ctx, nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.ownsNC = true
	return c, nil
}

func newConn(ctx context.Context, nc *nats.Conn, o Options) (*Conn, error) {
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(o.Timeout), jetstream.WithPublishAsyncTimeout(o.Timeout))
	if err != nil {
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		at := redactURLs([]string{nc.ConnectedUrl()})
		switch {
		case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			// Operator mode (nsc): an account has JetStream only when its JWT gives it limits.
			return nil, fmt.Errorf("cluster: JetStream is not enabled for the relay's NATS account on %s: "+
				"give the account JetStream limits (nsc edit account --name ACCOUNT --js-mem-storage -1 --js-disk-storage -1 "+
				"--js-streams -1 --js-consumer -1), regenerate auth.conf and restart the NATS servers: %w", at, err)
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled):
			return nil, fmt.Errorf("cluster: JetStream is not enabled on %s (a jetstream block in its configuration, or nats-server -js): %w", at, err)
		}
		if nr := notReady(nc, err); nr != err {
			return nil, fmt.Errorf("cluster: JetStream on %s has no leader yet: most of its cluster's servers must run and reach each other: %w", at, nr)
		}
		return nil, fmt.Errorf("cluster: JetStream did not answer on %s: is it enabled there (a jetstream block, or nats-server -js), "+
			"and do most of the NATS servers run and reach each other (a JetStream cluster answers once it has elected a leader)? %w", at, err)
	}
	return &Conn{nc: nc, js: js, opts: o, timeout: o.Timeout}, nil
}

// redactURLs joins NATS URLs for an error or a log with their user information
// dropped: a URL's user part may be a password (nats://user:pass@host) or, alone, a
// token (nats://token@host), which url.URL.Redacted and nats.Conn.ConnectedUrlRedacted
// leave as they are.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			// Unparsable: show nothing after a '@' that could be user information.
			if at := strings.LastIndex(raw, "@"); at >= 0 {
				raw = "[redacted]" + raw[at:]
			}
			out[i] = raw
		case u.User != nil:
			u.User = url.User("redacted")
			out[i] = u.String()
		default:
			out[i] = raw
		}
	}
	return strings.Join(out, ",")
}

// NATS is the core connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream is the JetStream context.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// Replicas is the replication factor for streams and buckets.
func (c *Conn) Replicas() int { return c.opts.Replicas }

// Prefix is the name prefix of the relay's streams, buckets and subjects.
func (c *Conn) Prefix() string { return c.opts.Prefix }

// Timeout bounds each JetStream request.
func (c *Conn) Timeout() time.Duration { return c.timeout }

// Connected reports whether the core connection is up (for /healthz).
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Close drains nothing: it closes the connection (queued work is already durable or
// was refused).
func (c *Conn) Close() {
	if c.ownsNC {
		c.nc.Close()
	}
}

func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}
