// Package peerbench runs the same Double Ratchet workloads on pfschat's ratchet package
// and on the two best pure-Go peers, go.mau.fi/libsignal (Signal protocol, X3DH) and the
// pure-Go Olm of maunium.net/go/mautrix (crypto/goolm), and compares them.
//
// It is a separate module (its own go.mod, with `replace pfschat => ../..`) so that the
// product never depends on the peers: `go build ./...` at the repository root does not
// see this folder.
//
// Run every workload on every library in one process and print the ratio table:
//
//	cd ratchet/peerbench && go run ./cmd/peerbench
//
// or run them as ordinary benchmarks:
//
//	cd ratchet/peerbench && go test -run '^$' -bench . -benchmem
//
// The workloads, identical in shape for every library:
//
//   - same-chain/64B, same-chain/1KiB: one message sent and received on one sending chain
//     (the session is established and acknowledged first, so no handshake fields travel):
//     encrypt, serialize to the library's wire form, parse, decrypt, compare.
//   - ping-pong/64B: the two parties alternate, so every message turns the DH ratchet
//     (a fresh ratchet key pair and two X25519 agreements on the receiving side).
//   - handshake: a full session setup from the responder's published keys plus the first
//     64-byte message: the initiator checks what it can (libsignal and pfschat verify the
//     signed prekey; pfschat also verifies the card chain and the ML-KEM prekey, and runs
//     ML-KEM-768), creates the session and encrypts; the responder creates its session from
//     the initial message and decrypts it. Generating the responder's long-term keys and
//     prekeys is not timed, because they are published once and used many times.
//   - session save+load: the sender's session state right after it sent (so it holds a
//     ratchet private key and a sending chain; no stored skipped keys), serialized and
//     parsed back: pfschat MarshalBinary/ParseSession, libsignal's
//     protobuf session record, goolm's unencrypted libolm pickle.
//
// Each step checks its plaintext round trip, so a library that "wins" by failing is caught.
// Peer stores are in-memory maps without serialization, the most favourable setting for
// the peers.
package peerbench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// A Step runs one unit of a workload: one message (encrypt, wire, decrypt) or one
// complete handshake. It returns an error when the library misbehaves.
type Step func() error

// A Peer is one implementation under test. Each constructor performs the untimed setup of
// a workload and returns the step to time.
type Peer struct {
	Name      string
	SameChain func(size int) (Step, error)
	PingPong  func(size int) (Step, error)
	Handshake func() (Step, error)
	// SaveLoad is one persistence round trip of an established session's state:
	// serialize, then parse into a new session object.
	SaveLoad func() (Step, error)
}

// A Workload names one comparison and builds its step for a peer.
type Workload struct {
	Name string
	New  func(p Peer) (Step, error)
}

// Workloads returns the workloads in table order.
func Workloads() []Workload {
	return []Workload{
		{"same-chain/64B", func(p Peer) (Step, error) { return p.SameChain(64) }},
		{"same-chain/1KiB", func(p Peer) (Step, error) { return p.SameChain(1024) }},
		{"ping-pong/64B", func(p Peer) (Step, error) { return p.PingPong(64) }},
		{"handshake", func(p Peer) (Step, error) { return p.Handshake() }},
		{"session save+load", func(p Peer) (Step, error) { return p.SaveLoad() }},
	}
}

// Peers returns every implementation, pfschat first (the ratios are taken against it).
func Peers() []Peer {
	return []Peer{PfschatPeer(), LibsignalPeer(), GoolmPeer()}
}

// Plaintext returns a deterministic message of n bytes, distinct per index, so a library
// that returns the wrong message is caught.
func Plaintext(n int, index uint64) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i) ^ byte(index) ^ byte(index>>8)
	}
	return p
}

var errMismatch = errors.New("peerbench: decrypted plaintext differs from what was sent")

func checkSame(want, got []byte) error {
	if !bytes.Equal(want, got) {
		return fmt.Errorf("%w (sent %d bytes, got %d)", errMismatch, len(want), len(got))
	}
	return nil
}

// Bench runs one step as a benchmark body and fails the benchmark on the first error.
func Bench(b *testing.B, step Step) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := step(); err != nil {
			b.Fatalf("step %d: %v", i, err)
		}
	}
}

// Result is one measured cell of the table.
type Result struct {
	Workload, Peer string
	NsPerOp        float64 // best (lowest) of the rounds
	MedianNsPerOp  float64 // median of the rounds
	AllocsPerOp    int64
	BytesPerOp     int64
	Err            error
}

