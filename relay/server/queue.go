package server

import (
	"context"
	"errors"
	"time"

	"pfschat/relay"
	"pfschat/storage"
)

// Queue is the durable per-recipient message queue: enqueue a batch in one
// transaction, fetch a recipient's messages after an id in order, delete acked ones.
// *storage.Relay implements it on SQLite; a JetStream stream with per-recipient
// subjects would implement it across nodes.
//
// The relay reuses the memory of the messages it hands to Enqueue (and to
// Committer.Commit): their bodies live in pooled buffers. An implementation must copy
// whatever it keeps beyond the call (writing to SQLite copies; keeping the slice does
// not). The same goes for the ids given to Ack (and AckBatcher, Committer): they are
// reused too. Strings are immutable and may be kept.
type Queue interface {
	// Enqueue stores a batch atomically and durably; per item it reports the id, whether
	// it duplicated an earlier (from, client_id), or a limit error. msgs and their
	// bodies are the caller's again once it returns.
	Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error)
	// Pending returns up to limit messages for to with id > afterID, oldest first.
	Pending(ctx context.Context, to string, afterID int64, limit int) ([]storage.QueuedMessage, error)
	// Ack deletes the listed messages, but only those addressed to to.
	Ack(ctx context.Context, to string, ids []int64) error
}

var _ Queue = (*storage.Relay)(nil)

// queueExpirer and queueDepther are optional Queue extensions: a queue apart from the
// directory expires its messages and counts them itself.
type (
	queueExpirer interface {
		Expire(ctx context.Context, now time.Time) (int, error)
	}
	queueDepther interface {
		QueueDepth(ctx context.Context) (int, error)
	}
)

// QueuePurger is an optional Queue extension for a queue kept apart from the Store
// (whose DeleteAccount cannot reach it): drop every message queued for name and what
// the queue remembers of name's sends, once name's account is deleted.
type QueuePurger interface {
	PurgeRecipient(ctx context.Context, name string) (int, error)
}

// StaleQueuePurger is an optional Queue extension for a queue kept apart from the
// Store: a name registered again must not be sent what a deleted account left
// queued under it (a deletion on a cluster is not one transaction, and a failure
// between its steps leaves the queue). Registration marks where the queue stands,
// checks that the name has no account, drops what was queued up to the mark, then
// creates the account: a message queued up to the mark was sent to an account that
// was gone by the check, and one for the new account comes after its creation.
type StaleQueuePurger interface {
	MarkRecipient(ctx context.Context, name string) (QueueMark, error)
	PurgeRecipientBefore(ctx context.Context, name string, mark QueueMark) (int, error)
}

// QueueMark is where a queue stood for a name (StaleQueuePurger); only the queue
// reads it.
type QueueMark []uint64

// purgeStaleQueue drops what an earlier account of name left in a queue kept apart
// from the Store, before name is registered (StaleQueuePurger). A name with an
// account keeps its queue: the registration then finds the name taken.
func (s *Server) purgeStaleQueue(ctx context.Context, name string) error {
	p, ok := s.queue.(StaleQueuePurger)
	if !ok || any(s.queue) == any(s.dir) {
		return nil
	}
	mark, err := p.MarkRecipient(ctx, name)
	if err != nil {
		return err
	}
	if _, err := s.dir.AccountByName(ctx, name); !errors.Is(err, storage.ErrNotFound) {
		return err // nil: an account has the name
	}
	n, err := p.PurgeRecipientBefore(ctx, name, mark)
	if n > 0 {
		s.log.Warn("dropped messages an earlier account of the name left queued", "name", name, "messages", n)
	}
	return err
}

// purgeQueueFirst drops name's queue ahead of deleting its account when the queue is
// not the Store's own (a cluster's): a store failure then leaves the account, to be
// deleted again, rather than a queue that the name's next owner would be sent.
// purgeQueue after the deletion drops what was accepted in between.
func (s *Server) purgeQueueFirst(ctx context.Context, name string) (int, error) {
	p, ok := s.queue.(QueuePurger)
	if !ok || any(s.queue) == any(s.dir) {
		return 0, nil
	}
	return p.PurgeRecipient(ctx, name)
}

// purgeQueue drops a deleted account's queue when the queue is not the Store's own
// (DeleteAccount did it there). A failure is logged: the account is gone already.
func (s *Server) purgeQueue(ctx context.Context, name string) int {
	n, err := s.purgeQueueFirst(ctx, name)
	if err != nil {
		s.log.Error("dropping a deleted account's queue", "name", name, "err", err)
	}
	return n
}

// Directory is the rest of the relay's state: accounts, cards, prekeys, metadata.
type Directory interface {
	Meta(ctx context.Context, key string) ([]byte, error)
	SetMeta(ctx context.Context, key string, v []byte) error
	CreateAccount(ctx context.Context, a storage.Account) error
	AccountByName(ctx context.Context, name string) (storage.Account, error)
	AccountByCardID(ctx context.Context, id string) (storage.Account, error)
	// ReplaceCard makes a the account's card when its card is fromCardID ("" = any):
	// storage.ErrNotFound when it is not (replaced meanwhile, elsewhere).
	ReplaceCard(ctx context.Context, name, fromCardID string, a storage.Account) error
	PutPreKeys(ctx context.Context, cardID string, keys []storage.StoredPreKey, maxOneTime int) (int, error)
	CountPreKeys(ctx context.Context, cardID string, kind uint8) (int, error)
	PreKeyIDs(ctx context.Context, cardID string, kind uint8) ([]uint32, error)
	LatestPreKey(ctx context.Context, cardID string, kind uint8) (storage.StoredPreKey, error)
	TakePreKey(ctx context.Context, cardID string, kind uint8) (storage.StoredPreKey, error)
	Expire(ctx context.Context, now time.Time) (int, error)
	QueueDepth(ctx context.Context) (int, error)
}

var _ Directory = (*storage.Relay)(nil)

// Store is the relay's whole directory: Directory plus what accounts, recovery,
// replaced cards, blocks and invites need. *storage.Relay implements it on SQLite (the
// default); a store shared by several relay nodes (relay/cluster) implements it too.
// An error that wraps ErrUnavailable means the store cannot take the write now and
// nothing was changed: the client is told "unavailable" (retry), never "internal".
type Store interface {
	Directory
	accountStore
	recoveryStore
	replacedStore
	// Blocks is every block, by blocker, read at start.
	Blocks(ctx context.Context) (map[string][]string, error)
	Block(ctx context.Context, blocker, blocked string, at time.Time, max int) error
	Unblock(ctx context.Context, blocker, blocked string) error
	// CreateAccountInvited registers a under an invite code (its hash), using it once.
	CreateAccountInvited(ctx context.Context, a storage.Account, inviteHash []byte, now time.Time) error
}

var _ Store = (*storage.Relay)(nil)

// ErrUnavailable is what a Queue or Store wraps when it cannot answer now (a cluster
// without quorum, a lost connection to it, a request over its time): a write did not
// happen, and the relay answers with the "unavailable" error code so the client
// retries. Reads wrap it too (a backlog page, an ack's look), so its words name no write.
var ErrUnavailable = errors.New("relay: the store cannot answer now")

// errorCode is the protocol error code for a store error: unavailable or internal.
func errorCode(err error) string {
	if errors.Is(err, ErrUnavailable) {
		return relay.CodeUnavailable
	}
	return relay.CodeInternal
}
