package chat

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pfschat/chat/profile"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/storage"
)

// StoreFile is the name of the client store inside a profile directory.
const StoreFile = "pfschat.db"

// NormalizeRelayURL checks a relay URL and adds the default path: "ws://host:port" and
// "wss://host" are accepted, "/v2/ws" is implied, "" means profile.DefaultRelayURL.
// Several URLs separated by commas are the nodes of one relay cluster (tried in order,
// client.SplitURLs): each is checked and normalized, and the list comes back joined by
// commas. Whether a ws:// URL may be used (loopback only, unless --insecure-ws) is
// relay/client's one check, client.CheckURL, made before every dial.
func NormalizeRelayURL(raw string) (string, error) {
	if strings.TrimSpace(raw) == "" {
		raw = profile.DefaultRelayURL
	}
	parts := strings.Split(raw, ",")
	seen := make(map[string]bool, len(parts))
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			return "", fmt.Errorf("chat: relay URL list %q has an empty entry: separate the nodes' URLs by single commas", raw)
		}
		u, err := normalizeOneRelayURL(part)
		if err != nil {
			return "", err
		}
		if seen[u] {
			return "", fmt.Errorf("chat: relay URL list %q names %s twice", raw, u)
		}
		seen[u] = true
		parts[i] = u
	}
	return strings.Join(parts, ","), nil
}

func normalizeOneRelayURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if (err == nil && u.Scheme != "ws" && u.Scheme != "wss") || (err != nil && !strings.Contains(raw, "://")) {
		// "127.0.0.1:7878" does not parse at all: what it lacks is the scheme.
		return "", fmt.Errorf("chat: relay URL %q must start with ws:// or wss://", raw)
	}
	if err != nil {
		return "", fmt.Errorf("chat: relay URL %q: %w", raw, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("chat: relay URL %q has no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = relay.WSPath
	}
	return u.String(), nil
}

// Profile is a pfschat profile on disk: a directory holding the sealed client store. It
// is what the UI's onboarding and unlock screens, and the headless commands, open.
type Profile struct {
	// Dir holds the store (StoreFile).
	Dir string
	// RelayURL overrides the relay remembered in the store ("" = remembered, else
	// profile.DefaultRelayURL).
	RelayURL string
	// Device is the device label put on a new card (default "terminal").
	Device string
	// Invite is the invite code registration sends (a relay that registers by
	// invitation: `pfschat init --invite CODE`).
	Invite string
	// RelayKey, when set, is the relay key the user was shown before creating the
	// profile (onboarding): registration refuses a relay that proves another.
	RelayKey ed25519.PublicKey
	// Preferences for the controller; Store, RelayURL, IdentityKey and Card are filled in.
	Prefs Preferences
	// StoreOptions tune the client store (zero = production: Argon2id defaults, FULL sync).
	StoreOptions storage.ClientOptions
	// Owner is recorded in the profile lock, so that a refused opener can say who holds
	// the profile ("" = profile.OwnerCommand).
	Owner profile.OwnerKind
	// Held is the profile's lock when the caller took it already (Lock), before asking
	// for the passphrase, so that a profile another process holds is refused before
	// the prompt. Open, OpenOrOffline and NewController take it over: they keep it on
	// success and release it on failure.
	Held *profile.Lock
}

// Lock takes the profile's exclusive lock for a later Open (put it in Held). A
// *profile.LockedError says who holds the profile.
func (p Profile) Lock() (*profile.Lock, error) { return p.lock() }

// lock takes the profile's exclusive lock (see profile.AcquireLock): every opener of a
// profile passes here, so no two controllers ever hold one profile's ratchet states.
func (p Profile) lock() (*profile.Lock, error) {
	kind := p.Owner
	if kind == "" {
		kind = profile.OwnerCommand
	}
	l, err := profile.AcquireLock(p.Dir, kind)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	return l, nil
}

// StorePath is the path of the profile's store.
func (p Profile) StorePath() string { return filepath.Join(p.Dir, StoreFile) }

// Exists reports whether the profile has a store.
func (p Profile) Exists() bool {
	_, err := os.Stat(p.StorePath())
	return err == nil
}

// DefaultRelayURL is the relay offered when creating a profile.
func (p Profile) DefaultRelayURL() string {
	if p.RelayURL != "" {
		return p.RelayURL
	}
	return profile.DefaultRelayURL
}

// relayURL is the relay an existing profile connects to: p.RelayURL when set, else the
// one remembered in its store ("" when none is; NormalizeRelayURL then picks the
// default).
func (p Profile) relayURL(ctx context.Context, store *storage.Client) string {
	if p.RelayURL != "" {
		return p.RelayURL
	}
	if b, err := store.Meta(ctx, metaRelayURL); err == nil {
		return string(b)
	}
	return ""
}

// Create makes a new identity, registers its card with the relay (pinning the relay's
// key), stores everything sealed under passphrase (nil = demo profile, unsealed), and
// returns an initialized controller. If registration fails nothing is left behind —
// the directory is as Create found it — so Create can simply be retried.
func (p Profile) Create(ctx context.Context, name string, passphrase []byte, relayURL string) (*Controller, error) {
	return p.create(ctx, name, passphrase, relayURL, func(relayURL string, rnd io.Reader, card *ratchet.Card) (*ratchet.Card, ed25519.PublicKey, relay.RecoveryCode, error) {
		code, err := relay.NewRecoveryCode(rnd)
		if err != nil {
			return nil, nil, relay.RecoveryCode{}, fmt.Errorf("chat: generating the recovery code: %w", err)
		}
		signed, relayKey, err := p.register(ctx, relayURL, card, code.Proof(name))
		return signed, relayKey, code, err
	})
}

// publishFunc puts a new card on the relay (register, or recover) and returns it as
// the relay signed it, the relay's key and the account's recovery code from now on.
type publishFunc func(relayURL string, rnd io.Reader, card *ratchet.Card) (*ratchet.Card, ed25519.PublicKey, relay.RecoveryCode, error)

// create makes a new identity key and card, and publishes the card while it makes the
// profile's store (for a passphrase, most of that is Argon2id; neither waits for the
// other). A creation that fails before the identity is saved leaves the directory as it
// found it (foundDir): the store, the lock file and the directories it made go again,
// its permissions come back, and whatever was there stays. A store left by a crash
// before the identity was saved in it holds nothing of anyone's, and the next create
// removes it (storage.UnfinishedClient) instead of refusing.
func (p Profile) create(ctx context.Context, name string, passphrase []byte, relayURL string, publish publishFunc) (*Controller, error) {
	if err := ratchet.ValidateName(name); err != nil {
		return nil, fmt.Errorf("chat: %q is not a valid name (1–32 of a-z 0-9 . _ -): %w", name, err)
	}
	if relayURL == "" {
		relayURL = p.DefaultRelayURL()
	}
	relayURL, err := NormalizeRelayURL(relayURL)
	if err != nil {
		return nil, err
	}
	if p.Exists() && !storage.UnfinishedClient(ctx, p.StorePath()) {
		return nil, fmt.Errorf("%w: %s", ErrProfileExists, p.StorePath())
	}
	// A creation that fails leaves the directory as it found it (found.restore): what
	// it made goes again, what was there stays.
	found := findDir(p.Dir)
	var lock *profile.Lock
	locked, saved := false, false
	defer func() {
		switch {
		case locked: // the controller holds the lock now
		case saved: // registered and saved: opening the profile later goes on from there
			lock.Release()
		default:
			found.restore(lock)
		}
	}()
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("chat: creating profile directory: %w", err)
	}
	if lock, err = p.lock(); err != nil {
		return nil, err
	}
	// Only its owner may enter it, whatever the umask or an earlier mode. (Once the
	// lock is ours: a refused creation leaves the holder's directory alone.)
	if err := os.Chmod(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("chat: creating profile directory: %w", err)
	}
	if p.Exists() { // the lock decides: made by another process meanwhile, or cut short
		if !storage.UnfinishedClient(ctx, p.StorePath()) {
			return nil, fmt.Errorf("%w: %s", ErrProfileExists, p.StorePath())
		}
		removeStore(p.StorePath())
		if p.Exists() {
			return nil, fmt.Errorf("chat: removing the store an interrupted creation left at %s failed; remove it by hand", p.StorePath())
		}
	}
	clock := p.Prefs.Clock
	if clock == nil {
		clock = time.Now
	}
	rnd := randReader
	key, err := ratchet.GenerateIdentityKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("chat: generating identity key: %w", err)
	}
	device := p.Device
	if device == "" {
		device = "terminal"
	}
	card, err := ratchet.NewCard(key, name, "username", device, clock().UTC().Truncate(time.Second), nil)
	if err != nil {
		return nil, fmt.Errorf("chat: creating card: %w", err)
	}
	type madeStore struct {
		store *storage.Client
		err   error
	}
	made := make(chan madeStore, 1)
	go func() {
		store, err := storage.CreateClientWith(ctx, p.StorePath(), passphrase, p.StoreOptions)
		made <- madeStore{store, err}
	}()
	signed, relayKey, code, err := publish(relayURL, rnd, card)
	m := <-made
	if err != nil {
		if m.err == nil {
			m.store.Close()
			removeStore(p.StorePath())
		}
		return nil, err
	}
	if m.err != nil {
		return nil, fmt.Errorf("chat: creating the store: %w", m.err)
	}
	store := m.store
	fail := func(err error) (*Controller, error) {
		store.Close()
		removeStore(p.StorePath())
		return nil, err
	}
	priv, err := key.MarshalBinary()
	if err != nil {
		return fail(fmt.Errorf("chat: encoding identity key: %w", err))
	}
	if err := store.SetMeta(ctx, metaRelayKey, relayKey); err != nil {
		return fail(fmt.Errorf("chat: pinning the relay key: %w", err))
	}
	if err := store.SetMeta(ctx, metaRelayURL, []byte(relayURL)); err != nil {
		return fail(fmt.Errorf("chat: remembering the relay: %w", err))
	}
	if err := store.SaveIdentity(ctx, storage.Identity{Name: name, CardID: signed.ID(), Card: []byte(signed.Export()), PrivateKey: priv}); err != nil {
		return fail(fmt.Errorf("chat: saving identity: %w", err))
	}
	saved = true
	c, err := p.controller(ctx, store, relayURL, lock)
	if err != nil {
		// The identity is registered and saved; only going online failed. Keep the
		// profile: opening it later retries.
		store.Close()
		return nil, err
	}
	c.recoveryCode = code.String()
	locked = true
	return c, nil
}

