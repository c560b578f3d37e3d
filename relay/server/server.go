package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// Limits bound what one client can make the relay do. Zero fields take the defaults
// from DefaultLimits.
type Limits struct {
	MaxFrameBytes   int           // largest frame accepted (default 64 KiB, also the maximum)
	MaxQueueCount   int           // announced; enforced by the store (storage.RelayOptions)
	MaxQueueBytes   int64         // announced; enforced by the store (storage.RelayOptions)
	MaxTTL          time.Duration // longest a message waits for its recipient (30 days)
	FramesPerSecond int           // sustained frames per second per connection; <0 = unlimited
	FrameBurst      int           // frames allowed in a burst above the rate
	// TextBytesPerSecond is the sustained bytes of text messages per connection (512
	// KiB; 0 takes it, or turns it off with FramesPerSecond off; <0 = unlimited), and
	// TextBytesBurst their burst (2 MiB, at least MaxFrameBytes). Decoding JSON costs
	// about 20 µs a KiB: without it a connection could send 200 frames of 64 KiB a
	// second within the frame rate.
	TextBytesPerSecond int
	TextBytesBurst     int
	// AckIDsPerSecond is the sustained ids a second a connection may name in acks
	// beyond the messages delivered to it (1024; 0 takes it, or turns it off with
	// FramesPerSecond off; <0 = unlimited), and AckIDBurst their burst (4096, at least
	// relay.MaxAckIDs). Every id an ack names costs the committer a deletion, whether
	// or not it was ever delivered: compact acks of 1,024 made-up ids, from eight
	// connections of one account, kept one of two cores busy.
	AckIDsPerSecond    int
	AckIDBurst         int
	OutboundQueue      int           // frames waiting for a slow reader before it is disconnected
	MaxInflightSends   int           // sends per connection waiting for the group commit
	MaxOneTimePreKeys  int           // one-time prekeys stored per kind per card (100)
	LowPreKeyThreshold int           // notify the owner below this many one-time prekeys (20)
	PingInterval       time.Duration // how often the relay pings an idle connection
	WriteTimeout       time.Duration // a single write may take at most this long
	MaxBatch           int           // messages per group commit at most

	// Abuse limits (PROTOCOL.md "Limits and abuse"). Zero takes the default; -1 turns
	// a count limit off.
	LoginTimeout                time.Duration // an unauthenticated connection is closed after this (10 s)
	MessageTimeout              time.Duration // a message is closed unless whole this long after its first frame (30 s)
	ConnectionsPerAddress       int           // open connections per IPv4 address or IPv6 /64 (64)
	MaxConnections              int           // open connections in total (default: below the descriptor limit)
	FetchBundlePerMinute        int           // fetch_bundle per requester (30 a minute, ...)
	FetchBundleBurst            int           // ... burst 10)
	FetchBundlePerTargetPerHour int           // bundles with one-time keys per target, from all requesters (60)
	LowPreKeysInterval          time.Duration // low_prekeys notices per card at most once per this (10 min)
	LookupsPerMinute            int           // lookup per requester (60 a minute, ...)
	LookupBurst                 int           // ... burst 20)
	UploadPreKeysPerHour        int           // upload_prekeys frames per name, a replaced card's successor included (60 an hour, ...)
	UploadPreKeysBurst          int           // ... burst 30: a full rotation of 100 keys of each kind is 5 frames)
	AccountWritesPerHour        int           // replace_card, block, unblock, set_recovery per name (600 an hour, ...)
	AccountWritesBurst          int           // ... burst 200: each is a synced transaction on the one writer)
	RegistrationsPerHour        int           // register per source address (10 an hour)
	RecoveryPerNamePerHour      int           // recover attempts per target name (5 an hour, burst 5)
	RecoveryPerAddressPerHour   int           // recover attempts per source address (10 an hour, burst 10)

	// Blobs (PROTOCOL.md "Blobs"). Zero takes the default.
	MaxBlobBytes   int64         // the largest blob (100 MiB)
	BlobQuotaBytes int64         // an account's blobs, uploading and stored, at most (1 GiB; -1: none)
	BlobTTL        time.Duration // how long a committed blob is kept at most (30 days)
	BlobUploadTTL  time.Duration // how long an upload may stay incomplete (7 days)
}

