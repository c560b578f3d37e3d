//go:build !unix

package daemon

import "os"

// ownersKnown: Windows keeps a file's owner in an ACL, which pfschat does not read, so
// privateDir refuses every directory rather than put the daemon's socket where others
// might reach it.
const ownersKnown = false

func ownedByMe(os.FileInfo) bool { return false }
