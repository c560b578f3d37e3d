package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/fifo"
)

// Errors of the client itself; error frames from the relay are *relay.ProtocolError.
var (
	// ErrRelayKeyMismatch: the relay presented a key other than the pinned one.
	ErrRelayKeyMismatch = errors.New("relay: relay key does not match the pinned key (possible impersonation)")
	// ErrRelayProof: the relay's hello signature over this connection's nonce,
	// challenge and channel binding does not verify under the key it names: it does
	// not hold that key, or a man in the middle sits on the connection. Nothing was
	// sent.
	ErrRelayProof = errors.New("relay: the relay did not prove it holds its key on this connection (possible impersonation or interception)")
	// ErrInsecureTransport: a ws:// URL to a host other than loopback, refused before
	// dialling (use wss://, or Config.InsecureWS / --insecure-ws on a private network).
	// ErrSpeaksTLS: a ws:// URL to a port that speaks TLS (a relay with --tls-* or
	// --acme-*, which answers plain HTTP "400 Bad Request"): use wss://.
	ErrSpeaksTLS         = errors.New("relay: the relay speaks TLS on that port")
	ErrInsecureTransport = errors.New("relay: plain ws:// is only allowed to loopback (127.0.0.0/8, ::1, localhost); use wss://, or --insecure-ws on a private network")
	// ErrNotConnected: a request was made while no connection is up.
	ErrNotConnected = errors.New("relay: not connected")
	// ErrConnectionLost: the connection dropped before the answer arrived; the request
	// may or may not have taken effect (sends are safe to repeat with the same client id).
	ErrConnectionLost = errors.New("relay: connection lost before the answer arrived")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("relay: client closed")
	// ErrUnsupportedVersion: the relay speaks no protocol version this client knows.
	ErrUnsupportedVersion = errors.New("relay: no common protocol version")
	// ErrNoIdentity: the request needs a login, and the client has no identity.
	ErrNoIdentity = errors.New("relay: request needs an identity (client is anonymous)")
	// ErrPushesBacklogged: the pushes waiting for the consumer reached
	// Config.MaxQueuedPushBytes; the connection was ended, and Run makes the next once
	// the consumer has taken half of them. The relay delivers what was not acked again.
	ErrPushesBacklogged = errors.New("relay: too much delivered and not yet taken; reconnecting once it is")
	// ErrBlobStalled: a blob request had no answer within Config.BlobAnswerTimeout
	// while the connection stayed up; the transfer stopped (resume it later).
	ErrBlobStalled = errors.New("relay: no answer to a blob request in time")
	// ErrPingFlood: the relay pinged far more often than a relay needs to (over
	// relayPingBurst at once, or relayPingRate a second over time). Every ping must be
	// answered with a pong, a write each: the connection is ended rather than let a
	// hostile relay keep this client writing, and Run connects again after its backoff.
	ErrPingFlood = errors.New("relay: the relay sent pings far more often than a relay needs to; reconnecting")
)

// relayPingBurst and relayPingRate bound the pings a connection answers: far above
// what a relay needs (pfschat's pings an idle connection every 30 seconds, and a test
// relay every 20 ms), far below a flood. Clients are held to 200 frames a second of
// every kind.
const (
	relayPingBurst = 200
	relayPingRate  = rate.Limit(100) // per second
)

// Config configures a Client.
type Config struct {
	// URL is wss://host[:port] or ws://127.0.0.1:port (/v2/ws is implied), or several
	// such URLs separated by commas: the nodes of one relay cluster, tried in order on
	// every (re)connect until one answers (SplitURLs). They must present the same relay
	// key: the pin is per relay key, not per URL.
	URL            string
	Identity       *ratchet.IdentityKey // nil = anonymous (register and lookup only)
	Card           *ratchet.Card        // own relay-signed card (login); nil for anonymous
	PinnedRelayKey ed25519.PublicKey    // nil = pin the key the relay proves it holds (TOFU)
	Logger         *slog.Logger         // nil = discard
	Invite         string               // invite code Register sends (a relay with --registration invite)
	// RecoveryProof is the proof of the recovery code Register sets for the name
	// (relay.RecoveryCode.Proof; nil: none).
	RecoveryProof []byte

	// RootCAs verifies the relay's TLS certificate (nil = the system roots, which
	// honour SSL_CERT_FILE and SSL_CERT_DIR).
	RootCAs *x509.CertPool
	// InsecureWS allows ws:// to hosts other than loopback (a private network). Every
	// such connection logs a warning: its logins are bound to no channel, so a
	// forwarding man in the middle can relay them.
	InsecureWS bool

	// OnRelayKeyRotated is called after a connection to a relay whose key differs from
	// the pinned one, with the chain of rotation statements (signed by the pinned key,
	// then by each next one) that vouches for it; the client then pins the new key.
	OnRelayKeyRotated func(chain []relay.KeyRotation)

	// Backoff bounds for Run's reconnects (defaults 250ms and 30s).
	MinBackoff, MaxBackoff time.Duration

	// BlobAnswerTimeout is how long an upload or download waits for the answer to one
	// of its requests before it fails with ErrBlobStalled (default 2 minutes: a
	// 256 KiB run over a 20 kbit/s link). A relay that answers pings but not the
	// request would otherwise hold the transfer for ever.
	BlobAnswerTimeout time.Duration

	// MaxQueuedPushBytes bounds what waits in Pushes: a push's body and 256 bytes
	// (default 96 MiB, above a relay's default queue of 64 MiB and 10,000 messages,
	// which it may send at once as a backlog). A push that would pass it ends the
	// connection (ErrPushesBacklogged): a relay cannot make the client hold more than
	// this, however fast it sends.
	MaxQueuedPushBytes int64

	// RetryKeyMismatch makes Run keep retrying (with its backoff) after a relay
	// presented a key other than the pinned one, instead of returning: a long-running
	// program (the UI, the daemon) comes back by itself when the pinned relay returns,
	// and SetPinnedRelayKey re-pins by hand. Nothing is ever sent on a mismatched
	// connection either way.
	RetryKeyMismatch bool
}

