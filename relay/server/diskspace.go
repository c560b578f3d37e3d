package server

// The disk high-water mark: while the file system holding the relay database has less
// than DiskConfig.MinFreeBytes available, or fewer free inodes than minFreeInodes,
// new sends are refused with storage_full; acks, logins and everything else keep
// working, so recipients can drain their queues and free space. A reserve file set
// aside at start is released when the disk is nearly exhausted, so the deletes that
// acks make still find room in the WAL.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DiskConfig is the relay's disk high-water mark. The zero value turns it off.
type DiskConfig struct {
	// Dir is a directory on the file system to watch (the database's directory).
	Dir string
	// MinFreeBytes: below this many available bytes, sends are refused (0 = off).
	MinFreeBytes uint64
	// ReservePath, when set, is a file of ReserveBytes made at start and deleted when
	// the available space falls below ReserveBytes while storage is full, so acks can
	// still commit; it is made again once space has returned.
	ReservePath  string
	ReserveBytes int64
	// Interval between checks (default 2 s).
	Interval time.Duration
	// Free reports the bytes and inodes available to the relay on the file system
	// holding dir (nil = statfs).
	Free func(dir string) (DiskSpace, error)
	// InFile reports free space inside the database file, which new messages reuse
	// first (New sets it from the store when nil).
	InFile func(ctx context.Context) (int64, error)
}

// DiskSpace is what statfs says of a file system.
type DiskSpace struct {
	AvailBytes uint64 // bytes available to an unprivileged user (f_bavail × f_bsize)
	FreeInodes uint64 // free inodes (f_ffree)
	Inodes     uint64 // all inodes (f_files); 0 where inodes are made as needed (btrfs)
}

// maxMinFreeInodes caps the inode floor, which is 1% of the file system's inodes but
// at most this many. Each blob is a file (a partial one from blob_begin on), while
// messages, acks and accounts are rows in SQLite's few files, which exist already: the
// floor is a margin for the uploads begun between two checks (2 s) and the few files
// the relay and its neighbours on the disk still make, so that sends stop before
// SQLite's or the blob store's writes fail halfway with ENOSPC, as min_free is for
// bytes. 1% scales with the file system (an ext4 of 1 GiB has 65536 inodes: a fixed
// 10000 would hold back 15% of it); the cap keeps a large one from holding back far
// more than two seconds of uploads (1 TiB: 64 Mi inodes, 1% is 670000).
const maxMinFreeInodes = 10000

// minFreeInodes is the inode floor of a file system with inodes inodes.
func minFreeInodes(inodes uint64) uint64 { return min(inodes/100, maxMinFreeInodes) }

// diskShortage is what the file system has too little of for new sends.
type diskShortage uint32

const (
	shortOfNothing diskShortage = iota
	shortOfBytes                // below DiskConfig.MinFreeBytes
	shortOfInodes               // below minFreeInodes
)

// shortageOf judges space against the high-water mark minFreeBytes and the inode
// floor. A file system that reports no inodes (btrfs, which makes them as it goes) is
// judged by its bytes alone.
func shortageOf(space DiskSpace, minFreeBytes uint64) diskShortage {
	switch {
	case space.AvailBytes < minFreeBytes:
		return shortOfBytes
	case space.Inodes > 0 && space.FreeInodes < minFreeInodes(space.Inodes):
		return shortOfInodes
	}
	return shortOfNothing
}

// refusal is the start of the error message of a send or upload refused for s.
func (s diskShortage) refusal() string {
	if s == shortOfInodes {
		return "the relay's disk is nearly out of free inodes (it can hold few more files)"
	}
	return "the relay's disk is nearly out of free space"
}

// diskGuard keeps the storage_full state current.
type diskGuard struct {
	cfg   DiskConfig
	log   *slog.Logger
	short atomic.Uint32 // a diskShortage: while not shortOfNothing, sends are refused

	mu       sync.Mutex // serialises check
	reserved bool       // the reserve file exists
	released bool       // the reserve was released and is not back yet
	stop     chan struct{}
	done     chan struct{}
}

