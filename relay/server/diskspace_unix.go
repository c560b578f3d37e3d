//go:build linux || darwin || freebsd

package server

import "golang.org/x/sys/unix"

// statfsFree is the space available to an unprivileged user on the file system
// holding dir (statfs f_bavail × f_bsize) and its inodes (f_ffree of f_files).
func statfsFree(dir string) (DiskSpace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return DiskSpace{}, err
	}
	return DiskSpace{AvailBytes: uint64(st.Bavail) * uint64(st.Bsize), FreeInodes: uint64(st.Ffree), Inodes: uint64(st.Files)}, nil
}
