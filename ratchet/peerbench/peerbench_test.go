package peerbench

import (
	"strings"
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
// BenchmarkPeers/<workload>/<peer>.
func BenchmarkPeers(b *testing.B) {
	for _, w := range Workloads() {
		b.Run(w.Name, func(b *testing.B) {
			for _, p := range Peers() {
				b.Run(p.Name, func(b *testing.B) {
					step, err := w.New(p)
					if err != nil {
						b.Skipf("setup: %v", err)
					}
					Bench(b, step)
				})
			}
		})
	}
}
