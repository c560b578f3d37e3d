package server

// Abuse limits (PROTOCOL.md "Limits and abuse"): each has a name, which is the `limit`
// of the error frame it answers with and the label of its counter in /metrics
// (pfschat_relay_limited_total{limit="..."}).

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"pfschat/relay"
	"pfschat/storage"
)

// Names of the abuse limits.
const (
	LimitLoginDeadline           = "login_deadline"             // unauthenticated too long: login_timeout, closed
	LimitMessageDeadline         = "message_deadline"           // a message not whole in time: message_timeout, closed
	LimitConnectionsPerAddress   = "connections_per_address"    // too_many_connections, closed
	LimitConnectionsTotal        = "connections_total"          // too_many_connections, closed
	LimitFramesPerSecond         = "frames_per_second"          // rate_limited (far over: closed, 1008)
	LimitFetchBundlePerRequester = "fetch_bundle_per_requester" // rate_limited
	LimitFetchBundlePerTarget    = "fetch_bundle_per_target"    // bundles without one-time keys; owner told once
	LimitLowPreKeysNotice        = "low_prekeys_notice"         // notice not sent again within the window
	LimitLookupPerRequester      = "lookup_per_requester"       // rate_limited
	LimitRegistrationsPerAddress = "registrations_per_address"  // rate_limited
	LimitRegistrationPolicy      = "registration_policy"        // registration_closed / invite_required
	LimitSenderQuota             = "sender_quota"               // queue_full, limit: sender_quota
	LimitUploadPreKeysPerCard    = "upload_prekeys_per_card"    // rate_limited
	LimitMaxOneTimePreKeys       = "max_one_time_prekeys"       // too_many_prekeys
	LimitAccountWritesPerName    = "account_writes_per_name"    // rate_limited
	LimitFramesPerMessage        = "frames_per_message"         // bad_frame, closed
	LimitTextBytesPerSecond      = "text_bytes_per_second"      // rate_limited (counts toward closing as frames_per_second)
	LimitAckIDsPerSecond         = "ack_ids_per_second"         // rate_limited (counts toward closing as frames_per_second)
	// LimitRecoveryPerName and LimitRecoveryPerAddress are in recovery.go, the blob
	// limits LimitMaxBlobBytes and LimitBlobQuotaBytes in blobs.go.
)

// Names of the protocol's own limits (PROTOCOL.md "Limits"), counted in
// pfschat_relay_limited_total like the abuse limits: an operator sees every refusal
// that names a limit.
const (
	LimitMaxFrameBytes = relay.LimitMaxFrameBytes // frame_too_large (far over: closed, 1008)
	LimitMaxBodyBytes  = relay.LimitMaxBodyBytes  // frame_too_large
	LimitQueueCount    = "count"                  // queue_full: the recipient's queued messages
	LimitQueueBytes    = "bytes"                  // queue_full: the recipient's queued bytes
	LimitMaxTTL        = "max_ttl"                // ttl_too_long
	LimitMinFree       = "min_free"               // storage_full: the disk's high-water mark
	LimitMaxBlocks     = "max_blocks"             // too_many_blocks: the names one name blocks (relay.MaxBlocks)
)

var metricLimitNames = [...]string{
	LimitLoginDeadline, LimitMessageDeadline, LimitConnectionsPerAddress, LimitConnectionsTotal, LimitFramesPerSecond,
	LimitFramesPerMessage, LimitTextBytesPerSecond, LimitAckIDsPerSecond,
	LimitFetchBundlePerRequester, LimitFetchBundlePerTarget, LimitLowPreKeysNotice, LimitLookupPerRequester,
	LimitRegistrationsPerAddress, LimitRegistrationPolicy, LimitSenderQuota, LimitUploadPreKeysPerCard,
	LimitMaxOneTimePreKeys, LimitAccountWritesPerName, LimitRecoveryPerName, LimitRecoveryPerAddress,
	LimitMaxBlobBytes, LimitBlobQuotaBytes,
	LimitMaxFrameBytes, LimitMaxBodyBytes, LimitQueueCount, LimitQueueBytes, LimitMaxTTL, LimitMinFree, LimitMaxBlocks,
}

var limitNameIndex = indexOf(metricLimitNames[:])

// limitedCounters count how often each abuse limit was applied.
type limitedCounters [len(metricLimitNames) + 1]atomic.Uint64

func (m *metrics) limited(name string) {
	m.limitedBy[slot(limitNameIndex, name, len(metricLimitNames))].Add(1)
}

