// Command peerbench runs every workload on pfschat, libsignal and goolm in one process
// and prints a Markdown table of µs/op, allocations and ratios against pfschat.
//
//	cd ratchet/peerbench && go run ./cmd/peerbench [-run REGEXP] [-rounds 5] [-benchtime 300ms]
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"testing"
	"time"

	"pfschat/ratchet/peerbench"
)

func main() {
	testing.Init()
	run := flag.String("run", "", "only workloads whose name matches this regular expression")
	rounds := flag.Int("rounds", 5, "measure each workload this many times, interleaving the peers; report best and median")
	benchtime := flag.Duration("benchtime", 300*time.Millisecond, "duration of one measurement")
	flag.Parse()
	if err := flag.Set("test.benchtime", benchtime.String()); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(2)
	}
	re, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerbench: bad -run:", err)
		os.Exit(2)
	}
	var ws []peerbench.Workload
	for _, w := range peerbench.Workloads() {
		if re.MatchString(w.Name) {
			ws = append(ws, w)
		}
	}
	peers := peerbench.Peers()
	fmt.Fprintf(os.Stderr, "%s %s/%s, GOMAXPROCS=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	results := peerbench.Run(peers, ws, *rounds, os.Stderr)
	fmt.Println()
	fmt.Print(peerbench.Table(results, peers))
	for _, r := range results {
		if r.Err != nil {
			os.Exit(1)
		}
	}
}
