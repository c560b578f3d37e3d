package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/chat/cli"
	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// Load benchmarks. Each pair is a sender and a receiver; a sender keeps at most
// `window` messages sent but not yet delivered. Bodies are 256 bytes carrying the
// send time and a sequence number, so receivers measure latency and check that every
// message arrives exactly once. Run for example:
//
//	go test ./relay -run '^$' -bench 'Load' -benchtime 40000x
//
// Reported: msgs/s (delivered), p50 and p99 send→deliver latency in µs.

const benchBody = 256

type loadStats struct {
	mu        sync.Mutex
	latencies []time.Duration
	lags      []time.Duration // paced runs: how late each send left against its schedule
	// wire: send → the deliver's arrival at the receiver's socket (the kernel's
	// receive time, relaytest.Arrival), which leaves out the generator's wait for a
	// CPU before it read; waits: that wait (latency − wire); unstamped: deliveries
	// whose read carried no receive time (their wire figure is their latency).
	wire, waits []time.Duration
	unstamped   int
}

// receiverStats is one receiver's share of a load run's figures (see loadStats).
type receiverStats struct {
	lat, wire, waits []time.Duration
	unstamped        int
}

// add records one delivery: its latency d as the generator measured it, read at now,
// and the kernel's receive time of its bytes (zero if the read carried none).
func (r *receiverStats) add(d time.Duration, now, arrived time.Time) {
	r.lat = append(r.lat, d)
	if arrived.IsZero() || arrived.After(now) {
		r.unstamped++
		r.wire = append(r.wire, d)
		return
	}
	wait := now.Sub(arrived)
	r.wire = append(r.wire, max(d-wait, 0))
	r.waits = append(r.waits, wait)
}

func (s *loadStats) addReceiver(r *receiverStats) {
	s.mu.Lock()
	s.latencies = append(s.latencies, r.lat...)
	s.wire = append(s.wire, r.wire...)
	s.waits = append(s.waits, r.waits...)
	s.unstamped += r.unstamped
	s.mu.Unlock()
}

func (s *loadStats) addLags(d []time.Duration) {
	s.mu.Lock()
	s.lags = append(s.lags, d...)
	s.mu.Unlock()
}

// loadResult is one load run: delivered messages per second and latency quantiles;
// for a relay or forwarder in a child process also the CPU time (user + system) that
// process used during the run, and the relay's /metrics at its end.
type loadResult struct {
	rate     float64
	p50, p99 time.Duration
	n        int           // messages delivered
	cpu      time.Duration // the server process's, when it ran apart (else 0)
	// clientCPU is this (the load generator's) process's CPU time over the run; with
	// the server in a child process, the generator's alone.
	clientCPU time.Duration
	// lagP99, lagMax: in a paced run, how late the senders wrote against the pacer's
	// schedule (a generator falling behind hides latency: coordinated omission).
	lagP50, lagP99, lagMax time.Duration
	// wireP50, wireP99: send → the deliver's arrival at the receiver's socket;
	// waitP99: the generator's wait from that arrival to its read; unstamped: how
	// many deliveries had no receive time (see loadStats).
	wireP50, wireP99, waitP99 time.Duration
	unstamped                 int
	metrics                   string
}

// clientPerCPUSecond is messages per CPU-second of the load generator's process.
func (r loadResult) clientPerCPUSecond() float64 {
	if r.clientCPU <= 0 {
		return 0
	}
	return float64(r.n) / r.clientCPU.Seconds()
}

// selfCPU is this process's CPU time so far (user + system, getrusage).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// generatorLog is the load generator's side of a run, for the log.
func (r loadResult) generatorLog() string {
	return fmt.Sprintf("load generator: %.0f msgs per CPU-s of its process; sends late against the schedule p50/p99/max %v/%v/%v; "+
		"send → arrival at the receiver's socket p50/p99 %v/%v, then the wait to its read p99 %v (%d of %d deliveries without a receive time)",
		r.clientPerCPUSecond(), r.lagP50.Round(time.Microsecond), r.lagP99.Round(time.Microsecond), r.lagMax.Round(time.Microsecond),
		r.wireP50.Round(time.Microsecond), r.wireP99.Round(time.Microsecond), r.waitP99.Round(time.Microsecond), r.unstamped, r.n)
}