func newDiskGuard(cfg DiskConfig, log *slog.Logger) *diskGuard {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Free == nil {
		cfg.Free = statfsFree
	}
	return &diskGuard{cfg: cfg, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

func (g *diskGuard) enabled() bool { return g != nil && g.cfg.MinFreeBytes > 0 }

// storageFull reports whether sends are refused now.
func (g *diskGuard) storageFull() bool { return g.shortage() != shortOfNothing }

// shortage says what the disk is short of now, if anything.
func (g *diskGuard) shortage() diskShortage {
	if g == nil {
		return shortOfNothing
	}
	return diskShortage(g.short.Load())
}

// start makes the reserve file, runs the first check and watches from then on.
func (g *diskGuard) start() error {
	if !g.enabled() {
		close(g.done)
		return nil
	}
	if _, err := g.cfg.Free(g.cfg.Dir); err != nil {
		close(g.done)
		return fmt.Errorf("relay: checking free space in %s: %w", g.cfg.Dir, err)
	}
	g.check()
	go g.run()
	return nil
}

func (g *diskGuard) run() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.check()
		case <-g.stop:
			return
		}
	}
}

func (g *diskGuard) close() {
	if !g.enabled() {
		return
	}
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

// check reads the free space once and updates the state (and the reserve file).
func (g *diskGuard) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	space, err := g.free()
	if err != nil {
		g.log.Warn("checking free disk space", "dir", g.cfg.Dir, "err", err)
		return // keep the last state
	}
	min, res := g.cfg.MinFreeBytes, uint64(max(g.cfg.ReserveBytes, 0))
	hasReserve := g.cfg.ReservePath != "" && res > 0
	if hasReserve && g.reserved && space.AvailBytes < res {
		// Nearly exhausted: give the reserve to the acks that free space.
		if err := os.Remove(g.cfg.ReservePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			g.log.Error("releasing the disk reserve", "path", g.cfg.ReservePath, "err", err)
		} else {
			g.reserved, g.released = false, true
			g.log.Warn("disk nearly full: released the reserve file", "path", g.cfg.ReservePath, "reserve_bytes", res, "free_bytes", space.AvailBytes)
			if s, err := g.free(); err == nil {
				space = s
			}
		}
	}
	if hasReserve && !g.reserved && space.AvailBytes >= min+res {
		if err := makeReserve(g.cfg.ReservePath, g.cfg.ReserveBytes); err != nil {
			g.log.Warn("making the disk reserve file", "path", g.cfg.ReservePath, "err", err)
		} else {
			g.reserved, g.released = true, false
			space.AvailBytes -= res
		}
	}
	was := g.shortage()
	short := shortageOf(space, min)
	if g.released && short == shortOfNothing {
		short = shortOfBytes // a released reserve must be back before sends are taken again
	}
	g.short.Store(uint32(short))
	figures := []any{"free_bytes", space.AvailBytes, "min_free_bytes", min,
		"free_inodes", space.FreeInodes, "min_free_inodes", minFreeInodes(space.Inodes)}
	switch {
	case short != was && short != shortOfNothing:
		g.log.Error("storage full: refusing new sends (acks, logins and deletes go on): "+short.refusal(), figures...)
	case short == shortOfNothing && was != shortOfNothing:
		g.log.Info("storage recovered: accepting sends again", figures...)
	}
}

// free is the file system's available space, plus the database file's free pages in
// its bytes.
func (g *diskGuard) free() (DiskSpace, error) {
	space, err := g.cfg.Free(g.cfg.Dir)
	if err != nil || g.cfg.InFile == nil {
		return space, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := g.cfg.InFile(ctx)
	if err != nil {
		return DiskSpace{}, err
	}
	space.AvailBytes += uint64(max(in, 0))
	return space, nil
}

// makeReserve writes size zero bytes to path (written, not sparse, so the space is
// really taken) and syncs it.
func makeReserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	left := size
	for left > 0 && err == nil {
		n := min(left, int64(len(buf)))
		_, err = f.Write(buf[:n])
		left -= n
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// writeMetrics adds the storage_full gauge to /metrics (the refusals are counted in
// pfschat_relay_errors_total{code="storage_full"}).
func (g *diskGuard) writeMetrics(w io.Writer) {
	if !g.enabled() {
		return
	}
	v := 0
	if g.storageFull() {
		v = 1
	}
	fmt.Fprintf(w, "# HELP pfschat_relay_storage_full 1 while free disk space is below --min-free-mib, or free inodes below 1%% of the inodes (at most 10000), and sends are refused.\n# TYPE pfschat_relay_storage_full gauge\npfschat_relay_storage_full %d\n", v)
}