// DefaultLimits are the relay's limits unless configured otherwise.
var DefaultLimits = Limits{
	MaxFrameBytes:      relay.MaxFrameSize,
	MaxQueueCount:      10000,
	MaxQueueBytes:      64 << 20,
	MaxTTL:             30 * 24 * time.Hour,
	FramesPerSecond:    200,
	FrameBurst:         400,
	TextBytesPerSecond: 512 << 10,
	TextBytesBurst:     2 << 20,
	AckIDsPerSecond:    1024,
	AckIDBurst:         4096,
	OutboundQueue:      1024,
	MaxInflightSends:   256,
	MaxOneTimePreKeys:  100,
	LowPreKeyThreshold: 20,
	PingInterval:       30 * time.Second,
	WriteTimeout:       10 * time.Second,
	MaxBatch:           1024,

	LoginTimeout:                10 * time.Second,
	MessageTimeout:              30 * time.Second,
	ConnectionsPerAddress:       64,
	FetchBundlePerMinute:        30,
	FetchBundleBurst:            10,
	FetchBundlePerTargetPerHour: 60,
	LowPreKeysInterval:          relay.LowPreKeysWindow,
	LookupsPerMinute:            60,
	LookupBurst:                 20,
	UploadPreKeysPerHour:        60,
	UploadPreKeysBurst:          30,
	AccountWritesPerHour:        600,
	AccountWritesBurst:          200,
	RegistrationsPerHour:        10,
	RecoveryPerNamePerHour:      5,
	RecoveryPerAddressPerHour:   10,

	MaxBlobBytes:   100 << 20,
	BlobQuotaBytes: 1 << 30,
	BlobTTL:        30 * 24 * time.Hour,
	BlobUploadTTL:  7 * 24 * time.Hour,
}

// rateDefaults fills in a rate that rides on the frame rate (text bytes, acked ids):
// 0 takes the default, or turns it off (-1) with the frame rate off; a burst ≤ 0 takes
// the default, and none is below minBurst (one frame's worth, which must fit).
func rateDefaults(rate, burst, defRate, defBurst, minBurst int, framesOff bool) (int, int) {
	if rate == 0 {
		rate = defRate
		if framesOff {
			rate = -1
		}
	}
	if burst <= 0 {
		burst = defBurst
	}
	return rate, max(burst, minBurst)
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxFrameBytes <= 0 || l.MaxFrameBytes > relay.MaxFrameSize {
		l.MaxFrameBytes = d.MaxFrameBytes
	}
	if l.MaxQueueCount <= 0 {
		l.MaxQueueCount = d.MaxQueueCount
	}
	if l.MaxQueueBytes <= 0 {
		l.MaxQueueBytes = d.MaxQueueBytes
	}
	if l.MaxTTL <= 0 {
		l.MaxTTL = d.MaxTTL
	}
	if l.FramesPerSecond == 0 {
		l.FramesPerSecond = d.FramesPerSecond
	}
	if l.FrameBurst <= 0 {
		l.FrameBurst = d.FrameBurst
	}
	l.TextBytesPerSecond, l.TextBytesBurst = rateDefaults(l.TextBytesPerSecond, l.TextBytesBurst, d.TextBytesPerSecond, d.TextBytesBurst, l.MaxFrameBytes, l.FramesPerSecond < 0)
	l.AckIDsPerSecond, l.AckIDBurst = rateDefaults(l.AckIDsPerSecond, l.AckIDBurst, d.AckIDsPerSecond, d.AckIDBurst, relay.MaxAckIDs, l.FramesPerSecond < 0)
	if l.OutboundQueue <= 0 {
		l.OutboundQueue = d.OutboundQueue
	}
	if l.MaxInflightSends <= 0 {
		l.MaxInflightSends = d.MaxInflightSends
	}
	if l.MaxOneTimePreKeys <= 0 {
		l.MaxOneTimePreKeys = d.MaxOneTimePreKeys
	}
	if l.LowPreKeyThreshold <= 0 {
		l.LowPreKeyThreshold = d.LowPreKeyThreshold
	}
	if l.PingInterval <= 0 {
		l.PingInterval = d.PingInterval
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = d.MaxBatch
	}
	l = l.abuseDefaults()
	if l.MaxBlobBytes <= 0 {
		l.MaxBlobBytes = d.MaxBlobBytes
	}
	if l.BlobQuotaBytes == 0 {
		l.BlobQuotaBytes = d.BlobQuotaBytes
	}
	if l.BlobTTL <= 0 {
		l.BlobTTL = d.BlobTTL
	}
	if l.BlobUploadTTL <= 0 {
		l.BlobUploadTTL = d.BlobUploadTTL
	}
	return l
}

