package relay_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"syscall"
	"testing"

	"pfschat/chat/cli"
	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// The idle-connection benchmark runs the relay in a child process (this test binary,
// re-executed) so that the server's memory is measured apart from the clients':
//
//	go test ./relay -run '^$' -bench IdleConnections -benchtime 1x
//
// It logs in PFSCHAT_IDLE_CONNS (default 10,000) distinct users, each on its own
// connection, and reports the child's heap+stack growth per connection.

const (
	idleChildEnv    = "PFSCHAT_RELAY_IDLE_CHILD"
	idleChildTLSEnv = "PFSCHAT_RELAY_CHILD_TLS"
	// floorChildMode in idleChildEnv makes the child serve the bare forwarder instead.
	floorChildMode = "FLOOR"
	// childProfileEnv names a file for the child's CPU profile, taken from the first
	// /cpu request to the last (so a load run's).
	childProfileEnv = "PFSCHAT_RELAY_CHILD_CPUPROFILE"
	// childTraceEnv names a file for the child's execution trace (go tool trace), over
	// the same span as childProfileEnv's profile.
	childTraceEnv = "PFSCHAT_RELAY_CHILD_TRACE"
	// childWarmGCEnv makes the child relay apply the collector's heap floor from the
	// start, as a relay that has been carrying messages does, instead of after its first
	// cycle with message traffic (see cli.GCSettings.Traffic). Without it a fresh child
	// that has just taken 2,000 logins runs its warm-up collections inside the measured
	// load, where a long-running relay would not.
	childWarmGCEnv = "PFSCHAT_RELAY_CHILD_WARM_GC"
)

type memReport struct {
	HeapInuse, StackInuse, Sys uint64
	Goroutines                 int
}

