package chat

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"pfschat/chat/profile"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/fifo"
	"pfschat/storage"
)

// rpcTimeout bounds every request to the relay, so a lost answer can never wedge the
// outbox or the receive loop.
const rpcTimeout = 30 * time.Second

func withRPCTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, rpcTimeout)
}

// DefaultOneTimeKeys is how many one-time prekeys of each kind are kept on the relay.
const DefaultOneTimeKeys = 100

// Meta keys in the client store (public values only).
const (
	metaRelayKey = "relay_key"
	metaRelayURL = "relay_url"
)

// RelayClient is what the controller needs from a relay connection. *client.Client
// implements it; tests wrap it to play a dishonest relay. It paces every request under
// the relay's frame rate.
type RelayClient interface {
	Run(ctx context.Context) error
	Connect(ctx context.Context) error
	Close() error
	RelayKey() ed25519.PublicKey
	States() <-chan client.ConnState
	Pushes() *fifo.Queue[client.Push]
	FramesScarce() bool
	Register(ctx context.Context, card *ratchet.Card) (*ratchet.Card, error)
	LookupCard(ctx context.Context, name string) (*ratchet.Card, error)
	UploadPreKeys(ctx context.Context, keys []ratchet.PublicPreKey) error
	PreKeyStatus(ctx context.Context) (client.PreKeyStatus, error)
	FetchBundle(ctx context.Context, name string) (*ratchet.Bundle, error)
	Send(ctx context.Context, to string, body []byte, clientID string) (int64, error)
	Ack(ctx context.Context, ids ...int64) error
	// AckNoWait acks without waiting for an answer (a quiet ack where the relay takes
	// them).
	AckNoWait(ids ...int64) error
}

// Preferences configure a Controller: the seed's SecureChat preferences plus what a Go
// program needs to run it.
type Preferences struct {
	// Store is the open client store. Required. The controller does not close it unless
	// it was opened by Profile.
	Store *storage.Client
	// RelayURL is ws://host:port or wss://…; "/v2/ws" is implied. Several URLs
	// separated by commas are one relay cluster's nodes, tried in order.
	RelayURL string
	// InsecureWS allows ws:// to a relay that is not on loopback (--insecure-ws);
	// RootCAs verifies a wss:// relay (nil = the system roots). See client.Config.
	InsecureWS bool
	RootCAs    *x509.CertPool
	// IdentityKey and Card are the owner's identity; when nil they are loaded from Store.
	IdentityKey *ratchet.IdentityKey
	Card        *ratchet.Card
	// OneTimeKeys is the number of one-time prekeys of each kind kept on the relay
	// (default DefaultOneTimeKeys).
	OneTimeKeys int
	// RotateEvery is how often RotateKeys runs in the background (default 1 h).
	RotateEvery time.Duration
	// AllowOffline lets Initialize succeed when the relay cannot be reached; the
	// controller keeps retrying and reports ConnectionChanged events. Off for headless
	// commands, which should fail fast with a clear error.
	AllowOffline bool
	// StayUp is for programs that keep running (the UI, the daemon): a relay that
	// presents another key than the pinned one does not end Initialize; the controller
	// reports it (ConnState.Err is a *RelayKeyChangedError), keeps retrying the pinned
	// key, and RepinRelay re-pins by hand. A one-shot command fails with the error.
	StayUp bool
	// NoReadReceipts stops MarkRead from telling contacts what was read.
	NoReadReceipts bool
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// Logger receives diagnostics; never secrets (default: discard).
	Logger *slog.Logger
	// Dial builds the relay connection (default client.New). Tests use it to put a
	// test double between the controller and the real relay.
	Dial func(client.Config) RelayClient
	// AttachmentDir holds sealed files waiting for upload and downloads being assembled
	// (default: "attachments" beside the store). Never the downloads directory.
	AttachmentDir string
}

