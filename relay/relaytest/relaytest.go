// Package relaytest runs a real pfschat relay inside a test: an httptest server over
// loopback, backed by a SQLite relay store in the test's temporary directory.
//
//	r := relaytest.Start(t)
//	c := client.New(client.Config{URL: r.URL, ...})
//	...
//	r.Restart(t) // same database, same address: clients reconnect on their own
//
// Everything is cleaned up when the test ends.
//
// The relay benchmarks drive a relay with LoadConn, a lean load-generator client of
// this package (loadgen.go), so that the instrument's cost stays low and apart from
// the relay's.
package relaytest

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/server"
	"pfschat/storage"
)

// Options tune a test relay. The zero value is the production defaults, except the
// per-address limits (Limits.ConnectionsPerAddress, Limits.RegistrationsPerHour),
// which are off unless set: every test client comes from 127.0.0.1.
type Options struct {
	Limits server.Limits
	// SenderQuota is the store's per-sender share of a queue (1/SenderQuota; 0 = 8 as
	// the relay command, -1 = off).
	SenderQuota int
	// Registration is the registration policy (server.Config.Registration).
	Registration string
	// TrustedProxies: connections from these prefixes start with a PROXY v2 header
	// (server.ProxyListener).
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// Synchronous is the store's sync mode ("FULL" unless set).
	Synchronous string
	// Clock overrides the relay's clock.
	Clock func() time.Time
	// Queue replaces the store's message queue (benchmarks, alternative queues).
	Queue server.Queue
	// Hub replaces the in-memory hub (a relay node of a cluster: relay/cluster).
	Hub server.Hub
	// WrapHub, if set, is given the relay's hub (Hub, or a new in-memory one) and
	// returns the one the relay uses: a test that must hold a real hub's call back to a
	// chosen moment.
	WrapHub func(server.Hub) server.Hub
	// Dir replaces the SQLite store as the directory (server.Config.Dir; Queue is
	// required with it). Relay.Store is still opened but the relay does not use it.
	Dir server.Store
	// Blobs replaces the blob files beside the database (server.Config.Blobs: a relay
	// node's object store, relay/cluster).
	Blobs server.BlobStore
	// WrapBlobs, if set, is given the relay's blob store (Blobs, or the files beside
	// the database that the relay would open) and returns the one the relay uses: a
	// test that must hold a real store's call back to a chosen moment.
	WrapBlobs func(server.BlobStore) server.BlobStore
	// TLS serves wss:// with a certificate from a CA made for the relay (Relay.CA;
	// give clients Relay.CA.Pool as their RootCAs), TLS 1.3 only.
	TLS bool
	// TLSTerminatedUpstream is server.Config.TLSTerminatedUpstream.
	TLSTerminatedUpstream bool
	// Disk is the relay's disk high-water mark (off when zero).
	Disk server.DiskConfig
	// AccountExpiry frees names not logged in for this long (0 = never).
	AccountExpiry time.Duration
	// SealKey seals the relay's secrets in its database (storage.RelayOptions.SealKey,
	// sealed in place if they are in the clear), as `pfschat relay --relay-key-file`.
	SealKey []byte
}

// Relay is a running test relay.
type Relay struct {
	URL    string // ws://127.0.0.1:port/v2/ws (wss:// with Options.TLS)
	Addr   string // 127.0.0.1:port
	Server *server.Server
	Store  *storage.Relay
	HTTP   *httptest.Server // the public port
	Admin  *httptest.Server // the admin port: /metrics, /healthz
	Path   string           // the SQLite file
	CA     *CA              // with Options.TLS: the CA of the relay's certificate

	opts   Options
	mu     sync.Mutex // serialises Close and Restart
	closed bool
}

// Start runs a relay with default limits on a fresh database.
func Start(t testing.TB) *Relay { return StartWith(t, Options{}) }

// StartWith runs a relay with the given options on a fresh database.
func StartWith(t testing.TB, opts Options) *Relay {
	t.Helper()
	r := &Relay{Path: filepath.Join(t.TempDir(), "relay.db"), opts: opts}
	if opts.TLS {
		r.CA = NewCA(t)
	}
	r.start(t, "127.0.0.1:0")
	t.Cleanup(r.Close)
	return r
}