// RelayKeyMismatchError is ErrRelayKeyMismatch with both keys: the pinned one and
// the one the relay presented and proved it holds on this connection (the hello's
// signature verified under it). errors.Is(err, ErrRelayKeyMismatch) holds.
type RelayKeyMismatchError struct {
	Pinned, Presented ed25519.PublicKey
	// Chain is why no rotation statement vouched for the new key.
	Chain error
}

func (e *RelayKeyMismatchError) Error() string {
	return fmt.Sprintf("%v: pinned %s, relay presented %s, with no rotation statement from the pinned key (%v)", ErrRelayKeyMismatch,
		ratchet.Fingerprint(e.Pinned), ratchet.Fingerprint(e.Presented), e.Chain)
}

func (e *RelayKeyMismatchError) Unwrap() error { return ErrRelayKeyMismatch }

// ConnStatus is the state of the client's connection.
type ConnStatus int

const (
	StateConnecting ConnStatus = iota // dialling and logging in
	StateOnline                       // logged in (or connected, when anonymous)
	StateOffline                      // down; Run retries after RetryIn
	StateClosed                       // Run has stopped, or Close was called
)

func (s ConnStatus) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateOnline:
		return "online"
	case StateOffline:
		return "offline"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("ConnStatus(%d)", int(s))
}

// ConnState is one connection-state change, for a status line.
type ConnState struct {
	State   ConnStatus
	Err     error         // why the connection is down, if it is
	RetryIn time.Duration // StateOffline: when Run tries again
	// ChannelBinding (StateOnline) is the relay's binding mode on this connection:
	// relay.BindingTLSExporter, or a weaker relay.BindingNone /
	// relay.BindingTLSTerminatedUpstream a status line may show.
	ChannelBinding string
}

// Push is something the relay sent without being asked. Exactly one field is set.
type Push struct {
	Message    *Incoming
	LowPreKeys *LowPreKeysNotice
	// Synced: the stored backlog has been delivered; what follows arrives live.
	Synced bool
	// LimitNotice names an abuse limit the relay applied to this card (a
	// limit_notice, PROTOCOL.md "Limits and abuse"); LimitMessage says what it means.
	LimitNotice, LimitMessage string
}

// Incoming is a message delivered by the relay. Ack its ID after committing it; until
// then the relay delivers it again on every new connection (so the same ID can arrive
// twice, and receivers must de-duplicate by ID).
type Incoming struct {
	ID         int64
	From       string // sender's name, stamped by the relay from the sender's login
	FromCardID string
	Body       []byte
	ReceivedAt time.Time
}

// LowPreKeysNotice says the relay holds few one-time prekeys for this card.
type LowPreKeysNotice struct {
	Counts map[ratchet.PreKeyKind]int
}

// PreKeyStatus is what the relay holds for the logged-in card.
type PreKeyStatus struct {
	Counts        map[ratchet.PreKeyKind]int
	OneTimeIDs    []uint32
	KEMOneTimeIDs []uint32
}

// Client is a connection to a relay, used by chat/. It is safe for concurrent use.
// Connect makes one connection; Run keeps one up, reconnecting with exponential
// backoff and jitter and logging in again each time. Requests fail fast with
// ErrNotConnected while no connection is up.
type Client struct {
	cfg    Config
	log    *slog.Logger
	urls   []string // SplitURLs(cfg.URL), each normalized; never empty
	dialer websocket.Dialer

	mu           sync.Mutex
	cur          *clientConn
	up           chan struct{} // closed while cur != nil
	kick         chan struct{} // SetPinnedRelayKey: retry now
	relayKey     ed25519.PublicKey
	binding      string // the relay's channel binding mode on the last connection
	connURL      string // the URL of the last connection that came up
	registration string // the registration policy the relay announced on the last connection
	closed       bool
	// ended is the error that ended the last connection when retrying cannot fix it
	// (logged_out): Run returns it even when the connection ended before Run began.
	// Connect clears it.
	ended   error
	maxBlob int64 // the hello's max_blob_bytes (blobs.go)
	blobRun int64 // the hello's blob_run_chunks: > 0, binary blob messages of that many chunks
	blobCRC bool  // the hello's blob_crc32c: blob_commit carries the CRC-32C, not the digest

	nextID   atomic.Uint64
	pace     *rate.Limiter // every frame sent takes a token; see pace.go
	pushes   *fifo.Queue[Push]
	states   chan ConnState
	done     chan struct{}
	doneOnce sync.Once
}

// clientConn is one WebSocket connection of a Client.
// writeBufferPool holds the connections' write buffers between messages.
var writeBufferPool = &sync.Pool{}

type clientConn struct {
	ws      *websocket.Conn
	wmu     sync.Mutex // gorilla allows one writer at a time
	werr    error      // the first write error; the connection is closing
	pmu     sync.Mutex
	pending map[uint64]chan relay.Frame
	done    chan struct{} // closed when the read loop exits
	err     error         // why it ended; valid after done
	// ready is closed once the connection is the client's current one. Pushes wait for
	// it, so a message pushed right after login can be acked as soon as it is seen.
	ready   chan struct{}
	aborted chan struct{} // closed when connect gives up on this connection
	// quietAcks: the relay's hello announced quiet_acks; set before the connection is
	// the current one, read-only after.
	quietAcks bool
}

