package relay_test

// Issue 16's benchmark: a relay node on JetStream beside the SQLite relay and the bare
// forwarder, in one run. Every server is a child process, so that each one's CPU time
// is its own: the forwarder, `pfschat relay --db` (SQLite, FULL), and `pfschat relay
// --nats` at R1 (one NATS server syncing every write, sync_interval always), at R3
// (three clustered NATS servers, one process each, with JetStream's default sync: the ack means a quorum
// has it) and, for what the sync costs, at R1 with JetStream's default sync (a power
// cut may lose the last two minutes). The NATS servers run in one more child process.
// Run:
//
//	go test ./relay -run '^$' -bench 'LoadVsFloorCluster' -benchtime 20000x
//
// Reported per store: the saturated rate (100 pairs, 32 in flight each), messages per
// relay CPU-second and per NATS CPU-second, and p50/p99 send → deliver at a fixed rate
// of 25% of the SQLite relay's saturated rate (issue 14's relative load), the same
// rate for every store.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/chat/cli"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

const (
	clusterNATSChildEnv  = "PFSCHAT_BENCH_NATS_CHILD" // 1, 1-nosync or 3
	clusterRelayChildEnv = "PFSCHAT_BENCH_RELAY_ARGS" // the relay command's arguments, JSON
)

// TestClusterBenchNATSChild runs 1 NATS server syncing every write ("1"), 1 with
// JetStream's default sync ("1-nosync"), or 3 clustered ones ("3") until stdin closes,
// printing "NATS url,url,…".
func TestClusterBenchNATSChild(t *testing.T) {
	mode := os.Getenv(clusterNATSChildEnv)
	var urls []string
	switch mode {
	case "":
		t.Skip("runs only as a child of BenchmarkLoadVsFloorCluster")
	case "1":
		urls = []string{natstest.Single(t).URL()}
	case "1-nosync": // JetStream's default: sync every 2 minutes
		s, err := natsserver.NewServer(&natsserver.Options{ServerName: "nosync", Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
			NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(), MaxPayload: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(15 * time.Second) {
			t.Fatal("NATS server not ready")
		}
		defer s.Shutdown()
		urls = []string{s.ClientURL()}
	default:
		if node, ok := strings.CutPrefix(mode, "node/"); ok {
			urls = []string{clusterNodeChild(t, node)}
			break
		}
		n, _ := strconv.Atoi(mode)
		urls = natstest.Cluster(t, n).URLs()
	}
	fmt.Printf("NATS %s\n", strings.Join(urls, ","))
	io.Copy(io.Discard, os.Stdin)
}

// clusterNodeChild runs one server of a NATS cluster spread over child processes:
// spec is "i/client ports/cluster ports" (ports comma-separated, the i-th this one's).
func clusterNodeChild(t *testing.T, spec string) string {
	parts := strings.Split(spec, "/")
	i, _ := strconv.Atoi(parts[0])
	clientPorts, clusterPorts := strings.Split(parts[1], ","), strings.Split(parts[2], ",")
	port := func(s string) int { p, _ := strconv.Atoi(s); return p }
	o := &natsserver.Options{ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: port(clientPorts[i]),
		NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(), MaxPayload: 8 << 20,
		Cluster: natsserver.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: port(clusterPorts[i]), PoolSize: -1}}
	for j, cp := range clusterPorts {
		if j != i {
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + cp})
		}
	}
	s, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// startNATSProcesses runs n clustered NATS servers, one child process each, and waits
