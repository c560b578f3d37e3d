//go:build unix

package profile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
		return nil, &LockedError{Dir: dir, PID: pid, Kind: k}
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

// Dir is the locked profile directory.
func (l *Lock) Dir() string { return l.dir }

// FileLock is an exclusive flock(2) on a lock file, held until Release or the process's
// exit. The profile lock and the relay database's lock are FileLocks.
type FileLock struct{ f *os.File }

// AcquireFileLock takes the exclusive lock on the file at path (created 0600 when missing)
// without waiting and writes record into it, naming the holder for whoever is refused.
// When another open file description holds it — in another process or this one — it
// returns ErrLockHeld and the holder's record (at most 256 bytes).
func AcquireFileLock(path string, record []byte) (*FileLock, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		holder, _ := io.ReadAll(io.LimitReader(f, 256))
		f.Close()
		return nil, holder, ErrLockHeld
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(record, 0)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: recording the holder: %w", path, err)
	}
	return &FileLock{f: f}, nil, nil
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