// New returns a client; nothing happens on the network until Connect or Run.
func New(cfg Config) *Client {
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		urls:     normalizeURLs(cfg.URL),
		relayKey: cfg.PinnedRelayKey,
		pushes:   fifo.NewWeighed(pushWeight),
		states:   make(chan ConnState, 16),
		done:     make(chan struct{}),
		up:       make(chan struct{}),
		kick:     make(chan struct{}, 1),
		dialer: websocket.Dialer{
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   4096,
			// A binary blob message (up to 256 KiB) goes out in one WebSocket frame,
			// one system call instead of four. The buffers are pooled, held only while
			// a message is written, so an idle client holds none (it held 64 KiB).
			// End to end it measured the same as 64 KiB frames in a quiet sitting.
			WriteBufferSize: relay.MaxBlobMessageSize, // gorilla adds the frame header's room
			WriteBufferPool: writeBufferPool,
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: cfg.RootCAs},
		},
	}
	c.pace = rate.NewLimiter(paceFor(nil)) // set from the relay's hello on every connect
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.cfg.MinBackoff <= 0 {
		c.cfg.MinBackoff = 250 * time.Millisecond
	}
	if c.cfg.MaxBackoff <= 0 {
		c.cfg.MaxBackoff = 30 * time.Second
	}
	if c.cfg.BlobAnswerTimeout <= 0 {
		c.cfg.BlobAnswerTimeout = 2 * time.Minute
	}
	if c.cfg.MaxQueuedPushBytes <= 0 {
		c.cfg.MaxQueuedPushBytes = 96 << 20
	}
	return c
}

// NormalizeURL turns "host:port", "ws://host:port" or "http://host:port" into the
// relay's WebSocket URL, adding the /v2/ws path when there is none.
func NormalizeURL(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = relay.WSPath
	}
	return u.String()
}

// SplitURLs splits a Config.URL holding several relay URLs separated by commas (the
// nodes of one cluster) into its URLs, spaces trimmed and empty entries dropped; a
// single URL gives itself.
func SplitURLs(raw string) []string {
	var out []string
	for part := range strings.SplitSeq(raw, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// normalizeURLs is SplitURLs with each URL normalized; an empty list is [""] so that
// the dial fails with a message naming the empty URL, as it always has.
func normalizeURLs(raw string) []string {
	parts := SplitURLs(raw)
	if len(parts) == 0 {
		return []string{NormalizeURL(raw)}
	}
	for i, p := range parts {
		parts[i] = NormalizeURL(p)
	}
	return parts
}

// CheckURL is the one check of a relay URL's transport: wss:// always passes; ws://
// passes to loopback (127.0.0.0/8, ::1, the name localhost) or with insecureWS, and
// otherwise fails with ErrInsecureTransport. Connect calls it before dialling.
func CheckURL(rawURL string, insecureWS bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("relay: URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "wss":
		return nil
	case "ws":
		if insecureWS || IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w (URL %s)", ErrInsecureTransport, rawURL)
	}
	return fmt.Errorf("relay: URL %q must start with wss:// (or ws:// on loopback)", rawURL)
}

// IsLoopback reports whether host (no port) is in 127.0.0.0/8, is ::1, or is the name
// localhost. Other names are not resolved: a name that happens to resolve to loopback
// does not count.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Pushes is the queue of messages and notices the relay pushed, in the order they
// came. The client's reader never waits for the consumer (answers to requests keep
// arriving while pushes queue up), so a slow consumer costs memory, never the
// connection; the relay bounds what it delivers by its queue limits, and redelivers
// after a reconnect whatever was not acked. Take pushes with Wait, or select on
// Ready and Pop; the client closes the queue when it is closed. Pushing into it is
// the client's business.
func (c *Client) Pushes() *fifo.Queue[Push] { return c.pushes }

// States reports connection-state changes. When the reader falls behind, older states
// are dropped: the newest is always delivered.
func (c *Client) States() <-chan ConnState { return c.states }

// Done is closed when the client is closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// ChannelBinding is the relay's channel binding mode on the last connection
// (relay.BindingTLSExporter, relay.BindingNone or relay.BindingTLSTerminatedUpstream),
// "" before the first. A program may show anything but tls-exporter as a weaker link.
func (c *Client) ChannelBinding() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.binding
}

// ConnectedURL is the URL (one of Config.URL's) of the last connection that came up,
// "" before the first.
func (c *Client) ConnectedURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connURL
}

// RelayKey is the relay's key as pinned or first seen; nil before the first connection.
func (c *Client) RelayKey() ed25519.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.relayKey
}

// SetPinnedRelayKey replaces the pinned relay key (a re-pin by hand, after the user
// confirmed the new key's fingerprint) and wakes Run if it waits to retry, so the next
// connection is checked against k. A connection that is up is not touched.
func (c *Client) SetPinnedRelayKey(k ed25519.PublicKey) {
	c.mu.Lock()
	c.relayKey = bytes.Clone(k)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Client) setState(s ConnState) {
	for {
		select {
		case c.states <- s:
			return
		default:
		}
		select { // full: drop the oldest, keep the newest
		case <-c.states:
		default:
		}
	}
}

// Close closes the connection and stops Run.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cc := c.cur
	c.mu.Unlock()
	c.doneOnce.Do(func() { close(c.done) })
	if cc != nil {
		cc.ws.Close()
		<-cc.done
	}
	c.pushes.Close()
	c.setState(ConnState{State: StateClosed})
	return nil
}

// Connect dials the relay and logs in (when the client has an identity). It returns
// once the connection is usable. A relay key other than the pinned one fails with
// ErrRelayKeyMismatch.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	c.ended = nil
	c.mu.Unlock()
	c.setState(ConnState{State: StateConnecting})
	if err := c.connect(ctx); err != nil {
		c.setState(ConnState{State: StateOffline, Err: err})
		return err
	}
	c.setState(ConnState{State: StateOnline, ChannelBinding: c.ChannelBinding()})
	return nil
}

