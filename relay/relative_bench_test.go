package relay_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"runtime/trace"
	"strings"
	"testing"
	"time"

	"pfschat/chat/cli"
)

// BenchmarkLoadRelative holds issue 14's targets, every one relative to figures
// measured in the same run, so that a slow day or a busy machine moves both sides:
//
//  1. the durable relay's saturated rate at 1,000 pairs (each sender keeps 8 messages
//     in flight; relay in a child process as `pfschat relay` runs it, FULL sync; the
//     load from another child, so that the process measuring the tails below has not
//     just run flat out: saturateApart);
//  2. the relay at 25% of that rate: p50/p99 send → deliver, the commit-time histogram,
//     messages per relay CPU-second;
//  3. the bare gorilla forwarder (also a child process) at the same rate: its p50/p99
//     and messages per CPU-second.
//
// Each latency is reported twice: to the generator's read of the deliver (p50/p99),
// and to the deliver's arrival at the receiver's socket, the kernel's receive time
// (SO_TIMESTAMPNS; wire-p50/wire-p99). The generator's 2,000 connections share the
// two cores with the server they measure, and in the relay runs they do twice the
// forwarder runs' work per message (send, accepted, deliver, ack, ok against send
// and deliver); the wire figures leave out their wait for a CPU before a read
// (gen-*-read-wait-p99), the part of the tail that is the instrument's. Sends are
// timed as they are written, so a late generator's wait before a send is in neither
// (gen-*-late-p99).
//
// Targets: relay p99 ≤ 10× the forwarder's, and ≤ 10 ms when the load average before
// the run is below 1.0 (loadavg-1m is reported: read after the benchmark's own warm-up
// and saturated runs, which raise it; loadavg-1m-at-start is the machine's before the
// command began); relay messages per CPU-second beside
// the forwarder's (cpu-relay/floor). PFSCHAT_RELAY_CHILD_CPUPROFILE=FILE writes the
// relay child's CPU profile of the fixed-rate run (the 1,000-pair one) to FILE.
//
//	go test ./relay -run '^$' -bench 'LoadRelative/pairs=1000$' -benchtime 50000x
//
// pairs=1000-vs-5000 adds the same rate over 5,000 pairs (10,000 connections) and
// reports the relay's CPU per message there against 1,000 pairs (target ≤ 1.3×) and its
// memory per connection after the load, connections still open (target ≤ 28 KiB).
//
// pairs=1000-wss-vs-ws (issue 11) runs the fixed-rate load at that rate over ws:// and
// then over wss:// (TLS 1.3, the child relay terminating it), in the same run as the
// saturated measurement, and reports both runs' p50/p99, the p99 ratio wss/ws and
// each run's relay messages per CPU-second (not named pairs=1000/…, which the
// pairs=1000$ pattern above would also select):
//
//	go test ./relay -run '^$' -bench 'LoadRelative/pairs=1000-wss-vs-ws$' -benchtime 20000x
//
// pairs=1000-full-vs-normal splits the relay's tail: after the saturated run, the fixed
// rate against the relay as it runs (FULL: an fsync per group commit), against the same
// relay with synchronous=NORMAL (no fsync on commit: what is left is the relay's own
// work and its scheduling), and against the forwarder, in one run:
//
//	go test ./relay -run '^$' -bench 'LoadRelative/pairs=1000-full-vs-normal$' -benchtime 30000x
func BenchmarkLoadRelative(b *testing.B) {
	b.Run("pairs=1000", func(b *testing.B) { benchRelative(b, 0) })
	b.Run("pairs=1000-vs-5000", func(b *testing.B) { benchRelative(b, 5000) })
	b.Run("pairs=1000-wss-vs-ws", benchRelativeTLS)
	b.Run("pairs=1000-full-vs-normal", benchRelativeSync)
}

// clientTraceEnv names a file for an execution trace of this process (the load
// generator's) over LoadRelative's fixed-rate relay run.
const clientTraceEnv = "PFSCHAT_BENCH_CLIENT_TRACE"

