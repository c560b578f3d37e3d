package storage

import (
	"os"
	"runtime"
	"sync"
)

// spareP: while a goroutine waits in a long disk sync, the process runs with one P
// (scheduler slot) more. A goroutine blocked in a system call keeps its P until the
// runtime's monitor thread takes it back, which can be 10 ms later when the monitor
// has been idle (golang/go#18236); a write-behind sync of a step takes 5–20 ms on
// this project's disk, so without the spare the cores sat idle beside runnable work.
var spareP struct {
	mu    sync.Mutex
	n     int // syncs in flight
	procs int // GOMAXPROCS before the first of them
}

func withSpareP(f func()) {
	spareP.mu.Lock()
	if spareP.n == 0 {
		spareP.procs = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(spareP.procs + 1)
	}
	spareP.n++
	spareP.mu.Unlock()
	defer func() {
		spareP.mu.Lock()
		defer spareP.mu.Unlock()
		if spareP.n--; spareP.n > 0 {
			return
		}
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS() // and the runtime's own updates again
		} else {
			runtime.GOMAXPROCS(spareP.procs)
		}
	}()
	f()
}
