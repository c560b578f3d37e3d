package main

import (
	"context"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// benchProfiles: bob with a production store (Argon2id defaults, FULL sync) and an
// acknowledged session with alice; bob's profile is closed, ready for processes.
func benchProfiles(b *testing.B) (bin string, r *relaytest.Relay, alice, bob *chattest.User, flags []string) {
	b.Helper()
	// The test binary re-executes itself as pfschat (see TestMain); a real build starts
	// faster: PFSCHAT_BENCH_BIN=/path/to/pfschat measures that one.
	bin, err := exec.LookPath("pfschat")
	if v := os.Getenv("PFSCHAT_BENCH_BIN"); v != "" {
		bin, err = v, nil
	}
	if err != nil {
		b.Fatalf("the pfschat command is not in $PATH (TestMain sets it up): %v", err)
	}
	r = relaytest.Start(b)
	passFile := filepath.Join(b.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, chattest.Passphrase, 0o600); err != nil {
		b.Fatal(err)
	}
	bob = chattest.NewUser(b, r, "bob", func(p *chat.Profile) { p.StoreOptions = storage.ClientOptions{} })
	alice = chattest.NewUser(b, r, "alice")
	chattest.Converse(b, bob, alice)
	bob.Close()
	go func() { // alice reads everything, so her event queue stays small
		for range alice.Events() {
		}
	}()
	return bin, r, alice, bob, []string{"--home", bob.Profile.Dir, "--relay", r.URL, "--passphrase-file", passFile}
}

func p50(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds()) / 1000
}