// clientTrace starts the generator's trace when clientTraceEnv asks for one (only in
// the measured run, b.N > 1) and returns what stops it.
func clientTrace(b *testing.B) func() {
	path := os.Getenv(clientTraceEnv)
	if path == "" || b.N <= 1 {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		b.Fatal(err)
	}
	return func() { trace.Stop(); f.Close() }
}

// childNormal is benchRelayHooks' syncMode for the child relay with synchronous=NORMAL.
const childNormal = "child-normal"

func benchRelativeSync(b *testing.B) {
	defer cli.TuneGC(cli.DefaultGC)()
	r := saturate(b)
	full := benchRelayTLS(b, 1000, 2, r.rate, nil, "child", false)
	b.Logf("FULL at %d msgs/s: %s", r.rate, commitHistogram(full.metrics))
	normal := benchRelayTLS(b, 1000, 2, r.rate, nil, childNormal, false)
	b.Logf("NORMAL at %d msgs/s: %s", r.rate, commitHistogram(normal.metrics))
	flo := benchFloorChild(b, 1000, 2, r.rate)
	r.report(b)
	for _, run := range []struct {
		prefix string
		res    loadResult
	}{{"full-", full}, {"normal-", normal}, {"floor-", flo}} {
		b.ReportMetric(float64(run.res.p50.Microseconds()), run.prefix+"p50-µs")
		b.ReportMetric(float64(run.res.p99.Microseconds()), run.prefix+"p99-µs")
		b.ReportMetric(float64(run.res.wireP99.Microseconds()), run.prefix+"wire-p99-µs")
		b.ReportMetric(run.res.perCPUSecond(), run.prefix+"msgs/cpu-s")
	}
	b.ReportMetric(float64(full.p99)/float64(max(flo.p99, 1)), "p99-full/floor")
	b.ReportMetric(float64(normal.p99)/float64(max(flo.p99, 1)), "p99-normal/floor")
}

// relative is the first step of every LoadRelative run: the load average before it,
// the durable relay's saturated run at 1,000 pairs over ws:// (its load generated by
// a child process: saturateApart), and the fixed rate derived from it (25%).
type relative struct {
	load float64
	sat  loadResult
	rate int
}

// rateEnv, when set to a rate in messages per second, skips the saturated run and
// runs the fixed-rate loads at that rate: for comparing two builds at the same rate,
// alternating (each saturated run sets its own rate, and at a different rate the
// group commit's batches, and so the CPU per message, differ).
const rateEnv = "PFSCHAT_RELATIVE_RATE"

func saturate(b *testing.B) relative {
	r := relative{load: loadAvg()}
	if s := os.Getenv(rateEnv); s != "" {
		fmt.Sscan(s, &r.rate)
		if r.rate > 0 {
			b.Logf("fixed rate %d msgs/s from %s (no saturated run); load average %.2f", r.rate, rateEnv, r.load)
			return r
		}
	}
	// The saturated load comes from a child process: a generator that has just run
	// flat out measured the fixed-rate tails after it with goroutines waiting for a
	// CPU p99 47 ms instead of 19 (the same work, the same threads: the operating
	// system ran them later), and its read wait p99 was 25–45 ms instead of 3.
	r.sat = saturateApart(b)
	r.rate = int(r.sat.rate / 4)
	b.Logf("saturated: %.0f msgs/s at 1,000 pairs; fixed rate %d msgs/s; load average %.2f", r.sat.rate, r.rate, r.load)
	return r
}

// report reports the figures common to the LoadRelative runs. Call it after the last
// load run: every load run resets the timer, which drops metrics reported before.
func (r relative) report(b *testing.B) {
	b.ReportMetric(r.load, "loadavg-1m")
	b.ReportMetric(loadAtStart, "loadavg-1m-at-start")
	b.ReportMetric(r.sat.rate, "saturated-msgs/s")
	b.ReportMetric(float64(r.rate), "rate-msgs/s")
	b.ReportMetric(r.sat.perCPUSecond(), "saturated-relay-msgs/cpu-s")
	b.ReportMetric(0, "ns/op")
}