// Registration policies (Config.Registration, `pfschat relay --registration`).
const (
	RegistrationOpen   = "open"   // anyone may register (the default)
	RegistrationInvite = "invite" // a register frame needs a valid invite code
	RegistrationClosed = "closed" // nobody may register
)

// maxLimiterKeys bounds every keyed limiter: an attacker with many addresses or names
// evicts the least recently used entries instead of growing the map.
const maxLimiterKeys = 1 << 16

// keyedLimiter is a token bucket per key (a requester, a target, an address) in a
// bounded map: when full, the least recently used key is evicted (it then starts
// again with a full bucket, which costs the attacker the work of cycling
// maxLimiterKeys keys to win back one burst).
type keyedLimiter struct {
	every rate.Limit
	burst int
	max   int
	now   func() time.Time

	// shared, when set, counts the tokens in a store every relay node shares
	// (share): name is the limit, interval the time per token.
	shared   SharedLimiter
	name     string
	interval time.Duration
	onError  func(error)

	mu  sync.Mutex
	m   map[string]*list.Element
	lru list.List // front = most recently used; values are *keyedEntry
}

type keyedEntry struct {
	key string
	lim *rate.Limiter
}

// newKeyedLimiter allows burst events at once and n per period after that, per key.
// n <= 0 turns the limiter off.
func newKeyedLimiter(n int, per time.Duration, burst int, now func() time.Time) *keyedLimiter {
	if n <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = 1
	}
	return &keyedLimiter{every: rate.Limit(float64(n) / per.Seconds()), burst: burst, max: maxLimiterKeys, now: now,
		m: make(map[string]*list.Element), interval: per / time.Duration(n)}
}

// SharedLimiter counts limits in a store every relay node shares, so that N nodes do
// not make a limit N times weaker (relay/cluster implements it on its directory). The
// server uses it, when its directory implements it, for every limit that protects a
// victim or a shared resource; limits that protect one connection stay per node.
type SharedLimiter interface {
	// Allow takes one token from the bucket of (limit, key), which holds burst tokens
	// and gains one every interval, at now; or says how long until one is there.
	Allow(ctx context.Context, limit, key string, now time.Time, interval time.Duration, burst int) (ok bool, retryAfter time.Duration, err error)
}

// sharedLimitTimeout bounds one shared limit check.
const sharedLimitTimeout = 5 * time.Second

// share makes k count in sl under name.
func (k *keyedLimiter) share(sl SharedLimiter, name string, onError func(error)) {
	if k != nil {
		k.shared, k.name, k.onError = sl, name, onError
	}
}

// allowShared asks the shared store. When it cannot answer, the limit holds: the
// request is refused for a second (no silent fallback to a per-node count that N
// nodes would multiply).
func (k *keyedLimiter) allowShared(key string) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedLimitTimeout)
	defer cancel()
	ok, retry, err := k.shared.Allow(ctx, k.name, key, k.now(), k.interval, k.burst)
	if err != nil {
		if k.onError != nil {
			k.onError(err)
		}
		return false, time.Second
	}
	return ok, retry
}