// perCPUSecond is messages moved per CPU-second of the server's process (0 if unknown).
func (r loadResult) perCPUSecond() float64 {
	if r.cpu <= 0 {
		return 0
	}
	return float64(r.n) / r.cpu.Seconds()
}

func (s *loadStats) result(n int, elapsed time.Duration) loadResult {
	for _, d := range [][]time.Duration{s.latencies, s.lags, s.wire, s.waits} {
		slices.Sort(d)
	}
	res := loadResult{rate: float64(n) / elapsed.Seconds(), n: n, unstamped: s.unstamped,
		p50: quantile(s.latencies, 0.50), p99: quantile(s.latencies, 0.99),
		wireP50: quantile(s.wire, 0.50), wireP99: quantile(s.wire, 0.99), waitP99: quantile(s.waits, 0.99)}
	if len(s.lags) > 0 {
		res.lagP50 = s.lags[len(s.lags)/2]
		res.lagP99, res.lagMax = quantile(s.lags, 0.99), quantile(s.lags, 1)
	}
	return res
}

// quantile is the p-quantile of sorted durations (0 for none).
func quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

func (r loadResult) report(b *testing.B, prefix string) {
	b.ReportMetric(r.rate, prefix+"msgs/s")
	b.ReportMetric(float64(r.p50.Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(r.p99.Microseconds()), prefix+"p99-µs")
	b.ReportMetric(0, "ns/op")
}

func stamp(buf []byte, seq uint32) []byte {
	binary.BigEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint32(buf[8:], seq)
	return buf
}

// unstampAt is a stamped message's latency at now, and its sequence number.
func unstampAt(buf []byte, now time.Time) (time.Duration, uint32) {
	sent := int64(binary.BigEndian.Uint64(buf))
	return time.Duration(now.UnixNano() - sent), binary.BigEndian.Uint32(buf[8:])
}

// checkSeqs verifies a receiver saw 0..n-1 exactly once.
func checkSeqs(b *testing.B, who string, seen []bool, dups int) {
	missing := 0
	for _, ok := range seen {
		if !ok {
			missing++
		}
	}
	if missing > 0 || dups > 0 {
		b.Fatalf("%s: %d lost, %d duplicated", who, missing, dups)
	}
}

func BenchmarkLoadRelay(b *testing.B) {
	b.Run("pairs=100", func(b *testing.B) { benchRelay(b, 100, 32, 0) })
	// For comparison: the store without fsync at commit (survives a process crash,
	// not a power cut). The relay runs FULL by default.
	b.Run("pairs=100/sync=NORMAL", func(b *testing.B) { benchRelayWith(b, 100, 32, 0, nil, "NORMAL").report(b, "") })
}

func BenchmarkLoadFloor(b *testing.B) {
	for _, pairs := range []int{100} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) { benchFloor(b, pairs, 32).report(b, "") })
	}
}

// BenchmarkLoadVsFloor measures the bare forwarder, the durable relay and the
// forwarder again back to back, and reports the relay's throughput as a percentage of
// the forwarders' mean (target: at least 35%, issue 14; it was 20%). On a shared machine the two
// measurements are only comparable when taken together like this.
func BenchmarkLoadVsFloor(b *testing.B) {
	b.Run("pairs=100", func(b *testing.B) {
		f1 := benchFloor(b, 100, 32)
		r := benchRelayWith(b, 100, 32, 0, nil, "")
		f2 := benchFloor(b, 100, 32)
		floor := (f1.rate + f2.rate) / 2
		r.report(b, "relay-")
		b.ReportMetric(floor, "floor-msgs/s")
		b.ReportMetric(100*r.rate/floor, "relay-%-of-floor")
	})
	// The same load over wss:// (TLS 1.3, the relay terminating it) beside ws://, in
	// one run: what TLS costs (target: at most 25% of throughput).
	b.Run("pairs=100/wss-vs-ws", func(b *testing.B) {
		f1 := benchFloor(b, 100, 32)
		plain := benchRelayTLS(b, 100, 32, 0, nil, "", false)
		tls := benchRelayTLS(b, 100, 32, 0, nil, "", true)
		f2 := benchFloor(b, 100, 32)
		floor := (f1.rate + f2.rate) / 2
		plain.report(b, "ws-")
		tls.report(b, "wss-")
		b.ReportMetric(floor, "floor-msgs/s")
		b.ReportMetric(100*tls.rate/plain.rate, "wss-%-of-ws")
	})
}

