package storage

import (
	"os"
	"runtime"
	"testing"
)

// TestSpareP: while a sync is in flight the process has one P more — one, however many
// syncs overlap — and afterwards exactly what it had, from the GOMAXPROCS variable
// when it is set.
func TestSpareP(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(base) })
	check := func(when string, want int) {
		t.Helper()
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Fatalf("%s: GOMAXPROCS %d, want %d", when, got, want)
		}
	}
	overlap := func(procs int) {
		t.Helper()
		inFirst, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			withSpareP(func() { close(inFirst); <-release })
		}()
		<-inFirst
		check("during a sync", procs+1)
		withSpareP(func() { check("during two syncs", procs+1) })
		check("after the second of two syncs", procs+1)
		close(release)
		<-done
		check("after both", procs)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		overlap(base)
	}
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	overlap(1)
}

// BenchmarkSpareP: what the two GOMAXPROCS changes around a sync cost (each stops the
// world), against the 5–20 ms sync they surround, once per 8 MiB written.
func BenchmarkSpareP(b *testing.B) {
	for b.Loop() {
		withSpareP(func() {})
	}
}
