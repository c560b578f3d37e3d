package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Relay is the relay's store: accounts and their cards, published prekeys, and the
// store-and-forward queue of ciphertexts. It holds nothing secret but the relay's own
// secrets in Meta, which are sealed under the relay key when one is given
// (RelayOptions.SealKey; relay_sealed.go). Safe for concurrent use.
type Relay struct {
	db    *db
	opts  RelayOptions
	seal  *RelaySealer // nil: the values of Meta are stored in the clear
	usage queueUsage   // every recipient's queued count and bytes (relay_usage.go)

	blobMu     sync.Mutex
	blobStores []*BlobStore // closed with the relay (relay_blobs.go)
}

// RelayOptions tune the relay store.
type RelayOptions struct {
	// Synchronous is "FULL" (default: an accepted message survives power loss) or
	// "NORMAL" (survives a process crash; the last commits may be lost on power loss).
	Synchronous string
	// MaxQueueCount / MaxQueueBytes limit one recipient's queue (0 = no limit).
	MaxQueueCount int
	MaxQueueBytes int64
	// SenderQuota, when > 0, lets one sender fill at most 1/SenderQuota of a
	// recipient's queue (count and bytes): a QueueFullError with Limit "sender_quota".
	SenderQuota int
	// SealKey, when set, is the relay key (RelayKeySize bytes; LoadRelayKey) that seals
	// the relay's secrets: every value of Meta. A store whose secrets are sealed opens
	// only with it, ErrRelayKeyNeeded without one and ErrRelayKey with another, and
	// nothing is changed then. With it a store that holds no secrets yet is sealed from
	// then on, and one that keeps them in the clear is sealed in place when
	// SealInPlace is set (ErrRelayNotSealed when it is not).
	SealKey []byte
	// SealInPlace lets OpenRelay seal, under SealKey, the secrets of a store that keeps
	// them in the clear: in one transaction, after which the WAL that held their clear
	// copies is checkpointed and truncated. Only for a caller that has the database to
	// itself (the relay at start and rotate-key, which hold its lock): when another
	// process is reading it the open fails with ErrBusy after sealing, and the next
	// open with SealInPlace clears the WAL.
	SealInPlace bool
}

// Prekey kinds as ratchet numbers them. The relay keeps one of each "replace" kind per
// card (the newest upload wins) and hands out the one-time kinds each exactly once.
const (
	kindSignedPreKey  uint8 = 1
	kindOneTimePreKey uint8 = 2
	kindKEMLastResort uint8 = 3
	kindKEMOneTime    uint8 = 4
)

// OpenRelay opens the relay store at path, creating and migrating it as needed.
func OpenRelay(ctx context.Context, path string, opts RelayOptions) (*Relay, error) {
	if opts.MaxQueueCount < 0 || opts.MaxQueueBytes < 0 || opts.SenderQuota < 0 {
		return nil, fmt.Errorf("%w: negative queue limit", ErrInvalid)
	}
	if opts.SealKey != nil && len(opts.SealKey) != RelayKeySize {
		return nil, fmt.Errorf("%w: the relay key has %d bytes, want %d", ErrRelayKey, len(opts.SealKey), RelayKeySize)
	}
	var seal *RelaySealer
	if opts.SealKey != nil {
		s := NewRelaySealer(slices.Clone(opts.SealKey), relayMetaContext)
		seal = &s
	}
	// An existing store's seal is checked before anything is written: a store whose
	// secrets are sealed, opened without its key or with another, is left untouched.
	var sealed sealState
	checkSeal := func(ctx context.Context, w *sql.DB) (*keyring, error) {
		var err error
		sealed, err = readSealCheck(ctx, w, seal)
		return nil, err
	}
	d, _, err := openDB(ctx, path, relayKind, opts.Synchronous, true, checkSeal)
	if err != nil {
		return nil, err
	}
	// The writer's 8 MiB page cache holds the hot b-tree pages of the queue and dedup
	// indexes (SQLite's default is 2 MiB, which a busy relay outgrows: every miss is a
	// pread). The connection pool has exactly one writer connection, so this sticks.
	if _, err := d.w.ExecContext(ctx, "PRAGMA cache_size = -8192"); err != nil {
		d.close()
		return nil, fmt.Errorf("storage: set the relay store's cache size: %w", err)
	}
	// Statement journals (multi-row INSERTs and DELETEs keep one so that a failing
	// statement can be undone alone) stay in memory instead of spilling to a temporary
	// file past 64 KiB, which cost a pwrite per page of a big batch.
	if _, err := d.w.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		d.close()
		return nil, fmt.Errorf("storage: set the relay store's temp store: %w", err)
	}
	// secure_delete FAST: the relay holds no secret a deleted row must not leave
	// behind (bodies are end-to-end ciphertext, prekeys public), and zeroing every
	// freed page of an acknowledged body would write the whole body again into the
	// WAL: on a full disk the acks that free space could not commit. FAST still zeroes
	// the space a row frees on its page, which is what leaves no clear copy of a
	// secret sealed in place in the meta page (relay_sealed.go; with secure_delete off
	// TestRelaySealInPlace finds the old seed in the file).
	if _, err := d.w.ExecContext(ctx, "PRAGMA secure_delete = FAST"); err != nil {
		d.close()
		return nil, fmt.Errorf("storage: set the relay store's secure_delete: %w", err)
	}
	r := &Relay{db: d, opts: opts, seal: seal}
	if err := r.sealOnOpen(ctx, sealed); err != nil {
		d.close()
		return nil, err
	}
	if err := d.writeRaw(ctx, func(t *rawTxn) error { return r.usage.ensure(ctx, t) }); err != nil {
		d.close()
		return nil, fmt.Errorf("storage: %w", err)
	}
	return r, nil
}

