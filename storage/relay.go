package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Relay is the relay's store: accounts and their cards, published prekeys, and the
// store-and-forward queue of ciphertexts. It holds nothing secret except the relay's own
// key in Meta (the relay decides how to protect it). Safe for concurrent use.
type Relay struct {
	db   *db
	opts RelayOptions
}

// RelayOptions tune the relay store.
type RelayOptions struct {
	// Synchronous is "FULL" (default: an accepted message survives power loss) or
	// "NORMAL" (survives a process crash; the last commits may be lost on power loss).
	Synchronous string
	// MaxQueueCount / MaxQueueBytes limit one recipient's queue (0 = no limit).
	MaxQueueCount int
	MaxQueueBytes int64
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
	if opts.MaxQueueCount < 0 || opts.MaxQueueBytes < 0 {
		return nil, fmt.Errorf("%w: negative queue limit", ErrInvalid)
	}
	d, _, err := openDB(ctx, path, relayKind, opts.Synchronous, true, nil)
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
	return &Relay{db: d, opts: opts}, nil
}

// Close closes the store.
func (r *Relay) Close() error { return r.db.close() }

// Path is the absolute path of the store file.
func (r *Relay) Path() string { return r.db.path }

// IntegrityCheck runs SQLite's integrity_check.
func (r *Relay) IntegrityCheck(ctx context.Context) error { return r.db.integrityCheck(ctx) }

// Meta returns a value stored under key; ErrNotFound if unset.
func (r *Relay) Meta(ctx context.Context, key string) ([]byte, error) { return getMeta(ctx, r.db, key) }

// SetMeta stores a value under key.
func (r *Relay) SetMeta(ctx context.Context, key string, v []byte) error {
	return setMeta(ctx, r.db, key, v)
}

// ---- accounts ----------------------------------------------------------------------

// Account is a registered name and its current (relay-signed) card.
type Account struct {
	Name      string
	CardID    string
	Card      []byte
	CreatedAt time.Time
}