// allow takes one token for key, or says how long until one is available. A nil
// limiter allows everything.
func (k *keyedLimiter) allow(key string) (ok bool, retryAfter time.Duration) {
	if k == nil {
		return true, 0
	}
	if k.shared != nil {
		return k.allowShared(key)
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	var e *keyedEntry
	if el, found := k.m[key]; found {
		k.lru.MoveToFront(el)
		e = el.Value.(*keyedEntry)
	} else {
		for len(k.m) >= k.max {
			old := k.lru.Back()
			k.lru.Remove(old)
			delete(k.m, old.Value.(*keyedEntry).key)
		}
		e = &keyedEntry{key: key, lim: rate.NewLimiter(k.every, k.burst)}
		k.m[key] = k.lru.PushFront(e)
	}
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Hour
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// len is how many keys the limiter holds.
func (k *keyedLimiter) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// abuse holds the relay's keyed limiters and connection counts.
type abuse struct {
	fetchPerRequester  *keyedLimiter // requester name
	fetchPerTarget     *keyedLimiter // target name
	targetNotice       *keyedLimiter // target name: the owner is told once per window
	lowPreKeys         *keyedLimiter // card id
	lookups            *keyedLimiter // requester name or address
	preKeyUploads      *keyedLimiter // name: a replaced card's successor shares its allowance
	accountWrites      *keyedLimiter // name: replace_card, block, unblock, set_recovery
	registrations      *keyedLimiter // source address
	recoveryPerName    *keyedLimiter // recover: target name
	recoveryPerAddress *keyedLimiter // recover: source address

	mu       sync.Mutex     // guards perAddr and total
	perAddr  map[string]int // open connections per address key
	total    int
	maxAddr  int // 0 = off
	maxTotal int // 0 = off
}

func newAbuse(l Limits, now func() time.Time) *abuse {
	a := &abuse{
		fetchPerRequester:  newKeyedLimiter(l.FetchBundlePerMinute, time.Minute, l.FetchBundleBurst, now),
		fetchPerTarget:     newKeyedLimiter(l.FetchBundlePerTargetPerHour, time.Hour, l.FetchBundlePerTargetPerHour, now),
		targetNotice:       newKeyedLimiter(1, time.Hour, 1, now),
		lowPreKeys:         newKeyedLimiter(1, l.LowPreKeysInterval, 1, now),
		lookups:            newKeyedLimiter(l.LookupsPerMinute, time.Minute, l.LookupBurst, now),
		preKeyUploads:      newKeyedLimiter(l.UploadPreKeysPerHour, time.Hour, l.UploadPreKeysBurst, now),
		accountWrites:      newKeyedLimiter(l.AccountWritesPerHour, time.Hour, l.AccountWritesBurst, now),
		registrations:      newKeyedLimiter(l.RegistrationsPerHour, time.Hour, l.RegistrationsPerHour, now),
		recoveryPerName:    newKeyedLimiter(l.RecoveryPerNamePerHour, time.Hour, l.RecoveryPerNamePerHour, now),
		recoveryPerAddress: newKeyedLimiter(l.RecoveryPerAddressPerHour, time.Hour, l.RecoveryPerAddressPerHour, now),
		perAddr:            make(map[string]int),
	}
	if l.ConnectionsPerAddress > 0 {
		a.maxAddr = l.ConnectionsPerAddress
	}
	if l.MaxConnections > 0 {
		a.maxTotal = l.MaxConnections
	}
	return a
}

// share moves the limits that protect a victim or a shared resource to sl (the
// per-requester fetch and lookup rates protect the relay from one connection's
// account and stay per node). Prekey uploads are writes to the shared store: an
// account logged in on every node would otherwise write N times as often.
func (a *abuse) share(sl SharedLimiter, onError func(error)) {
	a.preKeyUploads.share(sl, LimitUploadPreKeysPerCard, onError)
	a.accountWrites.share(sl, LimitAccountWritesPerName, onError)
	a.fetchPerTarget.share(sl, LimitFetchBundlePerTarget, onError)
	a.targetNotice.share(sl, LimitFetchBundlePerTarget+"_notice", onError)
	a.lowPreKeys.share(sl, LimitLowPreKeysNotice, onError)
	a.registrations.share(sl, LimitRegistrationsPerAddress, onError)
	a.recoveryPerName.share(sl, LimitRecoveryPerName, onError)
	a.recoveryPerAddress.share(sl, LimitRecoveryPerAddress, onError)
}

// admit counts a new connection from addrKey, or names the limit that refuses it.
func (a *abuse) admit(addrKey string) (limit string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxTotal > 0 && a.total >= a.maxTotal {
		return LimitConnectionsTotal
	}
	if a.maxAddr > 0 && a.perAddr[addrKey] >= a.maxAddr {
		return LimitConnectionsPerAddress
	}
	a.total++
	a.perAddr[addrKey]++
	return ""
}

// release uncounts a connection admitted from addrKey.
func (a *abuse) release(addrKey string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if n := a.perAddr[addrKey] - 1; n > 0 {
		a.perAddr[addrKey] = n
	} else {
		delete(a.perAddr, addrKey) // the map holds only addresses with open connections
	}
}

// addressKey is what per-address limits count: an IPv4 address, or the /64 of an
// IPv6 address (one subscriber usually gets a whole /64). remoteAddr is host:port.
func addressKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = ap.Addr()
	} else if host, _, herr := net.SplitHostPort(remoteAddr); herr == nil {
		addr, err = netip.ParseAddr(host)
	}
	if err != nil || !addr.IsValid() {
		return remoteAddr
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, _ := addr.WithZone("").Prefix(64)
	return p.String()
}

// abuseDefaults fills the abuse limits' zero fields from DefaultLimits.
func (l Limits) abuseDefaults() Limits {
	d := DefaultLimits
	if l.LoginTimeout <= 0 {
		l.LoginTimeout = d.LoginTimeout
	}
	if l.MessageTimeout <= 0 {
		l.MessageTimeout = d.MessageTimeout
	}
	if l.LowPreKeysInterval <= 0 {
		l.LowPreKeysInterval = d.LowPreKeysInterval
	}
	def := func(v *int, dv int) {
		if *v == 0 {
			*v = dv
		}
	}
	def(&l.ConnectionsPerAddress, d.ConnectionsPerAddress)
	if l.MaxConnections == 0 {
		l.MaxConnections = defaultMaxConnections()
	}
	def(&l.FetchBundlePerMinute, d.FetchBundlePerMinute)
	def(&l.FetchBundleBurst, d.FetchBundleBurst)
	def(&l.FetchBundlePerTargetPerHour, d.FetchBundlePerTargetPerHour)
	def(&l.LookupsPerMinute, d.LookupsPerMinute)
	def(&l.LookupBurst, d.LookupBurst)
	def(&l.UploadPreKeysPerHour, d.UploadPreKeysPerHour)
	def(&l.UploadPreKeysBurst, d.UploadPreKeysBurst)
	def(&l.AccountWritesPerHour, d.AccountWritesPerHour)
	def(&l.AccountWritesBurst, d.AccountWritesBurst)
	def(&l.RegistrationsPerHour, d.RegistrationsPerHour)
	def(&l.RecoveryPerNamePerHour, d.RecoveryPerNamePerHour)
	def(&l.RecoveryPerAddressPerHour, d.RecoveryPerAddressPerHour)
	return l
}

// descriptorReserve is how many file descriptors the default total connection cap
// leaves for the database, the listener and the logs.
const descriptorReserve = 256

// defaultMaxConnections is the descriptor limit less a reserve (-1, off, when the
// platform has no such limit).
func defaultMaxConnections() int {
	n := descriptorLimit()
	if n <= 0 {
		return -1
	}
	return max(16, n-descriptorReserve)
}

// initAbuse sets up the abuse limits and the registration policy from cfg.
func (s *Server) initAbuse(cfg Config) error {
	s.ab = newAbuse(s.limits, s.now)
	if sl, ok := s.dir.(SharedLimiter); ok {
		s.ab.share(sl, func(err error) { s.log.Warn("shared limit unavailable: refusing", "err", err) })
	}
	switch cfg.Registration {
	case "", RegistrationOpen:
		s.registration = RegistrationOpen
	case RegistrationInvite, RegistrationClosed:
		s.registration = cfg.Registration
	default:
		return errors.New("relay: Config.Registration " + strconv.Quote(cfg.Registration) + ": want open, invite or closed")
	}
	s.invites = cfg.Store
	if cfg.Store == nil {
		s.invites = cfg.Dir
	}
	return nil
}

// admitConn counts a new WebSocket connection against the connection caps. A refused
// one is told why (too_many_connections, then a close frame 1008) and closed.
func (s *Server) admitConn(ws *websocket.Conn, remoteAddr string) (addrKey string, ok bool) {
	addrKey = addressKey(remoteAddr)
	limit := s.ab.admit(addrKey)
	if limit == "" {
		return addrKey, true
	}
	s.m.limited(limit)
	s.m.errorSent(relay.CodeTooManyConnections)
	msg := "too many connections from your address; close some and retry later"
	if limit == LimitConnectionsTotal {
		msg = "the relay is at its connection limit; retry later"
	}
	s.log.Info("refusing connection", "limit", limit, "addr", addrKey)
	deadline := time.Now().Add(time.Second)
	ws.SetWriteDeadline(deadline)
	ws.WriteMessage(websocket.TextMessage, relay.EncodeFrame(&relay.Frame{Type: relay.TypeError, Code: relay.CodeTooManyConnections, Limit: limit, Message: msg}))
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(relay.CodeTooManyConnections+": "+limit, 120)), deadline)
	go lingerClose(ws.NetConn())
	return "", false
}