// Close closes the store.
func (r *Relay) Close() error {
	r.blobMu.Lock()
	for _, b := range r.blobStores {
		b.closeAll()
	}
	r.blobMu.Unlock()
	return r.db.close()
}

// Path is the absolute path of the store file.
func (r *Relay) Path() string { return r.db.path }

// IntegrityCheck runs SQLite's integrity_check.
func (r *Relay) IntegrityCheck(ctx context.Context) error { return r.db.integrityCheck(ctx) }

// FreeBytes is the space inside the database file that new rows reuse before the file
// grows (free pages: what deleted messages left).
func (r *Relay) FreeBytes(ctx context.Context) (int64, error) {
	var pages, size int64
	if err := r.db.w.QueryRowContext(ctx, "SELECT freelist_count, page_size FROM pragma_freelist_count(), pragma_page_size()").Scan(&pages, &size); err != nil {
		return 0, fmt.Errorf("storage: free pages: %w", err)
	}
	return pages * size, nil
}

// Meta returns a value stored under key, opened when the store is sealed; ErrNotFound
// if unset.
func (r *Relay) Meta(ctx context.Context, key string) ([]byte, error) {
	if err := checkMetaKey(key); err != nil {
		return nil, err
	}
	v, err := getMeta(ctx, r.db, key)
	if err != nil {
		return nil, err
	}
	return r.openMeta(key, v)
}

// SetMeta stores a value under key, sealed when the store is sealed.
func (r *Relay) SetMeta(ctx context.Context, key string, v []byte) error {
	if err := checkMetaKey(key); err != nil {
		return err
	}
	stored, err := r.sealMeta(key, v)
	if err != nil {
		return err
	}
	return setMeta(ctx, r.db, key, stored)
}

// ---- accounts ----------------------------------------------------------------------

// Account is a registered name and its current (relay-signed) card.
type Account struct {
	Name      string
	CardID    string
	Card      []byte
	CreatedAt time.Time
	// Recovery is the account's recovery verifier (nil: none set); see
	// relayrecovery.go. Only CreateAccount writes it from here.
	Recovery []byte
}

// CreateAccount registers an account. ErrExists if the name or the card ID is taken.
func (r *Relay) CreateAccount(ctx context.Context, a Account) error {
	return r.createAccount(ctx, a, nil)
}

// createAccount registers a in one transaction; pay, when set, runs in it after the
// name and card checks (an invite's use) and its error leaves nothing changed.
func (r *Relay) createAccount(ctx context.Context, a Account, pay func(tx *txn) error) error {
	if a.Name == "" || a.CardID == "" {
		return fmt.Errorf("%w: account needs a name and a card ID", ErrInvalid)
	}
	return r.db.write(ctx, func(tx *txn) error {
		var byName, byCard int
		if err := tx.scan(ctx, "SELECT (SELECT count(*) FROM accounts WHERE name = ?), (SELECT count(*) FROM accounts WHERE card_id = ?)",
			[]any{a.Name, a.CardID}, &byName, &byCard); err != nil {
			return fmt.Errorf("storage: create account %q: %w", a.Name, err)
		}
		if byName > 0 {
			return fmt.Errorf("%w: name %q is taken", ErrExists, a.Name)
		}
		if byCard > 0 {
			return fmt.Errorf("%w: card %s is already registered", ErrExists, a.CardID)
		}
		if pay != nil {
			if err := pay(tx); err != nil {
				return err
			}
		}
		card := a.Card
		if card == nil {
			card = []byte{}
		}
		if _, err := tx.exec(ctx, "INSERT INTO accounts (name, card_id, card, created_at, recovery) VALUES (?, ?, ?, ?, ?)",
			a.Name, a.CardID, card, dbTime(a.CreatedAt), a.Recovery); err != nil {
			return fmt.Errorf("storage: create account %q: %w", a.Name, err)
		}
		// What is queued under a name without an account was sent to an earlier owner:
		// DeleteAccount drops the queue, but a send the relay checked before the
		// deletion and committed after it lands under the name all the same (Enqueue
		// does not look at accounts). The new owner must not be sent it.
		n, err := tx.execN(ctx, "DELETE FROM queue WHERE recipient = ?", a.Name)
		if err != nil {
			return fmt.Errorf("storage: create account %q: %w", a.Name, err)
		}
		if n > 0 {
			r.usage.forget() // counted again by the next write (this one holds the writer)
		}
		return nil
	})
}