// Config configures a relay. Store is required.
type Config struct {
	// Store is the SQLite store: directory, queue (unless Queue is set), blobs (unless
	// Blobs is set), disk guard, invites. The default.
	Store *storage.Relay
	// Dir is the directory when Store is nil (a relay node on a shared store, see
	// relay/cluster); Queue is required with it. The disk guard and the SQLite blob
	// files are Store's only.
	Dir    Store
	Logger *slog.Logger // nil = discard
	Limits Limits
	Clock  func() time.Time // nil = time.Now

	// Queue and Hub replace the store's queue and the in-memory hub (scale-out seams).
	Queue Queue
	Hub   Hub

	// TLSTerminatedUpstream says a trusted proxy terminates TLS in front of the relay
	// (pfschat relay --tls-terminated-upstream): the relay cannot see the client's TLS
	// connection, so logins are bound to no channel (the binding is zeros), and the
	// hello says so (channel_binding "tls-terminated-upstream"). A request that
	// reaches the relay over TLS itself is still bound to its exporter.
	TLSTerminatedUpstream bool
	// Registration is the registration policy: RegistrationOpen (""), RegistrationInvite
	// (invite codes in Store) or RegistrationClosed.
	Registration string
	// AccountExpiry frees the names of accounts not logged in for this long (0 = never);
	// checked at start and hourly. See accounts.go.
	AccountExpiry time.Duration

	// Disk is the disk high-water mark (off unless MinFreeBytes is set; Dir defaults to
	// the store's directory). See diskspace.go.
	Disk DiskConfig

	// Blobs stores attachments' blobs; nil: files beside Store's database
	// (Store.Blobs("")). See blobs.go.
	Blobs BlobStore
}

// metaRelayKey is the relay store's meta key holding the relay's Ed25519 seed.
const metaRelayKey = "relay_ed25519_seed"

// Server is the relay: an http.Handler serving /v2/ws (the protocol), /v1/ws (an
// "upgrade pfschat" error for old clients) and /healthz on the public port;
// AdminHandler serves /metrics (and /healthz) for the admin port. Create it with
// New; stop it with Shutdown.
type Server struct {
	// preKeyLocks serialise a card's prekey uploads on this node (preKeyLock). The
	// store judges each upload's count in its write (PutPreKeys), so this only spares
	// a shared store's compare-and-sets from losing to one another.
	preKeyLocks [64]sync.Mutex
	// testHookPing, set by tests before any connection, runs when a ping arrives.
	testHookPing func(*conn)
	// testHookLoggedIn, set by tests, runs on a connection's reader once its login is
	// answered.
	testHookLoggedIn atomic.Pointer[func()]

	dir    Store
	queue  Queue
	hub    Hub
	log    *slog.Logger
	limits Limits
	now    func() time.Time
	m      *metrics
	cm     *committer

	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	upgrader websocket.Upgrader
	mux      *http.ServeMux
	admin    *http.ServeMux
	upstream bool // Config.TLSTerminatedUpstream

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup // every connection goroutine
	nextID  atomic.Uint64

	accounts sync.Map // name -> *account (replace_card updates, account deletion removes)
	stopPing chan struct{}

	ab           *abuse        // abuse limits (limits.go)
	registration string        // registration policy
	invites      Store         // invite codes, for RegistrationInvite
	recovery     recoveryStore // recovery verifiers (recovery.go); nil: none kept
	recoveryKey  []byte        // their HMAC key
	disk         *diskGuard

	accountExpiry time.Duration
	touched       sync.Map      // name -> time.Time its last login was recorded
	deletions     atomic.Uint64 // accounts deleted since start (connections' name caches)
	sweepDone     chan struct{}
	touches       chan login // logins to record (accounts.go)
	touchDone     chan struct{}
	keyRotations  [][]byte  // served in the hello (relaykey.go)
	blocks        blockList // who blocks whom (blocks.go)
	blockStore    Store     // where blocks are kept; nil: blocking is refused

	accountGen  atomic.Uint64 // bumped by a shared directory's changes (changes.go)
	changesDone chan struct{} // closed when the change feed stops; nil: none

	blobs         BlobStore // nil: no blobs
	blobKey       []byte    // the capability HMAC key
	blobSweepDone chan struct{}
	blobGen       atomic.Uint64 // bumped when blobs are deleted: connections look again (blobs.go)
}

// account is a cached directory entry.
type account struct {
	name   string
	cardID string
	card   *ratchet.Card
	export string
}

var writeBufferPool sync.Pool

