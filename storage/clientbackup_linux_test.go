package storage

import (
	"bytes"
	"encoding/binary"
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