func benchRelativeTLS(b *testing.B) {
	defer cli.TuneGC(cli.DefaultGC)()
	r := saturate(b)
	plain := benchRelayTLS(b, 1000, 2, r.rate, nil, "child", false)
	tls := benchRelayTLS(b, 1000, 2, r.rate, nil, "child", true)
	r.report(b)
	for _, run := range []struct {
		prefix string
		res    loadResult
	}{{"ws-", plain}, {"wss-", tls}} {
		b.ReportMetric(float64(run.res.p50.Microseconds()), run.prefix+"p50-µs")
		b.ReportMetric(float64(run.res.p99.Microseconds()), run.prefix+"p99-µs")
		b.ReportMetric(run.res.perCPUSecond(), run.prefix+"relay-msgs/cpu-s")
	}
	b.ReportMetric(float64(tls.p99)/float64(max(plain.p99, 1)), "p99-wss/ws")
}

func benchRelative(b *testing.B, bigPairs int) {
	defer cli.TuneGC(cli.DefaultGC)() // the clients' process, as in LoadFixedRate
	r := saturate(b)
	rate := r.rate
	prof, tr := os.Getenv(childProfileEnv), os.Getenv(childTraceEnv)
	stopTrace := clientTrace(b)
	// The fixed-rate relay runs as a relay in steady state does: with its collector's
	// heap floor on (childWarmGCEnv). The 5,000-pair run below keeps the fresh child's
	// behaviour: it measures memory per connection, which the floor would spread.
	warm := os.Getenv(childWarmGCEnv)
	if os.Getenv("PFSCHAT_RELATIVE_COLD_GC") == "" {
		os.Setenv(childWarmGCEnv, "1")
	}
	rel := benchRelayTLS(b, 1000, 2, rate, nil, "child", false)
	os.Setenv(childWarmGCEnv, warm)
	stopTrace()
	os.Unsetenv(childProfileEnv) // the fixed-rate run's only
	os.Unsetenv(childTraceEnv)
	defer os.Setenv(childProfileEnv, prof)
	defer os.Setenv(childTraceEnv, tr)
	b.Logf("relay at %d msgs/s: %s", rate, commitHistogram(rel.metrics))
	inside, _, in99 := deliverHistogram(rel.metrics)
	b.Logf("relay at %d msgs/s: %s (p99 ≤ %g ms)", rate, inside, in99*1000)
	flo := benchFloorChild(b, 1000, 2, rate)
	var big loadResult
	var mem float64
	if bigPairs > 0 {
		big, mem = benchRelayBig(b, bigPairs, rate)
		b.Logf("relay at %d msgs/s over %d pairs: %s", rate, bigPairs, commitHistogram(big.metrics))
	}
	r.report(b)
	b.ReportMetric(float64(rel.p50.Microseconds()), "relay-p50-µs")
	b.ReportMetric(float64(rel.p99.Microseconds()), "relay-p99-µs")
	b.ReportMetric(float64(flo.p50.Microseconds()), "floor-p50-µs")
	b.ReportMetric(float64(flo.p99.Microseconds()), "floor-p99-µs")
	b.ReportMetric(float64(rel.p99)/float64(max(flo.p99, 1)), "p99-relay/floor")
	// The same latencies ended at the deliver's arrival at the receiver's socket (the
	// kernel's receive time) instead of at the generator's read of it: without the
	// wait of the generator's 2,000 connections for a CPU (reported beside them).
	b.ReportMetric(float64(rel.wireP50.Microseconds()), "relay-wire-p50-µs")
	b.ReportMetric(float64(rel.wireP99.Microseconds()), "relay-wire-p99-µs")
	b.ReportMetric(float64(flo.wireP50.Microseconds()), "floor-wire-p50-µs")
	b.ReportMetric(float64(flo.wireP99.Microseconds()), "floor-wire-p99-µs")
	b.ReportMetric(float64(rel.wireP99)/float64(max(flo.wireP99, 1)), "p99-wire-relay/floor")
	b.ReportMetric(float64(rel.waitP99.Microseconds()), "gen-relay-read-wait-p99-µs")
	b.ReportMetric(float64(flo.waitP99.Microseconds()), "gen-floor-read-wait-p99-µs")
	b.ReportMetric(float64(rel.unstamped+flo.unstamped), "deliveries-without-receive-time")
	b.ReportMetric(rel.perCPUSecond(), "relay-msgs/cpu-s")
	b.ReportMetric(flo.perCPUSecond(), "floor-msgs/cpu-s")
	b.ReportMetric(rel.perCPUSecond()/max(flo.perCPUSecond(), 1), "cpu-relay/floor")
	b.ReportMetric(in99*1e6, "relay-inside-p99-bucket-µs")
	b.ReportMetric(rel.clientPerCPUSecond(), "gen-relay-msgs/cpu-s")
	b.ReportMetric(flo.clientPerCPUSecond(), "gen-floor-msgs/cpu-s")
	b.ReportMetric(float64(rel.lagP99.Microseconds()), "gen-relay-late-p99-µs")
	b.ReportMetric(float64(flo.lagP99.Microseconds()), "gen-floor-late-p99-µs")
	if bigPairs == 0 {
		return
	}
	b.ReportMetric(float64(big.p50.Microseconds()), "big-p50-µs")
	b.ReportMetric(float64(big.p99.Microseconds()), "big-p99-µs")
	b.ReportMetric(big.perCPUSecond(), "big-relay-msgs/cpu-s")
	b.ReportMetric(rel.perCPUSecond()/max(big.perCPUSecond(), 1), "cpu-per-msg-big/1000")
	b.ReportMetric(mem/1024, "big-KiB/conn")
}