// lingerTimeout and lingerMax bound how long, and how much, the relay reads and drops
// from a connection it closes for abuse after its close frame: closing a socket with
// unread data makes the kernel send a TCP reset, which can destroy the error frame
// and close frame before the peer reads them.
const (
	lingerTimeout = time.Second
	lingerMax     = 4 << 20
)

// lingerClose half-closes nc (FIN after everything written), reads and drops what the
// peer still sends until it closes or lingerTimeout passes, then closes.
func lingerClose(nc net.Conn) {
	defer nc.Close()
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(nc, lingerMax))
}

// startLoginDeadline closes the connection with login_timeout unless it logs in
// within LoginTimeout (answering pings does not count).
func (c *conn) startLoginDeadline() {
	c.loginTimer = time.AfterFunc(c.s.limits.LoginTimeout, func() {
		if c.cardID.Load() != nil {
			return
		}
		c.s.m.limited(LimitLoginDeadline)
		c.kill(relay.CodeLoginTimeout, LimitLoginDeadline, "not logged in within "+c.s.limits.LoginTimeout.String())
	})
}

// pingAllowed applies the frame rate to pings and pongs (control frames do not pass
// through onMessage): pings over the rate get no pong, pongs over it do not move the
// idle deadline, and a flood is closed with rate_limited and a close frame 1008. It
// runs on the read loop.
func (c *conn) pingAllowed() (ok bool, err error) {
	if allowed, _ := c.bucket.allow(c.s.now()); allowed {
		c.rateStrikes = max(0, c.rateStrikes-1)
		return true, nil
	}
	c.rateStrikes++
	c.s.m.limited(LimitFramesPerSecond)
	if c.rateStrikes > 4*c.s.limits.FrameBurst {
		c.kill(relay.CodeRateLimited, LimitFramesPerSecond, "persistently over the frame rate (pings and pongs count)")
		return false, errFlood
	}
	return false, nil
}