// BenchmarkLoadFixedRate sends 10,000 msg/s spread over 1,000 pairs and reports the
// latency distribution (target p99 < 10 ms). The target measurement is relay=child:
// the relay in its own process, run as `pfschat relay` runs it (FULL sync, its
// garbage-collector settings), the 2,000 clients in this one. The clients' process
// is the measuring instrument: it runs on the same collector settings, so that one
// collection of its 2,000 connections' heap does not show up as relay latency
// (relay=child-clientgc keeps Go's defaults there, for comparison). The
// relay=inproc variants run relay and clients in one process:
//
//	go test ./relay -run '^$' -bench 'LoadFixedRate/pairs=1000/rate=10000/relay=child$' -benchtime 50000x
func BenchmarkLoadFixedRate(b *testing.B) {
	b.Run("pairs=1000/rate=10000/relay=child", func(b *testing.B) {
		defer cli.TuneGC(cli.DefaultGC)()
		benchRelayWith(b, 1000, 2, 10000, nil, "child").report(b, "")
	})
	// The target run over wss:// beside ws://, in one run: the latency TLS adds.
	b.Run("pairs=1000/rate=10000/relay=child/wss-vs-ws", func(b *testing.B) {
		defer cli.TuneGC(cli.DefaultGC)()
		plain := benchRelayTLS(b, 1000, 2, 10000, nil, "child", false)
		tls := benchRelayTLS(b, 1000, 2, 10000, nil, "child", true)
		plain.report(b, "ws-")
		tls.report(b, "wss-")
	})
	b.Run("pairs=1000/rate=10000/relay=child-clientgc", func(b *testing.B) { benchRelayWith(b, 1000, 2, 10000, nil, "child").report(b, "") })
	b.Run("pairs=1000/rate=10000/relay=inproc", func(b *testing.B) { benchRelay(b, 1000, 8, 10000) })
	b.Run("pairs=1000/rate=10000/relay=inproc-normal", func(b *testing.B) { benchRelayWith(b, 1000, 8, 10000, nil, "NORMAL").report(b, "") })
	// The whole benchmark process (relay and clients) on the collector settings
	// `pfschat relay` uses (cli.TuneGC).
	b.Run("pairs=1000/rate=10000/relay=inproc-gc", func(b *testing.B) {
		defer cli.TuneGC(cli.DefaultGC)()
		benchRelay(b, 1000, 8, 10000)
	})
	// The same 10k msg/s with the queue in memory: the latency the relay itself adds.
	b.Run("pairs=1000/rate=10000/relay=inproc-memqueue", func(b *testing.B) { benchRelayWith(b, 1000, 8, 10000, newMemQueue(), "").report(b, "") })
	b.Run("pairs=100/rate=1000", func(b *testing.B) { benchRelay(b, 100, 8, 1000) })
	b.Run("pairs=100/rate=10000/memqueue", func(b *testing.B) { benchRelayWith(b, 100, 8, 10000, newMemQueue(), "").report(b, "") })
	b.Run("pairs=1000/rate=1000/memqueue", func(b *testing.B) { benchRelayWith(b, 1000, 8, 1000, newMemQueue(), "").report(b, "") })
}

// benchRelay runs the load against a real relay (SQLite, synchronous=FULL). rate > 0
// paces the senders to that many messages per second in total.
func benchRelay(b *testing.B, pairs, window, rate int) {
	benchRelayWith(b, pairs, window, rate, nil, "").report(b, "")
}

func benchRelayWith(b *testing.B, pairs, window, rate int, q server.Queue, syncMode string) loadResult {
	return benchRelayTLS(b, pairs, window, rate, q, syncMode, false)
}

// benchRelayTLS is benchRelayWith over wss:// (a test CA, TLS 1.3) when useTLS is set.
func benchRelayTLS(b *testing.B, pairs, window, rate int, q server.Queue, syncMode string, useTLS bool) loadResult {
	return benchRelayHooks(b, pairs, window, rate, q, syncMode, useTLS, loadHooks{})
}

