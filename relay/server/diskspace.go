package server

// The disk high-water mark: while the file system holding the relay database has less
// than DiskConfig.MinFreeBytes available, new sends are refused with storage_full;
// acks, logins and everything else keep working, so recipients can drain their queues
// and free space. A reserve file set aside at start is released when the disk is
// nearly exhausted, so the deletes that acks make still find room in the WAL.

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
	// Free reports the bytes available to the relay on the file system holding dir
	// (nil = statfs).
	Free func(dir string) (uint64, error)
	// InFile reports free space inside the database file, which new messages reuse
	// first (New sets it from the store when nil).
	InFile func(ctx context.Context) (int64, error)
}

// diskGuard keeps the storage_full state current.
type diskGuard struct {
	cfg  DiskConfig
	log  *slog.Logger
	full atomic.Bool // sends are refused

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
func (g *diskGuard) storageFull() bool { return g != nil && g.full.Load() }

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
	free, err := g.free()
	if err != nil {
		g.log.Warn("checking free disk space", "dir", g.cfg.Dir, "err", err)
		return // keep the last state
	}
	min, res := g.cfg.MinFreeBytes, uint64(max(g.cfg.ReserveBytes, 0))
	hasReserve := g.cfg.ReservePath != "" && res > 0
	if hasReserve && g.reserved && free < res {
		// Nearly exhausted: give the reserve to the acks that free space.
		if err := os.Remove(g.cfg.ReservePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			g.log.Error("releasing the disk reserve", "path", g.cfg.ReservePath, "err", err)
		} else {
			g.reserved, g.released = false, true
			g.log.Warn("disk nearly full: released the reserve file", "path", g.cfg.ReservePath, "reserve_bytes", res, "free_bytes", free)
			if f, err := g.free(); err == nil {
				free = f
			}
		}
	}
	if hasReserve && !g.reserved && free >= min+res {
		if err := makeReserve(g.cfg.ReservePath, g.cfg.ReserveBytes); err != nil {
			g.log.Warn("making the disk reserve file", "path", g.cfg.ReservePath, "err", err)
		} else {
			g.reserved, g.released = true, false
			free -= res
		}
	}
	wasFull := g.full.Load()
	full := free < min
	if g.released {
		full = true // a released reserve must be back before sends are taken again
	}
	g.full.Store(full)
	switch {
	case full && !wasFull:
		g.log.Error("storage full: refusing new sends (acks, logins and deletes go on)", "free_bytes", free, "min_free_bytes", min)
	case !full && wasFull:
		g.log.Info("storage recovered: accepting sends again", "free_bytes", free, "min_free_bytes", min)
	}
}

// free is the file system's available space plus the database file's free pages.
func (g *diskGuard) free() (uint64, error) {
	free, err := g.cfg.Free(g.cfg.Dir)
	if err != nil || g.cfg.InFile == nil {
		return free, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := g.cfg.InFile(ctx)
	if err != nil {
		return 0, err
	}
	return free + uint64(max(in, 0)), nil
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
	if g.full.Load() {
		v = 1
	}
	fmt.Fprintf(w, "# HELP pfschat_relay_storage_full 1 while free disk space is below --min-free-mib and sends are refused.\n# TYPE pfschat_relay_storage_full gauge\npfschat_relay_storage_full %d\n", v)
}