// Controller is the SecureChat controller: one identity, one relay, many contacts. Its
// methods are safe for concurrent use.
type Controller struct {
	// startedOffline is why Initialize found the relay unreachable (AllowOffline); nil
	// when it connected.
	startedOffline atomic.Pointer[error]

	// deliveryMu orders the delivery events of the send path's settlement and of
	// receipts as their store changes are ordered: a receipt processed between a
	// settlement's commit and its event was reported first, and the settlement's
	// older "sent" then reached subscribers after "delivered" (a tick going back).
	deliveryMu sync.Mutex

	// deferred is the relay's last refusal for now (storage_full, unavailable…) of each
	// outbox item still waiting, by client id (SendDeferral). deferMu.
	deferMu  sync.Mutex
	deferred map[string]*relay.ProtocolError

	prefs  Preferences
	store  *storage.Client
	log    *slog.Logger
	now    func() time.Time
	rand   io.Reader
	id     *ratchet.IdentityKey
	card   *ratchet.Card
	name   string
	events *eventQueue
	out    *outbox // the sender's queue of committed, unsettled items
	// resendSessions: per peer card, the session this client started to answer a retry
	// request (retry.go); later requests share it until the peer answers. c.mu.
	resendSessions map[string]string

	ownStore bool
	lock     *profile.Lock // the profile's lock, when Profile opened the store; released by Close

	// mu serializes every read-modify-write of ratchet state, so a session's state in
	// the store is always the one the last Encrypt/Decrypt left behind.
	mu sync.Mutex
	// rotateMu makes concurrent RotateKeys calls wait instead of racing.
	rotateMu sync.Mutex

	connMu   sync.Mutex
	rc       RelayClient
	relayKey ed25519.PublicKey
	online   bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	kick     chan struct{} // wakes the outbox drainer
	rotateCh chan struct{} // wakes the key rotator
	lowKeys  lowKeysGate   // low_prekeys notices wake it at most once per window (lowkeys.go)
	closed   bool
	initDone bool
	// recoveryCode is the code made by Create or Recover, until TakeRecoveryCode.
	recoveryCode string

	// synced is closed once the relay's backlog has been received and committed.
	synced     chan struct{}
	syncedOnce sync.Once
	// passDone is closed (and replaced) after every outbox pass; Flush waits on it.
	passDone chan struct{}

	replayedFirst, replayed atomic.Int64 // see Stats
	// blocked is the set of blocked contacts, read on every incoming message without
	// touching the store (requests.go); nil until first loaded.
	blocked    atomic.Pointer[map[string]bool]
	attachBusy sync.Map // client ids of attachments being transferred → a download's *downloadRun (dropPartials stops it, a second Download waits for it), struct{}{} for an upload (attachments.go)
	// beforeCommit, when set (tests only), runs between a send's ratchet step and its
	// commit: where a second writer on the profile can slip in.
	beforeCommit func()
	// beforeSavedRecord, when set (tests only), runs once a download's file is in the
	// downloads directory, before the record that says so commits: where a crash leaves
	// a saved file its record does not know.
	beforeSavedRecord func()
}

// Stats returns the controller's counters of dropped replays and skipped rows.
func (c *Controller) Stats() Stats {
	return Stats{ReplayedFirstMessages: c.replayedFirst.Load(), ReplayedMessages: c.replayed.Load(),
		DamagedRowsSkipped: c.store.CorruptRowsSkipped()}
}