// New loads (or on first start creates) the relay key from the store and starts
// the group committer. The caller keeps ownership of the store: Shutdown does not
// close it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil && cfg.Dir == nil {
		return nil, errors.New("relay: Config.Store (or Config.Dir with Config.Queue) is required")
	}
	if cfg.Store == nil && cfg.Queue == nil {
		return nil, errors.New("relay: Config.Dir needs Config.Queue")
	}
	s := &Server{
		log:    cfg.Logger,
		limits: cfg.Limits.withDefaults(),
		now:    cfg.Clock,
		m:      newMetrics(),
		conns:  make(map[*conn]struct{}),
		hub:    cfg.Hub,
		queue:  cfg.Queue,

		upstream: cfg.TLSTerminatedUpstream,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.hub == nil {
		s.hub = NewMemHub()
	}
	if cfg.Store != nil {
		s.dir = cfg.Store
		if s.queue == nil {
			s.queue = cfg.Store
		}
	} else {
		s.dir = cfg.Dir
	}
	if err := s.initAbuse(cfg); err != nil {
		return nil, err
	}
	if err := s.loadKey(ctx); err != nil {
		return nil, err
	}
	if err := s.initRecovery(ctx); err != nil {
		return nil, err
	}
	if cfg.Disk.Dir == "" && cfg.Store != nil {
		cfg.Disk.Dir = filepath.Dir(cfg.Store.Path())
	}
	if cfg.Disk.InFile == nil && cfg.Store != nil {
		cfg.Disk.InFile = cfg.Store.FreeBytes
	}
	s.disk = newDiskGuard(cfg.Disk, s.log)
	if err := s.disk.start(); err != nil {
		return nil, err
	}
	s.accountExpiry = cfg.AccountExpiry
	if err := s.loadKeyRotations(ctx); err != nil {
		return nil, err
	}
	if err := s.loadBlocks(ctx, s.dir); err != nil {
		return nil, err
	}
	s.stopPing = make(chan struct{})
	if err := s.initBlobs(ctx, cfg); err != nil {
		return nil, err
	}
	s.upgrader = websocket.Upgrader{
		// ReadBufferSize 0: gorilla reads through the bufio.Reader hijackWrapper hands
		// it (readBufferSize bytes), so the read loop can see whether data is buffered.
		ReadBufferSize:   0,
		WriteBufferSize:  4096,
		WriteBufferPool:  &writeBufferPool,
		HandshakeTimeout: 10 * time.Second,
		// Any origin: the protocol authenticates by key proof, not by ambient cookies,
		// so a web page gains nothing a plain client would not have.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(relay.WSPath, s.serveWS)
	s.mux.HandleFunc(relay.V1WSPath, s.serveV1)
	s.mux.HandleFunc("/healthz", s.serveHealth)
	s.admin = http.NewServeMux()
	s.admin.HandleFunc("/metrics", s.serveMetrics)
	s.admin.HandleFunc("/healthz", s.serveHealth)
	expire := s.dir.Expire
	if e, ok := s.queue.(queueExpirer); ok {
		expire = e.Expire // a queue of its own expires its own messages
	}
	s.cm = newCommitter(s.queue, s.hub, s.log, s.m, s.limits.MaxBatch, s.now, expire)
	s.cm.owns = s.ackerOwns
	go s.cm.run()
	go s.pinger()
	s.sweepDone = make(chan struct{})
	go s.sweeper()
	s.touches, s.touchDone = make(chan login, 4096), make(chan struct{})
	go s.toucher()
	s.startChangeFeed()
	return s, nil
}

func (s *Server) loadKey(ctx context.Context) error {
	seed, err := s.dir.Meta(ctx, metaRelayKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return fmt.Errorf("relay: generating the relay key: %w", err)
		}
		if err := s.createMeta(ctx, metaRelayKey, &seed); err != nil {
			return fmt.Errorf("relay: saving the relay key: %w", err)
		}
	case err != nil:
		return fmt.Errorf("relay: loading the relay key: %w", err)
	case len(seed) != ed25519.SeedSize:
		return fmt.Errorf("relay: stored relay key has %d bytes, want %d: the database is damaged", len(seed), ed25519.SeedSize)
	}
	s.priv = ed25519.NewKeyFromSeed(seed)
	s.pub = s.priv.Public().(ed25519.PublicKey)
	return nil
}

