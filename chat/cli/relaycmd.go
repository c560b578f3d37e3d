package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"pfschat/chat/profile"
	"pfschat/relay"
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

// relaySubcommands are `pfschat relay WORD ...` (backup, rotate-key, ...), each
// registered by its own file.
var relaySubcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

// relaySubcommandsHelp lists relaySubcommands in pfschat relay --help: an operator
// finds backup and rotate-key there, not only in the README.
const relaySubcommandsHelp = `commands for the operator (each with --help):
  pfschat relay backup [--db FILE] DEST        a consistent copy of the database, while the relay runs
  pfschat relay rotate-key [--compromised]     a new relay key (stop the relay first; README "Relay key rotation")
  pfschat relay invite [--uses N] [--ttl D]    an invite code, for --registration invite
  pfschat relay new-key-file FILE              a relay key for --relay-key-file (also: new-cluster-key)
`

// RunRelay runs `pfschat relay [--addr ADDR] [--db FILE] ...`: it serves until ctx is
// cancelled (SIGINT/SIGTERM in main), then drains: stops accepting, tells clients it
// is going away, finishes in-flight commits and closes the database.
func RunRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if run, ok := relaySubcommands[args[0]]; ok {
			return run(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("pfschat relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", DefaultRelayAddr, "listen address (host:port)")
	dbPath := fs.String("db", DefaultRelayDBPath(), "relay database file (SQLite)")
	logPath := fs.String("log", "", "write logs to this file instead of stderr")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	syncMode := fs.String("synchronous", "FULL", "SQLite sync mode: FULL (an accepted message survives power loss) or NORMAL")
	maxCount := fs.Int("max-queue-count", server.DefaultLimits.MaxQueueCount, "messages waiting per recipient at most")
	maxBytes := fs.Int64("max-queue-bytes", server.DefaultLimits.MaxQueueBytes, "bytes waiting per recipient at most")
	gcPercent := fs.Int("gc-percent", DefaultGC.Percent, "garbage collector target percentage (GOGC); the GOGC environment variable wins")
	memLimit := fs.Int64("memory-limit-mib", DefaultGC.MemoryLimit>>20, "soft memory limit in MiB (0 = none); the GOMEMLIMIT environment variable wins")
	heapFloor := fs.Int64("gc-heap-floor-mib", DefaultGC.HeapFloor>>20, "while messages flow, let the heap grow to this many MiB before collecting (0 = no floor); GOGC turns it off")
	rate := fs.Int("rate", server.DefaultLimits.FramesPerSecond, "frames per second per connection (-1 = unlimited, and no limit on the bytes of JSON or on acknowledged ids either); announced in the hello, and clients pace themselves under it")
	burst := fs.Int("burst", server.DefaultLimits.FrameBurst, "frames per connection allowed in a burst")
	maxBlobMiB := fs.Int64("max-blob-mib", server.DefaultLimits.MaxBlobBytes>>20, "the largest attachment blob, MiB (relay/PROTOCOL.md \"Blobs\")")
	blobQuotaMiB := fs.Int64("blob-quota-mib", server.DefaultLimits.BlobQuotaBytes>>20, "attachment blobs per account at most, MiB")
	// Transport (TLS, ACME, the admin port): see README "Run a relay on the internet".
	var tlsOpts relayTLSOptions
	fs.StringVar(&tlsOpts.CertFile, "tls-cert", "", "serve wss:// (TLS 1.3) with this certificate chain (PEM); with --tls-key")
	fs.StringVar(&tlsOpts.KeyFile, "tls-key", "", "the private key (PEM) of --tls-cert")
	fs.StringVar(&tlsOpts.ACMEDomain, "acme-domain", "", "serve wss:// with a certificate for this name from Let's Encrypt (ACME; cached in the database's directory, under acme/)")
	fs.StringVar(&tlsOpts.ACMEEmail, "acme-email", "", "contact address for the ACME account (optional)")
	acmeHTTPAddr := fs.String("acme-http-addr", ":80", "with --acme-domain: answer ACME HTTP-01 challenges here (\"\" = only TLS-ALPN-01 on --addr)")
	adminAddr := fs.String("admin-addr", DefaultAdminAddr, "serve /metrics and /healthz here (keep it on loopback; \"\" = off)")
	tlsUpstream := fs.Bool("tls-terminated-upstream", false, "a trusted proxy in front terminates TLS: logins are then bound to no channel (prefer TCP passthrough)")
	var abuse abuseFlags // --registration, --trusted-proxies, connection caps, quotas (relaylimits.go)
	abuse.register(fs)
	var clusterOpts clusterFlags // --nats, --nats-creds, --nats-replicas, --nats-prefix, and --relay-key-file (relaycluster.go)
	clusterOpts.register(fs)
	// Operations: the database check, the disk high-water mark, account expiry.
	initDB := fs.Bool("init", false, "make a new relay (a new key) in an empty or key-less --db file, or with --nats in a JetStream without one, instead of refusing it")
	minFree := fs.Int64("min-free-mib", DefaultMinFreeMiB, "refuse new sends (storage_full) while the database's file system has less free space, in MiB, or fewer free inodes than 1% of its inodes (0 = off, both); acks go on")
	reserveMiB := fs.Int64("disk-reserve-mib", DefaultDiskReserveMiB, "MiB set aside in FILE.reserve beside the --db FILE, released to acks when the disk is nearly full (0 = none)")
	expiryDays := fs.Int("account-expiry", 0, "free the names of accounts not logged in for this many days, with their queues (0 = never)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pfschat relay [flags]\n\nRuns a pfschat relay: registers cards, hands out prekeys, stores and forwards ciphertext.\n\n%s\n", relaySubcommandsHelp)
		printFlags(fs.Output(), fs)
	}
	if helped, err := parseFlags(fs, args, stdout); helped || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		if near := nearest(fs.Arg(0), slices.Sorted(maps.Keys(relaySubcommands))); near != "" {
			return usagef("unknown relay command %q; did you mean %q? (pfschat relay --help lists them)", fs.Arg(0), near)
		}
		return usagef("unexpected argument %q (see pfschat relay --help)", fs.Arg(0))
	}
	natsURLs, err := clusterOpts.check(fs)
	if err != nil {
		return err
	}
	if *dbPath == "" && !clusterOpts.enabled() {
		_, err := profile.RelayDB()
		return fmt.Errorf("no relay database: pass --db FILE (%w)", err)
	}

	if *gcPercent < 0 || *memLimit < 0 || *heapFloor < 0 {
		return usagef("--gc-percent, --memory-limit-mib and --gc-heap-floor-mib must not be negative")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	logOut := stderr
	if *logPath != "" {
		// A missing directory is made, owner-only, as --db's is.
		if err := os.MkdirAll(filepath.Dir(*logPath), 0o700); err != nil {
			return fmt.Errorf("creating the log file's directory: %w", err)
		}
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("opening the log file: %w", err)
		}
		defer f.Close() // an existing file keeps its mode: the operator's (log rotation, a group)
		logOut = f
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if *dbPath != "" {
		tlsOpts.DataDir = filepath.Dir(*dbPath)
	} else if tlsOpts.ACMEDomain != "" {
		return fmt.Errorf("--acme-domain caches its certificates in the relay's data directory, and there is none (no absolute $XDG_DATA_HOME and no home directory): set XDG_DATA_HOME")
	}
	tlsConf, acmeMgr, err := relayTLS(tlsOpts)
	if err != nil {
		return err
	}
	if tlsConf != nil && *tlsUpstream {
		return usagef("--tls-terminated-upstream is for a relay behind a TLS-terminating proxy; this relay terminates TLS itself (--tls-cert or --acme-domain): drop one")
	}

	if *maxBlobMiB <= 0 || *blobQuotaMiB <= 0 {
		return usagef("--max-blob-mib and --blob-quota-mib must be positive")
	}
	if *minFree < 0 || *reserveMiB < 0 || *expiryDays < 0 {
		return usagef("--min-free-mib, --disk-reserve-mib and --account-expiry must not be negative")
	}
	// Checked here, not by the store or the server: a value they would refuse (or
	// quietly replace by a default) must not cost a new database first.
	switch strings.ToUpper(*syncMode) {
	case "FULL", "NORMAL":
	default:
		return usagef("--synchronous %q: want FULL (an accepted message survives power loss) or NORMAL", *syncMode)
	}
	if *maxCount <= 0 || *maxBytes <= 0 {
		return usagef("--max-queue-count and --max-queue-bytes must be positive (the defaults are %d and %d)", server.DefaultLimits.MaxQueueCount, server.DefaultLimits.MaxQueueBytes)
	}
	if *rate <= 0 && *rate != -1 {
		return usagef("--rate %d: want frames per second (default %d), or -1 for unlimited", *rate, server.DefaultLimits.FramesPerSecond)
	}
	if *burst <= 0 {
		return usagef("--burst %d: want a positive number of frames (default %d)", *burst, server.DefaultLimits.FrameBurst)
	}
	if tlsOpts.ACMEDomain == "" && flagSet(fs, "acme-http-addr") {
		return usagef("--acme-http-addr answers ACME challenges, and there is no --acme-domain: give --acme-domain NAME too, or drop it")
	}
	limits := server.Limits{MaxQueueCount: *maxCount, MaxQueueBytes: *maxBytes, FramesPerSecond: *rate, FrameBurst: *burst,
		MaxBlobBytes: *maxBlobMiB << 20, BlobQuotaBytes: *blobQuotaMiB << 20}
	storeOpts := storage.RelayOptions{Synchronous: *syncMode, MaxQueueCount: *maxCount, MaxQueueBytes: *maxBytes}
	limitsStarted, err := abuse.apply(&limits, &storeOpts, log)
	if err != nil {
		return err
	}
	// Bound before the relay's state is made or opened: an address that cannot be
	// served (a typo, a port in use) changes nothing.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		if running := relayRunningOn(*dbPath); running != nil {
			return running // the usual cause: this relay runs already; say so by name and pid
		}
		return fmt.Errorf("listening on %s (--addr): %w", *addr, err)
	}
	defer ln.Close() // after hs.Serve closed it, a no-op
	side, err := listenSide(*adminAddr, acmeMgr, *acmeHTTPAddr)
	if err != nil {
		if side.admin == nil && sameAddress(*adminAddr, *addr) {
			return fmt.Errorf("--admin-addr %s and --addr %s name the same address: give the admin port (/metrics, /healthz) another one, "+
				"e.g. --admin-addr %s, or --admin-addr \"\" to turn it off", *adminAddr, *addr, DefaultAdminAddr)
		}
		return err
	}
	defer side.close()
	cfg := server.Config{Logger: log, Limits: limits,
		Registration: *abuse.registration, TLSTerminatedUpstream: *tlsUpstream,
		AccountExpiry: time.Duration(*expiryDays) * 24 * time.Hour}
	var where string // what the relay's state is in, for the start banner
	var closeStore func() error
	// a cluster node's /healthz and /metrics
	wrap := func(public, admin http.Handler) (http.Handler, http.Handler) { return public, admin }
	if clusterOpts.enabled() {
		node, err := openClusterNode(ctx, clusterOpts, natsURLs, storeOpts, *initDB, stderr, log)
		if err != nil {
			return err
		}
		closeStore = sync.OnceValue(node.close)
		defer closeStore()
		node.configure(&cfg)
		wrap = node.handlers
		where = node.describe()
	} else {
		// Read before the database is made or opened: a bad key file changes nothing.
		if storeOpts.SealKey, err = loadRelayKey(*clusterOpts.keyFile); err != nil {
			return err
		}
		storeOpts.SealInPlace = true // the lock below keeps every other writer out
		if err := os.MkdirAll(filepath.Dir(*dbPath), 0o700); err != nil {
			return fmt.Errorf("creating the database directory: %w", err)
		}
		// Held while the relay runs: rotate-key refuses to change the key under it.
		lock, err := lockRelayDB(*dbPath, "pfschat relay", "start the relay")
		if err != nil {
			return err
		}
		defer lock.release()
		fresh, err := prepareRelayDB(*dbPath, *initDB)
		if err != nil {
			return err
		}
		store, err := openRelayStore(ctx, *dbPath, storeOpts)
		if err != nil {
			return err
		}
		closeStore = sync.OnceValue(store.Close)
		defer closeStore()
		// The database holds the relay's private key: only this user may read it. Only
		// once it opened as a relay's: a file pfschat did not write is left as it was.
		// (SQLite gave the -wal and -shm files the database file's permissions.)
		for _, p := range []string{*dbPath, *dbPath + "-wal", *dbPath + "-shm"} {
			if err := os.Chmod(p, 0o600); err != nil && (p == *dbPath || !errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("restricting the database file's permissions: %w", err)
			}
		}
		if err := checkRelayKey(ctx, store, fresh, *initDB); err != nil {
			return err
		}
		if !store.Sealed() {
			log.Warn("the relay's private key is stored unsealed in its database: a copy of the file (a backup, a disk image) is enough to impersonate the relay. "+
				"Seal it: pfschat relay new-key-file FILE, then start the relay with --relay-key-file FILE (README: The relay's key at rest)", "db", *dbPath)
		}
		cfg.Store = store
		cfg.Disk = server.DiskConfig{MinFreeBytes: uint64(*minFree) << 20, ReservePath: *dbPath + ".reserve", ReserveBytes: *reserveMiB << 20}
		where = "database: " + *dbPath
		if store.Sealed() {
			where += " (its secrets sealed under the relay key)"
		}
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer TuneGC(GCSettings{Percent: *gcPercent, MemoryLimit: *memLimit << 20, HeapFloor: *heapFloor << 20,
		Traffic: srv.MessagesAccepted})()

	// TCP connections are capped from accept on, before their HTTP request or TLS
	// handshake (the relay's own caps count upgraded WebSockets): twice the upgraded
	// cap per address, and in all the upgraded cap plus half the descriptors it keeps
	// back, so that half-open handshakes cannot take every descriptor.
	lim, total := srv.Limits(), 0
	if lim.MaxConnections > 0 { // ≤ 0: no descriptor limit, no cap in all
		total = lim.MaxConnections + 128
	}
	ln = server.CapListener(ln, 2*lim.ConnectionsPerAddress, total, abuse.trusted)
	ln = abuse.listener(ln)
	publicH, adminH := wrap(srv, srv.AdminHandler())
	hs := &http.Server{Handler: publicH, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "ws"
	if tlsConf != nil {
		scheme = "wss"
		hs.TLSConfig = tlsConf
		hs.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no HTTP/2: WebSockets need HTTP/1.1
		// ParkingListener: idle connections park on the socket, below TLS.
		ln = tls.NewListener(server.ParkingListener(ln), tlsConf)
	}
	stopSide := side.serve(log, adminH, acmeMgr, stdout)
	defer stopSide()
	switch {
	case *tlsUpstream:
		log.Warn("--tls-terminated-upstream: TLS ends at a proxy in front of this relay; logins are bound to no channel, so a man in the middle between clients and the proxy can relay them. Prefer TCP passthrough (README: Run a relay on the internet)")
	case tlsConf == nil && !isLoopbackAddr(ln.Addr()):
		log.Warn("serving plain ws:// on an address that is not loopback: clients refuse it unless they pass --insecure-ws; use --tls-cert/--tls-key or --acme-domain")
	}
	shown, every := shownAddr(*addr, ln.Addr())
	fmt.Fprintf(stdout, "pfschat relay listening on %s://%s%s%s\n", scheme, shown, relay.WSPath, every)
	fmt.Fprintf(stdout, "relay key fingerprint: %s\n", srv.Fingerprint())
	fmt.Fprintln(stdout, where)
	limitsStarted()
	log.Info("relay started", "addr", ln.Addr().String(), "tls", tlsConf != nil, "state", where, "fingerprint", srv.Fingerprint())

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
		err = fmt.Errorf("closing the relay's store: %w", cerr)
	}
	log.Info("relay stopped")
	fmt.Fprintln(stdout, "relay stopped")
	return err
}

