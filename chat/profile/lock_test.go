//go:build unix

package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A second opener — here another descriptor in the same process, which flock treats
// like another process — is refused with an error naming the holder's pid and kind,
// and the holder's record is left as it was; after Release the profile opens again.
func TestLockRefusesSecondOpener(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := AcquireLock(dir, OwnerUI)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, LockFile))
	_, err = AcquireLock(dir, OwnerCommand)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second AcquireLock: %v, want a *LockedError", err)
	}
	if le.PID != os.Getpid() || le.Kind != OwnerUI {
		t.Fatalf("LockedError names pid %d kind %q, want %d %q", le.PID, le.Kind, os.Getpid(), OwnerUI)
	}
	want := "profile " + dir + " is open in pfschat (pid " + strconv.Itoa(os.Getpid()) + ", the terminal UI); close the UI to run this (the commands it can serve go through it)"
	if err.Error() != want {
		t.Fatalf("error %q\nwant  %q", err, want)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, LockFile)); string(after) != string(before) {
		t.Fatalf("the refused opener changed the lock record: %q -> %q", before, after)
	}
	if fi, err := os.Stat(filepath.Join(dir, LockFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil { // twice is fine
		t.Fatal(err)
	}
	l2, err := AcquireLock(dir, OwnerDaemon)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// The record is only a hint: anything unreadable gives an error without a pid.
func TestLockRecordParsing(t *testing.T) {
	for in, want := range map[string]struct {
		pid  int
		kind OwnerKind
	}{
		"pid 42\nkind daemon\n": {42, OwnerDaemon},
		"":                      {0, ""},
		"pid -3\nkind root\n":   {0, ""},
		"garbage":               {0, ""},
	} {
		pid, kind := parseLockRecord([]byte(in))
		if pid != want.pid || kind != want.kind {
			t.Errorf("parseLockRecord(%q) = %d %q, want %d %q", in, pid, kind, want.pid, want.kind)
		}
	}
	if got := (&LockedError{Dir: "/p"}).Error(); got != "profile /p is open in pfschat (an unknown pfschat process); wait for it to end or stop it (run `pfschat daemon` to let commands share the profile)" {
		t.Errorf("without a record: %q", got)
	}
	// The daemon or the UI refused by a command does not read "run pfschat daemon".
	for _, opener := range []OwnerKind{OwnerDaemon, OwnerUI} {
		e := &LockedError{Dir: "/p", PID: 7, Kind: OwnerCommand, Opener: opener}
		if got := e.Error(); strings.Contains(got, "run `pfschat daemon`") || !strings.HasSuffix(got, "wait for it to end or stop it") {
			t.Errorf("%s refused by a command: %q", opener, got)
		}
	}
}

// An opener refused while the holder's record is empty — the holder between taking the
// lock and writing it, or between emptying it and letting go — does not give up at
// once: it names a holder whose record appears, takes a lock that is let go, and only
// after recordWait is refused without a name. synctest.Wait returns when the opener is
// asleep between tries, so each case starts after it has seen the empty record.
func TestLockWaitsForTheHoldersRecord(t *testing.T) {
	holdEmpty := func(t *testing.T) (path string, l *Lock) {
		dir := filepath.Join(t.TempDir(), "p")
		l, err := AcquireLock(dir, OwnerDaemon)
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(dir, LockFile)
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		return path, l
	}
	type result struct {
		l   *Lock
		err error
	}
	open := func(dir string) chan result {
		c := make(chan result, 1)
		go func() {
			l, err := AcquireLock(dir, OwnerCommand)
			c <- result{l, err}
		}()
		return c
	}
	t.Run("arriving", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path, l := holdEmpty(t)
			defer l.Release()
			c := open(filepath.Dir(path))
			synctest.Wait()
			if err := os.WriteFile(path, lockRecord(4242, OwnerDaemon), 0o600); err != nil {
				t.Fatal(err)
			}
			r := <-c
			var le *LockedError
			if !errors.As(r.err, &le) || le.PID != 4242 || le.Kind != OwnerDaemon {
				t.Fatalf("opener: %v, want refused by pid 4242, pfschat daemon", r.err)
			}
		})
	})
	t.Run("leaving", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path, l := holdEmpty(t)
			c := open(filepath.Dir(path))
			synctest.Wait()
			l.Release()
			r := <-c
			if r.err != nil {
				t.Fatalf("opener after the holder let go: %v", r.err)
			}
			r.l.Release()
		})
	})
	// The holder removes the file and lets go (a failed init, RemoveAndRelease) while
	// the opener waits on it: the opener must not own the removed file, which locks
	// nothing, but the one at the path — so a third opener is refused.
	t.Run("removed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path, l := holdEmpty(t)
			c := open(filepath.Dir(path))
			synctest.Wait()
			if err := l.RemoveAndRelease(); err != nil {
				t.Fatal(err)
			}
			r := <-c
			if r.err != nil {
				t.Fatalf("opener after the holder removed the file: %v", r.err)
			}
			defer r.l.Release()
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("the opener holds no file at %s: %v", path, err)
			}
			third, err := AcquireLock(filepath.Dir(path), OwnerUI)
			if !errors.Is(err, ErrLocked) {
				third.Release()
				t.Fatalf("third opener: %v; want refused, the second holds the profile", err)
			}
		})
	})
	t.Run("stuck", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path, l := holdEmpty(t)
			defer l.Release()
			start := time.Now()
			r := <-open(filepath.Dir(path))
			var le *LockedError
			if !errors.As(r.err, &le) || le.PID != 0 {
				t.Fatalf("opener: %v, want refused without a pid", r.err)
			}
			if waited := time.Since(start); waited < recordWait {
				t.Fatalf("refused after %v, want at least %v", waited, recordWait)
			}
		})
	})
}

// RemoveAndRelease removes the lock file and lets go; the next opener makes a new
// one. Twice, or on nil, is fine.
func TestLockRemoveAndRelease(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(dir, OwnerCommand)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveAndRelease(); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveAndRelease(); err != nil {
		t.Fatal(err)
	}
	if err := (*Lock)(nil).RemoveAndRelease(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after RemoveAndRelease: %v", err)
	}
	if _, _, held := Holder(dir); held {
		t.Fatal("a removed lock is held")
	}
	l, err = AcquireLock(dir, OwnerCommand)
	if err != nil {
		t.Fatalf("after RemoveAndRelease: %v", err)
	}
	l.Release()
}

// Holder names the holder without taking the lock, and its look never refuses an
// owner: the lock is still free for the next AcquireLock.
func TestHolder(t *testing.T) {
	dir := t.TempDir()
	if _, _, held := Holder(dir); held {
		t.Fatal("a profile with no lock file is held")
	}
	l, err := AcquireLock(dir, OwnerDaemon)
	if err != nil {
		t.Fatal(err)
	}
	if pid, kind, held := Holder(dir); !held || pid != os.Getpid() || kind != OwnerDaemon {
		t.Fatalf("Holder = %d %q %v, want this process as the daemon", pid, kind, held)
	}
	l.Release()
	if _, _, held := Holder(dir); held {
		t.Fatal("a released profile is held")
	}
	l, err = AcquireLock(dir, OwnerUI)
	if err != nil {
		t.Fatalf("after Holder looked, the lock could not be taken: %v", err)
	}
	l.Release()
}