// TestRelayChild is the child: it serves a relay and /memstats until stdin closes.
func TestRelayChild(t *testing.T) {
	if os.Getenv(idleChildEnv) == "" {
		t.Skip("runs only as the child of the out-of-process benchmarks")
	}
	if os.Getenv(idleChildEnv) == floorChildMode {
		serveChild(t, floorHandler(), nil)
		return
	}
	ctx := t.Context()
	st, err := storage.OpenRelay(ctx, filepath.Join(t.TempDir(), "relay.db"), storage.RelayOptions{Synchronous: os.Getenv(idleChildEnv), MaxQueueCount: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(ctx, server.Config{Store: st, Limits: server.Limits{FramesPerSecond: -1, ConnectionsPerAddress: -1, MaxConnections: -1, RegistrationsPerHour: -1, LoginTimeout: 1 << 62}})
	if err != nil {
		t.Fatal(err)
	}
	gc := cli.DefaultGC // as `pfschat relay` runs
	gc.Traffic = srv.MessagesAccepted
	if os.Getenv(childWarmGCEnv) != "" {
		gc.Traffic = nil // the floor from the start: a relay already carrying messages
	}
	defer cli.TuneGC(gc)()
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.Handle("/metrics", srv.AdminHandler())
	mux.HandleFunc("/memstats", func(w http.ResponseWriter, r *http.Request) {
		// A few collections, as a long-running server has: each may halve stacks.
		for i := 0; i < 3; i++ {
			runtime.GC()
		}
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if path := os.Getenv("PFSCHAT_IDLE_HEAPPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		json.NewEncoder(w).Encode(memReport{HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, Sys: m.Sys, Goroutines: runtime.NumGoroutine()})
	})
	serveChild(t, srv, mux)
	srv.Shutdown(ctx)
}

// serveChild serves handler (and mux's admin endpoints with /gcstats and /cpu) until
// stdin closes, printing the addresses for startChild.
func serveChild(t *testing.T, handler http.Handler, mux *http.ServeMux) {
	if mux == nil {
		mux = http.NewServeMux()
		mux.Handle("/", handler)
	}
	mux.HandleFunc("/gcstats", func(w http.ResponseWriter, r *http.Request) {
		c, a := gcStats()
		fmt.Fprint(w, c, a) // without collecting, unlike /memstats
	})
	var profiling, tracing bool
	var profMu sync.Mutex
	mux.HandleFunc("/cpu", func(w http.ResponseWriter, r *http.Request) {
		profMu.Lock()
		if path := os.Getenv(childProfileEnv); path != "" {
			if profiling {
				pprof.StopCPUProfile()
				profiling = false
			} else if f, err := os.Create(path); err == nil {
				profiling = pprof.StartCPUProfile(f) == nil
			}
		}
		if path := os.Getenv(childTraceEnv); path != "" {
			if tracing {
				trace.Stop()
				tracing = false
			} else if f, err := os.Create(path); err == nil {
				tracing = trace.Start(f) == nil
			}
		}
		profMu.Unlock()
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Fprint(w, syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime))
	})
	hs := &http.Server{Handler: mux}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(idleChildTLSEnv) != "" {
		// wss:// on the public listener with a CA made here (its root goes to the
		// parent), everything on a plain admin listener too.
		ca := relaytest.NewCA(t)
		admin, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go (&http.Server{Handler: mux}).Serve(admin)
		ths := &http.Server{Handler: handler, TLSConfig: ca.ServerTLS(t), TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		tl := ln
		if _, ok := handler.(*server.Server); ok {
			tl = server.ParkingListener(ln) // as pfschat relay serves TLS
		}
		go ths.Serve(tls.NewListener(tl, ths.TLSConfig))
		fmt.Printf("CA %s\n", base64.StdEncoding.EncodeToString(ca.Root.Raw))
		fmt.Printf("ADMIN %s\n", admin.Addr())
	} else {
		go hs.Serve(ln)
		fmt.Printf("ADMIN %s\n", ln.Addr())
	}
	fmt.Printf("URL %s\n", ln.Addr())
	bufio.NewReader(os.Stdin).ReadString('\n') // parent closes stdin when done
}

// gcStats is how many garbage collections this process has completed and how many
// bytes it has allocated on the heap.
func gcStats() (cycles, allocated uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// childRelay is a relay in a child process: addr serves the protocol (wss:// with
// tls), admin /metrics, /memstats and /gcstats over plain HTTP.
type childRelay struct {
	addr, admin string
	tls         *tls.Config // trusts the child's CA; nil without TLS
	// stop ends the child and waits for it (also done when the benchmark ends): a
	// load run stops its child once measured, so that the next run of the same
	// benchmark does not share the two cores with an idle relay and its connections.
	stop func()
}

// startChildRelayTLS runs a relay in a child process (this test binary) with the given
// sync mode, over wss:// when useTLS is set, and returns its addresses and a TLS
// configuration trusting it; the child stops when the benchmark ends.
func startChildRelayTLS(b *testing.B, syncMode string, useTLS bool) (addr, admin string, conf *tls.Config) {
	c := startChild(b, syncMode, useTLS)
	return c.addr, c.admin, c.tls
}

func startChild(b *testing.B, syncMode string, useTLS bool) childRelay {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), idleChildEnv+"="+syncMode)
	if useTLS {
		cmd.Env = append(cmd.Env, idleChildTLSEnv+"=1")
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var c childRelay
	var once sync.Once
	c.stop = func() { once.Do(func() { stdin.Close(); cmd.Wait() }) }
	b.Cleanup(c.stop)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "CA "); ok {
			der, _ := base64.StdEncoding.DecodeString(a)
			root, err := x509.ParseCertificate(der)
			if err != nil {
				b.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(root)
			c.tls = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
		}
		if a, ok := strings.CutPrefix(sc.Text(), "ADMIN "); ok {
			c.admin = a
		}
		if a, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			c.addr = a
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if c.addr == "" {
		b.Fatal("child relay did not start")
	}
	return c
}

func BenchmarkIdleConnections(b *testing.B) { benchIdle(b, false) }

// BenchmarkIdleConnectionsTLS is BenchmarkIdleConnections over wss:// (TLS 1.3 in the
// relay): what each idle connection's TLS state adds (target: at most 24 KiB each).
func BenchmarkIdleConnectionsTLS(b *testing.B) { benchIdle(b, true) }

func benchIdle(b *testing.B, useTLS bool) {
	n := 10000
	if s := os.Getenv("PFSCHAT_IDLE_CONNS"); s != "" {
		fmt.Sscan(s, &n)
	}
	addr, admin, tlsConf := startChildRelayTLS(b, "NORMAL", useTLS)
	url := "ws://" + addr + relay.WSPath
	if useTLS {
		url = "wss://" + addr + relay.WSPath
	}
	mem := func() memReport {
		resp, err := http.Get("http://" + admin + "/memstats")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var m memReport
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}

	// Register n users over a few connections.
	users := make([]relaytest.LoadUser, n)
	var wg sync.WaitGroup
	workers := 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := relaytest.DialLoadTLS(b.Context(), url, tlsConf)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			for i := w; i < n; i += workers {
				u, err := relaytest.NewLoadUser(fmt.Sprintf("idle%d", i))
				if err == nil {
					err = c.Register(u)
				}
				if err != nil {
					b.Error(err)
					return
				}
				users[i] = u
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	before := mem()

	conns := make([]*relaytest.LoadConn, n)
	b.ResetTimer()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c, err := relaytest.DialLoadTLS(b.Context(), url, tlsConf)
				if err != nil {
					b.Errorf("dial %d: %v", i, err)
					return
				}
				if err := c.Login(users[i]); err != nil { // ok, low_prekeys, synced
					b.Errorf("login %d: %v", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	after := mem()
	if open := after.Goroutines - before.Goroutines; open < n*99/100 {
		// The relay pings every 30 s and closes a connection that has not answered
		// for 75 s; these clients do not read while idle. A run slower than that
		// measures closed connections as if they were idle ones.
		b.Fatalf("only %d of %d connections are still open (the run outlasted the relay's 75 s idle timeout): rerun on a quieter machine or with fewer PFSCHAT_IDLE_CONNS", open, n)
	}
	perConn := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	b.ReportMetric(perConn(after.HeapInuse+after.StackInuse, before.HeapInuse+before.StackInuse), "B/conn")
	b.ReportMetric(perConn(after.HeapInuse, before.HeapInuse), "heap-B/conn")
	b.ReportMetric(perConn(after.StackInuse, before.StackInuse), "stack-B/conn")
	b.ReportMetric(float64(after.Goroutines-before.Goroutines)/float64(n), "goroutines/conn")
	b.ReportMetric(0, "ns/op")
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