// loadHooks run at points of a load run, given the child relay's admin address.
type loadHooks struct {
	beforeConnect, afterLoad func(admin string)
}

func benchRelayHooks(b *testing.B, pairs, window, rate int, q server.Queue, syncMode string, useTLS bool, hooks loadHooks) loadResult {
	var url, admin string
	var r *relaytest.Relay
	var tlsConf *tls.Config
	if syncMode == "child" || syncMode == childNormal {
		var addr string
		childSync := "FULL"
		if syncMode == childNormal {
			childSync = "NORMAL"
		}
		child := startChild(b, childSync, useTLS)
		addr, admin, tlsConf = child.addr, child.admin, child.tls
		defer child.stop()
		url = "ws://" + addr + relay.WSPath
		if useTLS {
			url = "wss://" + addr + relay.WSPath
		}
	} else {
		r = relaytest.StartWith(b, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1, MaxQueueCount: 1 << 20, ConnectionsPerAddress: -1, MaxConnections: -1}, SenderQuota: -1, Queue: q, Synchronous: syncMode, TLS: useTLS})
		url = r.URL
		if useTLS {
			tlsConf = r.CA.ClientTLS()
		}
	}
	if hooks.beforeConnect != nil {
		hooks.beforeConnect(admin)
	}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	senders := make([]*relaytest.LoadConn, pairs)
	receivers := make([]*relaytest.LoadConn, pairs)
	var setup sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < pairs; i++ {
		setup.Add(1)
		sem <- struct{}{}
		go func() {
			defer setup.Done()
			defer func() { <-sem }()
			senders[i] = benchUser(b, url, tlsConf, fmt.Sprintf("s%d", i))
			receivers[i] = benchUser(b, url, tlsConf, fmt.Sprintf("r%d", i))
		}()
	}
	setup.Wait()
	// Closed once measured (before the child stops, deferred earlier): the next run of
	// the benchmark is not to share the process with 2,000 idle connections.
	defer func() {
		for i := range senders {
			senders[i].Close()
			receivers[i].Close()
		}
	}()
	perPair := max(1, b.N/pairs)
	total := perPair * pairs
	stats := &loadStats{}
	var wg sync.WaitGroup

	pace := pacer(ctx, rate, total)
	relayGCs, relayAllocs := relayGCStats(admin, r)
	cpu0 := childCPU(admin, r)
	ownGCs, ownAllocs := gcStats()
	self0 := selfCPU()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < pairs; i++ {
		to := fmt.Sprintf("r%d", i)
		startPair(b, &wg, senders[i], receivers[i], to, perPair, window, pace, stats)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := childCPU(admin, r) - cpu0
	clientCPU := selfCPU() - self0
	if hooks.afterLoad != nil {
		hooks.afterLoad(admin)
	}
	gcs, allocs := relayGCStats(admin, r)
	gcs, allocs = gcs-relayGCs, allocs-relayAllocs
	ownGCsAfter, ownAllocsAfter := gcStats()
	ownGCs, ownAllocs = ownGCsAfter-ownGCs, ownAllocsAfter-ownAllocs
	var metrics string
	if r == nil {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(body)
		}
	} else {
		metrics = r.Get(b, "/metrics")
	}
	if b.N > 1 {
		where := "the relay's process (with the clients)"
		if r == nil {
			where = "the relay's process"
			b.Logf("clients' process: %d collections, %.0f B allocated per message", ownGCs, float64(ownAllocs)/float64(total))
		}
		b.Logf("%s; %s: %d collections, %.0f B allocated per message", commitSummary(metrics), where, gcs, float64(allocs)/float64(total))
	}
	res := stats.result(total, elapsed)
	res.cpu, res.metrics = cpu, metrics
	if r == nil {
		res.clientCPU = clientCPU
		if b.N > 1 {
			b.Logf("%s", res.generatorLog())
		}
	}
	return res
}

// pacer hands out one token per message at rate messages per second in total (total
// tokens), shared by all senders; nil when rate is 0 (unpaced). A token is the time
// the schedule had it due, so that a sender can tell how late it writes.
func pacer(ctx context.Context, rate, total int) chan time.Time {
	if rate <= 0 {
		return nil
	}
	pace := make(chan time.Time, 64)
	go func() {
		interval := time.Second / time.Duration(rate)
		next := time.Now()
		for sent := 0; sent < total; sent++ {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			select {
			case pace <- next:
			case <-ctx.Done():
				return
			}
		}
	}()
	return pace
}

