package storage

import (
	"os"
	"sync/atomic"
)

// writeBehindStep is how far a file being written runs ahead of the write-out that
// WriteBehind starts: each step of new bytes is handed to the disk on a goroutine of
// its own.
const writeBehindStep = 8 << 20

// WriteBehind writes a file being appended to (a blob the relay receives, a download
// being opened) out to the disk and syncs it a step behind the writer, on a goroutine,
// so that the fsync that makes the whole file durable at its end waits for the last
// step only, not for the whole file: the relay's commit and a download's save came
// to 75–90 ms of fsync per 100 MiB after the transfer, and to 40–50 ms with the
// write-out alone (the disk's cache was flushed only at the end; see writeOut). It
// changes no durability: the owner's fsync is still what makes the bytes safe; the
// writer is never blocked (one step at a time: a step that comes while one runs waits
// for the next), and the process has a spare P while a step syncs (withSpareP), so the
// goroutine waiting on the disk does not idle a core. A nil WriteBehind does nothing.
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
		withSpareP(func() { writeOut(w.f, off, end-off) })
	}()
}

// SyncDir makes the names in dir durable: a file linked, created or renamed into dir
// is found there after a power cut only once dir itself is synced (the file's own fsync
// keeps its bytes, not its name).
func SyncDir(dir string) error {
	return syncFile(dir)
}
