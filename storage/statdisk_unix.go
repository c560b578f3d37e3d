//go:build linux || darwin || freebsd

package storage

import "syscall"

// statDisk asks the file system holding dir what it has left. (The field types of
// Statfs_t differ between systems: hence the conversions.)
func statDisk(dir string) (diskFree, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return diskFree{}, err
	}
	return diskFree{
		bytes:       uint64(st.Bavail) * uint64(st.Bsize),
		inodes:      uint64(st.Ffree),
		totalInodes: uint64(st.Files),
	}, nil
}
