package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteOut asks the kernel to start writing the file's dirty pages in [off,
// off+n) to the disk, without waiting for them (sync_file_range, SYNC_FILE_RANGE_WRITE:
// no metadata, no journal commit). Through the file's raw connection, so a Close
// meanwhile waits for it instead of racing it; errors do not matter (the fsync after
// reports the disk's).
func startWriteOut(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
