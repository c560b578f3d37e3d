package cli_test

import (
	"runtime/debug"
	"testing"

	"pfschat/chat/cli"
)

// TestTuneGC: the relay's collector settings apply and are restored; GOGC wins.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	restore := cli.TuneGC(cli.GCSettings{Percent: 200, MemoryLimit: cli.DefaultGC.MemoryLimit})
	if got := debug.SetGCPercent(200); got != 200 {
		t.Fatalf("GC percent %d after TuneGC, want 200", got)
	}
	if got := debug.SetMemoryLimit(-1); got != cli.DefaultGC.MemoryLimit {
		t.Fatalf("memory limit %d after TuneGC, want %d", got, cli.DefaultGC.MemoryLimit)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d after restore, want 100", got)
	}
	t.Setenv("GOGC", "150")
	cli.TuneGC(cli.DefaultGC)()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("TuneGC overrode GOGC: percent %d", got)
	}
}
