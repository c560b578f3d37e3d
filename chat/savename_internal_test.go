package chat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// shortNameFS acts as a file system whose names take at most limit bytes (eCryptfs:
// about 143), creating nothing on disk.
type shortNameFS struct {
	limit int
	made  map[string]bool
}

func (fs *shortNameFS) make(p string) error {
	if len(filepath.Base(p)) > fs.limit {
		return &os.PathError{Op: "open", Path: p, Err: syscall.ENAMETOOLONG}
	}
	if fs.made[p] {
		return &os.PathError{Op: "open", Path: p, Err: os.ErrExist}
	}
	fs.made[p] = true
	return nil
}

func TestUniqueNameShortensForTheFileSystem(t *testing.T) {
	fs := &shortNameFS{limit: 143, made: map[string]bool{}}
	name := SafeFileName(strings.Repeat("é", 150) + ".tar.gz")
	if len(name) <= fs.limit {
		t.Fatalf("test name of %d bytes fits the limit", len(name))
	}
	var saved []string
	for range 3 {
		p, err := uniqueName("/dl", name, fs.make)
		if err != nil {
			t.Fatalf("uniqueName: %v", err)
		}
		base := filepath.Base(p)
		if len(base) > fs.limit || !strings.HasSuffix(base, ".gz") || !strings.HasPrefix(base, "éé") {
			t.Fatalf("saved as %q (%d bytes): want at most %d bytes, the extension and the name's start", base, len(base), fs.limit)
		}
		saved = append(saved, base)
	}
	if !strings.HasSuffix(saved[1], " (2).gz") || !strings.HasSuffix(saved[2], " (3).gz") {
		t.Fatalf("collisions named %q, %q: want (2) and (3)", saved[1], saved[2])
	}

	// A name that fits is kept as it is.
	if p, err := uniqueName("/dl", "report.pdf", fs.make); err != nil || filepath.Base(p) != "report.pdf" {
		t.Fatalf("uniqueName(report.pdf) = %q, %v", p, err)
	}

	// A file system that takes no name of the shortest length: an error, not a loop.
	tiny := &shortNameFS{limit: 20, made: map[string]bool{}}
	if _, err := uniqueName("/dl", strings.Repeat("a", 100)+".txt", tiny.make); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("on a file system of 20-byte names: %v, want ENAMETOOLONG", err)
	}
}
