package cli

import (
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
)

// GCSettings are the garbage-collector settings `pfschat relay` runs with.
//
// A relay's live heap is small (connections, queued frames, caches: about 12 MB for
// 2,000 connections) while under load it makes garbage at a steady rate (a few KB a
// message). At Go's default GOGC=100 it therefore collected several times a second,
// and on a small machine each mark phase takes CPU from the connections for 10-20 ms:
// at 10k msg/s those cycles were nearly all of the delivery-latency tail (with the
// collector off, p99 fell from ~15 ms to ~4 ms). The heap floor lets a small heap grow
// to HeapFloor before it is collected, so under load the collector runs every few
// seconds instead of several times a second; a heap whose live part is bigger than
// HeapFloor/(1+Percent/100) is paced by Percent as usual, and MemoryLimit bounds the
// whole (near the limit the collector runs as often as it must).
//
// The floor is for message traffic, whose garbage (frames, statements) all dies
// young. Connections, by contrast, leave long-lived state behind among their
// handshake's garbage; collected rarely, that state ends up scattered over twice the
// memory (10,000 idle connections measured 24 KB each with the floor, 14 KB without).
// So when Traffic is set, the floor applies only after a collection cycle during which
// at least floorMinMessages were accepted: a relay busy with messages collects
// rarely, one that is only taking connections packs them tightly.
type GCSettings struct {
	Percent     int   // GOGC: heap growth over the live heap before a collection; 0 = unchanged
	MemoryLimit int64 // GOMEMLIMIT, bytes; 0 = unchanged
	HeapFloor   int64 // bytes the heap may reach before a collection, whatever its live size; 0 = none
	// Traffic counts accepted messages (server.Server.MessagesAccepted); nil applies the
	// floor whatever the traffic.
	Traffic func() uint64
}

// floorMinMessages is the traffic, in messages accepted since the previous
// collection, that turns the heap floor on for the next cycle.
const floorMinMessages = 1000

// DefaultGC is what `pfschat relay` uses unless flags or GOGC/GOMEMLIMIT say otherwise.
var DefaultGC = GCSettings{Percent: 200, MemoryLimit: 1 << 30, HeapFloor: 256 << 20}

// TuneGC applies s, except where the operator chose through GOGC (which also turns
// the heap floor off) or GOMEMLIMIT. It returns a function restoring the previous
// settings.
func TuneGC(s GCSettings) (restore func()) {
	prevPercent, prevLimit := -2, int64(-1)
	var floor *heapFloor
	if os.Getenv("GOGC") == "" {
		if s.Percent > 0 {
			prevPercent = debug.SetGCPercent(s.Percent)
		}
		if s.HeapFloor > 0 {
			base := s.Percent
			if base <= 0 {
				base = debug.SetGCPercent(-1)
				debug.SetGCPercent(base)
				if prevPercent == -2 {
					prevPercent = base
				}
			}
			if base > 0 {
				floor = startHeapFloor(base, uint64(s.HeapFloor), s.Traffic)
			}
		}
	}
	if s.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		prevLimit = debug.SetMemoryLimit(s.MemoryLimit)
	}
	return func() {
		if floor != nil {
			floor.stop()
		}
		if prevPercent != -2 {
			debug.SetGCPercent(prevPercent)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
}

// heapFloor re-sets the GC percentage after every collection so that the next heap
// goal, live × (1 + percent/100), is at least floor bytes, and never below base.
type heapFloor struct {
	base    int
	floor   uint64
	traffic func() uint64 // nil: always on
	stopped atomic.Bool

	mu      sync.Mutex // adjust runs in the cleanup goroutine; stop from anywhere
	percent int
	sample  []rtmetrics.Sample
	lastMsg uint64 // traffic at the previous adjustment
}

func startHeapFloor(base int, floor uint64, traffic func() uint64) *heapFloor {
	f := &heapFloor{base: base, floor: floor, traffic: traffic, percent: base,
		sample: []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	if traffic != nil {
		f.lastMsg = traffic()
	}
	f.adjust()
	f.arm()
	return f
}

// gcSentinel is garbage on purpose: its cleanup runs once a collection has found it
// unreachable, which is how the floor hears of every cycle.
type gcSentinel struct {
	_ [2]uintptr // not a tiny allocation: those are batched and may never be cleaned up
}

func (f *heapFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), func(f *heapFloor) {
		if f.stopped.Load() {
			return
		}
		f.adjust()
		f.arm()
	}, f)
}

// percentFor returns the GC percentage that makes the heap goal at least floor for
// the given live heap, never below base.
func percentFor(base int, floor, live uint64) int {
	if live == 0 {
		return base
	}
	p := int(min((floor+live-1)/live, 1<<20)*100) - 100
	if p < base {
		return base
	}
	return p
}

// gcFloorAdjusted, when set (tests only), hears every adjustment's percentage.
var gcFloorAdjusted func(percent int)

func (f *heapFloor) adjust() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() {
		return
	}
	if gcFloorAdjusted != nil {
		defer func() { gcFloorAdjusted(f.percent) }()
	}
	rtmetrics.Read(f.sample)
	if f.sample[0].Value.Kind() != rtmetrics.KindUint64 {
		return
	}
	p := percentFor(f.base, f.floor, f.sample[0].Value.Uint64())
	if f.traffic != nil {
		n := f.traffic()
		if n-f.lastMsg < floorMinMessages {
			p = f.base // no message traffic to speak of: pack whatever is being allocated
		}
		f.lastMsg = n
	}
	// Small changes are not worth a call into the runtime.
	if p != f.percent && (p < f.percent*15/16 || p > f.percent*17/16 || p == f.base) {
		f.percent = p
		debug.SetGCPercent(p)
	}
}

func (f *heapFloor) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped.Store(true)
}
