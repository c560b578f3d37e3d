package cluster

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkDiskSyncFloor: what one synchronous write costs on the disk the tests'
// temporary directories are on (the floor under any store that syncs every commit):
// a 4 KiB append followed by fdatasync, fsync, or written through O_SYNC; and what
// the R1 atomic batch of nats-server v2.15.3 adds around its syncs — a staging
// directory made and removed per batch (newBatchStore): mkdir, a file written with
// O_SYNC, fsync of the directory, removal.
//
//	go test -run '^$' -bench DiskSyncFloor -benchtime 500x ./relay/cluster/
func BenchmarkDiskSyncFloor(b *testing.B) {
	buf := make([]byte, 4096)
	open := func(b *testing.B, flags int) *os.File {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_CREATE|os.O_WRONLY|os.O_APPEND|flags, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		return f
	}
	b.Run("write+fdatasync", func(b *testing.B) {
		f := open(b, 0)
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write+fsync", func(b *testing.B) {
		f := open(b, 0)
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write-O_SYNC", func(b *testing.B) {
		f := open(b, os.O_SYNC)
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("staging-dir", func(b *testing.B) {
		root := b.TempDir()
		for b.Loop() {
			d := filepath.Join(root, "batch")
			if err := os.MkdirAll(filepath.Join(d, "msgs"), 0o750); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "meta.inf"), buf[:200], 0o600); err != nil {
				b.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(d, "msgs", "1.blk"), os.O_CREATE|os.O_WRONLY|os.O_SYNC, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			f.Write(buf)
			f.Close()
			df, err := os.Open(d)
			if err != nil {
				b.Fatal(err)
			}
			df.Sync()
			df.Close()
			if err := os.RemoveAll(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