// Run keeps a connection up until ctx is done or the client is closed, reconnecting
// with exponential backoff and jitter. Call it once; it also takes over a connection
// made by Connect. It returns early on errors that retrying
// cannot fix: ErrRelayKeyMismatch, ErrUnsupportedVersion, a refused login, or a
// connection ended for good (logged out) — also when that connection, made by
// Connect, ended before Run began.
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	var connectedAt time.Time
	for {
		c.mu.Lock()
		cc, closed, ended := c.cur, c.closed, c.ended
		c.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if cc == nil && ended != nil {
			c.setState(ConnState{State: StateClosed, Err: ended})
			return ended
		}
		if cc == nil {
			c.setState(ConnState{State: StateConnecting})
			err := c.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					c.setState(ConnState{State: StateClosed, Err: ctx.Err()})
					return ctx.Err()
				}
				if fatal(err) && !(c.cfg.RetryKeyMismatch && errors.Is(err, ErrRelayKeyMismatch)) {
					c.setState(ConnState{State: StateClosed, Err: err})
					return err
				}
				delay := c.backoff(attempt)
				attempt++
				c.log.Info("relay connection failed; retrying", "in", delay, "err", err)
				c.setState(ConnState{State: StateOffline, Err: err, RetryIn: delay})
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-c.kick: // re-pinned by hand: try the new pin now
					t.Stop()
					attempt = 0
				case <-ctx.Done():
					t.Stop()
					c.setState(ConnState{State: StateClosed, Err: ctx.Err()})
					return ctx.Err()
				case <-c.done:
					t.Stop()
					return ErrClosed
				}
				continue
			}
			connectedAt = time.Now()
			c.setState(ConnState{State: StateOnline, ChannelBinding: c.ChannelBinding()})
			continue
		}
		select {
		case <-cc.done:
			c.unsetConn(cc)
			c.log.Info("relay connection lost", "err", cc.err)
			if fatal(cc.err) { // logged out by logout_all on another connection
				c.setState(ConnState{State: StateClosed, Err: cc.err})
				return cc.err
			}
			// A connection that lived a while starts the backoff over; one that dropped
			// soon after connecting (an overloaded relay shedding clients) keeps
			// climbing it. Even the first retry waits a little, with jitter, so that
			// clients dropped together by a restarting relay do not return in lockstep.
			if time.Since(connectedAt) > stableConnection {
				attempt = 0
			}
			if errors.Is(cc.err, ErrPushesBacklogged) {
				c.setState(ConnState{State: StateOffline, Err: cc.err})
				select {
				case <-c.pushes.Lighter(c.cfg.MaxQueuedPushBytes / 2):
				case <-ctx.Done():
				case <-c.done:
				}
				continue
			}
			delay := c.backoff(attempt) / 2
			attempt++
			c.setState(ConnState{State: StateOffline, Err: cc.err, RetryIn: delay})
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			case <-c.done:
				t.Stop()
			}
		case <-ctx.Done():
			c.dropConn(cc)
			c.setState(ConnState{State: StateClosed, Err: ctx.Err()})
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
}

func fatal(err error) bool {
	var pe *relay.ProtocolError
	return errors.Is(err, ErrRelayKeyMismatch) || errors.Is(err, ErrUnsupportedVersion) ||
		errors.Is(err, ErrRelayProof) || errors.Is(err, ErrInsecureTransport) ||
		(errors.As(err, &pe) && (pe.Code == relay.CodeLoginFailed || pe.Code == relay.CodeLoggedOut ||
			pe.Code == relay.CodeUnsupportedVersion || pe.Code == relay.CodeCardReplaced))
}

// stableConnection is how long a connection must last for the backoff to reset.
const stableConnection = 10 * time.Second

// backoff is exponential from MinBackoff to MaxBackoff, uniform in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 0; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) dropConn(cc *clientConn) {
	c.unsetConn(cc)
	cc.ws.Close()
	<-cc.done
}

// connect connects to the first of the client's URLs that answers, in order. An error
// no other node could fix either (the relay key, its proof, the protocol version, a
// refused login, an insecure URL) stops it at once: every node of a cluster presents
// the same key and serves the same accounts, so trying on could only hide an attack or
// a mistake. With one URL it is connectOne.
func (c *Client) connect(ctx context.Context) error {
	if len(c.urls) == 1 {
		return c.connectOne(ctx, c.urls[0])
	}
	// Every URL is checked before any is dialled: one insecure URL in the list is a
	// mistake to fix, not a node to skip.
	for _, u := range c.urls {
		if err := CheckURL(u, c.cfg.InsecureWS); err != nil {
			return err
		}
	}
	var errs []error
	for _, u := range c.urls {
		err := c.connectOne(ctx, u)
		if err == nil {
			return nil
		}
		if fatal(err) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
			if !strings.Contains(err.Error(), u) {
				err = &nodeError{url: u, err: err}
			}
			return err
		}
		c.log.Info("relay node did not answer; trying the next", "url", u, "err", err)
		errs = append(errs, err)
	}
	return &allNodesError{errs: errs}
}

// nodeError names the node (one of several URLs) an error came from.
type nodeError struct {
	url string
	err error
}

func (e *nodeError) Error() string { return fmt.Sprintf("relay node %s: %v", e.url, e.err) }
func (e *nodeError) Unwrap() error { return e.err }

// allNodesError is connect's error when none of several URLs answered: each node's
// error, in the order tried, on one line.
type allNodesError struct{ errs []error }

func (e *allNodesError) Error() string {
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("relay: none of the %d relay nodes answered: %s", len(e.errs), strings.Join(parts, "; "))
}

func (e *allNodesError) Unwrap() []error { return e.errs }

