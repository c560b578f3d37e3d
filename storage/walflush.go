package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// walFlusher flushes the store's WAL file to the disk on behalf of transactions that
// committed without waiting for it (Relay.CommitUnflushed). Such a transaction's frames
// are in the WAL file, so a crash of the process loses nothing; the flush is what makes
// them survive a power cut, exactly as synchronous=FULL's flush at the end of a commit
// does, but with the writer free and the caller able to act in between.
//
// A flush that fails sticks: the disk may have dropped the pages it could not write
// (and a later fsync would not say so), so every later flush, and every write that
// would rely on one, fails until the store is opened again.
type walFlusher struct {
	mu  sync.Mutex
	f   *os.File // the WAL file, opened read-only (fdatasync needs no write access)
	err error
}

// ErrFlushFailed: the disk refused to flush the store's journal. What was committed
// since the last flush may not survive a power cut, and the store takes no write that
// needs a flush until it is opened again (restart the relay; check the disk).
var ErrFlushFailed = errors.New("storage: the disk refused to flush the store's journal")

// flushWAL makes every transaction committed so far survive a power cut.
func (d *db) flushWAL() error {
	if d.sync != SyncFull {
		return nil // the store promised no more
	}
	w := &d.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.flush(d.path + "-wal"); err != nil {
		w.err = fmt.Errorf("%w: %v", ErrFlushFailed, err)
		return w.err
	}
	return nil
}

// flushFailed is the sticky error of a failed flush, if any.
func (d *db) flushFailed() error {
	d.wal.mu.Lock()
	defer d.wal.mu.Unlock()
	return d.wal.err
}

func (w *walFlusher) flush(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// SQLite removes the WAL only after checkpointing it into the database
		// file and syncing that: nothing is left to flush. (The relay's writer
		// connection stays open, so this is not the running case.)
		w.closeFile()
		return nil
	}
	if err != nil {
		return err
	}
	if w.f != nil {
		// The same file as last time? SQLite makes a new one once every connection
		// has closed; flushing the old, unlinked one would flush nothing.
		if ofi, err := w.f.Stat(); err != nil || !os.SameFile(fi, ofi) {
			w.closeFile()
		}
	}
	if w.f == nil {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		// A new WAL's directory entry must survive a power cut too (SQLite syncs
		// the directory on a journal's first sync for the same reason).
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return err
		}
		w.f = f
	}
	return fdatasync(w.f)
}

func (w *walFlusher) closeFile() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