// HasRelayKey reports whether the store (*storage.Relay, or a shared directory) holds
// a relay key (New makes one when not).
func HasRelayKey(ctx context.Context, st interface {
	Meta(ctx context.Context, key string) ([]byte, error)
}) (bool, error) {
	_, err := st.Meta(ctx, metaRelayKey)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("relay: reading the relay key: %w", err)
	}
	return true, nil
}

// RelayKey is the relay's public key; clients pin it.
func (s *Server) RelayKey() ed25519.PublicKey { return s.pub }

// MessagesAccepted is how many messages the relay has accepted (stored) since it
// started, duplicates not counted.
func (s *Server) MessagesAccepted() uint64 { return s.m.accepted.Load() }

// Fingerprint is the human-readable fingerprint of the relay key.
func (s *Server) Fingerprint() string { return ratchet.Fingerprint(s.pub) }

// ServeHTTP serves the public port: /v2/ws, /v1/ws (the upgrade error) and /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AdminHandler serves the admin port (loopback by default): /metrics and /healthz.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Limits are the limits the relay runs with, defaults and derived values filled in
// (MaxConnections from the descriptor limit when it was 0).
func (s *Server) Limits() Limits { return s.limits }

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.disk.storageFull() {
		io.WriteString(w, "degraded: storage_full\n") // 200: acks must still reach it
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	depth := s.dir.QueueDepth
	if d, ok := s.queue.(queueDepther); ok {
		depth = d.QueueDepth
	}
	s.m.write(r.Context(), w, depth)
	s.disk.writeMetrics(w)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		http.Error(w, "relay is shutting down", http.StatusServiceUnavailable)
		return
	}
	// The channel binding: the TLS exporter of this connection when the relay
	// terminates TLS itself, else zeros (plain ws://, or TLS terminated upstream).
	var binding [relay.BindingSize]byte
	mode := relay.BindingNone
	if r.TLS != nil {
		exp, err := relay.TLSExporter(r.TLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		copy(binding[:], exp)
		mode = relay.BindingTLSExporter
	} else if s.upstream {
		mode = relay.BindingTLSTerminatedUpstream
	}
	nonce, nonceErr := relay.ParseNonce(r.URL.Query().Get(relay.NonceParam))
	hw := &hijackWrapper{ResponseWriter: w, size: readBufferSize}
	if r.TLS != nil {
		hw.size = readBufferSizeTLS
	}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		return // the upgrader has answered the HTTP request
	}
	if nonceErr != nil {
		refuse(ws, s.m, relay.CodeBadField, "the URL needs ?"+relay.NonceParam+"= with a fresh 32-byte nonce (unpadded base64url): see PROTOCOL.md, Connection start")
		return
	}
	addrKey, ok := s.admitConn(ws, r.RemoteAddr)
	if !ok {
		return
	}
	c := newConn(s, ws)
	copy(c.nonce[:], nonce)
	c.binding = binding
	c.bindingMode = mode
	c.addrKey = addrKey
	c.br = hw.br
	if hw.fc != nil {
		// gorilla's Upgrade resets the reader it is handed onto the hijacked connection
		// (to learn its size): put the frame counter back under it, before anything is
		// read.
		hw.br.Reset(hw.fc)
		hw.fc.tooMany = c.tooManyFrames
	}
	c.waiter, c.park = readWaiterFor(ws.NetConn())
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "relay is shutting down"), time.Now().Add(time.Second))
		ws.Close()
		c.loginTimer.Stop()
		s.ab.release(addrKey)
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2) // the read loop, and the connection's teardown by its last writer
	s.mu.Unlock()
	s.m.connections.Add(1)
	// The read loop runs on its own goroutine, not on the HTTP handler's: the handler
	// returns now and its (grown) stack goes away, which keeps idle connections small.
	// Writers come and go with traffic (see writeLoop).
	go c.readLoop()
}

// serveV1 answers a version-1 client: an error frame unsupported_version telling it to
// upgrade, then a close frame.
func (s *Server) serveV1(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	refuse(ws, s.m, relay.CodeUnsupportedVersion, "this relay speaks protocol version 2 at "+relay.WSPath+"; upgrade pfschat")
}

// refuse sends an error frame and a close frame (1008) on a connection the relay will
// not serve, and closes it.
func refuse(ws *websocket.Conn, m *metrics, code, msg string) {
	m.errorSent(code)
	deadline := time.Now().Add(5 * time.Second)
	ws.SetWriteDeadline(deadline)
	ws.WriteMessage(websocket.TextMessage, relay.EncodeFrame(&relay.Frame{Type: relay.TypeError, Code: code, Message: msg}))
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(code+": "+msg, 120)), deadline)
	ws.Close()
}