// until JetStream can place n replicas.
func startNATSProcesses(b *testing.B, n int) (urls string, procs []*benchChild) {
	b.Helper()
	ports := func() []string {
		var out []string
		var ls []net.Listener
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ls = append(ls, l)
			out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		}
		for _, l := range ls {
			l.Close()
		}
		return out
	}
	clientPorts, clusterPorts := ports(), ports()
	var all []string
	for i := range n {
		spec := fmt.Sprintf("node/%d/%s/%s", i, strings.Join(clientPorts, ","), strings.Join(clusterPorts, ","))
		c, u := startBenchChild(b, "TestClusterBenchNATSChild", clusterNATSChildEnv+"="+spec, "NATS ")
		procs = append(procs, c)
		all = append(all, u)
	}
	urls = strings.Join(all, ",")
	// Wait until a stream of n replicas can be placed (the meta leader knows every peer).
	nc, err := nats.Connect(urls)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.CreateStream(pctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe"}, Replicas: n})
		pcancel()
		if err == nil {
			js.DeleteStream(ctx, "PROBE")
			return urls, procs
		}
		select {
		case <-ctx.Done():
			b.Fatalf("the NATS cluster cannot place %d replicas: %v (last: %v)", n, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestClusterBenchRelayChild runs `pfschat relay` with the arguments in
// PFSCHAT_BENCH_RELAY_ARGS until stdin closes.
func TestClusterBenchRelayChild(t *testing.T) {
	raw := os.Getenv(clusterRelayChildEnv)
	if raw == "" {
		t.Skip("runs only as a child of BenchmarkLoadVsFloorCluster")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := cli.RunRelay(ctx, args, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// benchChild is a child process of the benchmark.
type benchChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

// startBenchChild runs this test binary's test named run with env set and waits for
// a stdout line starting with prefix, whose rest it returns.
func startBenchChild(b *testing.B, run, env, prefix string) (*benchChild, string) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v=false")
	cmd.Env = append(os.Environ(), env)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &benchChild{cmd: cmd, stdin: stdin}
	b.Cleanup(c.stop)
	sc := bufio.NewScanner(stdout)
	var rest string
	for sc.Scan() {
		if r, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			rest = r
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if rest == "" {
		b.Fatalf("%s did not start", run)
	}
	return c, rest
}

func (c *benchChild) stop() {
	c.stdin.Close()
	c.cmd.Wait()
}

// cpu is the child's CPU time so far (user + system, from /proc; 0 where there is none).
func (c *benchChild) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (in parentheses, which may hold spaces).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// clusterStore is one store the benchmark runs the relay on.
type clusterStore struct {
	name     string
	nats     string // the NATS child's mode ("": SQLite)
	replicas int
}

// relayOn starts `pfschat relay` on store (and its NATS servers) as children.
func relayOn(b *testing.B, st clusterStore) (url string, relayProc *benchChild, natsProcs []*benchChild) {
	b.Helper()
	if st.nats == "" {
		relayProc, url = relayNode(b, "", 0, "")
		return url, relayProc, nil
	}
	var urls string
	if n, ok := strings.CutSuffix(st.nats, "-processes"); ok {
		size, _ := strconv.Atoi(n)
		urls, natsProcs = startNATSProcesses(b, size)
	} else {
		var np *benchChild
		np, urls = startBenchChild(b, "TestClusterBenchNATSChild", clusterNATSChildEnv+"="+st.nats, "NATS ")
		natsProcs = []*benchChild{np}
	}
	key := filepath.Join(b.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte(storage.GenerateRelayKey()), 0o600); err != nil {
		b.Fatal(err)
	}
	relayProc, url = relayNode(b, urls, st.replicas, key, "--init")
	return url, relayProc, natsProcs
}

// relayNode starts one `pfschat relay` child: on SQLite when natsURLs is "", else a
// node on that JetStream system (key: the cluster's seal key file; extra: "--init"
// for the first node of a new system).
func relayNode(b *testing.B, natsURLs string, replicas int, key string, extra ...string) (*benchChild, string) {
	b.Helper()
	dir := b.TempDir()
	logDir := dir
	if d := os.Getenv("PFSCHAT_BENCH_LOG_DIR"); d != "" { // keep the relays' logs
		logDir, _ = os.MkdirTemp(d, "relay-")
	}
	args := []string{"--addr", "127.0.0.1:0", "--admin-addr", "", "--log", filepath.Join(logDir, "relay.log"),
		"--rate", "-1", "--max-conns-per-address", "0", "--registrations-per-hour", "0", "--sender-quota", "0",
		"--max-queue-count", strconv.Itoa(1 << 20)}
	if natsURLs == "" {
		args = append(args, "--db", filepath.Join(dir, "relay.db"))
	} else {
		args = append(args, "--nats", natsURLs, "--nats-replicas", strconv.Itoa(replicas), "--relay-key-file", key)
	}
	args = append(args, extra...)
	enc, _ := json.Marshal(args)
	rp, url := startBenchChild(b, "TestClusterBenchRelayChild", clusterRelayChildEnv+"="+string(enc), "pfschat relay listening on ")
	return rp, url
}

// clusterLoad runs pairs senders and receivers against url until b.N messages were
// delivered (each sender keeps window in flight; rate > 0 paces them all to that many
// a second), checking that each arrives once.
// mark is called right before the load starts (after the users' registrations).
func clusterLoad(b *testing.B, url string, pairs, window, rate int, mark func()) loadResult {
	return clusterLoadOn(b, url, url, pairs, window, rate, mark)
}

// clusterLoadOn is clusterLoad with the senders on the relay at sendURL and the
// receivers on the one at recvURL.
func clusterLoadOn(b *testing.B, sendURL, recvURL string, pairs, window, rate int, mark func()) loadResult {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	senders := make([]*relaytest.LoadConn, pairs)
	receivers := make([]*relaytest.LoadConn, pairs)
	var setup sync.WaitGroup
	sem := make(chan struct{}, 8)
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for i := range pairs {
		setup.Add(1)
		sem <- struct{}{}
		go func() {
			defer setup.Done()
			defer func() { <-sem }()
			senders[i] = benchUser(b, sendURL, nil, fmt.Sprintf("s%d-%s", i, tag))
			receivers[i] = benchUser(b, recvURL, nil, fmt.Sprintf("r%d-%s", i, tag))
		}()
	}
	setup.Wait()
	perPair := max(1, b.N/pairs)
	total := perPair * pairs
	stats := &loadStats{}
	pace := pacer(ctx, rate, total)
	var wg sync.WaitGroup
	mark()
	b.ResetTimer()
	start := time.Now()
	for i := range pairs {
		to := fmt.Sprintf("r%d-%s", i, tag)
		startPair(b, &wg, senders[i], receivers[i], to, perPair, window, pace, stats)
	}
	// A pair that failed (a send refused: the load generator does not retry) leaves
	// its receiver waiting for messages that will not come: once the benchmark has
	// failed, close every connection so that the run ends instead of hanging.
	finished := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-finished:
				return
			case <-tick.C:
				if b.Failed() {
					for i := range pairs {
						senders[i].Close()
						receivers[i].Close()
					}
					return
				}
			}
		}
	}()
	wg.Wait()
	close(finished)
	res := stats.result(total, time.Since(start))
	b.StopTimer()
	return res
}

// storeRun is one store's figures.
type storeRun struct {
	sat, fixed        loadResult
	relayCPU, natsCPU time.Duration // during the saturated run
	relayFix, natsFix time.Duration // during the fixed-rate run
	busiestNATS       time.Duration // the busiest NATS process's, during the saturated run
}

func runStore(b *testing.B, st clusterStore, pairs, window int, rate func(sat loadResult) int) storeRun {
	url, rp, nps := relayOn(b, st)
	var r storeRun
	cpu := func() (time.Duration, time.Duration) {
		var n time.Duration
		for _, np := range nps {
			n += np.cpu()
		}
		return rp.cpu(), n
	}
	each := func() []time.Duration {
		var out []time.Duration
		for _, np := range nps {
			out = append(out, np.cpu())
		}
		return out
	}
	var r0, n0 time.Duration
	var e0 []time.Duration
	mark := func() { r0, n0 = cpu(); e0 = each() }
	r.sat = clusterLoad(b, url, pairs, window, 0, mark)
	r1, n1 := cpu()
	r.relayCPU, r.natsCPU = r1-r0, n1-n0
	for i, e := range each() {
		r.busiestNATS = max(r.busiestNATS, e-e0[i])
	}
	r.fixed = clusterLoad(b, url, pairs, 2, rate(r.sat), mark)
	r2, n2 := cpu()
	r.relayFix, r.natsFix = r2-r0, n2-n0
	rp.stop()
	for _, np := range nps {
		np.stop()
	}
	return r
}

func perSec(n int, cpu time.Duration) float64 {
	if cpu <= 0 {
		return 0
	}
	return float64(n) / cpu.Seconds()
}

// BenchmarkLoadVsFloorCluster: the forwarder, the SQLite relay, and a relay node on
// JetStream at R1 and R3, in one run (issue 16's targets: R1 ≥ 50% of SQLite; the
// two-node projection from the per-message CPU is in the README).
func BenchmarkLoadVsFloorCluster(b *testing.B) {
	b.Run("pairs=100", func(b *testing.B) {
		const pairs, window = 100, 32
		b.Logf("load average before: %.2f", loadAvg())
		f1 := benchFloorChild(b, pairs, window, 0)
		var fixedRate int
		stores := []clusterStore{{"sqlite", "", 0}, {"js-r1", "1", 1}, {"js-r3", "3-processes", 3}, {"js-r1-nosync", "1-nosync", 1}}
		runs := make([]storeRun, len(stores))
		for i, st := range stores {
			runs[i] = runStore(b, st, pairs, window, func(sat loadResult) int {
				if fixedRate == 0 { // the SQLite relay's, for every store
					fixedRate = max(100, int(sat.rate/4))
				}
				return fixedRate
			})
		}
		f2 := benchFloorChild(b, pairs, window, 0)
		floor := (f1.rate + f2.rate) / 2
		b.ReportMetric(floor, "floor-msgs/s")
		b.ReportMetric(float64(fixedRate), "fixed-msgs/s")
		for i, st := range stores {
			r := runs[i]
			p := st.name + "-"
			b.ReportMetric(r.sat.rate, p+"msgs/s")
			b.ReportMetric(100*r.sat.rate/floor, p+"%-of-floor")
			b.ReportMetric(perSec(r.sat.n, r.relayCPU), p+"msgs/relay-cpu-s")
			if st.nats != "" {
				b.ReportMetric(perSec(r.sat.n, r.natsCPU), p+"msgs/nats-cpu-s")
				b.ReportMetric(100*r.sat.rate/runs[0].sat.rate, p+"%-of-sqlite")
				b.ReportMetric(perSec(r.sat.n, r.busiestNATS), p+"msgs/busiest-nats-cpu-s")
			}
			b.ReportMetric(float64(r.fixed.p50.Microseconds()), p+"fixed-p50-µs")
			b.ReportMetric(float64(r.fixed.p99.Microseconds()), p+"fixed-p99-µs")
			b.Logf("%s: saturated %.0f msg/s (relay CPU %v, NATS CPU %v for %d msgs); at %d msg/s p50 %v p99 %v (relay CPU %v, NATS CPU %v for %d msgs)",
				st.name, r.sat.rate, r.relayCPU, r.natsCPU, r.sat.n, fixedRate, r.fixed.p50, r.fixed.p99, r.relayFix, r.natsFix, r.fixed.n)
		}
		b.ReportMetric(0, "ns/op")
	})
}

// BenchmarkLoadTwoNodesCluster: one relay node against two on the same R3 JetStream
// system (three NATS servers, each a child process, as in LoadVsFloorCluster), in one
// run. One node: senders and receivers on node A. Two nodes: senders on A, receivers
// on B, so every message crosses nodes (stored by A, delivered by B through the
// hub). Reported: the saturated rate, messages per relay CPU-second (both nodes
// together) and per NATS CPU-second (all three, and the busiest), and p50/p99 at a
// fixed rate of 25% of the one node's saturated rate.
//
//	go test ./relay -run '^$' -bench 'LoadTwoNodesCluster' -benchtime 8000x
func BenchmarkLoadTwoNodesCluster(b *testing.B) {
	const pairs, window = 100, 32
	b.Logf("load average before: %.2f", loadAvg())
	urls, nps := startNATSProcesses(b, 3)
	key := filepath.Join(b.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte(storage.GenerateRelayKey()), 0o600); err != nil {
		b.Fatal(err)
	}
	pa, urlA := relayNode(b, urls, 3, key, "--init")
	pb, urlB := relayNode(b, urls, 3, key)
	type run struct {
		sat, fixed       loadResult
		relayCPU         time.Duration
		natsCPU, busiest time.Duration
	}
	measure := func(b *testing.B, recvURL string, rate int) (r run) {
		var r0 time.Duration
		var n0 []time.Duration
		snap := func() (time.Duration, []time.Duration) {
			var ns []time.Duration
			for _, np := range nps {
				ns = append(ns, np.cpu())
			}
			return pa.cpu() + pb.cpu(), ns
		}
		mark := func() { r0, n0 = snap() }
		if rate == 0 {
			r.sat = clusterLoadOn(b, urlA, recvURL, pairs, window, 0, mark)
		} else {
			r.fixed = clusterLoadOn(b, urlA, recvURL, pairs, 2, rate, mark)
		}
		r1, n1 := snap()
		r.relayCPU = r1 - r0
		for i := range n1 {
			d := n1[i] - n0[i]
			r.natsCPU += d
			r.busiest = max(r.busiest, d)
		}
		return r
	}
	// A sub-benchmark runs with b.N = 1 before the -benchtime run: keep the larger.
	var one, two run
	keep := func(into *run, r run) {
		if r.sat.n >= into.sat.n {
			into.sat, into.relayCPU, into.natsCPU, into.busiest = r.sat, r.relayCPU, r.natsCPU, r.busiest
		}
	}
	keepFixed := func(into *run, r run) {
		if r.fixed.n >= into.fixed.n {
			into.fixed = r.fixed
		}
	}
	b.Run("one-node", func(b *testing.B) { keep(&one, measure(b, urlA, 0)) })
	fixedRate := max(100, int(one.sat.rate/4))
	b.Run("two-nodes", func(b *testing.B) { keep(&two, measure(b, urlB, 0)) })
	b.Run("one-node-fixed", func(b *testing.B) { keepFixed(&one, measure(b, urlA, fixedRate)) })
	b.Run("two-nodes-fixed", func(b *testing.B) { keepFixed(&two, measure(b, urlB, fixedRate)) })
	for _, x := range []struct {
		name string
		r    run
	}{{"one-node", one}, {"two-nodes", two}} {
		b.Logf("%s: saturated %.0f msg/s; %.0f msgs per relay CPU-s, %.0f per NATS CPU-s (busiest server %.0f); at %d msg/s p50 %v p99 %v",
			x.name, x.r.sat.rate, perSec(x.r.sat.n, x.r.relayCPU), perSec(x.r.sat.n, x.r.natsCPU), perSec(x.r.sat.n, x.r.busiest),
			fixedRate, x.r.fixed.p50, x.r.fixed.p99)
	}
	b.Logf("two nodes / one node: %.2fx; load average after: %.2f", two.sat.rate/one.sat.rate, loadAvg())
}
