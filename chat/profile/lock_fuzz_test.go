package profile

import (
	"strings"
	"testing"
)

// FuzzParseLockRecord: a lock file's content (any process of the user may write one)
// never panics the reader; a record LockRecord wrote reads back as written.
func FuzzParseLockRecord(f *testing.F) {
	f.Add([]byte("pid 42\nkind daemon\n"), 7, "ui")
	f.Add([]byte("pid -1\nkind\n"), 1, "command")
	f.Add([]byte("pid 99999999999999999999\nkind daemon"), 1, "")
	f.Add([]byte{}, 0, "x y")
	f.Fuzz(func(t *testing.T, b []byte, pid int, value string) {
		if p, _ := ParseLockRecord(b, "kind"); p < 0 {
			t.Fatalf("negative pid %d", p)
		}
		if p, kind := parseLockRecord(b); p < 0 || kind != "" && kind != OwnerCommand && kind != OwnerUI && kind != OwnerDaemon {
			t.Fatalf("parseLockRecord: pid %d kind %q", p, kind)
		}
		if pid <= 0 || strings.Contains(value, "\n") {
			return
		}
		if p, v := ParseLockRecord(LockRecord(pid, "kind", value), "kind"); p != pid || v != value {
			t.Fatalf("LockRecord(%d, %q) reads back as %d, %q", pid, value, p, v)
		}
	})
}
