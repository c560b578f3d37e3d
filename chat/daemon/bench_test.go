package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// offlineOwner is alice's daemon with an acknowledged session with bob and no relay
// (its URL points nowhere): every send stops at the outbox, so the figures are the
// daemon's and the store's alone.
func offlineOwner(b *testing.B, sync string) (sock string) {
	b.Helper()
	r := relaytest.Start(b)
	mod := func(p *chat.Profile) { p.StoreOptions.Synchronous = sync }
	alice, bob := chattest.NewUser(b, r, "alice", mod), chattest.NewUser(b, r, "bob", mod)
	chattest.Converse(b, alice, bob)
	alice.Close()
	p := alice.Profile
	p.RelayURL = "ws://127.0.0.1:1" // nothing listens there
	p.Prefs.AllowOffline = true
	c, err := p.Open(b.Context(), alice.Passphrase)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return serveOwner(b, c, p.Dir)
}

// serveOwner serves c's daemon API on the socket of the profile in dir, as `pfschat
// daemon` does, and returns the socket's path.
func serveOwner(b *testing.B, c *chat.Controller, dir string) (sock string) {
	b.Helper()
	hub := daemon.NewHub(c.Events())
	srv := daemon.New(daemon.Config{Controller: c, Hub: hub, Owner: profile.OwnerDaemon})
	sock, err := daemon.SocketPath(dir)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := daemon.Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	go func() { // drain the owner's own events; the hub queues them otherwise
		s := hub.Subscribe()
		for range s.C() {
		}
	}()
	return sock
}

var syncModes = []struct{ name, sync string }{{"NORMAL", "NORMAL"}, {"FULL", ""}}

// commitFloor is the same run's floor under the daemon's figures: the store's bare
// commit, measured right after the benchmark's loop on the same machine under the same
// load. It commits n one-row write transactions (SetMeta) one after another on a fresh
// client store with the given sync mode, on the file system of the profiles, and
// reports commits per second and the p50 of one commit. A daemon send is one such
// transaction (with more rows in it), so no daemon can go faster than this floor.
func commitFloor(b *testing.B, sync string, n int) (perSec float64, p50 time.Duration) {
	b.Helper()
	n = max(200, min(n, 3000))
	ctx := context.Background()
	st, err := storage.CreateClientWith(ctx, filepath.Join(b.TempDir(), "floor.db"), chattest.Passphrase,
		storage.ClientOptions{KDF: chattest.KDF, Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	lat := make([]time.Duration, n)
	t0 := time.Now()
	for i := range lat {
		t1 := time.Now()
		if err := st.SetMeta(ctx, "floor", []byte(strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t1)
	}
	perSec = float64(n) / time.Since(t0).Seconds()
	slices.Sort(lat)
	return perSec, lat[n/2]
}

// reportFloor runs commitFloor and reports it beside a rate (msgs/s; 0: none).
func reportFloor(b *testing.B, sync string, rate float64) {
	b.Helper()
	perSec, p50 := commitFloor(b, sync, b.N)
	b.ReportMetric(perSec, "floor-commits/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "floor-commit-p50-ms")
	if rate > 0 {
		b.ReportMetric(100*rate/perSec, "%-of-floor")
	}
}

// BenchmarkRPCSend: one `send` as a script makes it — connect to the socket, call send,
// read the result (the message committed to the outbox), close. p50 and p99 per call.
func BenchmarkRPCSend(b *testing.B) {
	for _, m := range syncModes {
		b.Run(m.name, func(b *testing.B) {
			sock := offlineOwner(b, m.sync)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				cl, err := daemon.Dial(ctx, sock)
				if err != nil {
					b.Fatal(err)
				}
				var r daemon.SendResult
				if err := cl.Call(ctx, "send", daemon.SendParams{To: "bob", Text: fmt.Sprintf("bench %d", i)}, &r); err != nil {
					b.Fatal(err)
				}
				cl.Close()
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			reportFloor(b, m.sync, 0)
		})
	}
}

// BenchmarkDaemonThroughput: messages per second from the socket to committed in the
// outbox, the relay excluded, with 4 clients each sending on one connection.
func BenchmarkDaemonThroughput(b *testing.B) {
	const clients = 4
	for _, m := range syncModes {
		b.Run(m.name, func(b *testing.B) {
			sock := offlineOwner(b, m.sync)
			ctx := context.Background()
			cls := dialClients(b, sock, clients)
			b.ResetTimer()
			t0 := time.Now()
			var wg sync.WaitGroup
			for ci, cl := range cls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := ci; i < b.N; i += clients {
						if err := cl.Call(ctx, "send", daemon.SendParams{To: "bob", Text: fmt.Sprintf("bench %d", i)}, nil); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(b.N) / time.Since(t0).Seconds()
			b.StopTimer()
			b.ReportMetric(rate, "msgs/s")
			reportFloor(b, m.sync, rate)
		})
	}
}

// BenchmarkDaemonEndToEnd: messages per second from alice's daemon socket (4 clients)
// through a real relay with its rate limit off (FULL sync) to bob's store (the test
// profiles sync NORMAL): one op is one message committed by alice and committed by bob.
func BenchmarkDaemonEndToEnd(b *testing.B) {
	const clients = 4
	r := relaytest.StartWith(b, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}})
	alice, bob := chattest.NewUser(b, r, "alice"), chattest.NewUser(b, r, "bob")
	chattest.Converse(b, alice, bob)
	sock := serveOwner(b, alice.Controller, alice.Profile.Dir)
	ctx := b.Context()
	cls := dialClients(b, sock, clients)
	received := make(chan struct{})
	go func() {
		n := 0
		for ev := range bob.Events() {
			if ev.Kind == chat.MessageReceived {
				if n++; n == b.N {
					close(received)
					return
				}
			}
		}
	}()
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for ci, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := ci; i < b.N; i += clients {
				if err := cl.Call(ctx, "send", daemon.SendParams{To: "bob", Text: fmt.Sprintf("bench %d", i)}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-received:
	case <-time.After(2 * time.Minute):
		b.Fatal("bob did not receive every message within 2 minutes")
	}
	rate := float64(b.N) / time.Since(t0).Seconds()
	b.StopTimer()
	b.ReportMetric(rate, "msgs/s")
	reportFloor(b, chattest.StoreOptions.Synchronous, rate) // the profiles' sync mode
}

// dialClients opens n connections to the owner's socket, closed when b ends.
func dialClients(b *testing.B, sock string, n int) []*daemon.Client {
	b.Helper()
	cls := make([]*daemon.Client, n)
	for i := range cls {
		var err error
		if cls[i], err = daemon.Dial(b.Context(), sock); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cls[i].Close() })
	}
	return cls
}