// foundDir is what create found at a profile's directory before making anything in it,
// so that a creation that fails can leave it as it was.
type foundDir struct {
	dir     string
	made    []string    // the directories that were missing, the deepest first
	existed bool        // dir was there
	mode    fs.FileMode // dir's permissions (modeBits), when it existed
	hadLock bool        // dir held a lock file (another opener's, or an earlier one's)
}

// modeBits are the bits of a directory's mode that os.Chmod sets.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func findDir(dir string) foundDir {
	f := foundDir{dir: dir}
	for d := filepath.Clean(dir); ; {
		fi, err := os.Stat(d)
		if err == nil {
			if len(f.made) == 0 {
				f.existed, f.mode = true, fi.Mode()&modeBits
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break // not ours to judge: nothing at or above it will be removed
		}
		f.made = append(f.made, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	_, err := os.Lstat(filepath.Join(dir, profile.LockFile))
	f.hadLock = !errors.Is(err, fs.ErrNotExist)
	return f
}

// restore undoes a failed creation once its store is gone. Holding the lock, it
// removes the lock file if there was none (lock.RemoveAndRelease: the file goes
// before the lock) and puts back the directory's permissions; then it removes the
// directories it made, as far as they are empty. Nothing that was there before is
// removed: a directory that holds anything stays (os.Remove refuses it). Without the
// lock (another process holds the profile) it changed nothing but those directories.
func (f foundDir) restore(lock *profile.Lock) {
	if lock != nil && f.existed {
		if fi, err := os.Stat(f.dir); err == nil && fi.Mode()&modeBits != f.mode {
			_ = os.Chmod(f.dir, f.mode) // best effort, as below
		}
	}
	if lock != nil && !f.hadLock {
		_ = lock.RemoveAndRelease() // a lock file left over locks nothing away
	} else {
		lock.Release()
	}
	for _, d := range f.made {
		if os.Remove(d) != nil {
			break // not empty, or not ours to remove: neither are its parents
		}
	}
}

func (p Profile) register(ctx context.Context, relayURL string, card *ratchet.Card, recoveryProof []byte) (*ratchet.Card, ed25519.PublicKey, error) {
	dial := p.Prefs.Dial
	if dial == nil {
		dial = func(cfg client.Config) RelayClient { return client.New(cfg) }
	}
	logger := p.Prefs.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc := dial(client.Config{URL: relayURL, Logger: logger, InsecureWS: p.Prefs.InsecureWS, RootCAs: p.Prefs.RootCAs, Invite: p.Invite,
		PinnedRelayKey: p.RelayKey, RecoveryProof: recoveryProof})
	defer rc.Close()
	if err := rc.Connect(ctx); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrOffline, relayURL, err)
	}
	relayKey := rc.RelayKey()
	signed, err := rc.Register(ctx, card)
	if err != nil {
		var pe *relay.ProtocolError
		if errors.As(err, &pe) && pe.Code == relay.CodeNameTaken {
			return nil, nil, fmt.Errorf("%w: %q on %s", ErrNameTaken, card.Identity, relayURL)
		}
		return nil, nil, fmt.Errorf("chat: registering %s with %s: %w", card.Identity, relayURL, err)
	}
	if err := signed.VerifyWithRelay(relayKey); err != nil {
		return nil, nil, fmt.Errorf("%w: the relay's signature on our own card: %w", ErrCardRejected, err)
	}
	if signed.ID() != card.ID() {
		return nil, nil, fmt.Errorf("%w: the relay returned a different card than the one registered", ErrCardRejected)
	}
	return signed, relayKey, nil
}

