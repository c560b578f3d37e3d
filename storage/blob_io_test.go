package storage

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// A file written through WriteBehind steps (the write-out running beside the writer,
// the file closed while one may run) holds exactly what was written.
func TestWriteBehindKeepsTheBytes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "blob")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2*writeBehindStep+12345)
	rand.Read(want)
	wb := NewWriteBehind(f, 0)
	for off := 0; off < len(want); off += 1 << 20 {
		end := min(off+1<<20, len(want))
		if _, err := f.Write(want[off:end]); err != nil {
			t.Fatal(err)
		}
		wb.Written(int64(end))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the file differs (%v)", err)
	}
	var none *WriteBehind
	none.Written(1 << 40) // a nil one does nothing
}
