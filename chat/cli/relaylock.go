package cli

// The relay database's lock: `pfschat relay` holds it while it serves, and the
// commands that must not run beside it (rotate-key) take it too, so that a key is
// never changed under a running relay that would go on serving the old one.

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"pfschat/chat/profile"
)

// relayLockPath is the lock file of the relay database at db: beside it, never
// removed (removing a lock file someone waits on would let two holders in).
func relayLockPath(db string) string { return db + ".lock" }

// errRelayRunning matches (errors.Is) every *relayLockedError.
var errRelayRunning = errors.New("the relay database is in use")

// relayLockedError: another process holds the database's lock.
type relayLockedError struct {
	DB   string
	PID  int    // 0 when unknown
	What string // "pfschat relay", "pfschat relay rotate-key"; "" when unknown
	Want string // what the refused command is: "rotate the relay key", "start the relay"
}

func (e *relayLockedError) Error() string {
	who := e.What
	if who == "" {
		who = "another pfschat process"
	}
	if e.PID > 0 {
		who += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	return fmt.Sprintf("%s is in use by %s: cannot %s while it runs; stop it first (nothing was changed)", e.DB, who, e.Want)
}

func (e *relayLockedError) Unwrap() error { return errRelayRunning }

// relayLockRecord is the lock file's content while held: "pid N\nwhat W\n".
func relayLockRecord(pid int, what string) []byte { return profile.LockRecord(pid, "what", what) }

// parseRelayLockRecord reads what relayLockRecord wrote; anything else gives zero
// values (the record only names the holder in the error, it decides nothing).
func parseRelayLockRecord(b []byte) (pid int, what string) {
	pid, v := profile.ParseLockRecord(b, "what")
	switch v {
	case "pfschat relay", "pfschat relay rotate-key":
		what = v
	}
	return pid, what
}

// relayRunningOn is the *relayLockedError of a relay serving db now, else nil. It
// makes nothing: a database without a lock file has no relay.
func relayRunningOn(db string) error {
	if _, err := os.Stat(relayLockPath(db)); err != nil {
		return nil
	}
	l, err := lockRelayDB(db, "pfschat relay", "start the relay")
	if errors.Is(err, errRelayRunning) {
		return err
	}
	l.release()
	return nil
}