// connectOne dials url, checks the hello, negotiates the version and logs in.
func (c *Client) connectOne(ctx context.Context, rawURL string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.cur != nil {
		c.mu.Unlock()
		return nil
	}
	pinned := c.relayKey
	c.mu.Unlock()

	if err := CheckURL(rawURL, c.cfg.InsecureWS); err != nil {
		return err
	}
	if u, _ := url.Parse(rawURL); u != nil && u.Scheme == "ws" && !IsLoopback(u.Hostname()) {
		c.log.Warn("insecure relay connection: plain ws:// to a host that is not loopback; a man in the middle can read and relay everything but message bodies", "url", rawURL)
	}
	// A fresh nonce per connection: the relay's hello must sign it.
	nonce := make([]byte, relay.NonceSize)
	crand.Read(nonce)
	dialURL, err := withNonce(rawURL, nonce)
	if err != nil {
		return err
	}

	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, resp, err := c.dialer.DialContext(dctx, dialURL, nil)
	if err != nil {
		if resp != nil {
			if speaksTLS(resp) {
				err = fmt.Errorf("%w (%w)", err, ErrSpeaksTLS)
			}
			return fmt.Errorf("relay: dialing %s: %s: %w", rawURL, resp.Status, err)
		}
		return fmt.Errorf("relay: dialing %s: %w", rawURL, err)
	}
	// Our side of the channel binding: the TLS exporter, when the connection is TLS.
	var exporter []byte
	if tc, ok := ws.NetConn().(*tls.Conn); ok {
		cs := tc.ConnectionState()
		if exporter, err = relay.TLSExporter(&cs); err != nil {
			ws.Close()
			return err
		}
	}
	ws.SetReadLimit(max(relay.MaxServerFrameSize, relay.BlobChunkHeaderSize+relay.BlobRunMax)) // text frames are bounded again when decoded
	if dl, ok := dctx.Deadline(); ok {
		ws.SetReadDeadline(dl)
	}
	_, data, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return fmt.Errorf("relay: reading the hello: %w", err)
	}
	hello, err := relay.DecodeServerFrame(data)
	if err == nil && hello.Type == relay.TypeError {
		ws.Close()
		pe := relay.ErrorOf(hello)
		if hello.Code == relay.CodeUnsupportedVersion {
			return fmt.Errorf("%w: %w", ErrUnsupportedVersion, pe)
		}
		return pe
	}
	if err != nil || hello.Type != relay.TypeHello || len(hello.RelayKey) != ed25519.PublicKeySize || len(hello.Challenge) != relay.ChallengeSize {
		ws.Close()
		return fmt.Errorf("relay: the server's first frame is not a valid hello (is this a pfschat relay?)")
	}
	// The relay binds its proof to our TLS connection when it terminates TLS itself;
	// otherwise (plain ws://, or TLS ended at a proxy in front of it) to zeros. The
	// proof is checked before the pin, so that a mismatch names a key the relay holds.
	binding := make([]byte, relay.BindingSize)
	if exporter != nil && hello.ChannelBinding == relay.BindingTLSExporter {
		binding = exporter
	}
	if !relay.VerifyHello(hello.RelayKey, nonce, hello.Challenge, binding, hello.Signature) {
		ws.Close()
		return fmt.Errorf("%w (relay key %s, channel binding %q)", ErrRelayProof, ratchet.Fingerprint(hello.RelayKey), hello.ChannelBinding)
	}
	rotated, err := checkRelayKey(pinned, &hello) // ops.go: a rotation the pinned key signed
	if err != nil {
		ws.Close()
		return err
	}
	if exporter != nil && hello.ChannelBinding != relay.BindingTLSExporter {
		c.log.Warn("the relay's TLS is terminated by a proxy in front of it: logins are not bound to this connection", "channel_binding", hello.ChannelBinding)
	}
	if !slices.Contains(hello.Versions, relay.ProtocolVersion) {
		ws.Close()
		return fmt.Errorf("%w: relay speaks %v, this client %d", ErrUnsupportedVersion, hello.Versions, relay.ProtocolVersion)
	}
	relayKey := ed25519.PublicKey(bytes.Clone(hello.RelayKey))
	c.setPace(hello.Limits) // before the first frame this connection sends

	cc := &clientConn{ws: ws, pending: make(map[uint64]chan relay.Frame), done: make(chan struct{}),
		ready: make(chan struct{}), aborted: make(chan struct{})}
	go c.readLoop(cc)
	fail := func(err error) error {
		close(cc.aborted)
		ws.Close()
		<-cc.done
		return err
	}
	if id, _ := c.identity(); id != nil {
		if err := c.login(ctx, cc, relayKey, hello.Challenge, binding); err != nil {
			return fail(err)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fail(ErrClosed)
	}
	cc.quietAcks = hello.Limits != nil && hello.Limits.QuietAcks
	c.cur = cc
	close(c.up)
	c.relayKey = relayKey
	c.binding = hello.ChannelBinding
	c.connURL = rawURL
	c.registration = hello.Registration
	if hello.Limits != nil {
		c.maxBlob = hello.Limits.MaxBlobBytes
		c.blobRun = min(int64(hello.Limits.BlobRunChunks), relay.BlobRunChunks)
	}
	c.blobCRC = hello.Limits != nil && hello.Limits.BlobCRC32C
	c.mu.Unlock()
	close(cc.ready)
	c.reportRotation(rotated)
	return nil
}

// Online returns a channel that is closed while a connection is up (logged in, for a
// client with an identity). Call it again after a failure: each disconnect makes a new
// channel.
func (c *Client) Online() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// unsetConn forgets cc as the current connection.
func (c *Client) unsetConn(cc *clientConn) {
	c.mu.Lock()
	if c.cur == cc {
		c.cur = nil
		c.up = make(chan struct{})
	}
	c.mu.Unlock()
}

// connEnded runs on cc's read loop when it ends: it forgets cc and remembers an error
// that retrying cannot fix for Run.
func (c *Client) connEnded(cc *clientConn) {
	c.mu.Lock()
	if c.cur == cc && fatal(cc.err) {
		c.ended = cc.err
	}
	c.mu.Unlock()
	c.unsetConn(cc)
}

