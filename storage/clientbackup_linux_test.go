package storage

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A backup puts nothing but itself where it is written (a USB stick, a synced folder):
// the plain copy it is made from, whose names and times are in the clear, is made
// beside the store. The destination directory is watched with inotify while the backup
// is written: one file is created there, the backup.
func TestBackupWritesNothingElseBesideIt(t *testing.T) {
	pass := []byte("correct horse")
	c := newClient(t, pass)
	addPeer(t, c, "bob")
	dir := t.TempDir()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	if err := BackupClient(t.Context(), c.Path(), filepath.Join(dir, "profile.backup"), pass); err != nil {
		t.Fatal(err)
	}
	var created []string
	buf := make([]byte, 64<<10)
	n, err := syscall.Read(fd, buf)
	if err != nil && err != syscall.EAGAIN {
		t.Fatal(err)
	}
	for off := 0; off+syscall.SizeofInotifyEvent <= n; {
		nameLen := int(binary.NativeEndian.Uint32(buf[off+12 : off+16]))
		name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+nameLen]
		created = append(created, string(bytes.TrimRight(name, "\x00")))
		off += syscall.SizeofInotifyEvent + nameLen
	}
	if len(created) != 1 || created[0] != "profile.backup" {
		t.Fatalf("files created beside the backup: %q, want only profile.backup", created)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(c.Path()), "*.tmp*")); len(left) != 0 {
		t.Fatalf("plain copy left beside the store: %v", left)
	}
}

// TestBackupRemovesCopiesAKillLeft: a plain copy a killed backup left beside the store
// (names and times in the clear) is removed by the next backup; one a running backup
// holds is not; the backup leaves none of its own.
func TestBackupRemovesCopiesAKillLeft(t *testing.T) {
	pass := []byte("correct horse")
	c := newClient(t, pass)
	addPeer(t, c, "bob")
	left := c.Path() + ".backup-111.tmp"
	if err := os.WriteFile(left, []byte("names in the clear"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(left+"-journal", nil, 0o600)
	running := c.Path() + ".backup-222.tmp"
	if err := os.WriteFile(running, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(running)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := BackupClient(t.Context(), c.Path(), filepath.Join(t.TempDir(), "profile.backup"), pass); err != nil {
		t.Fatal(err)
	}
	copies, _ := filepath.Glob(c.Path() + ".backup-*")
	if len(copies) != 1 || copies[0] != running {
		t.Errorf("plain copies beside the store after the backup: %q, want only the held %s", copies, running)
	}
}
