//go:build unix

package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is a held profile lock. It is released by Release or when the process exits
// (the kernel drops a flock with the last descriptor), so a crashed owner never leaves
// a stale lock behind.
type Lock struct {
	fl  *FileLock
	dir string
}

// AcquireLock takes the exclusive lock on the profile in dir (creating dir 0700 and the
// lock file 0600 when missing) for an owner of the given kind, without waiting. When
// another process — or another opener in this process — holds it, it returns a
// *LockedError naming the holder and changes nothing.
func AcquireLock(dir string, kind OwnerKind) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	fl, holder, err := AcquireFileLock(filepath.Join(dir, LockFile), lockRecord(os.Getpid(), kind))
	if errors.Is(err, ErrLockHeld) {
		pid, k := parseLockRecord(holder)
		return nil, &LockedError{Dir: dir, PID: pid, Kind: k, Opener: kind}
	}
	if err != nil {
		return nil, fmt.Errorf("profile lock: %w", err)
	}
	return &Lock{fl: fl, dir: dir}, nil
}

// Release gives the profile up. Safe on nil and to call twice.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	return l.fl.Release()
}

// RemoveAndRelease removes the lock file and gives the profile up (FileLock's): for an
// opener that made the profile's lock file and, failing, leaves the profile as it
// found it. Safe on nil and to call twice.
func (l *Lock) RemoveAndRelease() error {
	if l == nil {
		return nil
	}
	return l.fl.RemoveAndRelease()
}

// Dir is the locked profile directory.
func (l *Lock) Dir() string { return l.dir }

// FileLock is an exclusive flock(2) on a lock file, held until Release or the process's
// exit. The profile lock and the relay database's lock are FileLocks.
type FileLock struct {
	f    *os.File
	path string
}

// AcquireFileLock takes the exclusive lock on the file at path (created 0600 when missing)
// without waiting and writes record into it, naming the holder for whoever is refused.
// When another open file description holds it — in another process or this one — it
// returns ErrLockHeld and the holder's record (at most 256 bytes).
//
// A holder writes its record just after taking the lock and empties it just before
// letting go, so a refused opener can catch it with no record. It then tries again for
// up to recordWait: the lock is its own when the holder was leaving, and the record is
// there when the holder was arriving. Only a holder stuck between the two (or a record
// some other program wrote) leaves the refusal without a name.
//
// A holder may remove the lock file before it lets go (RemoveAndRelease). An opener
// that locked the file in the meantime holds a file no longer at path, which locks
// nothing: it checks, after taking the lock, that path is still the file it locked,
// and starts again with the file now there when it is not.
func AcquireFileLock(path string, record []byte) (*FileLock, []byte, error) {
	deadline := time.Now().Add(recordWait)
	for {
		f, holder, err := lockFileAt(path, deadline)
		if err != nil {
			return nil, holder, err
		}
		if !stillAt(f, path) {
			f.Close() // a removed lock file: the one at path now decides
			continue
		}
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(record, 0)
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: recording the holder: %w", path, err)
		}
		return &FileLock{f: f, path: path}, nil, nil
	}
}

// lockFileAt opens the file at path (creating it) and takes its lock: the locked file,
// or ErrLockHeld and the holder's record once the holder has a record or deadline
// has passed.
func lockFileAt(path string, deadline time.Time) (*os.File, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	for {
		err = flockNow(f)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		holder := readRecord(f)
		if pid, _ := ParseLockRecord(holder, ""); pid > 0 || time.Now().After(deadline) {
			f.Close()
			return nil, holder, ErrLockHeld
		}
		time.Sleep(recordPoll)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil, nil
}

// stillAt reports whether path names the open file f (not removed or replaced since
// it was opened).
func stillAt(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	there, err := os.Stat(path)
	return err == nil && os.SameFile(held, there)
}

// recordWait bounds how long a refused opener waits for the holder's record (a holder
// writes it microseconds after taking the lock); recordPoll is how often it looks.
const (
	recordWait = 200 * time.Millisecond
	recordPoll = 2 * time.Millisecond
)

// flockNow takes an exclusive flock on f without waiting.
func flockNow(f *os.File) error { return flockHow(f, unix.LOCK_EX) }

// flockHow takes a flock of kind how (LOCK_EX, LOCK_SH) on f without waiting.
func flockHow(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// readRecord reads the holder's record from the start of the lock file (at most 256
// bytes; nil when unreadable).
func readRecord(f *os.File) []byte {
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, 0)
	return buf[:n]
}

// Release drops the lock. Safe on nil and to call twice.
func (l *FileLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0) // the next reader must not name a process that is gone
	err := l.f.Close()  // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// RemoveAndRelease removes the lock file, then drops the lock: for a holder that made
// the file and leaves nothing behind (a failed `pfschat init`). The file goes while
// the lock is held, so every opener either is refused or finds, once it has the lock,
// that its file is gone (AcquireFileLock starts again then). Safe on nil and to call
// twice; a file already gone is no error.
func (l *FileLock) RemoveAndRelease() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return errors.Join(err, l.Release())
}

// Holder reports who holds the profile in dir, without taking it: held is false when
// no process does (or there is no lock file). It looks with a shared flock that it
// drops at once and never writes the file; an owner taking the lock in that instant
// finds no record and tries again (AcquireFileLock), so the look cannot refuse it.
func Holder(dir string) (pid int, kind OwnerKind, held bool) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return 0, "", false
	}
	defer f.Close() // drops the shared flock, if it was taken
	if err := flockHow(f, unix.LOCK_SH); !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, "", false
	}
	pid, kind = parseLockRecord(readRecord(f))
	return pid, kind, true
}