// benchRelayBig is the fixed-rate run over many pairs, with the relay child's heap and
// stack per connection after the load, the connections still open.
func benchRelayBig(b *testing.B, pairs, rate int) (loadResult, float64) {
	var before, after memReport
	res := benchRelayHooks(b, pairs, 2, rate, nil, "child", false, loadHooks{
		beforeConnect: func(admin string) { before = childMem(b, admin) },
		afterLoad:     func(admin string) { after = childMem(b, admin) },
	})
	grew := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
	return res, grew / float64(2*pairs)
}

// childMem is the child relay's /memstats (after a few collections).
func childMem(b *testing.B, admin string) memReport {
	resp, err := http.Get("http://" + admin + "/memstats")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m memReport
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		b.Fatal(err)
	}
	return m
}

// loadAtStart is the 1-minute load average when this test binary started: the
// machine's own load before the benchmark's runs added theirs.
var loadAtStart = loadAvg()

// loadAvg is the 1-minute load average (0 if unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

// histogramBuckets is the relay's /metrics histogram name as its bucket bounds in
// seconds (+Inf last) and counts per bucket (not cumulative).
func histogramBuckets(metrics, name string) (bounds, counts []float64) {
	prev := 0.0
	for _, l := range strings.Split(metrics, "\n") {
		k, ok := strings.CutPrefix(l, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, v, _ := strings.Cut(k, `"} `)
		var cum float64
		fmt.Sscan(v, &cum)
		bound := math.Inf(1)
		if le != "+Inf" {
			fmt.Sscan(le, &bound)
		}
		bounds = append(bounds, bound)
		counts = append(counts, cum-prev)
		prev = cum
	}
	return bounds, counts
}

// deliverHistogram is the relay's own send → deliver time (pfschat_relay_deliver_seconds:
// a send frame read to its deliver push encoded), as "≤0.5ms:N …" with the bucket
// bounds that hold its p50 and p99: the part of the measured latency spent inside the
// relay's process.
func deliverHistogram(metrics string) (line string, p50, p99 float64) {
	bounds, counts := histogramBuckets(metrics, "pfschat_relay_deliver_seconds")
	var total float64
	for _, c := range counts {
		total += c
	}
	var out []string
	var cum float64
	p50, p99 = -1, -1
	for i, c := range counts {
		cum += c
		if c > 0 {
			out = append(out, fmt.Sprintf("≤%gms:%.0f", bounds[i]*1000, c))
		}
		if p50 < 0 && cum >= 0.5*total {
			p50 = bounds[i]
		}
		if p99 < 0 && cum >= 0.99*total {
			p99 = bounds[i]
		}
	}
	return fmt.Sprintf("%.0f live deliveries, inside the relay: %s", total, strings.Join(out, " ")), p50, p99
}

// commitHistogram is the relay's group-commit latency histogram from its /metrics, as
// "≤0.5ms:N ≤1ms:N …" (counts per bucket, not cumulative), with the commits' count and
// mean batch size.
func commitHistogram(metrics string) string {
	var out []string
	prev := 0.0
	var count, batch float64
	for _, l := range strings.Split(metrics, "\n") {
		if k, ok := strings.CutPrefix(l, `pfschat_relay_commit_seconds_bucket{le="`); ok {
			le, v, _ := strings.Cut(k, `"} `)
			var cum float64
			fmt.Sscan(v, &cum)
			label := "+Inf"
			if le != "+Inf" {
				var s float64
				fmt.Sscan(le, &s)
				label = fmt.Sprintf("%gms", s*1000)
			}
			if cum > prev {
				out = append(out, fmt.Sprintf("≤%s:%.0f", label, cum-prev))
			}
			prev = cum
		}
		if v, ok := strings.CutPrefix(l, "pfschat_relay_commit_seconds_count "); ok {
			fmt.Sscan(v, &count)
		}
		if v, ok := strings.CutPrefix(l, "pfschat_relay_commit_batch_size_sum "); ok {
			fmt.Sscan(v, &batch)
		}
	}
	return fmt.Sprintf("%.0f commits of %.1f msgs: %s", count, batch/max(count, 1), strings.Join(out, " "))
}

// saturateChildEnv marks the process that generates LoadRelative's saturated load
// (BenchmarkLoadSaturatedChild).
const saturateChildEnv = "PFSCHAT_SATURATE_CHILD"

// saturateApart runs the saturated measurement with its load generated by a child
// process (this test binary), so that the process that then measures the fixed-rate
// tails has not just run flat out.
func saturateApart(b *testing.B) loadResult {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkLoadSaturatedChild$",
		fmt.Sprintf("-test.benchtime=%dx", b.N), "-test.v=false")
	cmd.Env = append(os.Environ(), saturateChildEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("the saturated run's load generator: %v", err)
	}
	var res loadResult
	for _, l := range strings.Split(string(out), "\n") {
		// The benchmark's own output may precede the figure on its line.
		if _, rest, ok := strings.Cut(l, "SATURATED "); ok {
			var cpu int64
			fmt.Sscan(rest, &res.rate, &cpu, &res.n)
			res.cpu = time.Duration(cpu)
		}
	}
	if res.rate == 0 {
		b.Fatalf("the saturated run's load generator gave no figure:\n%s", out)
	}
	return res
}

// BenchmarkLoadSaturatedChild is saturateApart's child: the saturated run at 1,000
// pairs, its figures printed for the parent.
func BenchmarkLoadSaturatedChild(b *testing.B) {
	if os.Getenv(saturateChildEnv) == "" {
		b.Skip("runs only as LoadRelative's child")
	}
	defer cli.TuneGC(cli.DefaultGC)()
	res := benchRelayTLS(b, 1000, 8, 0, nil, "child", false)
	fmt.Printf("SATURATED %f %d %d\n", res.rate, int64(res.cpu), res.n)
}
