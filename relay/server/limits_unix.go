//go:build unix

package server

import "syscall"

// descriptorLimit is the process's soft RLIMIT_NOFILE (0 if unknown).
func descriptorLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}
