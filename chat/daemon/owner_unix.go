//go:build unix

package daemon

import (
	"os"
	"syscall"
)

// ownersKnown: a file's owner is in its stat.
const ownersKnown = true

// ownedByMe reports whether fi's file belongs to this process's user.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
