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
	// ErrInvalid: an argument is out of range (bad limit, bad synchronous mode...).
	ErrInvalid = errors.New("storage: invalid argument")
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
