//go:build !linux

package storage

import "os"

// startWriteOut does nothing here: the final fsync writes the whole file.
func startWriteOut(*os.File, int64, int64) {}
