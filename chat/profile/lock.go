package profile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LockFile is the name of the lock file inside a profile directory. Whoever holds an
// exclusive flock(2) on it owns the profile; the file records the owner's pid and kind
// so that a refused opener can say who holds it. The file stays once a profile is
// made; only an opener that made it and then failed to make the profile removes it
// again, while holding the lock (FileLock.RemoveAndRelease), and an opener that
// locked the file meanwhile notices it is gone and locks the new one (AcquireFileLock):
// two owners never hold two files.
const LockFile = "pfschat.lock"

// OwnerKind is what kind of pfschat process holds a profile.
type OwnerKind string

const (
	OwnerCommand OwnerKind = "command" // a headless command (send, recv, ...)
	OwnerUI      OwnerKind = "ui"      // the terminal UI
	OwnerDaemon  OwnerKind = "daemon"  // pfschat daemon
)

// Describe is the owner kind as a sentence fragment: "the terminal UI".
func (k OwnerKind) Describe() string {
	switch k {
	case OwnerUI:
		return "the terminal UI"
	case OwnerDaemon:
		return "pfschat daemon"
	case OwnerCommand:
		return "a pfschat command"
	}
	return "an unknown pfschat process"
}

// ErrLocked matches (errors.Is) every *LockedError.
var ErrLocked = errors.New("profile is open in another pfschat process")

// LockedError: the profile is held by another process (PID 0 when it could not be
// read, e.g. the owner is between taking the lock and writing its pid).
type LockedError struct {
	Dir    string
	PID    int
	Kind   OwnerKind // the holder's
	Opener OwnerKind // what was refused: its advice differs ("" reads as a command)
}

func (e *LockedError) Error() string {
	who := e.Kind.Describe()
	if e.PID > 0 {
		who = fmt.Sprintf("pid %d, %s", e.PID, who)
	}
	return fmt.Sprintf("profile %s is open in pfschat (%s); %s", e.Dir, who, e.Kind.advice(e.Opener))
}

// advice is what to do when a holder of this kind refuses opener: the UI and the
// daemon serve the commands they can (the refused one is not among them), a command
// ends by itself — and only a command is told that a daemon would let it share.
func (k OwnerKind) advice(opener OwnerKind) string {
	switch k {
	case OwnerDaemon:
		return "stop the daemon to run this (the commands it can serve go through it)"
	case OwnerUI:
		return "close the UI to run this (the commands it can serve go through it)"
	}
	if opener == OwnerDaemon || opener == OwnerUI {
		return "wait for it to end or stop it"
	}
	return "wait for it to end or stop it (run `pfschat daemon` to let commands share the profile)"
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// ErrLockHeld is AcquireFileLock's answer when another holder has the lock.
var ErrLockHeld = errors.New("the lock is held")

// lockRecord is the profile lock file's content: "pid N\nkind K\n".
func lockRecord(pid int, kind OwnerKind) []byte { return LockRecord(pid, "kind", string(kind)) }

// parseLockRecord reads what lockRecord wrote; anything else gives zero values (the
// record only improves an error message, it decides nothing).
func parseLockRecord(b []byte) (pid int, kind OwnerKind) {
	pid, v := ParseLockRecord(b, "kind")
	switch OwnerKind(v) {
	case OwnerCommand, OwnerUI, OwnerDaemon:
		kind = OwnerKind(v)
	}
	return pid, kind
}

// LockRecord is what a holder writes into a lock file (AcquireFileLock): its pid and
// one key naming what it is, "pid N\nKEY VALUE\n".
func LockRecord(pid int, key, value string) []byte {
	return []byte(fmt.Sprintf("pid %d\n%s %s\n", pid, key, value))
}

// ParseLockRecord reads a LockRecord: the pid (0 when absent or invalid) and the value
// of key ("" when absent). The caller checks the value against what it knows.
func ParseLockRecord(b []byte, key string) (pid int, value string) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				pid = n
			}
		case key:
			value = v
		}
	}
	return pid, value
}