func (c *Client) login(ctx context.Context, cc *clientConn, relayKey ed25519.PublicKey, challenge, binding []byte) error {
	id, card := c.identity()
	if card == nil {
		return errors.New("relay: client.Config.Card is required with an Identity")
	}
	sig := id.Sign(relay.LoginDomain, relay.LoginMessage(relayKey, challenge, binding))
	if _, err := c.pacedRequest(ctx, cc, &relay.Frame{Type: relay.TypeLogin, CardID: card.ID(), Signature: sig}); err != nil {
		return fmt.Errorf("relay: logging in as %s: %w", card.Identity, err)
	}
	return nil
}

// identity is the key and card the client logs in with (Config's, or SetIdentity's).
func (c *Client) identity() (*ratchet.IdentityKey, *ratchet.Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Identity, c.cfg.Card
}

// SetIdentity replaces the key and card the client logs in with, after replace_card
// made card the name's (the connection that sent it continues as the new card; later
// connections log in with it).
func (c *Client) SetIdentity(id *ratchet.IdentityKey, card *ratchet.Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg.Identity, c.cfg.Card = id, card
}

// withNonce adds the nonce query parameter to the WebSocket URL.
func withNonce(rawURL string, nonce []byte) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("relay: URL %q: %w", rawURL, err)
	}
	q := u.Query()
	q.Set(relay.NonceParam, relay.EncodeNonce(nonce))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// readLoop routes answers to their requests and pushes to Pushes. It never waits for
// a consumer.
func (c *Client) readLoop(cc *clientConn) {
	defer close(cc.done)
	defer c.connEnded(cc)
	defer func() {
		cc.pmu.Lock()
		for id, ch := range cc.pending {
			close(ch)
			delete(cc.pending, id)
		}
		cc.pending = nil
		cc.pmu.Unlock()
	}()
	const readTimeout = 2*time.Minute + 15*time.Second // relay pings every 30s by default
	ready := false
	lastDeadline := time.Now()
	cc.ws.SetReadDeadline(lastDeadline.Add(readTimeout))
	pings := rate.NewLimiter(relayPingRate, relayPingBurst)
	cc.ws.SetPingHandler(func(data string) error {
		if !pings.Allow() {
			return ErrPingFlood
		}
		cc.ws.SetReadDeadline(time.Now().Add(readTimeout))
		// WriteControl may run beside another write; a failed pong shows as a dead
		// connection soon enough.
		cc.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		return nil
	})
	for {
		mt, r, err := cc.ws.NextReader()
		if err == nil && mt == websocket.BinaryMessage {
			err = c.onBinary(cc, r) // blobs.go
			if err == nil {
				continue
			}
		}
		var data []byte
		if err == nil {
			data, err = io.ReadAll(r)
		}
		if err != nil {
			if cc.err == nil {
				cc.err = err
			}
			return
		}
		// Refresh the idle deadline at most once a second: it costs a timer update.
		if now := time.Now(); now.Sub(lastDeadline) > time.Second {
			cc.ws.SetReadDeadline(now.Add(readTimeout))
			lastDeadline = now
		}
		f, err := relay.DecodeServerFrame(data)
		if err != nil {
			c.log.Warn("undecodable frame from relay", "err", err)
			continue
		}
		if f.ID != 0 {
			cc.pmu.Lock()
			ch := cc.pending[f.ID]
			delete(cc.pending, f.ID)
			cc.pmu.Unlock()
			if ch != nil {
				ch <- f
				continue
			}
		}
		var p Push
		switch f.Type {
		case relay.TypeDeliver:
			p.Message = &Incoming{ID: f.MsgID, From: f.From, FromCardID: f.FromCardID, Body: f.Body, ReceivedAt: time.UnixMilli(f.ReceivedAt)}
		case relay.TypeLowPreKeys:
			p.LowPreKeys = &LowPreKeysNotice{Counts: kindCounts(f.Counts)}
		case relay.TypeSynced:
			p.Synced = true
		case relay.TypeLimitNotice:
			p.LimitNotice, p.LimitMessage = f.Limit, f.Message
		case relay.TypeGoingAway:
			cc.err = &relay.ProtocolError{Code: relay.CodeGoingAway, Message: f.Message}
			continue
		case relay.TypeError:
			c.log.Warn("relay error", "code", f.Code, "message", f.Message)
			switch f.Code {
			case relay.CodeSlowReader, relay.CodeGoingAway, relay.CodeLoggedOut, relay.CodeCardReplaced:
				cc.err = &relay.ProtocolError{Code: f.Code, Message: f.Message}
			}
			continue
		default:
			continue // answers to abandoned requests, or frames from a newer relay
		}
		if !ready {
			select {
			case <-cc.ready:
				ready = true
			case <-cc.aborted:
				return
			}
		}
		if c.pushes.Weight()+pushWeight(p) > c.cfg.MaxQueuedPushBytes {
			// The consumer is far behind, or the relay floods: this push is dropped,
			// unacked (the relay delivers it again), and the connection ends; Run
			// connects again once the consumer has taken half of what waits.
			c.log.Warn("pushes waiting for the consumer reached their bound; reconnecting once they are taken",
				"bytes", c.pushes.Weight(), "bound", c.cfg.MaxQueuedPushBytes)
			cc.err = ErrPushesBacklogged
			cc.ws.Close()
			return
		}
		c.pushes.Push(p)
	}
}

// pushWeight is what a push counts against Config.MaxQueuedPushBytes: its body and
// 256 bytes, so that a flood of empty pushes is bounded too.
func pushWeight(p Push) int64 {
	w := int64(256)
	if p.Message != nil {
		w += int64(len(p.Message.Body))
	}
	return w
}

func kindCounts(m map[string]int) map[ratchet.PreKeyKind]int {
	out := make(map[ratchet.PreKeyKind]int, len(m))
	for k, name := range relay.PreKeyKindNames {
		if n, ok := m[name]; ok {
			out[k] = n
		}
	}
	return out
}

// writeTimeout bounds one write to the relay.
const writeTimeout = 10 * time.Second