// DefaultAdminAddr is where `pfschat relay` serves /metrics unless told otherwise.
const DefaultAdminAddr = "127.0.0.1:7879"

// sideListeners are the admin port (/metrics, /healthz) and, with ACME, the HTTP-01
// challenge listener, bound before the relay's state is opened; nil when off.
// sameAddress reports whether listen addresses a and b name the same port on hosts
// that overlap (the same, or either every address: "", 0.0.0.0, ::).
func sameAddress(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	every := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || every(ha) || every(hb)
}

type sideListeners struct{ admin, acme net.Listener }

func listenSide(adminAddr string, acmeMgr *autocert.Manager, acmeHTTPAddr string) (sideListeners, error) {
	var side sideListeners
	var err error
	if adminAddr != "" {
		if side.admin, err = net.Listen("tcp", adminAddr); err != nil {
			return side, fmt.Errorf("listening on %s (--admin-addr; \"\" turns the admin port off): %w", adminAddr, err)
		}
	}
	if acmeMgr != nil && acmeHTTPAddr != "" {
		if side.acme, err = net.Listen("tcp", acmeHTTPAddr); err != nil {
			side.close()
			return side, fmt.Errorf("listening on %s (--acme-http-addr; \"\" leaves ACME to TLS-ALPN-01 on --addr): %w", acmeHTTPAddr, err)
		}
	}
	return side, nil
}