// childCPU is the CPU time the child process serving admin has used so far (0 for a
// relay in this process, whose CPU time cannot be told apart from the clients').
func childCPU(admin string, r *relaytest.Relay) time.Duration {
	if r != nil || admin == "" {
		return 0
	}
	resp, err := http.Get("http://" + admin + "/cpu")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var ns int64
	fmt.Fscan(resp.Body, &ns)
	return time.Duration(ns)
}

// relayGCStats is gcStats of the relay's process: the child's, or this process's when
// the relay runs in it.
func relayGCStats(admin string, r *relaytest.Relay) (cycles, allocated uint64) {
	if r != nil {
		return gcStats()
	}
	resp, err := http.Get("http://" + admin + "/gcstats")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	fmt.Fscan(resp.Body, &cycles, &allocated)
	return cycles, allocated
}

// commitSummary condenses the relay's commit histograms into one log line: how many
// group commits, their mean size and latency, and how many took over 5, 10 and 25 ms.
func commitSummary(metrics string) string {
	vals := map[string]float64{}
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, "pfschat_relay_commit_") && !strings.HasPrefix(l, "pfschat_relay_ack_commit_") {
			continue
		}
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		var f float64
		fmt.Sscan(v, &f)
		vals[k] = f
	}
	n := vals["pfschat_relay_commit_seconds_count"]
	if n == 0 {
		return "no commits"
	}
	over := func(le string) float64 {
		return n - vals[`pfschat_relay_commit_seconds_bucket{le="`+le+`"}`]
	}
	na := vals["pfschat_relay_ack_commit_seconds_count"]
	overAck := func(le string) float64 {
		return na - vals[`pfschat_relay_ack_commit_seconds_bucket{le="`+le+`"}`]
	}
	return fmt.Sprintf("%.0f send commits, %.1f msgs each, mean %.2f ms, over 5/10/25 ms: %.0f/%.0f/%.0f; %.0f ack commits, mean %.2f ms, over 5/10/25 ms: %.0f/%.0f/%.0f",
		n, vals["pfschat_relay_commit_batch_size_sum"]/n, 1000*vals["pfschat_relay_commit_seconds_sum"]/n,
		over("0.005"), over("0.01"), over("0.025"),
		na, 1000*vals["pfschat_relay_ack_commit_seconds_sum"]/max(na, 1), overAck("0.005"), overAck("0.01"), overAck("0.025"))
}

// benchFloor is the same load through a bare in-memory gorilla forwarder: no JSON, no
// store, no acks; each message is [2-byte receiver index][body] forwarded as is.
func benchFloor(b *testing.B, pairs, window int) loadResult {
	srv := httptest.NewServer(floorHandler())
	defer srv.Close()
	return floorLoad(b, "ws"+srv.URL[len("http"):], "", pairs, window, 0)
}

// benchFloorChild is benchFloor with the forwarder in a child process (so that its CPU
// time is its own) and the senders paced at rate messages per second (0 = unpaced).
func benchFloorChild(b *testing.B, pairs, window, rate int) loadResult {
	c := startChild(b, floorChildMode, false)
	defer c.stop()
	return floorLoad(b, "ws://"+c.addr, c.admin, pairs, window, rate)
}

// floorHandler is the bare forwarder. A connection names its index in the query (?i=);
// once it is registered the forwarder sends it one empty message, so that no sender
// can address a receiver not yet registered.
func floorHandler() http.Handler {
	type fconn struct {
		ws  *websocket.Conn
		out chan []byte
	}
	var mu sync.Mutex
	conns := map[int]*fconn{}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		var idx int
		fmt.Sscan(r.URL.Query().Get("i"), &idx)
		fc := &fconn{ws: ws, out: make(chan []byte, 1024)}
		mu.Lock()
		conns[idx] = fc
		mu.Unlock()
		fc.out <- []byte{}
		go func() {
			for m := range fc.out {
				if err := ws.WriteMessage(websocket.BinaryMessage, m); err != nil {
					return
				}
			}
		}()
		go func() {
			defer close(fc.out)
			for {
				_, m, err := ws.ReadMessage()
				if err != nil || len(m) < 2 {
					return
				}
				dst := int(binary.BigEndian.Uint16(m))
				mu.Lock()
				d := conns[dst]
				mu.Unlock()
				if d != nil {
					d.out <- m
				}
			}
		}()
	})
}

