// Command tracestat summarises a Go runtime trace (go test -trace, or
// PFSCHAT_RELAY_CHILD_TRACE) by where goroutines spent their time: running, runnable
// and waiting for a P, or in system calls — per goroutine entry function, as the
// longest waits, syscalls and running slices, and as a timeline of Ps and goroutines.
// It is how README → Performance found the relay's committer busy in fsyncs and the
// attachments' Ps held by blocked syscalls.
//
//	cd .ci/tracestat && go run . [-region send] [-focus committer] [-bin 5ms] [-all] TRACE
//
// -region limits the lists and the timeline to the spans of a trace region (the
// attachment benchmark marks "send" and "download"); -focus to goroutines whose entry
// function contains the text.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// span is one stretch of a goroutine in one state.
type span struct {
	g     trace.GoID
	start trace.Time
	d     time.Duration
}

// bin is one step of the timeline: goroutine-time running, runnable, in syscalls, and
// P-time running (a P held by a goroutine in a syscall counts).
type bin struct{ run, wait, sys, procs time.Duration }

const (
	inRun = iota
	inWait
	inSys
	inProc
)

type stats struct {
	binSize  time.Duration
	t0       trace.Time
	names    map[trace.GoID]string
	runs     []span
	waits    []span
	syscalls []span
	bins     map[int64]*bin
	regions  [][2]trace.Time
	region   string
}

func (s *stats) add(a, b trace.Time, kind int) {
	for a < b {
		k := int64(a.Sub(s.t0) / s.binSize)
		end := min(s.t0+trace.Time(time.Duration(k+1)*s.binSize), b)
		bv := s.bins[k]
		if bv == nil {
			bv = &bin{}
			s.bins[k] = bv
		}
		d := end.Sub(a)
		switch kind {
		case inRun:
			bv.run += d
		case inWait:
			bv.wait += d
		case inSys:
			bv.sys += d
		case inProc:
			bv.procs += d
		}
		a = end
	}
}

func (s *stats) inRegion(t trace.Time) bool {
	if s.region == "" {
		return true
	}
	for _, r := range s.regions {
		if t >= r[0] && t < r[1] {
			return true
		}
	}
	return false
}

// entry is the outermost function of a stack: the goroutine's entry.
func entry(st trace.Stack) string {
	last := ""
	for f := range st.Frames() {
		last = f.Func
	}
	return last
}

