package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns that callers are expected to act on
// wraps one of these, so test with errors.Is; the wrapping text names what was wrong.
var (
	// ErrWrongPassphrase: the passphrase does not unwrap the storage key (or a
	// passphrase was given for a demo store, or none for a protected one). Nothing
	// was changed.
	ErrWrongPassphrase = errors.New("storage: wrong passphrase")
	// ErrNotFound: no such row, or no store at the path.
	ErrNotFound = errors.New("storage: not found")
	// ErrExists: the row (or the store file) already exists.
	ErrExists = errors.New("storage: already exists")
	// ErrNewerSchema: the file was written by a newer pfschat. It is left untouched.
	ErrNewerSchema = errors.New("storage: database schema is newer than this program; upgrade pfschat")
	// ErrDuplicate: CommitReceive saw this relay message id before. Nothing changed.
	ErrDuplicate = errors.New("storage: duplicate relay message id")
	// ErrQueueFull: a recipient's queue is at its count or byte limit. The concrete
	// error is a *QueueFullError naming the limit.
	ErrQueueFull = errors.New("storage: recipient queue full")
	// ErrTooManyPreKeys: an upload's one-time prekeys of a kind, with those the card
	// holds, are over the cap PutPreKeys was given. Nothing was stored. The concrete
	// error is a *TooManyPreKeysError.
	ErrTooManyPreKeys = errors.New("storage: too many one-time prekeys")
	// ErrWrongKind: the file is a SQLite database but not this kind of pfschat store
	// (a relay store opened as a client store, or a foreign database).
	ErrWrongKind = errors.New("storage: not a pfschat store of this kind")
	// ErrCorrupt: a stored value failed its integrity check (sealed value tampered
	// with or moved between rows, impossible key-derivation parameters).
	ErrCorrupt = errors.New("storage: stored data failed integrity check")
	// ErrEmptyPassphrase: a non-nil but empty passphrase. Pass nil for the demo
	// profile; a real profile needs a real passphrase.
	ErrEmptyPassphrase = errors.New("storage: empty passphrase (use nil only for the throwaway demo profile)")
	// ErrBusy: another process kept the store's write lock longer than the busy
	// timeout. Nothing was written; close the other pfschat using this profile, or retry.
	ErrBusy = errors.New("storage: store is busy: another process is writing to it")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("storage: store is closed")
	// ErrStaleSession: a session write named a generation the row has moved past (or
	// the session is gone): another writer committed a newer state. The concrete error
	// is a *StaleSessionError. Nothing was written; reload the session and redo the step.
	ErrStaleSession = errors.New("storage: stale session state")
	// ErrReplayedFirstMessage: CommitReceive was given a first message (signed prekey
	// id, KEM prekey, ephemeral key) that was accepted before: a replay. Nothing changed.
	ErrReplayedFirstMessage = errors.New("storage: first message accepted before (a replay)")
	// ErrDamaged: the file where a store should be is empty, not a SQLite database, or
	// not a pfschat store: it is damaged or was replaced. It is left untouched; restore
	// the profile from a backup (creating a new one would cost the user their name).
	ErrDamaged = errors.New("storage: store file is damaged")
	// ErrDiskFull: the disk holding the store is full (SQLITE_FULL, ENOSPC). The
	// transaction was rolled back; free space on that disk and retry.
	ErrDiskFull = errors.New("storage: the disk is full")
	// ErrInvalid: an argument is out of range (bad limit, bad synchronous mode...).
	ErrInvalid = errors.New("storage: invalid argument")
	// ErrWeakKDF: Argon2id parameters below DefaultKDF were given for a new store or
	// passphrase outside a test binary. Nothing was created or changed.
	ErrWeakKDF = errors.New("storage: Argon2id parameters below the default are for tests only")
	// ErrRelayKey: a relay key (LoadRelayKey) is missing, malformed, or not the key the
	// relay's secrets are sealed under. Nothing was changed.
	ErrRelayKey = errors.New("storage: relay key")
	// ErrRelayKeyNeeded: the relay store keeps its secrets sealed and was opened
	// without a relay key (RelayOptions.SealKey). Nothing was changed.
	ErrRelayKeyNeeded = errors.New("storage: the relay's secrets are sealed")
	// ErrRelayNotSealed: a relay key was given for a relay store that keeps its secrets
	// in the clear, without RelayOptions.SealInPlace. Nothing was changed.
	ErrRelayNotSealed = errors.New("storage: the relay's secrets are not sealed")
)

// QueueFullError reports which per-recipient limit an enqueue would break.
// errors.Is(err, ErrQueueFull) holds for it.
type QueueFullError struct {
	Recipient string
	Limit     string // "count", "bytes" or "sender_quota"
	Max       int64  // the configured limit
	Current   int64  // the recipient's queue before this message
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("storage: queue of %q full: %s limit %d reached (now %d)", e.Recipient, e.Limit, e.Max, e.Current)
}

// Is makes errors.Is(err, ErrQueueFull) true.
func (e *QueueFullError) Is(target error) bool { return target == ErrQueueFull }

// TooManyPreKeysError reports the kind whose one-time prekeys an upload would take
// over the cap, judged in the upload's transaction. errors.Is(err,
// ErrTooManyPreKeys) holds for it.
type TooManyPreKeysError struct {
	Kind   uint8
	Stored int // the card's keys of Kind when the upload was judged
	Adding int // the upload's keys of Kind, those already stored included
	Max    int
}

func (e *TooManyPreKeysError) Error() string {
	return fmt.Sprintf("storage: %d one-time prekeys of kind %d stored, %d more would exceed %d", e.Stored, e.Kind, e.Adding, e.Max)
}

// Is makes errors.Is(err, ErrTooManyPreKeys) true.
func (e *TooManyPreKeysError) Is(target error) bool { return target == ErrTooManyPreKeys }

// StaleSessionError reports a refused session write. errors.Is(err, ErrStaleSession)
// holds for it.
type StaleSessionError struct {
	ID      string
	Read    uint64 // the generation the writer read
	Current uint64 // the row's generation now (when Exists)
	Exists  bool   // false: the session was deleted meanwhile
}

func (e *StaleSessionError) Error() string {
	if !e.Exists {
		return fmt.Sprintf("storage: session %.12s was written at generation %d but is gone: another writer removed it", e.ID, e.Read)
	}
	return fmt.Sprintf("storage: session %.12s was read at generation %d but is at %d: another writer committed a newer state (is the profile open twice?)", e.ID, e.Read, e.Current)
}

// Is makes errors.Is(err, ErrStaleSession) true.
func (e *StaleSessionError) Is(target error) bool { return target == ErrStaleSession }