// New builds a controller from preferences; it does no I/O beyond reading the identity
// from the store. Call Initialize to connect.
func New(prefs Preferences) (*Controller, error) {
	if prefs.Store == nil {
		return nil, errors.New("chat: Preferences.Store is required")
	}
	// Validate before starting anything: the event queue runs a goroutine, which an
	// error return would leave behind.
	relayURL, err := NormalizeRelayURL(prefs.RelayURL)
	if err != nil {
		return nil, err
	}
	prefs.RelayURL = relayURL
	c := &Controller{
		prefs:    prefs,
		store:    prefs.Store,
		log:      prefs.Logger,
		now:      prefs.Clock,
		rand:     rand.Reader, // keys come from crypto/rand only: no caller swaps it
		id:       prefs.IdentityKey,
		card:     prefs.Card,
		kick:     make(chan struct{}, 1),
		rotateCh: make(chan struct{}, 1),
		out:      newOutbox(),

		resendSessions: make(map[string]string),
		synced:         make(chan struct{}),
		passDone:       make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.prefs.OneTimeKeys <= 0 {
		c.prefs.OneTimeKeys = DefaultOneTimeKeys
	}
	if c.prefs.RotateEvery <= 0 {
		c.prefs.RotateEvery = time.Hour
	}
	if c.prefs.Dial == nil {
		c.prefs.Dial = func(cfg client.Config) RelayClient { return client.New(cfg) }
	}
	c.events = newEventQueue() // last: nothing can fail after its goroutine starts
	return c, nil
}

// Me returns the owner's name.
func (c *Controller) Me() string { return c.name }

// Card returns the owner's relay-signed card.
func (c *Controller) Card() *ratchet.Card { return c.card }

// Events returns the event stream. Events are never dropped: they queue in memory until
// read. The channel closes when the controller is closed.
func (c *Controller) Events() <-chan Event { return c.events.out }

func (c *Controller) emit(e Event) { c.events.push(e) }

// contactChanged tells the event stream that the user changed contact (ContactChanged).
func (c *Controller) contactChanged(contact string) {
	c.emit(Event{Kind: ContactChanged, Contact: contact})
}

// Initialize loads the identity, connects and logs in to the relay (pinning its key on
// first contact; a different key later is a *RelayKeyChangedError), publishes prekeys
// (RotateKeys), then keeps the connection alive, receiving messages and draining the
// outbox in the background.
func (c *Controller) Initialize(ctx context.Context) error {
	c.connMu.Lock()
	if c.closed {
		c.connMu.Unlock()
		return ErrClosed
	}
	if c.initDone {
		c.connMu.Unlock()
		return nil
	}
	c.connMu.Unlock()

	if err := c.loadIdentity(ctx); err != nil {
		return err
	}
	pinned, err := c.store.Meta(ctx, metaRelayKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("chat: reading the pinned relay key: %w", err)
	}
	if len(pinned) != 0 && len(pinned) != ed25519.PublicKeySize {
		return fmt.Errorf("chat: pinned relay key in the store is %d bytes, want %d", len(pinned), ed25519.PublicKeySize)
	}
	if len(pinned) != 0 {
		if err := c.card.VerifyWithRelay(ed25519.PublicKey(pinned)); err != nil {
			return fmt.Errorf("chat: own card does not carry the pinned relay's signature: %w", err)
		}
	}
	rc := c.prefs.Dial(client.Config{
		URL:            c.prefs.RelayURL,
		Identity:       c.id,
		Card:           c.card,
		PinnedRelayKey: ed25519.PublicKey(pinned),
		Logger:         c.log.With("part", "relay-client"),
		InsecureWS:     c.prefs.InsecureWS,
		RootCAs:        c.prefs.RootCAs,

		OnRelayKeyRotated: c.relayKeyRotated, // relaykey.go
		// A program that stays up (the UI, the daemon) shows a relay-key mismatch and
		// keeps retrying the pinned key; RepinRelay re-pins by hand.
		RetryKeyMismatch: c.prefs.StayUp,
	})

	runCtx, cancel := context.WithCancel(context.Background())
	c.connMu.Lock()
	c.rc = rc
	c.cancel = cancel
	c.relayKey = ed25519.PublicKey(pinned)
	c.initDone = true
	c.connMu.Unlock()

	connectErr := rc.Connect(ctx)
	if connectErr != nil {
		if errors.Is(connectErr, client.ErrRelayKeyMismatch) {
			rk := c.relayKeyError(pinned, rc, connectErr)
			if !c.prefs.StayUp {
				rc.Close()
				cancel()
				return rk
			}
			// Stay up: the connection's states carry the mismatch (ConnState.Err is a
			// *RelayKeyChangedError), the pinned relay may come back, and the user can
			// re-pin by hand (RepinRelay) after comparing the fingerprints.
			c.log.Error("relay key mismatch at start; retrying the pinned key in the background", "err", rk)
		}
		if isCardReplaced(connectErr) { // recovery.go
			rerr := c.identityReplaced(ctx, connectErr)
			rc.Close()
			cancel()
			return rerr
		}
		// Waiting cannot fix these: a refused transport, a relay that cannot prove its key.
		if errors.Is(connectErr, client.ErrInsecureTransport) || errors.Is(connectErr, client.ErrRelayProof) {
			rc.Close()
			cancel()
			return fmt.Errorf("chat: %s: %w", c.prefs.RelayURL, connectErr)
		}
		if !c.prefs.AllowOffline {
			return fmt.Errorf("%w: %s: %w", ErrOffline, c.prefs.RelayURL, connectErr)
		}
		if !errors.Is(connectErr, client.ErrRelayKeyMismatch) {
			c.log.Warn("relay unreachable at start; retrying in the background", "err", connectErr)
		}
		c.startedOffline.Store(&connectErr)
	} else {
		if err := c.pinRelayKey(ctx, c.relayKeyNow(), rc.RelayKey()); err != nil { // relayKeyRotated may have re-pinned
			return err
		}
		c.setOnline(true)
	}

	c.wg.Add(4)
	go c.runConnection(runCtx, rc, connectErr == nil)
	go c.receiveLoop(runCtx, rc)
	go c.sendLoop(runCtx)
	go c.rotateLoop(runCtx)

	if connectErr == nil {
		if err := c.RotateKeys(ctx, c.prefs.OneTimeKeys); err != nil {
			return fmt.Errorf("chat: publishing prekeys: %w", err)
		}
		c.kickSender()
		c.syncBlocks(ctx, rc) // blocks made offline (requests.go)
	}
	return nil
}

func (c *Controller) relayKeyError(pinned []byte, rc RelayClient, cause error) error {
	e := &RelayKeyChangedError{URL: c.prefs.RelayURL, Pinned: ratchet.Fingerprint(pinned), Cause: cause}
	var me *client.RelayKeyMismatchError
	if errors.As(cause, &me) {
		e.Pinned, e.Presented = ratchet.Fingerprint(me.Pinned), ratchet.Fingerprint(me.Presented)
	}
	return e
}

// pinRelayKey stores the relay key on first contact, and checks it otherwise (the relay
// client checks too; this is the belt to its braces).
func (c *Controller) pinRelayKey(ctx context.Context, pinned []byte, got ed25519.PublicKey) error {
	if len(got) != ed25519.PublicKeySize {
		return fmt.Errorf("chat: relay presented no usable key")
	}
	if len(pinned) != 0 {
		if !ed25519.PublicKey(pinned).Equal(got) {
			return &RelayKeyChangedError{URL: c.prefs.RelayURL, Pinned: ratchet.Fingerprint(pinned), Presented: ratchet.Fingerprint(got)}
		}
		return nil
	}
	if err := c.card.VerifyWithRelay(got); err != nil {
		return fmt.Errorf("chat: the relay at %s did not sign this profile's card (key %s): %w", c.prefs.RelayURL, ratchet.Fingerprint(got), err)
	}
	if err := c.store.SetMeta(ctx, metaRelayKey, got); err != nil {
		return fmt.Errorf("chat: pinning the relay key: %w", err)
	}
	c.connMu.Lock()
	c.relayKey = got
	c.connMu.Unlock()
	c.log.Info("pinned relay key on first contact", "fingerprint", ratchet.Fingerprint(got))
	return nil
}

func (c *Controller) loadIdentity(ctx context.Context) error {
	if c.id != nil && c.card != nil {
		if c.name == "" { // a running controller's name never changes: no write, no race with Me
			c.name = c.card.Identity
		}
		return nil
	}
	ident, err := c.store.Identity(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: the store holds no identity", ErrNoProfile)
	}
	if err != nil {
		return fmt.Errorf("chat: loading identity: %w", err)
	}
	k, err := ratchet.ParseIdentityKey(ident.PrivateKey)
	if err != nil {
		return fmt.Errorf("chat: identity key in the store: %w", err)
	}
	card, err := ratchet.ImportCard(string(ident.Card))
	if err != nil {
		return fmt.Errorf("chat: own card in the store: %w", err)
	}
	if err := card.Verify(); err != nil {
		return fmt.Errorf("chat: own card in the store: %w", err)
	}
	if !card.SigningKey.Equal(k.SigningPublicKey()) {
		return fmt.Errorf("chat: own card in the store does not match the identity key")
	}
	c.id, c.card, c.name = k, card, card.Identity
	return nil
}

// runConnection keeps the relay connection alive (reconnecting with backoff) and turns
// its states into ConnectionChanged events; going online drains the outbox and tops up
// prekeys.
func (c *Controller) runConnection(ctx context.Context, rc RelayClient, connected bool) {
	defer c.wg.Done()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := rc.Run(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, client.ErrRelayKeyMismatch) {
				err = c.relayKeyError(c.relayKeyNow(), rc, err)
			}
			if isCardReplaced(err) { // recovery.go
				err = c.identityReplaced(context.WithoutCancel(ctx), err)
			}
			c.log.Error("relay connection stopped", "err", err)
			c.emit(Event{Kind: ConnectionChanged, State: ConnState{Status: Offline, Err: err}})
		}
	}()
	if connected {
		c.emit(Event{Kind: ConnectionChanged, State: ConnState{Status: Online}})
	}
	states := rc.States()
	for {
		select {
		case <-ctx.Done():
			<-runDone
			return
		case <-runDone:
			c.setOnline(false)
			<-ctx.Done()
			return
		case st, ok := <-states:
			if !ok {
				states = nil
				continue
			}
			cs := mapConnState(st)
			if cs.Err != nil && errors.Is(cs.Err, client.ErrRelayKeyMismatch) {
				cs.Err = c.relayKeyError(c.relayKeyNow(), rc, cs.Err)
			}
			wasOnline := c.isOnline()
			// Connecting never ends a connection (an Offline or Closed state does, first):
			// the one that arrives while online is Connect's own, read here after Open
			// set the controller online, and must not make it offline for a moment
			// (reset-identity right after opening found it offline).
			if cs.Status != Connecting {
				c.setOnline(cs.Status == Online)
			}
			if cs.Status == Online && !wasOnline {
				if len(c.relayKeyNow()) == 0 {
					if err := c.pinRelayKey(ctx, nil, rc.RelayKey()); err != nil {
						c.log.Error("pinning relay key", "err", err)
					}
				}
				c.out.markStale() // another process may have queued while we were away
				c.kickSender()
				c.kickRotate()
			}
			c.emit(Event{Kind: ConnectionChanged, State: cs})
			if cs.Status == Online && !wasOnline {
				c.syncBlocks(ctx, rc) // blocks made offline (requests.go)
			}
		}
	}
}

