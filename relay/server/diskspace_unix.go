//go:build unix

package server

import "golang.org/x/sys/unix"

// statfsFree is the space available to an unprivileged user on the file system
// holding dir (statfs f_bavail × f_bsize).
func statfsFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
