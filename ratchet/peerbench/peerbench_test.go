package peerbench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestWorkloadsWork runs a few steps of every workload on every peer, so a broken setup
// (or a library that stops round-tripping) fails `go test` before anyone reads a figure.
func TestWorkloadsWork(t *testing.T) {
	for _, w := range Workloads() {
		for _, p := range Peers() {
			t.Run(w.Name+"/"+p.Name, func(t *testing.T) {
				step, err := w.New(p)
				if err != nil {
					t.Fatalf("setup: %v", err)
				}
				for i := range 6 {
					if err := step(); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
			})
		}
	}
}

func TestTableRatios(t *testing.T) {
	peers := []Peer{{Name: "a"}, {Name: "b"}}
	got := Table([]Result{
		{Workload: "w", Peer: "a", NsPerOp: 2000, MedianNsPerOp: 2500, AllocsPerOp: 3},
		{Workload: "w", Peer: "b", NsPerOp: 7000, MedianNsPerOp: 10000, AllocsPerOp: 9},
	}, peers)
	if !strings.Contains(got, "| w | 2.00 / 2.50 (3) | 7.00 / 10.00 (9) | 3.50× (4.00×) |") {
		t.Fatalf("table row wrong:\n%s", got)
	}
}

// BenchmarkPeers is the same table as `go run ./cmd/peerbench`, as ordinary benchmarks:
// BenchmarkPeers/<workload>/<peer>. After a -bench run, TestMain prints the ratio table of
// the last measurement of each cell (one round; the command interleaves several).
func BenchmarkPeers(b *testing.B) {
	for _, w := range Workloads() {
		b.Run(w.Name, func(b *testing.B) {
			for _, p := range Peers() {
				b.Run(p.Name, func(b *testing.B) {
					step, err := w.New(p)
					if err != nil {
						b.Skipf("setup: %v", err)
					}
					var before, after runtime.MemStats
					b.ReportAllocs()
					b.ResetTimer()
					runtime.ReadMemStats(&before)
					for i := 0; i < b.N; i++ {
						if err := step(); err != nil {
							b.Fatalf("step %d: %v", i, err)
						}
					}
					b.StopTimer()
					runtime.ReadMemStats(&after)
					benchResults.record(Result{
						Workload:    w.Name,
						Peer:        p.Name,
						NsPerOp:     float64(b.Elapsed().Nanoseconds()) / float64(b.N),
						AllocsPerOp: int64(after.Mallocs-before.Mallocs) / int64(b.N),
						BytesPerOp:  int64(after.TotalAlloc-before.TotalAlloc) / int64(b.N),
					})
				})
			}
		})
	}
}

// benchResults keeps the last measurement of each benchmark cell, in first-seen order.
var benchResults resultLog

type resultLog struct {
	mu    sync.Mutex
	order []string
	last  map[string]Result
}

func (l *resultLog) record(r Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]Result{}
	}
	key := r.Workload + "\x00" + r.Peer
	if _, ok := l.last[key]; !ok {
		l.order = append(l.order, key)
	}
	r.MedianNsPerOp = r.NsPerOp
	l.last[key] = r
}

func (l *resultLog) results() []Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Result, 0, len(l.order))
	for _, k := range l.order {
		out = append(out, l.last[k])
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rs := benchResults.results(); len(rs) > 0 {
		fmt.Println()
		fmt.Print(Table(rs, Peers()))
	}
	os.Exit(code)
}