func mapConnState(st client.ConnState) ConnState {
	switch st.State {
	case client.StateOnline:
		return ConnState{Status: Online}
	case client.StateConnecting:
		return ConnState{Status: Connecting, Err: st.Err}
	case client.StateOffline:
		return ConnState{Status: Reconnecting, RetryIn: st.RetryIn, Err: st.Err}
	default:
		return ConnState{Status: Offline, Err: st.Err}
	}
}

func (c *Controller) setOnline(v bool) {
	c.connMu.Lock()
	c.online = v
	c.connMu.Unlock()
}

func (c *Controller) isOnline() bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.online
}

func (c *Controller) relayKeyNow() ed25519.PublicKey {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.relayKey
}

func (c *Controller) relayClient() (RelayClient, error) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.rc == nil {
		return nil, ErrNotInitialized
	}
	return c.rc, nil
}

func (c *Controller) kickSender() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Controller) kickRotate() {
	select {
	case c.rotateCh <- struct{}{}:
	default:
	}
}

// WaitSynced waits until the relay's stored backlog has been received and committed
// (every message the relay held when we connected is then in the store).
func (c *Controller) WaitSynced(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chat: waiting for the relay's backlog: %w", ctx.Err())
	}
}

func (c *Controller) markSynced() { c.syncedOnce.Do(func() { close(c.synced) }) }