func read(path string, s *stats) (trace.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rd, err := trace.NewReader(f)
	if err != nil {
		return 0, err
	}
	type gstate struct {
		state trace.GoState
		since trace.Time
	}
	gs := map[trace.GoID]*gstate{}
	psince := map[trace.ProcID]trace.Time{}
	var regStart, end trace.Time
	for {
		ev, err := rd.ReadEvent()
		if err == io.EOF {
			return end, nil
		}
		if err != nil {
			return 0, err
		}
		if s.t0 == 0 {
			s.t0 = ev.Time()
		}
		end = ev.Time()
		switch ev.Kind() {
		case trace.EventRegionBegin:
			if ev.Region().Type == s.region {
				regStart = ev.Time()
			}
		case trace.EventRegionEnd:
			if ev.Region().Type == s.region && regStart != 0 {
				s.regions = append(s.regions, [2]trace.Time{regStart, ev.Time()})
				regStart = 0
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			switch st.Resource.Kind {
			case trace.ResourceProc:
				id := st.Resource.Proc()
				from, to := st.Proc()
				if from == trace.ProcRunning && psince[id] != 0 {
					s.add(psince[id], ev.Time(), inProc)
				}
				psince[id] = 0
				if to == trace.ProcRunning {
					psince[id] = ev.Time()
				}
			case trace.ResourceGoroutine:
				id := st.Resource.Goroutine()
				from, to := st.Goroutine()
				g := gs[id]
				if g == nil {
					g = &gstate{state: from, since: ev.Time()}
					gs[id] = g
				}
				if s.names[id] == "" {
					if n := entry(st.Stack); n != "" {
						s.names[id] = n
					} else if n := entry(ev.Stack()); n != "" && to == trace.GoRunning {
						s.names[id] = n
					}
				}
				sp := span{id, g.since, ev.Time().Sub(g.since)}
				switch g.state {
				case trace.GoRunning:
					s.runs = append(s.runs, sp)
					s.add(g.since, ev.Time(), inRun)
				case trace.GoRunnable:
					s.waits = append(s.waits, sp)
					s.add(g.since, ev.Time(), inWait)
				case trace.GoSyscall:
					s.syscalls = append(s.syscalls, sp)
					s.add(g.since, ev.Time(), inSys)
				}
				g.state, g.since = to, ev.Time()
			}
		}
	}
}

func main() {
	focus := flag.String("focus", "", "only goroutines whose entry function contains this, in the lists")
	binSize := flag.Duration("bin", 10*time.Millisecond, "timeline step")
	waitMin := flag.Duration("wait", 2*time.Millisecond, "list runnable waits at least this long")
	runMin := flag.Duration("run", 5*time.Millisecond, "list running slices and syscalls at least this long")
	region := flag.String("region", "", "only the spans of this trace region")
	all := flag.Bool("all", false, "print every timeline step, not only those with more than one goroutine waiting")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: tracestat [flags] TRACE")
		os.Exit(2)
	}
	s := &stats{binSize: *binSize, names: map[trace.GoID]string{}, bins: map[int64]*bin{}, region: *region}
	end, err := read(flag.Arg(0), s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracestat:", err)
		os.Exit(1)
	}
	fmt.Printf("trace %v, %d goroutines\n", end.Sub(s.t0), len(s.names))
	wanted := func(sp span) bool {
		return s.inRegion(sp.start) && (*focus == "" || strings.Contains(s.names[sp.g], *focus))
	}

	type agg struct {
		name           string
		n              int
		run, wait, sys time.Duration
	}
	byName := map[string]*agg{}
	get := func(id trace.GoID) *agg {
		a := byName[s.names[id]]
		if a == nil {
			a = &agg{name: s.names[id]}
			byName[s.names[id]] = a
		}
		return a
	}
	for id := range s.names {
		get(id).n++
	}
	for _, sp := range s.runs {
		if s.inRegion(sp.start) {
			get(sp.g).run += sp.d
		}
	}
	for _, sp := range s.waits {
		if s.inRegion(sp.start) {
			get(sp.g).wait += sp.d
		}
	}
	for _, sp := range s.syscalls {
		if s.inRegion(sp.start) {
			get(sp.g).sys += sp.d
		}
	}
	var as []*agg
	for _, a := range byName {
		as = append(as, a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].run+as[i].sys > as[j].run+as[j].sys })
	fmt.Println("== by entry function: goroutines, running, runnable (waiting for a P), in syscalls")
	for _, a := range as[:min(15, len(as))] {
		fmt.Printf("%5d %10v %10v %10v  %s\n", a.n, a.run.Round(time.Millisecond), a.wait.Round(time.Millisecond), a.sys.Round(time.Millisecond), a.name)
	}

	bounds := []time.Duration{100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond}
	counts := make([]int, len(bounds)+1)
	for _, w := range s.waits {
		if wanted(w) {
			i := sort.Search(len(bounds), func(i int) bool { return w.d <= bounds[i] })
			counts[i]++
		}
	}
	fmt.Print("== runnable waits: ")
	for i, b := range bounds {
		fmt.Printf("≤%v:%d ", b, counts[i])
	}
	fmt.Printf(">%v:%d\n", bounds[len(bounds)-1], counts[len(bounds)])

	longest := func(title, verb string, spans []span, atLeast time.Duration) {
		sort.Slice(spans, func(i, j int) bool { return spans[i].d > spans[j].d })
		fmt.Println("== longest " + title)
		n := 0
		for _, sp := range spans {
			if sp.d < atLeast || n == 25 {
				break
			}
			if wanted(sp) {
				n++
				fmt.Printf("  at %8.1fms %s %v  g%d %s\n", float64(sp.start.Sub(s.t0))/1e6, verb, sp.d.Round(10*time.Microsecond), sp.g, s.names[sp.g])
			}
		}
	}
	longest("runnable waits", "wait", s.waits, *waitMin)
	longest("syscalls", "syscall", s.syscalls, *runMin)
	longest("running slices", "run", s.runs, *runMin)

	var keys []int64
	for k := range s.bins {
		if s.inRegion(s.t0 + trace.Time(time.Duration(k)*s.binSize)) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	per := func(d time.Duration) float64 { return float64(d) / float64(s.binSize) }
	var sum bin
	for _, k := range keys {
		b := s.bins[k]
		sum.run, sum.wait, sum.sys, sum.procs = sum.run+b.run, sum.wait+b.wait, sum.sys+b.sys, sum.procs+b.procs
	}
	if n := time.Duration(len(keys)); n > 0 {
		fmt.Printf("== mean per %v step: goroutines running %.2f, in syscalls %.2f, runnable %.2f; Ps running %.2f (%d steps)\n",
			s.binSize, per(sum.run/n), per(sum.sys/n), per(sum.wait/n), per(sum.procs/n), n)
	}
	fmt.Println("== timeline (steps with more than one goroutine runnable, or all with -all)")
	for _, k := range keys {
		b := s.bins[k]
		if per(b.wait) > 1 || *all {
			fmt.Printf("  %8.0fms running %.2f syscalls %.2f runnable %.2f Ps %.2f\n",
				float64(time.Duration(k)*s.binSize)/1e6, per(b.run), per(b.sys), per(b.wait), per(b.procs))
		}
	}
}
