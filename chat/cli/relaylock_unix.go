//go:build unix

package cli

import (
	"errors"
	"fmt"
	"os"

	"pfschat/chat/profile"
)

// relayLock is a held relay database lock; the kernel drops it when the process
// exits, so a crashed relay leaves no stale lock.
type relayLock struct{ fl *profile.FileLock }

// lockRelayDB takes the exclusive lock of the relay database at db without waiting,
// for what ("pfschat relay", ...); want says what the caller is about to do, for the
// error naming the holder when another process has it.
func lockRelayDB(db, what, want string) (*relayLock, error) {
	fl, holder, err := profile.AcquireFileLock(relayLockPath(db), relayLockRecord(os.Getpid(), what))
	if errors.Is(err, profile.ErrLockHeld) {
		pid, holderWhat := parseRelayLockRecord(holder)
		return nil, &relayLockedError{DB: db, PID: pid, What: holderWhat, Want: want}
	}
	if err != nil {
		return nil, fmt.Errorf("relay database lock: %w", err)
	}
	return &relayLock{fl: fl}, nil
}

// release drops the lock. Safe on nil and to call twice.
func (l *relayLock) release() {
	if l != nil {
		l.fl.Release()
	}
}
