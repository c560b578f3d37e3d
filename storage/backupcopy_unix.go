//go:build unix

package storage

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// holdPlainCopy holds f, a backup's plain copy just made at path, for as long as the
// backup runs: an exclusive flock, which the kernel drops with the last descriptor
// (a killed backup holds nothing). It reports false when removeStalePlainCopies of
// another backup took the file away before the lock: then make another.
func holdPlainCopy(f *os.File, path string) bool {
	if unix.Flock(int(f.Fd()), unix.LOCK_EX) != nil {
		return false
	}
	held, err1 := f.Stat()
	there, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(held, there)
}

// removeStalePlainCopies removes the plain copies (sealed values, names and times in
// the clear) that killed backups of the store at src left beside it: those no running
// backup holds.
func removeStalePlainCopies(src string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(src), escapeGlob(filepath.Base(src))+plainCopySuffix))
	for _, m := range matches {
		f, err := os.Open(m)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(m)
			os.Remove(m + "-journal")
		}
		f.Close()
	}
}

// escapeGlob makes name match itself in filepath.Match.
func escapeGlob(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`*?[\\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