// pacedRequest is request after waiting for the relay's frame rate.
func (c *Client) pacedRequest(ctx context.Context, cc *clientConn, f *relay.Frame) (relay.Frame, error) {
	if err := c.waitPace(ctx); err != nil {
		return relay.Frame{}, err
	}
	return c.request(ctx, cc, f)
}

// request sends f with a fresh id on cc and waits for the answer.
func (c *Client) request(ctx context.Context, cc *clientConn, f *relay.Frame) (relay.Frame, error) {
	f.ID = c.nextID.Add(1)
	id := f.ID
	ch := make(chan relay.Frame, 1)
	cc.pmu.Lock()
	if cc.pending == nil {
		cc.pmu.Unlock()
		return relay.Frame{}, ErrConnectionLost
	}
	cc.pending[id] = ch
	cc.pmu.Unlock()
	forget := func() {
		cc.pmu.Lock()
		delete(cc.pending, id)
		cc.pmu.Unlock()
	}
	if err := c.writeRequest(cc, relay.EncodeFrame(f)); err != nil {
		forget()
		return relay.Frame{}, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return relay.Frame{}, ErrConnectionLost
		}
		if resp.Type == relay.TypeError {
			return resp, relay.ErrorOf(resp)
		}
		return resp, nil
	case <-ctx.Done():
		forget()
		return relay.Frame{}, ctx.Err()
	}
}

func (c *Client) writeRequest(cc *clientConn, data []byte) error {
	if len(data) > relay.MaxFrameSize {
		return &relay.ProtocolError{Code: relay.CodeFrameTooLarge, Message: fmt.Sprintf("request is %d bytes, the limit is %d", len(data), relay.MaxFrameSize)}
	}
	if err := cc.write(data); err != nil {
		return fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	return nil
}

// writeBinary sends one binary message of head ‖ data (a blob put message); errors
// as write.
func (cc *clientConn) writeBinary(head, data []byte) error {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if cc.werr != nil {
		return cc.werr
	}
	cc.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	w, err := cc.ws.NextWriter(websocket.BinaryMessage)
	if err == nil {
		_, err = w.Write(head)
	}
	if err == nil {
		_, err = w.Write(data)
	}
	if w != nil {
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		cc.werr = err
		cc.ws.Close()
		return err
	}
	return nil
}

// write sends one text frame. An error means the frame was not sent and the
// connection is being closed.
func (cc *clientConn) write(data []byte) error {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if cc.werr != nil {
		return cc.werr
	}
	cc.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := cc.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		cc.werr = err
		cc.ws.Close() // the read loop ends and fails every waiting request
		return err
	}
	return nil
}

// do makes a request on the current connection, paced under the relay's frame rate.
// It fails fast, costing no frame, while no connection is up.
func (c *Client) do(ctx context.Context, f *relay.Frame) (relay.Frame, error) {
	if _, err := c.current(); err != nil {
		return relay.Frame{}, err
	}
	if err := c.waitPace(ctx); err != nil {
		return relay.Frame{}, err
	}
	cc, err := c.current() // the connection may have changed during the wait
	if err != nil {
		return relay.Frame{}, err
	}
	return c.request(ctx, cc, f)
}

// current is the connection requests go to.
func (c *Client) current() (*clientConn, error) {
	c.mu.Lock()
	cc, closed := c.cur, c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if cc == nil {
		return nil, ErrNotConnected
	}
	return cc, nil
}

// Register publishes a self-signed card and returns it signed by the relay.
func (c *Client) Register(ctx context.Context, card *ratchet.Card) (*ratchet.Card, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeRegister, Card: card.Export(), Invite: c.cfg.Invite, Recovery: c.cfg.RecoveryProof})
	if err != nil {
		return nil, fmt.Errorf("relay: registering %s: %w", card.Identity, err)
	}
	return c.checkCard(resp, card.Identity, card.ID())
}

// ReplaceCard publishes a new card for the logged-in name (a key change).
func (c *Client) ReplaceCard(ctx context.Context, card *ratchet.Card) (*ratchet.Card, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeReplaceCard, Card: card.Export()})
	if err != nil {
		return nil, fmt.Errorf("relay: replacing the card of %s: %w", card.Identity, err)
	}
	return c.checkCard(resp, card.Identity, card.ID())
}

// LookupCard fetches the card registered under name, checked against the relay key.
func (c *Client) LookupCard(ctx context.Context, name string) (*ratchet.Card, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeLookup, Name: name})
	if err != nil {
		return nil, fmt.Errorf("relay: looking up %s: %w", name, err)
	}
	return c.checkCard(resp, name, "")
}

// LookupCardByID returns the card with the ID cardID (64 hex characters), verified
// against the relay key, and whether the relay marked it replaced (replace_card or
// recover put a newer card in its place: it is no longer its name's current card). The
// relay answers not_found for an unknown card.
func (c *Client) LookupCardByID(ctx context.Context, cardID string) (card *ratchet.Card, replaced bool, err error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeLookupCard, CardID: cardID})
	if err != nil {
		return nil, false, fmt.Errorf("relay: looking up card %.12s: %w", cardID, err)
	}
	name := ""
	if resp.Type == relay.TypeCard {
		if parsed, err := ratchet.ImportCard(resp.Card); err == nil {
			name = parsed.Identity
		}
	}
	card, err = c.checkCard(resp, name, cardID)
	if err != nil {
		return nil, false, err
	}
	return card, resp.Replaced, nil
}

// Registration is the registration policy the relay announced in its hello on the last
// connection ("open", "invite" or "closed"; "" before the first, or from a relay that
// does not announce it).
func (c *Client) Registration() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registration
}