var errFlood = errors.New("relay: frame flood")

// tooManyFrames ends a connection whose message passed MaxMessageFrames (the frame
// counter under gorilla's reader calls it).
func (c *conn) tooManyFrames() {
	c.s.m.limited(LimitFramesPerMessage)
	c.kill(relay.CodeBadFrame, LimitFramesPerMessage, "a message in more than "+strconv.Itoa(MaxMessageFrames)+" frames")
}

// allowRegister applies the registration policy and the per-address registration
// rate. It answers the request itself when it refuses.
func (c *conn) allowRegister(f *relay.Frame) bool {
	switch c.s.registration {
	case RegistrationClosed:
		c.s.m.limited(LimitRegistrationPolicy)
		c.replyError(f.ID, relay.CodeRegistrationClosed, "this relay takes no new registrations", LimitRegistrationPolicy)
		return false
	case RegistrationInvite:
		if f.Invite == "" {
			c.s.m.limited(LimitRegistrationPolicy)
			c.replyError(f.ID, relay.CodeInviteRequired, "this relay registers by invitation: ask its operator for a code (pfschat init --invite CODE)", LimitRegistrationPolicy)
			return false
		}
	}
	if ok, retry := c.s.ab.registrations.allow(c.addrKey); !ok {
		c.rateLimited(f.ID, LimitRegistrationsPerAddress, "too many registrations from your address", retry)
		return false
	}
	return true
}

// requester names who a lookup counts against: the logged-in name, or the address.
func (c *conn) requester() string {
	if c.acct != nil {
		return "n:" + c.acct.name
	}
	return "a:" + c.addrKey
}

func (c *conn) rateLimited(reqID uint64, limit, msg string, retry time.Duration) {
	c.s.m.limited(limit)
	c.send(&relay.Frame{Type: relay.TypeError, ID: reqID, Code: relay.CodeRateLimited, Limit: limit,
		Message: msg + "; wait and retry", RetryAfterMS: retry.Milliseconds() + 1})
}

// allowLookup applies lookup_per_requester.
func (c *conn) allowLookup(f *relay.Frame) bool {
	ok, retry := c.s.ab.lookups.allow(c.requester())
	if !ok {
		c.rateLimited(f.ID, LimitLookupPerRequester, "too many lookups", retry)
	}
	return ok
}

// allowFetchBundle applies fetch_bundle_per_requester.
func (c *conn) allowFetchBundle(f *relay.Frame) bool {
	ok, retry := c.s.ab.fetchPerRequester.allow(c.requester())
	if !ok {
		c.rateLimited(f.ID, LimitFetchBundlePerRequester, "too many bundle fetches", retry)
	}
	return ok
}

// allowAccountWrite applies account_writes_per_name to the frames that change an
// account's own records, each a synced transaction on the relay's one writer:
// replace_card, block, unblock, set_recovery. Keyed by name, so that a new card
// (replace_card) starts no fresh allowance.
func (c *conn) allowAccountWrite(f *relay.Frame) bool {
	ok, retry := c.s.ab.accountWrites.allow(c.acct.name)
	if !ok {
		c.rateLimited(f.ID, LimitAccountWritesPerName, "too many changes to your account", retry)
	}
	return ok
}

