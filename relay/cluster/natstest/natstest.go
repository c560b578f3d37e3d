// Package natstest runs real NATS servers with JetStream in-process for tests: one
// server (Single) or a cluster (Cluster) whose servers can be stopped and restarted.
// Storage is on disk under t.TempDir(); everything stops with the test.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startTimeout bounds a server's start.
const startTimeout = 15 * time.Second

// electionTimeout bounds a JetStream meta leader election. NATS's Raft waits 4–9 s
// before it campaigns, and a server that comes back to a peer that has campaigned
// alone (a higher term) may need several rounds: on two loaded cores that has taken
// over 40 s.
const electionTimeout = 90 * time.Second

// Server is one in-process NATS server with JetStream.
type Server struct {
	t    testing.TB
	mu   sync.Mutex
	opts *server.Options
	srv  *server.Server
}

// Single starts one JetStream server with file storage in t.TempDir() that syncs every
// write to disk (sync_interval: always), stopped at the end of the test.
func Single(t testing.TB) *Server {
	t.Helper()
	o := baseOptions(t, "single")
	o.SyncAlways = true
	s := &Server{t: t, opts: o}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// SingleDefaultSync is Single with JetStream's default sync (every 2 minutes, and on
// a clean shutdown): what a power cut can lose is what the benchmarks compare.
func SingleDefaultSync(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, opts: baseOptions(t, "single")}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// WithOptions starts a server from o as given — a login, an operator's accounts, what
// the other constructors do not set up — without logs or signal handlers, stopped at
// the end of the test.
func WithOptions(t testing.TB, o *server.Options) *Server {
	t.Helper()
	o.NoLog, o.NoSigs = true, true
	if o.ServerName == "" {
		o.ServerName = "options"
	}
	s := &Server{t: t, opts: o}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func baseOptions(t testing.TB, name string) *server.Options {
	return &server.Options{
		ServerName:         name,
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		NoLog:              true,
		NoSigs:             true,
		JetStream:          true,
		StoreDir:           t.TempDir(),
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		MaxPayload:         8 << 20,
	}
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.startErr(); err != nil {
		s.t.Fatalf("natstest: server %s: %v", s.opts.ServerName, err)
	}
}

// URL is the server's client URL (nats://127.0.0.1:port).
func (s *Server) URL() string {
	return "nats://127.0.0.1:" + strconv.Itoa(s.opts.Port)
}

// Server is the running server (nil while stopped).
func (s *Server) Server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Stop shuts the server down and waits for it; stopping a stopped server is a no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a stopped server again on the same ports and storage.
func (s *Server) Restart() {
	s.t.Helper()
	if s.Server() != nil {
		s.t.Fatalf("natstest: restart of running server %s", s.opts.ServerName)
	}
	s.start()
}

// Group is n JetStream servers routed to each other in one NATS cluster.
type Group struct {
	t       testing.TB
	servers []*Server
}

// Cluster starts n clustered JetStream servers (file storage in t.TempDir(), the
// default sync interval: at R3 the ack means a quorum has the write) and waits for a
// JetStream meta leader that sees all n. They stop at the end of the test.
func Cluster(t testing.TB, n int) *Group {
	t.Helper()
	if n < 2 {
		t.Fatalf("natstest: a cluster needs at least 2 servers, not %d", n)
	}
	// Every server is given every route, on cluster ports reserved first. A port
	// reserved can be taken by another process before its server listens on it (tests
	// run in parallel): then the cluster starts again on other ports.
	var c *Group
	var err error
	for attempt := 0; ; attempt++ {
		if c, err = startGroup(t, n); err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("natstest: %v", err)
		}
	}
	t.Cleanup(c.stopAll)
	c.WaitPeers(n)
	c.settle()
	return c
}

// settleStream is the stream settle creates on every server and deletes again.
const settleStream = "NATSTEST_SETTLE"

// settle returns once every server has applied an entry of the JetStream meta log: it
// places a stream on all of them and waits until each hosts it, then deletes it. A
// cluster that has only just elected its first leader has followers with empty logs,
// and NATS's Raft counts the vote of a server with an empty log only when every server
// votes: stopped at once, most of it could not elect a leader again until the rest
// returned. A cluster that has run a moment, as any in use has, has no such follower.
func (c *Group) settle() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), electionTimeout)
	defer cancel()
	nc, err := nats.Connect(c.servers[0].URL())
	if err != nil {
		c.t.Fatalf("natstest: settle: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatalf("natstest: settle: %v", err)
	}
	cfg := jetstream.StreamConfig{Name: settleStream, Subjects: []string{"natstest.settle"}, Storage: jetstream.MemoryStorage, Replicas: len(c.servers)}
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateOrUpdateStream(rctx, cfg)
		rcancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("natstest: settle: create a stream on every server: %v", err)
		case <-time.After(100 * time.Millisecond): // the cluster may still be placing peers
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !c.allHost(settleStream) {
		select {
		case <-ctx.Done():
			c.t.Fatalf("natstest: settle: stream %s not on every server within %v", settleStream, electionTimeout)
		case <-tick.C:
		}
	}
	if err := js.DeleteStream(ctx, settleStream); err != nil {
		c.t.Fatalf("natstest: settle: delete stream %s: %v", settleStream, err)
	}
}

