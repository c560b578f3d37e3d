package server

import (
	"strings"
	"testing"
)

// The high-water mark's decision from statfs figures: bytes below min_free, or free
// inodes below 1% of the inodes (at most 10000), refuse sends, each saying what ran
// out; a file system that reports no inodes (btrfs) is judged by bytes alone.
func TestDiskShortage(t *testing.T) {
	const minFree = 256 << 20
	const plenty = 1 << 40
	cases := []struct {
		name  string
		space DiskSpace
		want  diskShortage
	}{
		{"plenty of both", DiskSpace{AvailBytes: plenty, FreeInodes: 900_000, Inodes: 1_000_000}, shortOfNothing},
		{"bytes low", DiskSpace{AvailBytes: minFree - 1, FreeInodes: 900_000, Inodes: 1_000_000}, shortOfBytes},
		{"bytes at the mark", DiskSpace{AvailBytes: minFree, FreeInodes: 900_000, Inodes: 1_000_000}, shortOfNothing},
		{"inodes low", DiskSpace{AvailBytes: plenty, FreeInodes: 9_999, Inodes: 1_000_000}, shortOfInodes},
		{"inodes at 1%", DiskSpace{AvailBytes: plenty, FreeInodes: 10_000, Inodes: 1_000_000}, shortOfNothing},
		{"none free", DiskSpace{AvailBytes: plenty, FreeInodes: 0, Inodes: 1_000_000}, shortOfInodes},
		{"both low: bytes named", DiskSpace{AvailBytes: 0, FreeInodes: 0, Inodes: 1_000_000}, shortOfBytes},
		{"small file system, 1% of it", DiskSpace{AvailBytes: plenty, FreeInodes: 655, Inodes: 65_536}, shortOfNothing},
		{"small file system, below 1%", DiskSpace{AvailBytes: plenty, FreeInodes: 654, Inodes: 65_536}, shortOfInodes},
		{"large file system, at the cap", DiskSpace{AvailBytes: plenty, FreeInodes: 10_000, Inodes: 64 << 20}, shortOfNothing},
		{"large file system, below the cap", DiskSpace{AvailBytes: plenty, FreeInodes: 9_999, Inodes: 64 << 20}, shortOfInodes},
		{"no inode count (btrfs)", DiskSpace{AvailBytes: plenty, FreeInodes: 0, Inodes: 0}, shortOfNothing},
		{"no inode count, bytes low", DiskSpace{AvailBytes: 1, FreeInodes: 0, Inodes: 0}, shortOfBytes},
	}
	for _, c := range cases {
		if got := shortageOf(c.space, minFree); got != c.want {
			t.Errorf("%s: %+v judged %d, want %d", c.name, c.space, got, c.want)
		}
	}
	if m := shortOfInodes.refusal(); !strings.Contains(m, "out of free inodes") {
		t.Errorf("the inode refusal says %q", m)
	}
	if m := shortOfBytes.refusal(); strings.Contains(m, "inode") || !strings.Contains(m, "free space") {
		t.Errorf("the byte refusal says %q", m)
	}
}
