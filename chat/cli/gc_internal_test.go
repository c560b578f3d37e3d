package cli

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base        int
		floor, live uint64
		want        int
	}{
		{200, 256 * mib, 0, 200},          // nothing measured yet
		{200, 256 * mib, 12 * mib, 2100},  // 12 MiB × 22 ≥ 256 MiB
		{200, 256 * mib, 64 * mib, 300},   // 64 MiB × 4 = 256 MiB
		{200, 256 * mib, 100 * mib, 200},  // 100 MiB × 3 already above the floor
		{200, 256 * mib, 1024 * mib, 200}, // a big heap is paced by the base
		{100, 1 << 62, 1, 1<<20*100 - 100},
	} {
		got := percentFor(c.base, c.floor, c.live)
		if got != c.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", c.base, c.floor, c.live, got, c.want)
		}
		if c.live > 0 && got > c.base && got < 1<<20*100-100 && c.live*uint64(100+got)/100 < c.floor {
			t.Errorf("percentFor(%d, %d, %d) = %d: goal below the floor", c.base, c.floor, c.live, got)
		}
	}
}

// floorAdjustments starts a test of the heap floor: GOGC unset, the GC percentage at
// 100 (restored afterwards), and every adjustment's percentage on the returned channel.
func floorAdjustments(t *testing.T) chan int {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	adjusted := make(chan int, 16)
	gcFloorAdjusted = func(p int) {
		select {
		case adjusted <- p:
		default:
		}
	}
	t.Cleanup(func() { gcFloorAdjusted = nil })
	return adjusted
}

// collectUntilAdjusted collects and returns the percentage of the next adjustment.
// Cleanups run on their own goroutine, after the cycle that found the sentinel; on a
// loaded machine (-race, other tests) one cycle may pass before the sentinel is armed,
// so it collects again until the adjustment comes.
func collectUntilAdjusted(t *testing.T, adjusted <-chan int) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		runtime.GC()
		select {
		case p := <-adjusted:
			return p
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatal("no adjustment after 30 s of collections")
			return 0
		}
	}
}

// TestHeapFloorFollowsCollections: after a collection the percentage is raised so the
// next goal reaches the floor; restore puts the previous settings back and stops it.
func TestHeapFloorFollowsCollections(t *testing.T) {
	adjusted := floorAdjustments(t)
	restore := TuneGC(GCSettings{Percent: 150, HeapFloor: 1 << 40}) // a floor far above this heap
	for len(adjusted) > 0 {
		<-adjusted // the adjustment at start
	}
	if p := collectUntilAdjusted(t, adjusted); p <= 150 {
		t.Fatalf("percent %d after a collection with a floor far above the heap, want more than 150", p)
	}
	if got := debug.SetGCPercent(-1); got <= 150 {
		t.Fatalf("GC percent %d with a floor far above the heap, want more than 150", got)
	} else {
		debug.SetGCPercent(got)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d after restore, want 100", got)
	}
}

// TestHeapFloorOnlyUnderTraffic: with a traffic counter, the floor applies only after
// a cycle in which enough messages were accepted.
func TestHeapFloorOnlyUnderTraffic(t *testing.T) {
	adjusted := floorAdjustments(t)
	var messages atomic.Uint64
	restore := TuneGC(GCSettings{Percent: 150, HeapFloor: 1 << 40, Traffic: messages.Load})
	defer restore()

	// step adds n messages and returns the percentage of the first adjustment after
	// them (a collection of the runtime's own may come first; it has seen them too).
	step := func(n uint64) int {
		t.Helper()
		for len(adjusted) > 0 {
			<-adjusted
		}
		messages.Add(n)
		return collectUntilAdjusted(t, adjusted)
	}
	if p := step(0); p != 150 {
		t.Fatalf("percent %d with no traffic, want the base 150", p)
	}
	if p := step(floorMinMessages - 1); p != 150 {
		t.Fatalf("percent %d after %d messages, want the base 150", p, floorMinMessages-1)
	}
	if p := step(floorMinMessages); p <= 150 {
		t.Fatalf("percent %d after %d messages, want the floor's (above 150)", p, floorMinMessages)
	}
	if p := step(0); p != 150 {
		t.Fatalf("percent %d once the traffic stopped, want the base 150", p)
	}
}