// Open unlocks the profile with passphrase and returns an initialized controller.
// errors.Is(err, ErrWrongPassphrase) for a wrong passphrase, ErrNoProfile when there is
// no profile.
//
// Opening takes the profile's lock for as long as the controller is open: while
// another process (or another controller in this process) holds the profile, Open
// returns an error matching profile.ErrLocked (a *profile.LockedError naming the
// holder) and changes nothing.
func (p Profile) Open(ctx context.Context, passphrase []byte) (*Controller, error) {
	store, lock, err := p.openStore(ctx, passphrase)
	if err != nil {
		return nil, err
	}
	c, err := p.controller(ctx, store, p.relayURL(ctx, store), lock)
	if err != nil {
		store.Close()
		lock.Release()
		return nil, err
	}
	return c, nil
}

// OpenStore unlocks the profile's store without connecting anywhere. It takes the
// profile's lock like Open, and keeps it until the process exits: a bare store has no
// Close hook to give it back, so prefer NewController, whose Close releases it.
func (p Profile) OpenStore(ctx context.Context, passphrase []byte) (*storage.Client, error) {
	store, _, err := p.openStore(ctx, passphrase)
	return store, err
}

func (p Profile) openStore(ctx context.Context, passphrase []byte) (*storage.Client, *profile.Lock, error) {
	lock := p.Held
	if !p.Exists() {
		lock.Release()
		return nil, nil, fmt.Errorf("%w: %s", ErrNoProfile, p.StorePath())
	}
	if lock == nil {
		var err error
		if lock, err = p.lock(); err != nil {
			return nil, nil, err
		}
	}
	store, err := storage.OpenClientWith(ctx, p.StorePath(), passphrase, p.StoreOptions)
	if errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrDamaged) {
		lock.Release()
		return nil, nil, fmt.Errorf("%w: %s", ErrNoProfile, p.StorePath())
	}
	if err != nil {
		lock.Release()
		return nil, nil, fmt.Errorf("chat: opening %s: %w", p.StorePath(), err)
	}
	return store, lock, nil
}

// OpenOrOffline is Open that, when the relay cannot be reached, returns instead the
// controller NewController would (not connected, not trying to), with offline the
// ErrOffline error that says why. The profile is unlocked once either way: a command
// that can do without the relay does not ask for the passphrase, or pay for the key
// derivation, a second time.
func (p Profile) OpenOrOffline(ctx context.Context, passphrase []byte) (c *Controller, offline, err error) {
	store, lock, err := p.openStore(ctx, passphrase)
	if err != nil {
		return nil, nil, err
	}
	c, err = p.controller(ctx, store, p.relayURL(ctx, store), lock)
	if errors.Is(err, ErrOffline) {
		offline = err
		c, err = p.offlineController(ctx, store, lock)
		if err != nil {
			return nil, nil, err // offlineController gave store and lock back
		}
		return c, offline, nil
	}
	if err != nil {
		store.Close()
		lock.Release()
		return nil, nil, err
	}
	return c, nil, nil
}

// NewController opens the profile's store and builds a controller without connecting.
// It holds the profile's lock until Close, like Open.
func (p Profile) NewController(ctx context.Context, passphrase []byte) (*Controller, error) {
	store, lock, err := p.openStore(ctx, passphrase)
	if err != nil {
		return nil, err
	}
	return p.offlineController(ctx, store, lock)
}

// offlineController builds a controller on store without connecting; it owns store
// and lock from then on (an error closes and releases them).
func (p Profile) offlineController(ctx context.Context, store *storage.Client, lock *profile.Lock) (*Controller, error) {
	prefs := p.Prefs
	prefs.Store, prefs.RelayURL = store, p.relayURL(ctx, store)
	c, err := New(prefs)
	if err != nil {
		store.Close()
		lock.Release()
		return nil, err
	}
	c.ownStore, c.lock = true, lock
	if err := c.loadIdentity(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// controller builds and initializes the controller; it owns store and lock from the
// moment it returns without error.
func (p Profile) controller(ctx context.Context, store *storage.Client, relayURL string, lock *profile.Lock) (*Controller, error) {
	prefs := p.Prefs
	prefs.Store, prefs.RelayURL = store, relayURL
	c, err := New(prefs)
	if err != nil {
		return nil, err
	}
	if err := c.Initialize(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.ownStore, c.lock = true, lock
	return c, nil
}

func removeStore(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			_ = err // best effort: a leftover file only blocks a retry, with a clear error
		}
	}
}

var randReader io.Reader = cryptoRand{}
