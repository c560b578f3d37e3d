package storage

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// HashBeside hashes every byte, small pieces inline and big ones beside the work, and
// returns only once the work is done too.
func TestHashBeside(t *testing.T) {
	data := make([]byte, 4*hashBesideMin+4)
	rand.Read(data)
	want := sha256.Sum256(data)
	h := sha256.New()
	worked := 0
	rest := data
	for _, n := range []int{1, hashBesideMin - 1, hashBesideMin, 2*hashBesideMin + 4} {
		HashBeside(h, rest[:n], func() { worked++ })
		rest = rest[n:]
	}
	if len(rest) != 0 || worked != 4 || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("%d bytes left, work ran %d times, digest equal %v", len(rest), worked, bytes.Equal(h.Sum(nil), want[:]))
	}
}

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