// floorLoad runs the load through the forwarder at url (admin: its child's admin
// address, for its CPU time; "" when it runs in this process).
func floorLoad(b *testing.B, url, admin string, pairs, window, rate int) loadResult {
	dialer := websocket.Dialer{HandshakeTimeout: 45 * time.Second, NetDialContext: relaytest.DialStamped}
	dial := func(i int) *websocket.Conn {
		ws, _, err := dialer.Dial(fmt.Sprintf("%s/?i=%d", url, i), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil { // registered
			b.Fatal(err)
		}
		return ws
	}
	senders := make([]*websocket.Conn, pairs)
	receivers := make([]*websocket.Conn, pairs)
	for i := 0; i < pairs; i++ {
		senders[i] = dial(2*i + 1)
		receivers[i] = dial(2 * i)
	}
	defer func() {
		for i := range senders {
			senders[i].Close()
			receivers[i].Close()
		}
	}()
	perPair := max(1, b.N/pairs)
	total := perPair * pairs
	stats := &loadStats{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	pace := pacer(ctx, rate, total)
	cpu0 := childCPU(admin, nil)
	self0 := selfCPU()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < pairs; i++ {
		win := make(chan struct{}, window)
		wg.Add(2)
		go func() {
			defer wg.Done()
			var lags []time.Duration
			defer func() { stats.addLags(lags) }()
			for n := 0; n < perPair; n++ {
				win <- struct{}{}
				m := make([]byte, 2+benchBody)
				if pace != nil {
					due := <-pace
					lags = append(lags, time.Since(due))
				}
				binary.BigEndian.PutUint16(m, uint16(2*i))
				stamp(m[2:], uint32(n))
				if err := senders[i].WriteMessage(websocket.BinaryMessage, m); err != nil {
					b.Errorf("floor send: %v", err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			seen := make([]bool, perPair)
			dups := 0
			rs := &receiverStats{lat: make([]time.Duration, 0, perPair)}
			defer stats.addReceiver(rs)
			for got := 0; got < perPair; {
				_, m, err := receivers[i].ReadMessage()
				if err != nil {
					b.Errorf("floor receive: %v", err)
					return
				}
				now := time.Now()
				d, n := unstampAt(m[2:], now)
				rs.add(d, now, relaytest.Arrival(receivers[i].NetConn()))
				if int(n) >= perPair || seen[n] {
					dups++
				} else {
					seen[n] = true
					got++
				}
				<-win
			}
			checkSeqs(b, "floor", seen, dups)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	res := stats.result(total, elapsed)
	res.cpu = childCPU(admin, nil) - cpu0
	if admin != "" {
		res.clientCPU = selfCPU() - self0
		if b.N > 1 {
			b.Logf("forwarder: %s", res.generatorLog())
		}
	}
	return res
}

// memQueue is an in-memory Queue, to measure the relay's own cost without the store.
type memQueue struct {
	mu   sync.Mutex
	next int64
	msgs map[string][]storage.QueuedMessage
	seen map[[2]string]int64
}

func newMemQueue() *memQueue {
	return &memQueue{msgs: map[string][]storage.QueuedMessage{}, seen: map[[2]string]int64{}}
}

func (q *memQueue) Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	res := make([]storage.EnqueueResult, len(msgs))
	for i, m := range msgs {
		k := [2]string{m.From, m.ClientID}
		if id, ok := q.seen[k]; ok {
			res[i] = storage.EnqueueResult{ID: id, Duplicate: true}
			continue
		}
		q.next++
		m.ID = q.next
		m.Body = bytes.Clone(m.Body) // the relay reuses its buffer (see server.Queue)
		q.seen[k] = m.ID
		q.msgs[m.To] = append(q.msgs[m.To], m)
		res[i].ID = m.ID
	}
	return res, nil
}

func (q *memQueue) Pending(ctx context.Context, to string, after int64, limit int) ([]storage.QueuedMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []storage.QueuedMessage
	for _, m := range q.msgs[to] {
		if m.ID > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (q *memQueue) Ack(ctx context.Context, to string, ids []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	drop := map[int64]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	kept := q.msgs[to][:0]
	for _, m := range q.msgs[to] {
		if !drop[m.ID] {
			kept = append(kept, m)
		}
	}
	q.msgs[to] = kept
	return nil
}

// BenchmarkLoadRelayMemQueue is the relay with the store's queue swapped for memory:
// the relay's own ceiling (not durable; for comparison only).
func BenchmarkLoadRelayMemQueue(b *testing.B) {
	b.Run("pairs=100", func(b *testing.B) { benchRelayWith(b, 100, 32, 0, newMemQueue(), "").report(b, "") })
}

// benchUser registers name on the relay at url and returns a load-generator
// connection logged in as it.
func benchUser(b *testing.B, url string, tlsConf *tls.Config, name string) *relaytest.LoadConn {
	u, err := relaytest.NewLoadUser(name)
	if err != nil {
		b.Fatal(err)
	}
	c, err := relaytest.DialLoadTLS(b.Context(), url, tlsConf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Register(u); err != nil {
		b.Fatal(err)
	}
	if err := c.Login(u); err != nil {
		b.Fatal(err)
	}
	return c
}

// tryAcquire takes a slot of sem if one is free.
func tryAcquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// startPair runs one sender → receiver pair of a load run on wg: the sender takes a
// slot of a window of window messages per message and writes whatever the window (and
// pace, when set) allows at once in one batch; its answers are read beside it; the
// receiver records each message's latency in stats, releases its slot, and acks in
// batches as chat/ does.
func startPair(b *testing.B, wg *sync.WaitGroup, s, r *relaytest.LoadConn, to string, perPair, window int, pace chan time.Time, stats *loadStats) {
	windowSlots := make(chan struct{}, window)
	wg.Add(2)
	go func() {
		defer wg.Done()
		c := s
		body := make([]byte, benchBody)
		var lags []time.Duration
		defer func() { stats.addLags(lags) }()
		for n := 0; n < perPair; {
			windowSlots <- struct{}{}
			if pace != nil {
				due := <-pace
				lags = append(lags, time.Since(due))
			}
			c.QueueSend(to, stamp(body, uint32(n)), strconv.Itoa(n))
			n++
			for pace == nil && n < perPair && c.Queued() < 16<<10 && tryAcquire(windowSlots) {
				c.QueueSend(to, stamp(body, uint32(n)), strconv.Itoa(n))
				n++
			}
			if err := c.Flush(); err != nil {
				b.Errorf("send: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for accepted := 0; accepted < perPair; {
			ev, err := s.Next()
			if err != nil {
				b.Errorf("reading the answers to sends: %v", err)
				return
			}
			switch ev.Type {
			case relay.TypeAccepted:
				accepted++
			case relay.TypeError:
				b.Errorf("send: %v", ev.Err)
				return
			}
		}
	}()
	// receiver: record, release a window slot, ack in batches
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := r
		seen := make([]bool, perPair)
		dups := 0
		rs := &receiverStats{lat: make([]time.Duration, 0, perPair)}
		defer stats.addReceiver(rs)
		var ackIDs []int64
		lastAck := time.Now()
		for got := 0; got < perPair; {
			ev, err := c.Next()
			if err != nil {
				b.Errorf("receive: %v", err)
				return
			}
			if ev.Type != relay.TypeDeliver {
				continue // answers to acks
			}
			now := time.Now()
			d, n := unstampAt(ev.Body, now)
			rs.add(d, now, c.Arrived())
			if int(n) >= perPair || seen[n] {
				dups++
			} else {
				seen[n] = true
				got++
			}
			<-windowSlots
			ackIDs = append(ackIDs, ev.MsgID)
			// Ack in batches, as chat/ does: when 128 are waiting, at the end, or
			// when the last ack went out a while ago.
			if len(ackIDs) >= 128 || got == perPair || time.Since(lastAck) > 5*time.Millisecond {
				c.QueueAck(ackIDs)
				if err := c.Flush(); err != nil {
					b.Errorf("ack: %v", err)
					return
				}
				ackIDs = ackIDs[:0]
				lastAck = time.Now()
			}
		}
		checkSeqs(b, to, seen, dups)
	}()
}
