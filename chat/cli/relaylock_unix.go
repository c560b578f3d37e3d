//go:build unix

package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// relayLock is a held relay database lock; the kernel drops it when the process
// exits, so a crashed relay leaves no stale lock.
type relayLock struct{ f *os.File }

// lockRelayDB takes the exclusive lock of the relay database at db without waiting,
// for what ("pfschat relay", ...); want says what the caller is about to do, for the
// error naming the holder when another process has it.
func lockRelayDB(db, what, want string) (*relayLock, error) {
	path := relayLockPath(db)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay database lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		b, _ := io.ReadAll(io.LimitReader(f, 256))
		f.Close()
		pid, holder := parseRelayLockRecord(b)
		return nil, &relayLockedError{DB: db, PID: pid, What: holder, Want: want}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("relay database lock %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(relayLockRecord(os.Getpid(), what), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("relay database lock %s: recording the holder: %w", path, err)
	}
	return &relayLock{f: f}, nil
}

// release drops the lock. Safe on nil and to call twice.
func (l *relayLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	l.f.Close()
	l.f = nil
}
