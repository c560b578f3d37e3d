//go:build !(linux || darwin || freebsd)

package storage

import "errors"

// statDisk cannot ask this system's file systems: a full disk is then reported with
// its free space unknown.
func statDisk(string) (diskFree, error) {
	return diskFree{}, errors.New("storage: free space is not known on this system")
}