func (c *Client) checkCard(resp relay.Frame, name, wantID string) (*ratchet.Card, error) {
	if resp.Type != relay.TypeCard {
		return nil, fmt.Errorf("relay: expected a card, got a %q frame", resp.Type)
	}
	card, err := ratchet.ImportCard(resp.Card)
	if err != nil {
		return nil, fmt.Errorf("relay: card from the relay does not parse: %w", err)
	}
	if err := card.VerifyWithRelay(c.RelayKey()); err != nil {
		return nil, fmt.Errorf("relay: card from the relay does not verify: %w", err)
	}
	if card.Identity != name {
		return nil, fmt.Errorf("relay: asked for %q, the relay returned a card for %q", name, card.Identity)
	}
	if wantID != "" && card.ID() != wantID {
		return nil, fmt.Errorf("relay: the relay returned a different card than the one sent")
	}
	return card, nil
}

// prekeyChunkBytes keeps upload frames well under MaxFrameSize.
const prekeyChunkBytes = 40 << 10

// UploadPreKeys stores prekeys for the logged-in card, in as many frames as needed.
func (c *Client) UploadPreKeys(ctx context.Context, keys []ratchet.PublicPreKey) error {
	var chunk [][]byte
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		_, err := c.do(ctx, &relay.Frame{Type: relay.TypeUploadPreKeys, PreKeys: chunk})
		chunk, size = nil, 0
		if err != nil {
			return fmt.Errorf("relay: uploading prekeys: %w", err)
		}
		return nil
	}
	for _, k := range keys {
		raw, err := k.MarshalBinary()
		if err != nil {
			return fmt.Errorf("relay: encoding prekey %d: %w", k.ID, err)
		}
		enc := (len(raw)+2)/3*4 + 3
		if size+enc > prekeyChunkBytes || len(chunk) >= relay.MaxPreKeysPerFrame {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk = append(chunk, raw)
		size += enc
	}
	return flush()
}

// PreKeyStatus reports how many prekeys of each kind the relay holds for this card and
// which one-time keys are still there (the others have been handed out).
func (c *Client) PreKeyStatus(ctx context.Context) (PreKeyStatus, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypePreKeyStatus})
	if err != nil {
		return PreKeyStatus{}, fmt.Errorf("relay: prekey status: %w", err)
	}
	return PreKeyStatus{Counts: kindCounts(resp.Counts), OneTimeIDs: resp.OneTimeIDs, KEMOneTimeIDs: resp.KEMOneTimeIDs}, nil
}

// FetchBundle fetches a prekey bundle for name. Each call consumes one of the owner's
// one-time prekeys, if any are left. The caller verifies it (ratchet.StartSession does).
func (c *Client) FetchBundle(ctx context.Context, name string) (*ratchet.Bundle, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeFetchBundle, Name: name})
	if err != nil {
		return nil, fmt.Errorf("relay: fetching the prekey bundle of %s: %w", name, err)
	}
	b, err := ratchet.ParseBundle(resp.Bundle)
	if err != nil {
		return nil, fmt.Errorf("relay: bundle for %s does not parse: %w", name, err)
	}
	if b.Card == nil || b.Card.Identity != name {
		return nil, fmt.Errorf("relay: bundle for %s carries another card", name)
	}
	return b, nil
}

// Send stores body for the named recipient and returns the relay's message id once it
// is durable. Sending again with the same clientID is safe: the relay stores it once
// and answers with the same id.
func (c *Client) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	if len(body) > relay.MaxBodySize {
		return 0, &relay.ProtocolError{Code: relay.CodeFrameTooLarge, Limit: relay.LimitMaxBodyBytes,
			Message: fmt.Sprintf("message body is %d bytes, the relay takes at most %d", len(body), relay.MaxBodySize)}
	}
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeSend, To: to, Body: body, ClientID: clientID})
	if err != nil {
		return 0, fmt.Errorf("relay: sending to %s: %w", to, err)
	}
	return resp.MsgID, nil
}

// Ack tells the relay the messages are safely stored and may be deleted.
func (c *Client) Ack(ctx context.Context, ids ...int64) error {
	for len(ids) > 0 {
		n := min(len(ids), relay.MaxAckIDs)
		if _, err := c.do(ctx, &relay.Frame{Type: relay.TypeAck, IDs: ids[:n]}); err != nil {
			return fmt.Errorf("relay: ack: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// Ping round-trips a ping, for health checks and latency measurements.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, &relay.Frame{Type: relay.TypePing})
	return err
}

// AckNoWait sends an ack without waiting for the relay's answer: for receivers that
// ack in a stream and can live with a redelivery if the ack is lost. To a relay that
// announced quiet_acks it is a quiet ack, which the relay does not answer; to any
// other, an ack whose ok is dropped. It still waits for the relay's frame rate.
func (c *Client) AckNoWait(ids ...int64) error {
	cc, err := c.current()
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		c.waitPace(context.Background()) // without a deadline it only waits
		n := min(len(ids), relay.MaxAckIDs)
		f := relay.Frame{Type: relay.TypeAck, IDs: ids[:n]}
		if !cc.quietAcks {
			f.ID = c.nextID.Add(1)
		}
		ids = ids[n:]
		if err := cc.write(relay.EncodeFrame(&f)); err != nil {
			return fmt.Errorf("%w: %v", ErrConnectionLost, err)
		}
	}
	return nil
}

// LogoutAll closes every other connection logged in with this card (other devices
// sharing it, or a session someone else opened with the key): they get the error
// logged_out and are closed, and their Run stops. This connection stays.
func (c *Client) LogoutAll(ctx context.Context) error {
	if _, err := c.do(ctx, &relay.Frame{Type: relay.TypeLogoutAll}); err != nil {
		return fmt.Errorf("relay: logout_all: %w", err)
	}
	return nil
}

// speaksTLS reports whether resp, the answer to a plain HTTP WebSocket handshake, is
// that of a TLS server (Go's: "400 Bad Request", "Client sent an HTTP request to an
// HTTPS server.").
func speaksTLS(resp *http.Response) bool {
	if resp.StatusCode != http.StatusBadRequest || resp.Body == nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return bytes.Contains(b, []byte("HTTP request to an HTTPS server"))
}
