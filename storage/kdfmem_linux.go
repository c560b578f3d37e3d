package storage

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kdfMemoryOnce: the first Argon2id of a process prepares its memory; later ones reuse
// what the Go heap already holds.
var kdfMemoryOnce sync.Once

// prepareKDFMemory readies memKiB of the Go heap, backed by transparent huge pages, for
// the Argon2id that follows (golang.org/x/crypto/argon2 allocates its blocks with one
// make; the parameters are not touched). In a fresh process those 64 MiB are new to
// the process, and faulting them in 4 KiB at a time (16,400 faults) cost as much time
// as the hashing (issue 14; BenchmarkColdUnlock in package main). So: allocate a buffer
// of the same size, ask for huge pages on it (MADV_HUGEPAGE: THP's "madvise" mode, the
// common default; with THP "never" this changes nothing), touch it (32 faults instead of
// 16,400), and free it; the Argon2id allocation right after takes the same pages from
// the heap (the runtime's allocator takes the lowest free run that fits). If anything
// differs — another allocator, no THP — the Argon2id costs what it did before.
func prepareKDFMemory(memKiB uint32) {
	n := int(memKiB) << 10
	if n < 16<<20 || n > 1<<30 { // small ones (tests) fault in little; huge ones: no
		return
	}
	kdfMemoryOnce.Do(func() {
		buf := make([]byte, n)
		const huge = 2 << 20
		base := uintptr(unsafe.Pointer(&buf[0]))
		start := int((base+huge-1)&^(huge-1) - base) // the huge pages inside buf
		end := int((base+uintptr(n))&^(huge-1) - base)
		if end > start {
			_ = unix.Madvise(buf[start:end], unix.MADV_HUGEPAGE)
		}
		for i := 0; i < n; i += 4096 {
			buf[i] = 1
		}
		runtime.KeepAlive(buf)
		buf = nil
		runtime.GC() // frees the buffer's span now, for the allocation that follows
	})
}