// pingSlots is how many ticks an interval's pings are spread over: a relay with
// 10,000 connections would otherwise write 10,000 pings, and read as many pongs, in
// one burst every PingInterval — a latency spike for every message around it.
const pingSlots = 16

// pinger pings every connection once each PingInterval, so dead peers are noticed
// (their read deadline passes) and idle NAT mappings stay open: a sixteenth of them
// every sixteenth of the interval.
func (s *Server) pinger() {
	t := time.NewTicker(max(s.limits.PingInterval/pingSlots, time.Millisecond))
	defer t.Stop()
	var due []*conn
	for tick := 0; ; tick++ {
		select {
		case <-t.C:
		case <-s.stopPing:
			return
		}
		due = s.dueForPing(tick, due[:0])
		for i, c := range due {
			c.ping()
			due[i] = nil
		}
	}
}

// dueForPing appends to buf the connections pinged at tick: a connection's slot is its
// id modulo pingSlots (ids are given in turn, so the slots fill evenly), and comes
// round once every pingSlots ticks.
func (s *Server) dueForPing(tick int, buf []*conn) []*conn {
	slot := uint64(tick % pingSlots)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.id%pingSlots == slot {
			buf = append(buf, c)
		}
	}
	return buf
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.ab.release(c.addrKey)
	s.m.connections.Add(-1)
}

// Shutdown drains the relay: it refuses new connections, stops reading from every
// connection, commits every send already received (so each gets its answer), tells
// clients it is going away and closes them. It does not close the store.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closing.Swap(true) {
		s.wg.Wait()
		return nil
	}
	close(s.stopPing)
	s.disk.close()
	<-s.sweepDone
	if s.blobSweepDone != nil {
		<-s.blobSweepDone
	}
	<-s.touchDone
	if s.changesDone != nil {
		<-s.changesDone
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}
	for _, c := range conns {
		select {
		case <-c.readerDone:
		case <-ctx.Done():
		}
	}
	s.cm.stop() // every accepted send is now committed and answered
	for _, c := range conns {
		c.goingAway()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.ws.Close()
		}
		<-done
		return fmt.Errorf("relay: shutdown cut short: %w", ctx.Err())
	}
}

// cachedAccount returns the account for name, from the cache or the store.
func (s *Server) cachedAccount(ctx context.Context, name string) (*account, error) {
	if v, ok := s.accounts.Load(name); ok {
		return v.(*account), nil
	}
	gen := s.accountGen.Load()
	a, err := s.dir.AccountByName(ctx, name)
	if err != nil {
		return nil, err
	}
	acc, err := accountFromStore(a)
	if err != nil {
		return nil, err
	}
	if s.accountGen.Load() == gen { // else another node changed an account meanwhile
		s.accounts.Store(name, acc)
	}
	return acc, nil
}

func accountFromStore(a storage.Account) (*account, error) {
	card, err := ratchet.ImportCard(string(a.Card))
	if err != nil {
		return nil, fmt.Errorf("relay: stored card for %q does not parse: %w", a.Name, err)
	}
	return &account{name: a.Name, cardID: a.CardID, card: card, export: string(a.Card)}, nil
}

// readBufferSize is each connection's read buffer: a send frame with a 256-byte body
// is about 450 bytes, so most frames arrive in one read.
const readBufferSize = 1024

// readBufferSizeTLS is the read buffer over TLS, where a bigger one saves no system
// call (tls.Conn holds each record's plaintext and fills it with copies): 512 bytes
// less per idle connection. It must stay over 256 bytes: gorilla takes a smaller one
// as a sign to make its own 4 KiB buffer, which the read loop would not see (it would
// park with data buffered).
const readBufferSizeTLS = 512

// hijackWrapper gives gorilla a fresh, small bufio.Reader over the hijacked
// connection (instead of net/http's 4 KiB one) and remembers it.
type hijackWrapper struct {
	http.ResponseWriter
	size int // of br
	br   *bufio.Reader
	fc   *frameCounter // under br
}

func (h *hijackWrapper) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("relay: response writer cannot hijack")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() > 0 {
		// The client sent data before the handshake finished; let gorilla refuse it.
		return nc, brw, nil
	}
	// Only reads go through the frame counter (serve puts it under br): gorilla and
	// the write loop write to nc itself (writev needs the *net.TCPConn).
	h.fc = &frameCounter{r: nc}
	h.br = bufio.NewReaderSize(h.fc, h.size)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
}