func (r *Relay) account(ctx context.Context, where string, arg string) (Account, error) {
	var a Account
	var created int64
	err := r.db.queryRow(ctx, "SELECT name, card_id, card, created_at FROM accounts WHERE "+where+" = ?", arg).
		Scan(&a.Name, &a.CardID, &a.Card, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: account with %s %q", ErrNotFound, where, arg)
	}
	if err != nil {
		return Account{}, fmt.Errorf("storage: read account %q: %w", arg, err)
	}
	a.CreatedAt = goTime(created)
	return a, nil
}

// AccountByName returns the account registered under name; ErrNotFound if none.
func (r *Relay) AccountByName(ctx context.Context, name string) (Account, error) {
	return r.account(ctx, "name", name)
}

// AccountByCardID returns the account whose current card has this ID; ErrNotFound.
func (r *Relay) AccountByCardID(ctx context.Context, id string) (Account, error) {
	return r.account(ctx, "card_id", id)
}

// ReplaceCard swaps the card of an existing account (key change) and drops the prekeys
// published for the old card. ErrNotFound if no such name, ErrExists if the new card
// belongs to another account or was replaced before. newAcc.Name is ignored; CreatedAt
// is kept when zero.
func (r *Relay) ReplaceCard(ctx context.Context, name, fromCardID string, newAcc Account) error {
	return r.db.write(ctx, func(tx *txn) error {
		var oldCard string
		var oldBlob []byte
		err := tx.scan(ctx, "SELECT card_id, card FROM accounts WHERE name = ?", []any{name}, &oldCard, &oldBlob)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: account %q", ErrNotFound, name)
		}
		if err != nil {
			return fmt.Errorf("storage: replace card of %q: %w", name, err)
		}
		if fromCardID != "" && oldCard != fromCardID {
			return fmt.Errorf("%w: account %q with card %s (its card is another now)", ErrNotFound, name, fromCardID)
		}
		if err := cardTaken(ctx, tx, newAcc.CardID, name); err != nil {
			return fmt.Errorf("storage: replace card of %q: %w", name, err)
		}
		card := newAcc.Card
		if card == nil {
			card = []byte{}
		}
		if _, err := tx.exec(ctx, "UPDATE accounts SET card_id = ?, card = ?, created_at = CASE WHEN ? = 0 THEN created_at ELSE ? END WHERE name = ?",
			newAcc.CardID, card, dbTime(newAcc.CreatedAt), dbTime(newAcc.CreatedAt), name); err != nil {
			return fmt.Errorf("storage: replace card of %q: %w", name, err)
		}
		if oldCard != newAcc.CardID {
			if _, err := tx.exec(ctx, "DELETE FROM prekeys WHERE card_id = ?", oldCard); err != nil {
				return fmt.Errorf("storage: drop prekeys of old card: %w", err)
			}
			if err := rememberReplaced(ctx, tx, name, oldCard, oldBlob, newAcc.CreatedAt); err != nil { // relayrecovery.go
				return err
			}
		}
		return nil
	})
}

// ---- prekeys -----------------------------------------------------------------------

// StoredPreKey is a published public prekey (marshalled by ratchet).
type StoredPreKey struct {
	Kind uint8
	ID   uint32
	Data []byte
}

