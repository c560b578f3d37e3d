//go:build !unix

package profile

import (
	"fmt"
	"runtime"
)

// Lock is a held profile lock; profiles can only be locked on Unix systems.
type Lock struct{ dir string }

// AcquireLock refuses on systems without flock(2): opening a profile unlocked could let
// two processes reuse one chain key, and there is no silent fallback.
func AcquireLock(dir string, kind OwnerKind) (*Lock, error) {
	return nil, fmt.Errorf("profile locking is not implemented on %s; pfschat profiles need a Unix system", runtime.GOOS)
}

// Release gives the profile up.
func (l *Lock) Release() error { return nil }

// RemoveAndRelease gives the profile up.
func (l *Lock) RemoveAndRelease() error { return nil }

// Dir is the locked profile directory.
func (l *Lock) Dir() string { return l.dir }

// FileLock is an exclusive lock on a lock file; only Unix systems have them.
type FileLock struct{}

// AcquireFileLock refuses on systems without flock(2).
func AcquireFileLock(path string, record []byte) (*FileLock, []byte, error) {
	return nil, nil, fmt.Errorf("file locking is not implemented on %s", runtime.GOOS)
}

// Release drops the lock.
func (l *FileLock) Release() error { return nil }

// RemoveAndRelease drops the lock.
func (l *FileLock) RemoveAndRelease() error { return nil }

// Holder reports who holds the profile in dir: no one, where profiles cannot be locked.
func Holder(dir string) (pid int, kind OwnerKind, held bool) { return 0, "", false }
