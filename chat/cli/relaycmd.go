package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"pfschat/chat/profile"
	"pfschat/relay/server"
	"pfschat/storage"
)

// DefaultRelayAddr is where `pfschat relay` listens unless told otherwise.
const DefaultRelayAddr = profile.DefaultRelayAddr

// DefaultRelayDBPath is the relay database in the XDG data directory (profile.RelayDB),
// or "" when there is none (no absolute $XDG_DATA_HOME and no home directory): then
// --db is required.
func DefaultRelayDBPath() string {
	path, err := profile.RelayDB()
	if err != nil {
		return ""
	}
	return path
}

// RunRelay runs `pfschat relay [--addr ADDR] [--db FILE] ...`: it serves until ctx is
// cancelled (SIGINT/SIGTERM in main), then drains: stops accepting, tells clients it
// is going away, finishes in-flight commits and closes the database.
func RunRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pfschat relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", DefaultRelayAddr, "listen address (host:port)")
	dbPath := fs.String("db", DefaultRelayDBPath(), "relay database file (SQLite)")
	logPath := fs.String("log", "", "write logs to this file instead of stderr")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	syncMode := fs.String("synchronous", "FULL", "SQLite sync mode: FULL (survives power loss) or NORMAL")
	maxCount := fs.Int("max-queue-count", server.DefaultLimits.MaxQueueCount, "messages waiting per recipient at most")
	maxBytes := fs.Int64("max-queue-bytes", server.DefaultLimits.MaxQueueBytes, "bytes waiting per recipient at most")
	gcPercent := fs.Int("gc-percent", DefaultGC.Percent, "garbage collector target percentage (GOGC); the GOGC environment variable wins")
	memLimit := fs.Int64("memory-limit-mib", DefaultGC.MemoryLimit>>20, "soft memory limit in MiB (0 = none); the GOMEMLIMIT environment variable wins")
	heapFloor := fs.Int64("gc-heap-floor-mib", DefaultGC.HeapFloor>>20, "while messages flow, let the heap grow to this many MiB before collecting (0 = no floor); GOGC turns it off")
	rate := fs.Int("rate", server.DefaultLimits.FramesPerSecond, "frames per second per connection (-1 = unlimited); announced in the hello, and clients pace themselves under it")
	burst := fs.Int("burst", server.DefaultLimits.FrameBurst, "frames per connection allowed in a burst")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pfschat relay [flags]\n\nRuns a pfschat relay: registers cards, hands out prekeys, stores and forwards ciphertext.\n\n")
		printFlags(stderr, fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageErr{err.Error()} // the flag package printed the usage already
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see pfschat relay --help)", fs.Arg(0))
	}
	if *dbPath == "" {
		_, err := profile.RelayDB()
		return fmt.Errorf("no relay database: pass --db FILE (%w)", err)
	}

	if *gcPercent < 0 || *memLimit < 0 || *heapFloor < 0 {
		return fmt.Errorf("--gc-percent, --memory-limit-mib and --gc-heap-floor-mib must not be negative")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	logOut := stderr
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("opening the log file: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(filepath.Dir(*dbPath), 0o700); err != nil {
		return fmt.Errorf("creating the database directory: %w", err)
	}
	// The database holds the relay's private key: only this user may read it. (SQLite
	// gives the -wal and -shm files the database file's permissions.)
	if f, err := os.OpenFile(*dbPath, os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
		f.Close()
	}
	if err := os.Chmod(*dbPath, 0o600); err != nil {
		return fmt.Errorf("restricting the database file's permissions: %w", err)
	}
	store, err := storage.OpenRelay(ctx, *dbPath, storage.RelayOptions{Synchronous: *syncMode, MaxQueueCount: *maxCount, MaxQueueBytes: *maxBytes})
	if err != nil {
		return fmt.Errorf("opening the relay database %s: %w", *dbPath, err)
	}
	closeStore := sync.OnceValue(store.Close)
	defer closeStore()
	srv, err := server.New(ctx, server.Config{Store: store, Logger: log, Limits: server.Limits{
		MaxQueueCount: *maxCount, MaxQueueBytes: *maxBytes, FramesPerSecond: *rate, FrameBurst: *burst,
	}})
	if err != nil {
		return err
	}
	defer TuneGC(GCSettings{Percent: *gcPercent, MemoryLimit: *memLimit << 20, HeapFloor: *heapFloor << 20,
		Traffic: srv.MessagesAccepted})()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	fmt.Fprintf(stdout, "pfschat relay listening on ws://%s/v1/ws\n", ln.Addr())
	fmt.Fprintf(stdout, "relay key fingerprint: %s\n", srv.Fingerprint())
	fmt.Fprintf(stdout, "database: %s\n", *dbPath)
	log.Info("relay started", "addr", ln.Addr().String(), "db", *dbPath, "fingerprint", srv.Fingerprint())

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	select {
	case err := <-serveErr:
		srv.Shutdown(context.Background())
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	fmt.Fprintln(stdout, "shutting down: draining connections and commits")
	drainCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hs.Shutdown(drainCtx) // stop accepting; WebSockets are hijacked and handled below
	err = srv.Shutdown(drainCtx)
	if cerr := closeStore(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the database: %w", cerr)
	}
	log.Info("relay stopped")
	fmt.Fprintln(stdout, "relay stopped")
	return err
}