func (r *Relay) start(t testing.TB, addr string) {
	t.Helper()
	ctx := context.Background()
	l := r.opts.Limits
	if l.ConnectionsPerAddress == 0 {
		l.ConnectionsPerAddress = -1
	}
	if l.RegistrationsPerHour == 0 {
		l.RegistrationsPerHour = -1
	}
	st, err := storage.OpenRelay(ctx, r.Path, storage.RelayOptions{
		Synchronous:   r.opts.Synchronous,
		MaxQueueCount: orDefault(l.MaxQueueCount, server.DefaultLimits.MaxQueueCount),
		MaxQueueBytes: orDefault(l.MaxQueueBytes, server.DefaultLimits.MaxQueueBytes),
		SenderQuota:   senderQuota(r.opts.SenderQuota),
		SealKey:       r.opts.SealKey,
		SealInPlace:   true,
	})
	if err != nil {
		t.Fatalf("relaytest: opening the relay store: %v", err)
	}
	cfg := server.Config{Store: st, Logger: r.opts.Logger, Limits: l, Clock: r.opts.Clock, Queue: r.opts.Queue, Hub: r.opts.Hub,
		TLSTerminatedUpstream: r.opts.TLSTerminatedUpstream, Registration: r.opts.Registration, Disk: r.opts.Disk, AccountExpiry: r.opts.AccountExpiry,
		Blobs: r.opts.Blobs}
	if r.opts.WrapHub != nil {
		if cfg.Hub == nil {
			cfg.Hub = server.NewMemHub()
		}
		cfg.Hub = r.opts.WrapHub(cfg.Hub)
	}
	if r.opts.WrapBlobs != nil {
		if cfg.Blobs == nil {
			bs, err := st.Blobs("")
			if err != nil {
				st.Close()
				t.Fatalf("relaytest: opening the blob files: %v", err)
			}
			cfg.Blobs = server.FileBlobs{BlobStore: bs}
		}
		cfg.Blobs = r.opts.WrapBlobs(cfg.Blobs)
	}
	if r.opts.Dir != nil {
		cfg.Store, cfg.Dir = nil, r.opts.Dir
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		st.Close()
		t.Fatalf("relaytest: starting the relay: %v", err)
	}
	var ln net.Listener
	// On restart the old port can take a moment to be free again.
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i > 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		srv.Shutdown(ctx)
		st.Close()
		t.Fatalf("relaytest: listening on %s: %v", addr, err)
	}
	if len(r.opts.TrustedProxies) > 0 {
		ln = &server.ProxyListener{Listener: ln, Trusted: r.opts.TrustedProxies}
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Config.ErrorLog = nil
	scheme := "ws://"
	if r.CA != nil {
		hs.TLS = r.CA.ServerTLS(t)
		hs.Listener = server.ParkingListener(hs.Listener) // as `pfschat relay` serves TLS
		hs.StartTLS()
		scheme = "wss://"
	} else {
		hs.Start()
	}
	r.Admin = httptest.NewServer(srv.AdminHandler())
	r.HTTP, r.Server, r.Store = hs, srv, st
	r.Addr = ln.Addr().String()
	r.URL = scheme + r.Addr + relay.WSPath
	r.closed = false
}

func senderQuota(v int) int {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return server.DefaultSenderQuota
	}
	return v
}

func orDefault[T int | int64](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}

// Restart shuts the relay down gracefully (clients get going_away) and starts a new
// one on the same database and address.
func (r *Relay) Restart(t testing.TB) {
	t.Helper()
	r.restart(t, nil)
}

// RestartWith is Restart with other options, as an operator restarts a relay with
// other flags (a new --rate, say).
func (r *Relay) RestartWith(t testing.TB, opts Options) {
	t.Helper()
	r.restart(t, &opts)
}

func (r *Relay) restart(t testing.TB, opts *Options) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	addr := r.Addr
	r.closeLocked()
	if opts != nil {
		r.opts = *opts
	}
	r.start(t, addr)
}

// StartAgain starts a relay closed with Close again, on the same database and
// address, as an operator starts a relay that was down.
func (r *Relay) StartAgain(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		t.Fatal("relaytest: StartAgain of a relay that is running")
	}
	r.start(t, r.Addr)
}

// Close shuts the relay down gracefully and closes its store. It runs at test
// cleanup on its own; calling it twice is fine.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

func (r *Relay) closeLocked() {
	if r.closed {
		return
	}
	r.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.Server.Shutdown(ctx)
	r.HTTP.Close()
	r.Admin.Close()
	r.Store.Close()
}

// HTTPURL is the base URL of the relay's admin port, for /metrics and /healthz.
func (r *Relay) HTTPURL() string { return r.Admin.URL }

// Get fetches a path from the admin port (for example "/metrics") and returns the body.
func (r *Relay) Get(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(r.HTTPURL() + path)
	if err != nil {
		t.Fatalf("relaytest: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// RootCAs is the pool that verifies the relay's certificate (nil without TLS), for
// client.Config.RootCAs.
func (r *Relay) RootCAs() *x509.CertPool {
	if r.CA == nil {
		return nil
	}
	return r.CA.Pool
}

// ReplaceKeyCompromised stops the relay, replaces its key as `pfschat relay
// rotate-key --compromised` does (a new key, no statement from the old one, every card
// re-signed) and starts it again on the same address and database. Clients that
// pinned the old key now see a relay-key mismatch.
func (r *Relay) ReplaceKeyCompromised(t testing.TB) server.Rotation {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	addr := r.Addr
	r.closeLocked()
	ctx := context.Background()
	st, err := storage.OpenRelay(ctx, r.Path, storage.RelayOptions{SealKey: r.opts.SealKey})
	if err != nil {
		t.Fatalf("relaytest: opening the relay store: %v", err)
	}
	rot, err := server.ReplaceCompromisedKey(ctx, st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("relaytest: replacing the relay key: %v", err)
	}
	r.start(t, addr)
	return rot
}

// CopyDB copies the stopped relay's database to a new file and returns its path (a
// backup, for a test that brings an earlier state of the relay back with UseDB).
func (r *Relay) CopyDB(t testing.TB) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		t.Fatal("relaytest: CopyDB needs the relay stopped (Close it first)")
	}
	dst := filepath.Join(t.TempDir(), "relay-copy.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(r.Path + suffix)
		if err != nil {
			if suffix != "" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			t.Fatalf("relaytest: copying the relay database: %v", err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatalf("relaytest: copying the relay database: %v", err)
		}
	}
	return dst
}

// UseDB stops the relay and starts it again on the same address with the database at
// path (one CopyDB made).
func (r *Relay) UseDB(t testing.TB, path string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	addr := r.Addr
	r.closeLocked()
	r.Path = path
	r.start(t, addr)
}
