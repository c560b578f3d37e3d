package storage

import (
	"hash"
	"os"
	"sync/atomic"
)

// writeBehindStep is how far a file being written runs ahead of the write-out that
// WriteBehind starts: each step of new bytes is handed to the disk on a goroutine of
// its own.
const writeBehindStep = 8 << 20

// WriteBehind starts the disk's write-out of a file being appended to (a blob the
// relay receives, a download being opened) a step behind the writer, on a goroutine,
// so that the fsync that makes the whole file durable at its end waits for the last
// step only, not for the whole file: the relay's commit and a download's save came
// to 75–90 ms of fsync per 100 MiB, after the transfer. It changes no durability:
// the fsync is still what makes the bytes safe; the writer is never blocked (one
// write-out at a time: a step that comes while one runs waits for the next). A nil
// WriteBehind does nothing.
type WriteBehind struct {
	f       *os.File
	started int64 // bytes handed to the disk (or skipped)
	busy    atomic.Bool
}

// NewWriteBehind follows f, whose first from bytes are not its concern (written
// before, or synced already).
func NewWriteBehind(f *os.File, from int64) *WriteBehind {
	return &WriteBehind{f: f, started: from}
}

// Written tells w that the file holds its bytes up to end; a step of new ones starts
// their write-out. Called by the file's one writer.
func (w *WriteBehind) Written(end int64) {
	if w == nil || end-w.started < writeBehindStep || !w.busy.CompareAndSwap(false, true) {
		return
	}
	off := w.started
	w.started = end
	go func() {
		defer w.busy.Store(false)
		startWriteOut(w.f, off, end-off)
	}()
}

// hashBesideMin is the smallest piece HashBeside hashes on a goroutine of its own:
// below it the goroutine costs more than the overlap gains.
const hashBesideMin = 64 << 10

// HashBeside writes p to h on a goroutine of its own while work runs on the caller's
// (the rest of a piece's handling: writing it to a file, opening its chunks), and
// returns once both are done: the SHA-256 pass, the costliest step per byte, no
// longer adds its time to the others' on a machine with a core to spare. p must not
// change until it returns.
func HashBeside(h hash.Hash, p []byte, work func()) {
	if len(p) < hashBesideMin {
		h.Write(p)
		work()
		return
	}
	done := make(chan struct{})
	go func() {
		h.Write(p)
		close(done)
	}()
	work()
	<-done
}