func (s sideListeners) close() {
	for _, ln := range []net.Listener{s.admin, s.acme} {
		if ln != nil {
			ln.Close()
		}
	}
}

// serve serves the admin port and the ACME challenges on the bound listeners. The
// returned function stops them.
func (s sideListeners) serve(log *slog.Logger, admin http.Handler, acmeMgr *autocert.Manager, stdout io.Writer) func() {
	var servers []*http.Server
	serve := func(ln net.Listener, h http.Handler) {
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		servers = append(servers, hs)
		go hs.Serve(ln)
	}
	if s.admin != nil {
		serve(s.admin, admin)
		if a := s.admin.Addr(); !isLoopbackAddr(a) {
			log.Warn("the admin port (/metrics) is not on loopback: anyone who reaches it reads the relay's counters", "addr", a.String())
		}
		fmt.Fprintf(stdout, "admin (metrics) on http://%s/metrics\n", s.admin.Addr())
	}
	if s.acme != nil {
		serve(s.acme, acmeHTTPHandler(acmeMgr))
		log.Info("answering ACME HTTP-01 challenges", "addr", s.acme.Addr().String())
	}
	return func() {
		for _, hs := range servers {
			hs.Close()
		}
	}
}

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// shownAddr is the listening address as the start-up line shows it: the port bound,
// with the host given for a wildcard (Go reports 0.0.0.0 as [::], which reads as
// IPv6 only), and then a note that it is every address.
func shownAddr(given string, bound net.Addr) (hostPort, note string) {
	ta, ok := bound.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return bound.String(), ""
	}
	host, _, _ := net.SplitHostPort(given)
	return net.JoinHostPort(cmp.Or(host, "0.0.0.0"), strconv.Itoa(ta.Port)), " (every address of this machine)"
}