// allowPreKeyUpload applies upload_prekeys_per_card. Keyed by name, not card id
// (the limit keeps its protocol name), so that a card from replace_card starts no
// fresh allowance: a loop of replace_card and upload_prekeys would otherwise get a
// burst of uploads per replacement.
func (c *conn) allowPreKeyUpload(f *relay.Frame) bool {
	ok, retry := c.s.ab.preKeyUploads.allow(c.acct.name)
	if !ok {
		c.rateLimited(f.ID, LimitUploadPreKeysPerCard, "too many prekey uploads for your account", retry)
	}
	return ok
}

// oneTimeKeysFor says whether a bundle of target may carry one-time prekeys
// (fetch_bundle_per_target); when it may not, the target's owner is told, once per
// hour, by a limit_notice.
func (s *Server) oneTimeKeysFor(target string) bool {
	if ok, _ := s.ab.fetchPerTarget.allow(target); ok {
		return true
	}
	s.m.limited(LimitFetchBundlePerTarget)
	if ok, _ := s.ab.targetNotice.allow(target); ok {
		s.hub.Notice(target, Notice{Limit: LimitFetchBundlePerTarget})
	}
	return false
}

// lowPreKeysNotice tells a card's owner its one-time prekeys run low, at most once
// per LowPreKeysInterval (low_prekeys_notice).
func (s *Server) lowPreKeysNotice(acc *account, counts map[string]int) {
	if ok, _ := s.ab.lowPreKeys.allow(acc.cardID); !ok {
		s.m.limited(LimitLowPreKeysNotice)
		return
	}
	s.hub.Notice(acc.name, Notice{LowPreKeys: counts})
}

// limitNoticeText is what a limit_notice says, by limit.
var limitNoticeText = map[string]string{
	LimitFetchBundlePerTarget: "your prekey bundle was fetched more often than the relay allows in an hour; " +
		"new sessions with you start without one-time prekeys until the hour is over",
}

// createAccount stores a new account, paying with the frame's invite code under
// RegistrationInvite.
func (c *conn) createAccount(ctx context.Context, f *relay.Frame, a storage.Account) error {
	if c.s.registration != RegistrationInvite {
		return c.s.dir.CreateAccount(ctx, a)
	}
	return c.s.invites.CreateAccountInvited(ctx, a, HashInvite(f.Invite), c.s.now())
}

// HashInvite is how an invite code is stored: SHA-256 of its text.
func HashInvite(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// linger half-closes a connection closed for abuse and drops what its peer still
// sends for a moment, so the error and close frames reach it (see lingerClose). It
// runs in teardown, after the close frame was written.
func (c *conn) linger() {
	c.capReads(time.Now().Add(lingerTimeout))
	if cw, ok := c.ws.NetConn().(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-c.readerDone // the deadline ends the read loop at the latest
	nc := c.ws.NetConn()
	nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(nc, lingerMax))
}

// DefaultSenderQuota is the default per-sender share of a recipient's queue: one
// sender fills at most 1/8 of it (storage.RelayOptions.SenderQuota).
const DefaultSenderQuota = 8

// inviteBytes is the randomness of an invite code: 128 bits.
const inviteBytes = 16

// CreateInvite makes an invite code good for uses registrations until now+ttl (ttl 0:
// no expiry), stores its hash and returns the code, which is shown once and never
// stored. `pfschat relay invite` prints it.
func CreateInvite(ctx context.Context, st interface {
	CreateInvite(ctx context.Context, inv storage.Invite) error
}, uses int, ttl time.Duration, now time.Time) (string, error) {
	if uses <= 0 {
		return "", errors.New("relay: an invite needs at least one use")
	}
	if ttl < 0 {
		return "", errors.New("relay: an invite's lifetime must not be negative")
	}
	b := make([]byte, inviteBytes)
	rand.Read(b) // never fails (Go 1.24+)
	code := "pfsinv-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	inv := storage.Invite{Hash: HashInvite(code), UsesLeft: uses, CreatedAt: now}
	if ttl > 0 {
		inv.ExpiresAt = now.Add(ttl)
	}
	if err := st.CreateInvite(ctx, inv); err != nil {
		return "", err
	}
	return code, nil
}