// allHost reports whether every server hosts a replica of the stream.
func (c *Group) allHost(stream string) bool {
	for _, s := range c.servers {
		srv := s.Server()
		if srv == nil {
			return false
		}
		j, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
		if err != nil {
			return false
		}
		found := false
		for _, a := range j.AccountDetails {
			for _, st := range a.Streams {
				found = found || st.Name == stream
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (s *Server) startErr() error { return s.startWithin(startTimeout) }

// startWithin starts the server and waits up to d for its listeners.
func (s *Server) startWithin(d time.Duration) error {
	o := s.opts.Clone()
	srv, err := server.NewServer(o)
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(d) {
		srv.Shutdown()
		return fmt.Errorf("not ready in %v (a port taken?)", d)
	}
	// Keep the port it got, so that a restart listens where clients reconnect.
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		s.opts.Port = a.Port
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return nil
}

func startGroup(t testing.TB, n int) (*Group, error) {
	ports := freePorts(t, n)
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	c := &Group{t: t}
	for i := range n {
		o := baseOptions(t, fmt.Sprintf("n%d", i))
		o.Cluster = server.ClusterOpts{Name: "pfschat-test", Host: "127.0.0.1", Port: ports[i], PoolSize: -1}
		for j, r := range routes {
			if j != i {
				o.Routes = append(o.Routes, r)
			}
		}
		c.servers = append(c.servers, &Server{t: t, opts: o})
	}
	// Start them concurrently: each waits for routes to its peers.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range c.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.startWithin(startTimeout / 3)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.stopAll()
			return nil, fmt.Errorf("cluster server %d: %w", i, err)
		}
	}
	return c, nil
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ls := make([]net.Listener, n)
	ports := make([]int, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: reserve a port: %v", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// URLs are the client URLs of all servers (running or not), in order.
func (c *Group) URLs() []string {
	u := make([]string, len(c.servers))
	for i, s := range c.servers {
		u[i] = s.URL()
	}
	return u
}

// Server is the i-th server.
func (c *Group) Server(i int) *Server { return c.servers[i] }

// Stop stops the i-th server.
func (c *Group) Stop(i int) { c.servers[i].Stop() }

// Restart starts the i-th server again (same ports, same storage) and waits until it
// is ready for clients.
func (c *Group) Restart(i int) {
	c.t.Helper()
	if err := c.servers[i].startErr(); err != nil {
		c.t.Fatalf("natstest: restart server %d: %v", i, err)
	}
}

// WaitLeader waits until a running server is the JetStream meta leader (bounded).
func (c *Group) WaitLeader() { c.t.Helper(); c.WaitPeers(1) }

// WaitPeers waits until a running server is the JetStream meta leader and sees at
// least k servers with JetStream online (bounded): streams of k replicas can be placed.
func (c *Group) WaitPeers(k int) {
	c.t.Helper()
	deadline := time.Now().Add(electionTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, s := range c.servers {
			if srv := s.Server(); srv != nil && srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) >= k {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: no JetStream meta leader with %d peers within %v", k, electionTimeout)
		}
		<-tick.C
	}
}

func (c *Group) stopAll() {
	var wg sync.WaitGroup
	for _, s := range c.servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Stop() }()
	}
	wg.Wait()
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared is one JetStream server (file storage syncing every write, in a temporary
// directory) for the whole test process, started on first use and never stopped:
// tests that each need a JetStream but not their own server share it, each under a
// prefix of its own (cluster.Options.Prefix), and save a server start apiece. Do not
// Stop or Restart it.
func Shared() (*Server, error) {
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "natstest-shared-")
		if err != nil {
			shared.err = err
			return
		}
		o := &server.Options{
			ServerName: "shared", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: dir, JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 4 << 30,
			MaxPayload: 8 << 20, SyncAlways: true,
		}
		s := &Server{opts: o}
		if err := s.startErr(); err != nil {
			shared.err = fmt.Errorf("natstest: shared server: %w", err)
			return
		}
		shared.srv = s
	})
	return shared.srv, shared.err
}