// PutPreKeys stores a card's public prekeys in one transaction. A signed prekey or a
// last-resort KEM prekey replaces the one of its kind; one-time keys are added, those
// whose id is stored already skipped. With maxOneTime > 0 the upload is judged in the
// same transaction, as PROTOCOL.md's upload_prekeys counts: when a one-time kind's
// stored keys plus the upload's keys of that kind (stored ids included) exceed
// maxOneTime, nothing is stored and the error is a *TooManyPreKeysError. Returns how
// many keys were stored.
func (r *Relay) PutPreKeys(ctx context.Context, cardID string, keys []StoredPreKey, maxOneTime int) (int, error) {
	adding := map[uint8]int{}
	for _, k := range keys {
		if k.Kind == 0 {
			return 0, fmt.Errorf("storage: put prekeys of %s: %w: prekey kind 0", cardID, ErrInvalid)
		}
		if k.Kind != kindSignedPreKey && k.Kind != kindKEMLastResort {
			adding[k.Kind]++
		}
	}
	stored := 0
	err := r.db.write(ctx, func(tx *txn) error {
		stored = 0
		if maxOneTime > 0 {
			for kind, n := range adding {
				var have int
				if err := tx.scan(ctx, "SELECT count(*) FROM prekeys WHERE card_id = ? AND kind = ?", []any{cardID, kind}, &have); err != nil {
					return err
				}
				if have+n > maxOneTime {
					return &TooManyPreKeysError{Kind: kind, Stored: have, Adding: n, Max: maxOneTime}
				}
			}
		}
		for _, k := range keys {
			data := k.Data
			if data == nil {
				data = []byte{}
			}
			switch k.Kind {
			case kindSignedPreKey, kindKEMLastResort:
				if _, err := tx.exec(ctx, "DELETE FROM prekeys WHERE card_id = ? AND kind = ?", cardID, k.Kind); err != nil {
					return err
				}
			}
			added, err := tx.execN(ctx, "INSERT INTO prekeys (card_id, kind, id, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
				cardID, k.Kind, k.ID, data)
			if err != nil {
				return err
			}
			if added > 0 {
				stored++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: put prekeys of %s: %w", cardID, err)
	}
	return stored, nil
}

// CountPreKeys counts a card's stored prekeys of a kind.
func (r *Relay) CountPreKeys(ctx context.Context, cardID string, kind uint8) (int, error) {
	var n int
	if err := r.db.queryRow(ctx, "SELECT count(*) FROM prekeys WHERE card_id = ? AND kind = ?", cardID, kind).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: count prekeys: %w", err)
	}
	return n, nil
}

// PreKeyIDs lists the ids of a card's stored prekeys of a kind, ascending.
func (r *Relay) PreKeyIDs(ctx context.Context, cardID string, kind uint8) ([]uint32, error) {
	rows, err := r.db.query(ctx, "SELECT id FROM prekeys WHERE card_id = ? AND kind = ? ORDER BY id", cardID, kind)
	if err != nil {
		return nil, fmt.Errorf("storage: prekey ids: %w", err)
	}
	defer rows.Close()
	ids := []uint32{}
	for rows.Next() {
		var id uint32
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("storage: prekey ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: prekey ids: %w", err)
	}
	return ids, nil
}

// LatestPreKey returns the card's prekey of a kind with the highest id (the signed or
// last-resort key); ErrNotFound if none.
func (r *Relay) LatestPreKey(ctx context.Context, cardID string, kind uint8) (StoredPreKey, error) {
	k := StoredPreKey{}
	err := r.db.queryRow(ctx, "SELECT kind, id, data FROM prekeys WHERE card_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
		cardID, kind).Scan(&k.Kind, &k.ID, &k.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredPreKey{}, fmt.Errorf("%w: no prekey of kind %d for card %s", ErrNotFound, kind, cardID)
	}
	if err != nil {
		return StoredPreKey{}, fmt.Errorf("storage: latest prekey: %w", err)
	}
	return k, nil
}

// TakePreKey removes and returns one prekey of a kind (lowest id first) in a single
// statement, so concurrent callers never get the same key. ErrNotFound when none is left.
func (r *Relay) TakePreKey(ctx context.Context, cardID string, kind uint8) (StoredPreKey, error) {
	if kind == kindSignedPreKey || kind == kindKEMLastResort {
		return StoredPreKey{}, fmt.Errorf("%w: prekey kind %d is shared, not taken (use LatestPreKey)", ErrInvalid, kind)
	}
	k := StoredPreKey{}
	err := r.db.write(ctx, func(tx *txn) error {
		return tx.scan(ctx, `DELETE FROM prekeys WHERE card_id = ?1 AND kind = ?2 AND id =
			(SELECT min(id) FROM prekeys WHERE card_id = ?1 AND kind = ?2) RETURNING kind, id, data`,
			[]any{cardID, kind}, &k.Kind, &k.ID, &k.Data)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return StoredPreKey{}, fmt.Errorf("%w: no prekey of kind %d left for card %s", ErrNotFound, kind, cardID)
	}
	if err != nil {
		return StoredPreKey{}, fmt.Errorf("storage: take prekey: %w", err)
	}
	return k, nil
}

// ---- queue -------------------------------------------------------------------------

// QueuedMessage is one ciphertext waiting for its recipient.
type QueuedMessage struct {
	ID         int64 // assigned by Enqueue; increasing
	To         string
	From       string
	FromCardID string
	ClientID   string // sender's id: (From, ClientID) is accepted once
	Body       []byte
	ReceivedAt time.Time
	ExpiresAt  time.Time
}

// EnqueueResult is the outcome for one message of an Enqueue batch.
type EnqueueResult struct {
	ID        int64 // queue id (the original's id for a duplicate)
	Duplicate bool  // (From, ClientID) was accepted before: not queued again
	Err       error // *QueueFullError when a limit refused it; nil otherwise
}

// Enqueue appends messages in one transaction (group commit: one fsync for the batch)
// and reports per message whether it was queued, a duplicate, or refused by a limit.
// The returned error is for the batch as a whole: nothing was committed.
//
// A batch costs a handful of statements, not a few per message: the duplicate check
// is one multi-row INSERT OR IGNORE into dedup (when it inserts every row, every
// message is new), the limits are checked in Go against usage read once per
// recipient, and the accepted messages go in with multi-row INSERTs. Per-message
// statements remain only for the rare cases (a resent message's original id, a
// refused message's dedup row).
func (r *Relay) Enqueue(ctx context.Context, msgs []QueuedMessage) ([]EnqueueResult, error) {
	if len(msgs) == 0 {
		return []EnqueueResult{}, nil
	}
	res, err := r.Commit(ctx, msgs, nil)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Commit is Enqueue and AckBatch in one write transaction (one commit, one fsync):
// msgs are queued as Enqueue queues them and acks are deleted as AckBatch deletes
// them. The returned error is for the whole transaction: nothing was committed,
// neither the messages nor the acks.
func (r *Relay) Commit(ctx context.Context, msgs []QueuedMessage, acks map[string][]int64) ([]EnqueueResult, error) {
	res := make([]EnqueueResult, len(msgs))
	var eb *enqueueBatch
	if len(msgs) > 0 {
		var err error
		if eb, err = newEnqueueBatch(msgs); err != nil {
			return nil, err
		}
	}
	nacks := 0
	for _, ids := range acks {
		nacks += len(ids)
	}
	if eb == nil && nacks == 0 {
		return res, nil
	}
	err := r.db.writeRaw(ctx, func(t *rawTxn) error {
		// Queued and deleted messages change the usage once it commits.
		usage := usageDeltas{}
		var ids queueIDs
		r.usage.settleOn(t, usage, &ids)
		if err := r.usage.ensure(ctx, t); err != nil {
			return err
		}
		if eb != nil {
			if err := r.enqueueTx(ctx, t, eb, res, usage, &ids); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
		if nacks > 0 {
			if err := ackTx(ctx, t, acks, usage); err != nil {
				return fmt.Errorf("ack batch of %d recipients: %w", len(acks), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return res, nil
}

// enqueueBatch is a validated Enqueue batch with its in-batch repeats found.
type enqueueBatch struct {
	msgs []QueuedMessage
	// A (From, ClientID) repeated inside the batch follows its first copy: first[i] is
	// the index of that copy (i itself for a first copy).
	first   []int
	repeats bool
}

func newEnqueueBatch(msgs []QueuedMessage) (*enqueueBatch, error) {
	for _, m := range msgs {
		if m.To == "" || m.From == "" || m.ClientID == "" {
			return nil, fmt.Errorf("storage: enqueue: %w: queued message needs To, From and ClientID", ErrInvalid)
		}
	}
	eb := &enqueueBatch{msgs: msgs, first: make([]int, len(msgs))}
	for i := range eb.first {
		eb.first[i] = i
	}
	if len(msgs) > 1 {
		seen := make(map[dedupKey]int, len(msgs))
		for i, m := range msgs {
			k := dedupKey{m.From, m.ClientID}
			if j, ok := seen[k]; ok {
				eb.first[i] = j
				eb.repeats = true
				continue
			}
			seen[k] = i
		}
	}
	return eb, nil
}

// enqueueTx queues a batch inside a write transaction, filling res (one per message)
// and adding the accepted messages to usage.
func (r *Relay) enqueueTx(ctx context.Context, t *rawTxn, eb *enqueueBatch, res []EnqueueResult, usage usageDeltas, ids *queueIDs) error {
	msgs, first := eb.msgs, eb.first
	clear(res)
	// Ids are assigned here, after the last one handed out (kept in memory: one
	// writer, inside BEGIN IMMEDIATE; reserved in meta ahead of use, relay_usage.go):
	// message i of the batch gets next+1+i if it is queued, so ids increase in batch
	// order (duplicates and refusals leave gaps) and are never reused.
	cur, ok := r.usage.idState()
	if !ok {
		return errors.New("queue ids not known")
	}
	*ids = cur
	next, err := ids.grant(ctx, t, len(msgs))
	if err != nil {
		return err
	}
	// 1. Remember every first copy in dedup; resends of earlier messages (not new
	// there) answer with the original's id.
	fresh := make([]bool, len(msgs))
	if err := insertDedup(ctx, t, msgs, first, next, fresh, res); err != nil {
		return err
	}
	// 2. Limits, in batch order, against each recipient's usage.
	if r.opts.MaxQueueCount > 0 || r.opts.MaxQueueBytes > 0 {
		if err := r.checkLimits(ctx, t, msgs, fresh, res); err != nil {
			return err
		}
	}
	// 3. The accepted messages, and their recipients' usage.
	if err := insertQueued(ctx, t, msgs, fresh, next, res); err != nil {
		return err
	}
	for i, m := range msgs {
		if fresh[i] {
			usage.add(m.To, 1, int64(len(m.Body)))
		}
	}
	if eb.repeats {
		for i := range msgs {
			if j := first[i]; j != i {
				res[i] = res[j]
				if res[i].Err == nil {
					res[i].Duplicate = true
				}
			}
		}
	}
	return nil
}

type dedupKey struct{ from, clientID string }

// rowChunks are the row counts of the multi-row statements Enqueue and Ack use, so a
// bounded set of statement texts covers every batch size and stays prepared: up to
// exactRows rows take one statement of that many rows (a group commit at a moderate
// rate holds a few messages: one statement each, not one per bit set in n); a bigger
// batch takes the biggest chunks that fit (at most 128 rows a statement).
var rowChunks = []int{128, 64, 32, 16}

const exactRows = 16

func chunkOf(n int) int {
	if n <= exactRows {
		return max(n, 1)
	}
	for _, c := range rowChunks {
		if n >= c {
			return c
		}
	}
	return 1
}

// multiRow caches "prefix (?, ?), (?, ?) suffix" statement texts by row count.
type multiRow struct {
	prefix, row, suffix string
	mu                  sync.Mutex
	texts               map[int]string
}

func (m *multiRow) text(rows int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if q, ok := m.texts[rows]; ok {
		return q
	}
	if m.texts == nil {
		m.texts = map[int]string{}
	}
	var b strings.Builder
	b.WriteString(m.prefix)
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.row)
	}
	b.WriteString(m.suffix)
	m.texts[rows] = b.String()
	return m.texts[rows]
}

var (
	dedupInsert = &multiRow{prefix: "INSERT OR IGNORE INTO dedup (sender, client_id, message_id, expires_at) VALUES ",
		row: "(?, ?, ?, ?)"}
	queueInsert = &multiRow{prefix: "INSERT OR IGNORE INTO queue (id, recipient, sender, sender_card_id, client_id, body, received_at, expires_at) VALUES ",
		row: "(?, ?, ?, ?, ?, ?, ?, ?)"}
)

const dedupLookup = "SELECT message_id FROM dedup WHERE sender = ? AND client_id = ?"

// insertDedup inserts the dedup rows of the batch's first copies (tentative id
// next+1+i) and sets fresh[i] for those that were not there yet. A first copy that was
// there is a resend: res[i] gets the original's id.
func insertDedup(ctx context.Context, t *rawTxn, msgs []QueuedMessage, first []int, next int64, fresh []bool, res []EnqueueResult) error {
	for i := range msgs {
		if first[i] != i {
			continue
		}
		m := &msgs[i]
		t.stage(m.From)
		t.stage(m.ClientID)
		t.stage(next + 1 + int64(i))
		t.stage(dbTime(m.ExpiresAt))
		fresh[i] = true // until the insert says otherwise
	}
	vals := t.staged()
	defer t.clearStaged()
	for start, rows := 0, len(vals)/4; rows > 0; {
		n := chunkOf(rows)
		added, err := t.exec(ctx, dedupInsert.text(n), vals[4*start:4*(start+n)]...)
		if err != nil {
			return err
		}
		if added != int64(n) {
			if err := findResends(ctx, t, msgs, first, next, fresh, res, start, n); err != nil {
				return err
			}
		}
		start += n
		rows -= n
	}
	return nil
}

// findResends, after a dedup insert of the first copies start..start+n-1 (counted
// among first copies) inserted fewer than n rows, finds the copies whose dedup row was
// already there: each is a resend, answered with the original message's id.
func findResends(ctx context.Context, t *rawTxn, msgs []QueuedMessage, first []int, next int64, fresh []bool, res []EnqueueResult, start, n int) error {
	k := 0
	for i := range msgs {
		if first[i] != i {
			continue
		}
		k++
		if k <= start || k > start+n {
			continue
		}
		m := &msgs[i]
		var id int64
		found := false
		err := t.query(ctx, dedupLookup, func(v []driver.Value) (err error) {
			found = true
			id, err = valueInt64(v[0], "dedup.message_id")
			return err
		}, m.From, m.ClientID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("dedup row of (%q, %q) missing after insert", m.From, m.ClientID)
		}
		if id != next+1+int64(i) {
			fresh[i] = false
			res[i] = EnqueueResult{ID: id, Duplicate: true}
		}
	}
	return nil
}

// checkLimits refuses, in batch order, the fresh messages that would take their
// recipient's queue over a limit: res[i].Err is set, fresh[i] cleared and the dedup
// row forgotten (a refused message was not accepted: a later resend may go through).
func (r *Relay) checkLimits(ctx context.Context, t *rawTxn, msgs []QueuedMessage, fresh []bool, res []EnqueueResult) error {
	used := map[string]*usageDelta{}
	for i, m := range msgs {
		if fresh[i] && used[m.To] == nil {
			d, ok := r.usage.get(m.To)
			if !ok {
				return errors.New("queue usage not known")
			}
			used[m.To] = &d
		}
	}
	var quota senderQuota
	for i, m := range msgs {
		if !fresh[i] {
			continue
		}
		u := used[m.To]
		var full *QueueFullError
		if r.opts.MaxQueueCount > 0 && u.count >= int64(r.opts.MaxQueueCount) {
			full = &QueueFullError{Recipient: m.To, Limit: "count", Max: int64(r.opts.MaxQueueCount), Current: u.count}
		} else if r.opts.MaxQueueBytes > 0 && u.bytes+int64(len(m.Body)) > r.opts.MaxQueueBytes {
			full = &QueueFullError{Recipient: m.To, Limit: "bytes", Max: r.opts.MaxQueueBytes, Current: u.bytes}
		} else if r.opts.SenderQuota > 0 {
			var err error
			if full, err = quota.check(ctx, t, r.opts, &m, u); err != nil {
				return err
			}
		}
		if full == nil {
			u.count++
			u.bytes += int64(len(m.Body))
			continue
		}
		if _, err := t.exec(ctx, "DELETE FROM dedup WHERE sender = ? AND client_id = ?", m.From, m.ClientID); err != nil {
			return err
		}
		fresh[i] = false
		res[i].Err = full
	}
	return nil
}

// usageDelta is a change to one recipient's queue usage (or, in checkLimits, the usage).
type usageDelta struct{ count, bytes int64 }

// usageDeltas are the queue usage changes of one transaction, by recipient.
type usageDeltas map[string]*usageDelta

func (u usageDeltas) add(to string, count, bytes int64) {
	d := u[to]
	if d == nil {
		d = &usageDelta{}
		u[to] = d
	}
	d.count += count
	d.bytes += bytes
}

// insertQueued inserts the accepted (fresh) messages, message i with id next+1+i.
func insertQueued(ctx context.Context, t *rawTxn, msgs []QueuedMessage, fresh []bool, next int64, res []EnqueueResult) error {
	now := int64(0)
	rows := 0
	for i := range msgs {
		if !fresh[i] {
			continue
		}
		m := &msgs[i]
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		recv := dbTime(m.ReceivedAt)
		if recv == 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			recv = now
		}
		id := next + 1 + int64(i)
		t.stage(id)
		t.stage(m.To)
		t.stage(m.From)
		t.stage(m.FromCardID)
		t.stage(m.ClientID)
		t.stage(body)
		t.stage(recv)
		t.stage(dbTime(m.ExpiresAt))
		res[i] = EnqueueResult{ID: id}
		rows++
	}
	vals := t.staged()
	defer t.clearStaged()
	for start := 0; rows > 0; {
		n := chunkOf(rows)
		added, err := t.exec(ctx, queueInsert.text(n), vals[start:start+8*n]...)
		if err != nil {
			return err
		}
		if added != int64(n) {
			// OR IGNORE (no statement journal) must not hide a lost message.
			return fmt.Errorf("storage: %d of %d queued messages were not stored (id clash)", int64(n)-added, n)
		}
		start += 8 * n
		rows -= n
	}
	return nil
}

// Pending returns up to limit messages for a recipient with id > afterID, in order.
// limit <= 0 means 100.
func (r *Relay) Pending(ctx context.Context, to string, afterID int64, limit int) ([]QueuedMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := r.db.query(ctx, `SELECT id, recipient, sender, sender_card_id, client_id, body, received_at, expires_at
		FROM queue WHERE recipient = ? AND id > ? ORDER BY id LIMIT ?`, to, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: pending for %q: %w", to, err)
	}
	defer rows.Close()
	var out []QueuedMessage
	for rows.Next() {
		var m QueuedMessage
		var recv, exp int64
		if err := rows.Scan(&m.ID, &m.To, &m.From, &m.FromCardID, &m.ClientID, &m.Body, &recv, &exp); err != nil {
			return nil, fmt.Errorf("storage: pending for %q: %w", to, err)
		}
		m.ReceivedAt, m.ExpiresAt = goTime(recv), goTime(exp)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: pending for %q: %w", to, err)
	}
	return out, nil
}

// Ack deletes acknowledged messages, only those addressed to `to` (ids of someone
// else's messages, or already deleted, are ignored).
func (r *Relay) Ack(ctx context.Context, to string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := r.ackBatch(ctx, map[string][]int64{to: ids}); err != nil {
		return fmt.Errorf("storage: ack for %q: %w", to, err)
	}
	return nil
}

// AckBatch is Ack for many recipients in one transaction (one fsync): acks maps each
// recipient to the ids it acknowledged.
func (r *Relay) AckBatch(ctx context.Context, acks map[string][]int64) error {
	if err := r.ackBatch(ctx, acks); err != nil {
		return fmt.Errorf("storage: ack batch of %d recipients: %w", len(acks), err)
	}
	return nil
}

func (r *Relay) ackBatch(ctx context.Context, acks map[string][]int64) error {
	total := 0
	for _, ids := range acks {
		total += len(ids)
	}
	if total == 0 {
		return nil
	}
	return r.db.writeRawUnsynced(ctx, func(t *rawTxn) error {
		usage := usageDeltas{}
		r.usage.settleOn(t, usage, nil)
		if err := r.usage.ensure(ctx, t); err != nil {
			return err
		}
		return ackTx(ctx, t, acks, usage)
	})
}

// ackDelete deletes (recipient, id) pairs: a row is deleted only if both match, so an
// id of someone else's message is ignored. The pairs are looked up by rowid.
var ackDelete = &multiRow{prefix: "DELETE FROM queue WHERE (recipient, id) IN (VALUES ", row: "(?, ?)",
	suffix: ") RETURNING recipient, length(body)"}

// ackTx deletes the acknowledged messages of many recipients with a few multi-row
// statements and takes them off usage.
func ackTx(ctx context.Context, t *rawTxn, acks map[string][]int64, usage usageDeltas) error {
	for to, ids := range acks {
		for _, id := range ids {
			t.stage(to)
			t.stage(id)
		}
	}
	vals := t.staged()
	defer t.clearStaged()
	_, err := deleteReturningUsage(ctx, t, ackDelete, nil, vals, 2, usage)
	return err
}

// deleteReturningUsage runs a multi-row DELETE ... RETURNING recipient, length(body)
// over vals (perRow values a row, after the lead values of every statement) in
// rowChunks, and takes the deleted messages off usage. It returns how many it deleted.
func deleteReturningUsage(ctx context.Context, t *rawTxn, q *multiRow, lead []any, vals []any, perRow int, usage usageDeltas) (int, error) {
	deleted := 0
	row := func(v []driver.Value) error {
		to, err := valueString(v[0], "queue.recipient")
		if err != nil {
			return err
		}
		size, err := valueInt64(v[1], "length(queue.body)")
		if err != nil {
			return err
		}
		usage.add(to, -1, -size)
		deleted++
		return nil
	}
	var args []any
	for start, rows := 0, len(vals)/perRow; rows > 0; {
		n := chunkOf(rows)
		chunk := vals[start : start+perRow*n]
		if len(lead) > 0 {
			args = append(append(args[:0], lead...), chunk...)
			chunk = args
		}
		if err := t.query(ctx, q.text(n), row, chunk...); err != nil {
			return deleted, err
		}
		start += perRow * n
		rows -= n
	}
	return deleted, nil
}

// Expire deletes queued messages (and duplicate-detection entries) whose ExpiresAt is
// before now; messages with a zero ExpiresAt never expire. Returns how many messages
// were deleted.
func (r *Relay) Expire(ctx context.Context, now time.Time) (int, error) {
	cutoff := dbTime(now)
	// Find the expired messages with a scan on a reader connection (queue has no index
	// on expires_at: every enqueue and ack paid for one), beside the writer.
	rows, err := r.db.query(ctx, "SELECT id FROM queue WHERE expires_at <> 0 AND expires_at < ?", cutoff)
	if err != nil {
		return 0, fmt.Errorf("storage: expire: %w", err)
	}
	var ids []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("storage: expire: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("storage: expire: %w", err)
	}
	// Delete them in short transactions, so commits waiting for the writer are held up
	// for one chunk at most. The cutoff is checked again: an id found expired is
	// deleted only if that still holds.
	n := 0
	const perTx = 1024
	lead := []any{cutoff}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), perTx)]
		ids = ids[len(chunk):]
		err := r.db.writeRaw(ctx, func(t *rawTxn) error {
			usage := usageDeltas{}
			r.usage.settleOn(t, usage, nil)
			if err := r.usage.ensure(ctx, t); err != nil {
				return err
			}
			deleted, err := deleteReturningUsage(ctx, t, expireDelete, lead, chunk, 1, usage)
			if err != nil {
				return err
			}
			n += deleted
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("storage: expire: %w", err)
		}
	}
	err = r.db.writeRaw(ctx, func(t *rawTxn) error {
		_, err := t.exec(ctx, "DELETE FROM dedup WHERE expires_at <> 0 AND expires_at < ?", cutoff)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("storage: expire duplicate-detection entries: %w", err)
	}
	return n, nil
}

var expireDelete = &multiRow{prefix: "DELETE FROM queue WHERE expires_at <> 0 AND expires_at < ? AND id IN (", row: "?",
	suffix: ") RETURNING recipient, length(body)"}

// QueueDepth is the number of queued messages, all recipients together.
func (r *Relay) QueueDepth(ctx context.Context) (int, error) {
	if n, ok := r.usage.total(); ok {
		return int(n), nil
	}
	var n int
	if err := r.db.queryRow(ctx, "SELECT count(*) FROM queue").Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: queue depth: %w", err)
	}
	return n, nil
}

// QueueUsage is one recipient's queued message count and bytes.
func (r *Relay) QueueUsage(ctx context.Context, to string) (count int, bytes int64, err error) {
	if d, ok := r.usage.get(to); ok {
		return int(d.count), d.bytes, nil
	}
	err = r.db.queryRow(ctx, "SELECT count(*), coalesce(sum(length(body)), 0) FROM queue WHERE recipient = ?", to).Scan(&count, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: queue usage of %q: %w", to, err)
	}
	return count, bytes, nil
}