// Run measures every workload on every peer with testing.Benchmark (whose duration
// -test.benchtime sets), in this process. It does so rounds times, interleaving the
// peers within each round, and keeps the best and the median of the rounds: on a shared
// machine the load changes from second to second, and interleaving plus best-of-rounds
// compares the libraries under the same conditions. Progress lines go to progress
// (io.Discard for none).
func Run(peers []Peer, workloads []Workload, rounds int, progress io.Writer) []Result {
	if rounds < 1 {
		rounds = 1
	}
	type cell struct {
		step    Step
		samples []float64
		r       Result
	}
	cells := make([][]*cell, len(workloads))
	for i, w := range workloads {
		for _, p := range peers {
			c := &cell{r: Result{Workload: w.Name, Peer: p.Name}}
			c.step, c.r.Err = w.New(p)
			if c.r.Err != nil {
				fmt.Fprintf(progress, "%-16s %-10s setup failed: %v\n", w.Name, p.Name, c.r.Err)
			}
			cells[i] = append(cells[i], c)
		}
	}
	for round := 1; round <= rounds; round++ {
		for i := range workloads {
			for _, c := range cells[i] {
				if c.r.Err != nil {
					continue
				}
				var stepErr error
				res := testing.Benchmark(func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; i < b.N; i++ {
						if err := c.step(); err != nil {
							stepErr = err
							b.SkipNow()
						}
					}
				})
				if stepErr != nil || res.N == 0 {
					c.r.Err = stepErr
					if c.r.Err == nil {
						c.r.Err = errors.New("benchmark did not run")
					}
					continue
				}
				ns := float64(res.T.Nanoseconds()) / float64(res.N)
				c.samples = append(c.samples, ns)
				c.r.AllocsPerOp = res.AllocsPerOp()
				c.r.BytesPerOp = res.AllocedBytesPerOp()
				fmt.Fprintf(progress, "round %d/%d %-16s %-10s %10.2f µs/op %6d allocs/op\n",
					round, rounds, c.r.Workload, c.r.Peer, ns/1e3, c.r.AllocsPerOp)
			}
		}
	}
	var out []Result
	for i := range workloads {
		for _, c := range cells[i] {
			if len(c.samples) > 0 {
				sorted := slices.Clone(c.samples)
				slices.Sort(sorted)
				c.r.NsPerOp = sorted[0]
				c.r.MedianNsPerOp = sorted[len(sorted)/2]
			}
			out = append(out, c.r)
		}
	}
	return out
}

// Table formats results as a Markdown table: one row per workload; per peer the best
// and median µs/op of the rounds and the allocations per op; then for every peer after
// the first the ratio peer ÷ first, of the best and (in parentheses) of the medians.
// "3.10×" means the first peer, pfschat, is 3.10 times faster.
func Table(results []Result, peers []Peer) string {
	var sb strings.Builder
	sb.WriteString("| workload |")
	for _, p := range peers {
		fmt.Fprintf(&sb, " %s µs/op best / median (allocs) |", p.Name)
	}
	for _, p := range peers[1:] {
		fmt.Fprintf(&sb, " %s ÷ %s best (median) |", p.Name, peers[0].Name)
	}
	sb.WriteString("\n|---|")
	for range len(peers)*2 - 1 {
		sb.WriteString("---:|")
	}
	sb.WriteString("\n")
	byKey := map[[2]string]Result{}
	seen := map[string]bool{}
	var order []string
	for _, r := range results {
		if !seen[r.Workload] {
			seen[r.Workload] = true
			order = append(order, r.Workload)
		}
		byKey[[2]string{r.Workload, r.Peer}] = r
	}
	for _, w := range order {
		fmt.Fprintf(&sb, "| %s |", w)
		for _, p := range peers {
			r, ok := byKey[[2]string{w, p.Name}]
			switch {
			case !ok:
				sb.WriteString(" – |")
			case r.Err != nil:
				sb.WriteString(" error |")
			default:
				fmt.Fprintf(&sb, " %.2f / %.2f (%d) |", r.NsPerOp/1e3, r.MedianNsPerOp/1e3, r.AllocsPerOp)
			}
		}
		base := byKey[[2]string{w, peers[0].Name}]
		for _, p := range peers[1:] {
			r, ok := byKey[[2]string{w, p.Name}]
			if !ok || r.Err != nil || base.Err != nil || base.NsPerOp == 0 || base.MedianNsPerOp == 0 {
				sb.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&sb, " %.2f× (%.2f×) |", r.NsPerOp/base.NsPerOp, r.MedianNsPerOp/base.MedianNsPerOp)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
