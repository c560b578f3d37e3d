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
	f   *os.File
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
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("profile lock: %w", err)
	}
	// Each open file description carries its own flock, so a second opener in the same
	// process is refused too.
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		b, _ := io.ReadAll(io.LimitReader(f, 256))
		f.Close()
		pid, k := parseLockRecord(b)
		return nil, &LockedError{Dir: dir, PID: pid, Kind: k}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("profile lock %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(lockRecord(os.Getpid(), kind), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("profile lock %s: recording the owner: %w", path, err)
	}
	return &Lock{f: f, dir: dir}, nil
}

// Release gives the profile up. Safe on nil and to call twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0) // the next reader must not name a process that is gone
	err := l.f.Close()  // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// Dir is the locked profile directory.
func (l *Lock) Dir() string { return l.dir }