// BenchmarkSendProcess: the whole `pfschat send alice TEXT` process, from exec to exit
// after the relay accepted the message: through a running `pfschat daemon`, and cold
// (the process unlocks the production store, connects, logs in and sends itself).
func BenchmarkSendProcess(b *testing.B) {
	for _, viaDaemon := range []bool{true, false} {
		name := "cold"
		if viaDaemon {
			name = "daemon"
		}
		b.Run(name, func(b *testing.B) {
			bin, _, _, _, flags := benchProfiles(b)
			if viaDaemon {
				d := startDaemonB(b, bin, flags)
				defer d.cmd.Process.Signal(syscall.SIGTERM)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				out, err := exec.Command(bin, append(append([]string(nil), flags...), "send", "alice", fmt.Sprintf("bench %d", i))...).CombinedOutput()
				if err != nil {
					b.Fatalf("pfschat send: %v\n%s", err, out)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			b.ReportMetric(p50(lat), "p50-ms")
		})
	}
}

// startDaemonB is startDaemon for benchmarks.
func startDaemonB(b *testing.B, bin string, flags []string) *daemonProc {
	b.Helper()
	d := &daemonProc{cmd: exec.Command(bin, append(append([]string(nil), flags...), "daemon")...), done: make(chan struct{})}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256)
	if n, err := out.Read(buf); err != nil || n == 0 {
		b.Fatalf("pfschat daemon did not start: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	b.Cleanup(func() { d.cmd.Process.Kill(); <-d.done })
	return d
}

// timedRelay measures Connect (dial, WebSocket upgrade, the relay's hello, login).
type timedRelay struct {
	chat.RelayClient
	start time.Time
	took  time.Duration
}

func (t *timedRelay) Connect(ctx context.Context) error {
	t.start = time.Now()
	err := t.RelayClient.Connect(ctx)
	t.took = time.Since(t.start)
	return err
}

// loginProxy forwards TCP connections to the relay and notes when the second chunk a
// client sends on a connection arrives: its login frame. (The first is the WebSocket
// upgrade request; before the login the client waits for the relay's hello, so the two
// never arrive together.) It splits a connection start into connect (dial, upgrade,
// hello, its verification, the login signature) and login (the login's round trip),
// on the same connection; each crossing of the proxy adds a loopback hop to both.
type loginProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sentAt time.Time // the latest connection's login frame
}

func startLoginProxy(b *testing.B, relayURL string) (p *loginProxy, url string) {
	b.Helper()
	u, err := neturl.Parse(relayURL)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	p = &loginProxy{ln: ln, target: u.Host}
	go p.serve()
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *loginProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() { io.Copy(c, up); c.Close() }()
		go func() {
			defer up.Close()
			buf := make([]byte, 64<<10)
			for chunk := 1; ; chunk++ {
				n, err := c.Read(buf)
				if chunk == 2 && n > 0 {
					p.mu.Lock()
					p.sentAt = time.Now()
					p.mu.Unlock()
				}
				if n > 0 {
					if _, werr := up.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *loginProxy) loginSentAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sentAt
}

func rusage() syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}

// BenchmarkColdSendBreakdown: the cold `pfschat send` path step by step, as the
// process runs it: start (exec of `pfschat version` to its exit), unlock (Argon2id with
// the production parameters, with the minor page faults and system time it costs),
// connect (dial, upgrade, the relay's hello and its check, up to the login frame's
// sending) and login (its round trip) apart, through loginProxy, then the prekey check
// that follows, encrypt+commit, and the wait until the
// relay accepted the message. Each is a p50 in ms, except the first unlock's page faults
// and system time (what a fresh process pays).
func BenchmarkColdSendBreakdown(b *testing.B) {
	bin, r, _, bob, _ := benchProfiles(b)
	proxy, proxyURL := startLoginProxy(b, r.URL)
	ctx := context.Background()
	var start, unlock, connect, login, prekeys, commit, accepted, sys []time.Duration
	var faults []int64
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		start = append(start, time.Since(t0))

		ru0 := rusage()
		t0 = time.Now()
		store, err := storage.OpenClientWith(ctx, bob.Profile.StorePath(), bob.Passphrase, storage.ClientOptions{})
		if err != nil {
			b.Fatal(err)
		}
		unlock = append(unlock, time.Since(t0))
		ru1 := rusage()
		faults = append(faults, ru1.Minflt-ru0.Minflt)
		sys = append(sys, time.Duration(syscall.TimevalToNsec(ru1.Stime)-syscall.TimevalToNsec(ru0.Stime)))

		tr := &timedRelay{}
		c, err := chat.New(chat.Preferences{Store: store, RelayURL: proxyURL, OneTimeKeys: chattest.OneTimeKeys,
			Dial: func(cfg client.Config) chat.RelayClient { tr.RelayClient = client.New(cfg); return tr }})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := c.Initialize(ctx); err != nil {
			b.Fatal(err)
		}
		total := time.Since(t0)
		sent := proxy.loginSentAt()
		if sent.Before(tr.start) || sent.After(tr.start.Add(tr.took)) {
			b.Fatalf("no login frame seen during this connection start")
		}
		connect = append(connect, sent.Sub(tr.start))
		login = append(login, tr.start.Add(tr.took).Sub(sent))
		prekeys = append(prekeys, total-tr.took)

		events := c.Events()
		t0 = time.Now()
		m, err := c.Send(ctx, "alice", fmt.Sprintf("cold %d", i))
		if err != nil {
			b.Fatal(err)
		}
		commit = append(commit, time.Since(t0))
		t0 = time.Now()
		for ev := range events {
			if ev.Kind == chat.DeliveryChanged && ev.Message != nil && ev.Message.ID == m.ID && ev.Message.State >= chat.Sent {
				break
			}
		}
		accepted = append(accepted, time.Since(t0))
		c.Close()
		store.Close()
	}
	b.ReportMetric(p50(start), "start-ms")
	b.ReportMetric(p50(unlock), "unlock-ms")
	b.ReportMetric(p50(sys), "unlock-sys-ms")
	slices.Sort(faults)
	// The first unlock of a process faults in Argon2id's 64 MiB; later ones reuse the heap.
	b.ReportMetric(float64(faults[0]), "first-unlock-minflt")
	b.ReportMetric(float64(sys[0].Microseconds())/1000, "first-unlock-sys-ms")
	b.ReportMetric(p50(connect), "connect-ms")
	b.ReportMetric(p50(login), "login-ms")
	b.ReportMetric(p50(prekeys), "prekeys-ms")
	b.ReportMetric(p50(commit), "encrypt+commit-ms")
	b.ReportMetric(p50(accepted), "accepted-ms")
}