// Flush waits until the outbox is empty (receipts included), or ctx is done. It
// returns how many items are still waiting.
//
// It starts one pass of the send loop and then waits for the loop's own: after a pass
// that left items (refused for now) the loop retries with its backoff, and a pass
// started after each would send to a relay refusing them (full disk, no quorum) as
// fast as its frame rate allows for as long as Flush waits.
func (c *Controller) Flush(ctx context.Context) (int, error) {
	for kicked := false; ; kicked = true {
		c.connMu.Lock()
		pass := c.passDone
		c.connMu.Unlock()
		items, err := c.store.Outbox(ctx)
		if err != nil {
			return 0, fmt.Errorf("chat: reading outbox: %w", err)
		}
		if len(items) == 0 {
			return 0, nil
		}
		if !kicked {
			c.kickSender()
		}
		select {
		case <-pass:
		case <-ctx.Done():
			return len(items), ctx.Err()
		}
	}
}

func (c *Controller) outboxPassDone() {
	c.connMu.Lock()
	close(c.passDone)
	c.passDone = make(chan struct{})
	c.connMu.Unlock()
}

// Close stops the background work, closes the relay connection (and the store when the
// controller opened it) and closes the event channel.
func (c *Controller) Close() error {
	c.connMu.Lock()
	if c.closed {
		c.connMu.Unlock()
		return nil
	}
	c.closed = true
	rc, cancel := c.rc, c.cancel
	c.connMu.Unlock()
	if cancel != nil {
		cancel()
	}
	var errs []error
	if rc != nil {
		if err := rc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.wg.Wait()
	c.events.close()
	if c.ownStore {
		if err := c.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.lock.Release(); err != nil { // after the store: nobody may open it while we still write
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// eventQueue is an unbounded FIFO in front of a channel: producers never block and
// nothing is dropped when the consumer is slow. One goroutine moves the events from
// the queue to the channel Events hands out.
type eventQueue struct {
	q    *fifo.Queue[Event]
	out  chan Event
	done chan struct{}
	once sync.Once
}

func newEventQueue() *eventQueue {
	e := &eventQueue{q: fifo.New[Event](), out: make(chan Event), done: make(chan struct{})}
	go e.run()
	return e
}

func (e *eventQueue) push(ev Event) { e.q.Push(ev) }

func (e *eventQueue) run() {
	defer close(e.out)
	for {
		select {
		case <-e.done:
			return // closed: what is still queued is dropped
		default:
		}
		ev, ok := e.q.Pop()
		if !ok {
			select {
			case <-e.q.Ready():
			case <-e.done:
				return
			}
			continue
		}
		select {
		case e.out <- ev:
		case <-e.done:
			return
		}
	}
}

func (e *eventQueue) close() {
	e.once.Do(func() {
		e.q.Close()
		close(e.done)
	})
}

// Online reports whether the relay connection is up right now.
func (c *Controller) Online() bool { return c.isOnline() }

// StartedOffline is why the controller could not connect when it started (a profile
// opened with AllowOffline): the dial's error, or the relay's answer when it answered
// and refused (a *relay.ProtocolError, such as unavailable from a relay node whose
// store has lost its quorum). nil when it connected.
func (c *Controller) StartedOffline() error {
	if p := c.startedOffline.Load(); p != nil {
		return *p
	}
	return nil
}

// HasSession reports whether a session with the contact's current card exists, i.e.
// whether Send can work offline.
func (c *Controller) HasSession(ctx context.Context, contact string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.store.Contact(ctx, contact)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return false, fmt.Errorf("%w: %q", ErrUnknownContact, contact)
		}
		return false, err
	}
	s, err := c.activeSession(ctx, r.CardID)
	return s != nil, err
}

// Fingerprint is the fingerprint of the user's own card key (ratchet/SPEC.md §7), to
// show next to the name (/whoami, the end of onboarding).
func (c *Controller) Fingerprint() string { return ratchet.Fingerprint(c.card.SigningKey) }

// RelayURL is the relay this controller talks to (several, comma-separated, when the
// profile has several): the --relay given, else the one the profile remembers.
func (c *Controller) RelayURL() string { return c.prefs.RelayURL }

// RelayFingerprint is the fingerprint of the pinned relay key ("" before first contact);
// compare it with the one the relay prints at start.
func (c *Controller) RelayFingerprint() string {
	if k := c.relayKeyNow(); len(k) == ed25519.PublicKeySize {
		return ratchet.Fingerprint(k)
	}
	return ""
}
