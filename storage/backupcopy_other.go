//go:build !unix

package storage

import "os"

// Without flock a copy left by a killed backup cannot be told from a running one's:
// it stays (owner-only, beside the store).
func holdPlainCopy(*os.File, string) bool { return true }

func removeStalePlainCopies(string) {}