// CreateAccount registers an account. ErrExists if the name or the card ID is taken.
func (r *Relay) CreateAccount(ctx context.Context, a Account) error {
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
		card := a.Card
		if card == nil {
			card = []byte{}
		}
		if _, err := tx.exec(ctx, "INSERT INTO accounts (name, card_id, card, created_at) VALUES (?, ?, ?, ?)",
			a.Name, a.CardID, card, dbTime(a.CreatedAt)); err != nil {
			return fmt.Errorf("storage: create account %q: %w", a.Name, err)
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
// belongs to another account. newAcc.Name is ignored; CreatedAt is kept when zero.
func (r *Relay) ReplaceCard(ctx context.Context, name string, newAcc Account) error {
	return r.db.write(ctx, func(tx *txn) error {
		var oldCard string
		err := tx.scan(ctx, "SELECT card_id FROM accounts WHERE name = ?", []any{name}, &oldCard)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: account %q", ErrNotFound, name)
		}
		if err != nil {
			return fmt.Errorf("storage: replace card of %q: %w", name, err)
		}
		var other int
		if err := tx.scan(ctx, "SELECT count(*) FROM accounts WHERE card_id = ? AND name <> ?", []any{newAcc.CardID, name}, &other); err != nil {
			return fmt.Errorf("storage: replace card of %q: %w", name, err)
		}
		if other > 0 {
			return fmt.Errorf("%w: card %s is registered to another account", ErrExists, newAcc.CardID)
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
// last-resort KEM prekey replaces the one of its kind. One-time keys are added up to
// maxOneTime per kind (0 = no limit); extra keys and ids already stored are skipped.
// Returns how many keys were stored.
func (r *Relay) PutPreKeys(ctx context.Context, cardID string, keys []StoredPreKey, maxOneTime int) (int, error) {
	stored := 0
	err := r.db.write(ctx, func(tx *txn) error {
		stored = 0
		counts := map[uint8]int{}
		for _, k := range keys {
			if k.Kind == 0 {
				return fmt.Errorf("%w: prekey kind 0", ErrInvalid)
			}
			data := k.Data
			if data == nil {
				data = []byte{}
			}
			switch k.Kind {
			case kindSignedPreKey, kindKEMLastResort:
				if _, err := tx.exec(ctx, "DELETE FROM prekeys WHERE card_id = ? AND kind = ?", cardID, k.Kind); err != nil {
					return err
				}
			default:
				if maxOneTime > 0 {
					n, ok := counts[k.Kind]
					if !ok {
						if err := tx.scan(ctx, "SELECT count(*) FROM prekeys WHERE card_id = ? AND kind = ?", []any{cardID, k.Kind}, &n); err != nil {
							return err
						}
					}
					if n >= maxOneTime {
						counts[k.Kind] = n
						continue
					}
					counts[k.Kind] = n
				}
			}
			added, err := tx.execN(ctx, "INSERT INTO prekeys (card_id, kind, id, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
				cardID, k.Kind, k.ID, data)
			if err != nil {
				return err
			}
			if added > 0 {
				stored++
				if _, ok := counts[k.Kind]; ok {
					counts[k.Kind]++
				}
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
// is one multi-row INSERT into dedup (its RETURNING clause says which rows were new),
// the limits are checked in Go against usage read once per recipient, and the accepted
// messages go in with multi-row INSERTs. Per-message statements remain only for the
// rare cases (a resent message's original id, a refused message's dedup row).
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
	err := r.db.write(ctx, func(tx *txn) error {
		if eb != nil {
			if err := r.enqueueTx(ctx, tx, eb, res); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
		if nacks > 0 {
			if err := ackTx(ctx, tx, acks); err != nil {
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
			eb.first[i] = i
		}
	}
	return eb, nil
}

// enqueueTx queues a batch inside a write transaction, filling res (one per message).
func (r *Relay) enqueueTx(ctx context.Context, tx *txn, eb *enqueueBatch, res []EnqueueResult) error {
	msgs, first := eb.msgs, eb.first
	clear(res)
	// Ids are assigned here, from the AUTOINCREMENT sequence (one writer, inside
	// BEGIN IMMEDIATE): message i of the batch gets next+1+i if it is queued, so ids
	// increase in batch order (duplicates and refusals leave gaps).
	var next int64
	if err := tx.scan(ctx, `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'queue'), 0),
		coalesce((SELECT max(id) FROM queue), 0))`, nil, &next); err != nil {
		return err
	}
	// 1. Remember every first copy in dedup; the rows that were new come back.
	fresh := make([]bool, len(msgs))
	if err := r.insertDedup(ctx, tx, msgs, first, next, fresh); err != nil {
		return err
	}
	// 2. Resends of earlier messages answer with the original's id.
	for i, m := range msgs {
		if first[i] != i || fresh[i] {
			continue
		}
		var orig int64
		if err := tx.scan(ctx, "SELECT message_id FROM dedup WHERE sender = ? AND client_id = ?", []any{m.From, m.ClientID}, &orig); err != nil {
			return err
		}
		res[i] = EnqueueResult{ID: orig, Duplicate: true}
	}
	// 3. Limits, in batch order, against each recipient's usage.
	if r.opts.MaxQueueCount > 0 || r.opts.MaxQueueBytes > 0 {
		if err := r.checkLimits(ctx, tx, msgs, fresh, res); err != nil {
			return err
		}
	}
	// 4. The accepted messages, and their recipients' usage.
	if err := insertQueued(ctx, tx, msgs, fresh, next, res); err != nil {
		return err
	}
	if err := addUsage(ctx, tx, msgs, fresh); err != nil {
		return err
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
// handful of statement texts cover every batch size and stay prepared.
var rowChunks = []int{128, 32, 8, 1}

func chunkOf(n int) int {
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
		row: "(?, ?, ?, ?)", suffix: " RETURNING message_id"}
	queueInsert = &multiRow{prefix: "INSERT OR IGNORE INTO queue (id, recipient, sender, sender_card_id, client_id, body, received_at, expires_at) VALUES ",
		row: "(?, ?, ?, ?, ?, ?, ?, ?)"}
	usageAdd = &multiRow{prefix: "INSERT INTO queue_usage (recipient, count, bytes) VALUES ", row: "(?, ?, ?)",
		suffix: " ON CONFLICT (recipient) DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes"}
	usageSelect = &multiRow{prefix: "SELECT recipient, count, bytes FROM queue_usage WHERE recipient IN (", row: "?", suffix: ")"}
)

// insertDedup inserts the dedup rows of the batch's first copies (tentative id
// next+1+i) and sets fresh[i] for those that were not there yet.
func (r *Relay) insertDedup(ctx context.Context, tx *txn, msgs []QueuedMessage, first []int, next int64, fresh []bool) error {
	idx := make([]int, 0, len(msgs))
	for i := range msgs {
		if first[i] == i {
			idx = append(idx, i)
		}
	}
	args := make([]any, 0, 4*min(len(idx), rowChunks[0]))
	for len(idx) > 0 {
		n := chunkOf(len(idx))
		args = args[:0]
		for _, i := range idx[:n] {
			m := &msgs[i]
			args = append(args, m.From, m.ClientID, next+1+int64(i), dbTime(m.ExpiresAt))
		}
		idx = idx[n:]
		rows, err := tx.query(ctx, dedupInsert.text(n), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			if i := id - next - 1; i >= 0 && i < int64(len(fresh)) {
				fresh[i] = true
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// checkLimits refuses, in batch order, the fresh messages that would take their
// recipient's queue over a limit: res[i].Err is set, fresh[i] cleared and the dedup
// row forgotten (a refused message was not accepted: a later resend may go through).
func (r *Relay) checkLimits(ctx context.Context, tx *txn, msgs []QueuedMessage, fresh []bool, res []EnqueueResult) error {
	type usage struct{ count, bytes int64 }
	used := map[string]*usage{}
	var names []string
	for i, m := range msgs {
		if fresh[i] && used[m.To] == nil {
			used[m.To] = &usage{}
			names = append(names, m.To)
		}
	}
	args := make([]any, 0, min(len(names), rowChunks[0]))
	for len(names) > 0 {
		n := chunkOf(len(names))
		args = args[:0]
		for _, name := range names[:n] {
			args = append(args, name)
		}
		names = names[n:]
		rows, err := tx.query(ctx, usageSelect.text(n), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var u usage
			if err := rows.Scan(&name, &u.count, &u.bytes); err != nil {
				rows.Close()
				return err
			}
			if p := used[name]; p != nil {
				*p = u
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
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
		}
		if full == nil {
			u.count++
			u.bytes += int64(len(m.Body))
			continue
		}
		if _, err := tx.exec(ctx, "DELETE FROM dedup WHERE sender = ? AND client_id = ?", m.From, m.ClientID); err != nil {
			return err
		}
		fresh[i] = false
		res[i].Err = full
	}
	return nil
}

// usageDelta is a change to one recipient's queue_usage row.
type usageDelta struct{ count, bytes int64 }

func (u *usageDelta) add(count, bytes int64) *usageDelta {
	if u == nil {
		u = &usageDelta{}
	}
	u.count += count
	u.bytes += bytes
	return u
}

// addUsage adds the accepted (fresh) messages to their recipients' queue_usage rows.
func addUsage(ctx context.Context, tx *txn, msgs []QueuedMessage, fresh []bool) error {
	used := map[string]*usageDelta{}
	for i, m := range msgs {
		if fresh[i] {
			used[m.To] = used[m.To].add(1, int64(len(m.Body)))
		}
	}
	return applyUsage(ctx, tx, used)
}

// applyUsage adds the deltas to queue_usage with multi-row upserts. A negative delta
// (deleted messages) always finds the row its messages' inserts created.
func applyUsage(ctx context.Context, tx *txn, deltas map[string]*usageDelta) error {
	left := len(deltas)
	if left == 0 {
		return nil
	}
	chunk := chunkOf(left)
	args := make([]any, 0, 3*chunk)
	for name, u := range deltas {
		args = append(args, name, u.count, u.bytes)
		if len(args) == 3*chunk {
			if _, err := tx.exec(ctx, usageAdd.text(chunk), args...); err != nil {
				return err
			}
			args = args[:0]
			left -= chunk
			chunk = chunkOf(left)
		}
	}
	return nil
}

// insertQueued inserts the accepted (fresh) messages, message i with id next+1+i.
func insertQueued(ctx context.Context, tx *txn, msgs []QueuedMessage, fresh []bool, next int64, res []EnqueueResult) error {
	idx := make([]int, 0, len(msgs))
	for i := range msgs {
		if fresh[i] {
			idx = append(idx, i)
		}
	}
	args := make([]any, 0, 8*min(len(idx), rowChunks[0]))
	now := int64(0)
	for len(idx) > 0 {
		n := chunkOf(len(idx))
		args = args[:0]
		for _, i := range idx[:n] {
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
			args = append(args, id, m.To, m.From, m.FromCardID, m.ClientID, body, recv, dbTime(m.ExpiresAt))
			res[i] = EnqueueResult{ID: id}
		}
		idx = idx[n:]
		added, err := tx.execN(ctx, queueInsert.text(n), args...)
		if err != nil {
			return err
		}
		if added != int64(n) {
			// OR IGNORE (no statement journal) must not hide a lost message.
			return fmt.Errorf("storage: %d of %d queued messages were not stored (id clash)", int64(n)-added, n)
		}
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
	if err := r.db.write(ctx, func(tx *txn) error { return ackTx(ctx, tx, map[string][]int64{to: ids}) }); err != nil {
		return fmt.Errorf("storage: ack for %q: %w", to, err)
	}
	return nil
}

// AckBatch is Ack for many recipients in one transaction (one fsync): acks maps each
// recipient to the ids it acknowledged.
func (r *Relay) AckBatch(ctx context.Context, acks map[string][]int64) error {
	if err := r.db.write(ctx, func(tx *txn) error { return ackTx(ctx, tx, acks) }); err != nil {
		return fmt.Errorf("storage: ack batch of %d recipients: %w", len(acks), err)
	}
	return nil
}

// ackDelete deletes (recipient, id) pairs: a row is deleted only if both match, so an
// id of someone else's message is ignored. The pairs are looked up by rowid.
var ackDelete = &multiRow{prefix: "DELETE FROM queue WHERE (recipient, id) IN (VALUES ", row: "(?, ?)",
	suffix: ") RETURNING recipient, length(body)"}

// ackTx deletes acknowledged messages of many recipients with a few multi-row
// statements, then takes them off queue_usage.
func ackTx(ctx context.Context, tx *txn, acks map[string][]int64) error {
	total := 0
	for _, ids := range acks {
		total += len(ids)
	}
	if total == 0 {
		return nil
	}
	args := make([]any, 0, 2*min(total, rowChunks[0]))
	gone := map[string]*usageDelta{}
	flush := func() error {
		rows, err := tx.query(ctx, ackDelete.text(len(args)/2), args...)
		args = args[:0]
		if err != nil {
			return err
		}
		for rows.Next() {
			var to string
			var size int64
			if err := rows.Scan(&to, &size); err != nil {
				rows.Close()
				return err
			}
			gone[to] = gone[to].add(-1, -size)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		return rows.Err()
	}
	// Chunks of rowChunks sizes only, so the statement texts stay few and prepared.
	chunk := chunkOf(total)
	for to, ids := range acks {
		for _, id := range ids {
			args = append(args, to, id)
			if len(args) == 2*chunk {
				if err := flush(); err != nil {
					return err
				}
				total -= chunk
				chunk = chunkOf(total)
			}
		}
	}
	return applyUsage(ctx, tx, gone)
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
	var ids []int64
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
	// for one chunk at most.
	n := 0
	const perTx = 1024
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), perTx)]
		ids = ids[len(chunk):]
		err := r.db.write(ctx, func(tx *txn) error {
			gone := map[string]*usageDelta{}
			deleted := 0
			args := make([]any, 0, 1+rowChunks[0])
			for rest := chunk; len(rest) > 0; {
				k := chunkOf(len(rest))
				args = append(args[:0], cutoff)
				for _, id := range rest[:k] {
					args = append(args, id)
				}
				rest = rest[k:]
				rows, err := tx.query(ctx, expireDelete.text(k), args...)
				if err != nil {
					return err
				}
				for rows.Next() {
					var to string
					var size int64
					if err := rows.Scan(&to, &size); err != nil {
						rows.Close()
						return err
					}
					gone[to] = gone[to].add(-1, -size)
					deleted++
				}
				if err := rows.Close(); err != nil {
					return err
				}
				if err := rows.Err(); err != nil {
					return err
				}
			}
			if err := applyUsage(ctx, tx, gone); err != nil {
				return err
			}
			n += deleted
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("storage: expire: %w", err)
		}
	}
	err = r.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, "DELETE FROM dedup WHERE expires_at <> 0 AND expires_at < ?", cutoff)
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
	var n int
	if err := r.db.queryRow(ctx, "SELECT coalesce(sum(count), 0) FROM queue_usage").Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: queue depth: %w", err)
	}
	return n, nil
}

// QueueUsage is one recipient's queued message count and bytes.
func (r *Relay) QueueUsage(ctx context.Context, to string) (count int, bytes int64, err error) {
	err = r.db.queryRow(ctx, "SELECT count, bytes FROM queue_usage WHERE recipient = ?", to).Scan(&count, &bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("storage: queue usage of %q: %w", to, err)
	}
	return count, bytes, nil
}
