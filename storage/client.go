package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Client is the client store: one user's identity, contacts, keys, sessions and history
// in one SQLite file. Secrets are sealed under the storage key unwrapped at open. It is
// safe for concurrent use.
type Client struct {
	db      *db
	keys    *keyring
	demo    atomic.Bool
	log     *slog.Logger
	corrupt atomic.Int64 // sealed rows skipped because they do not open
}

// skipCorrupt logs a sealed row that does not open and counts it: one damaged row
// (a prekey, a message, a session) is skipped, never a reason to refuse the profile.
func (c *Client) skipCorrupt(what, row string, err error) {
	c.corrupt.Add(1)
	c.log.Warn("skipping a damaged row of the store", "row", what+" "+row, "err", err)
}

// CorruptRowsSkipped is how many sealed rows reads of this store skipped because they
// did not open (tampered with, or damaged on disk); each was logged as a warning.
func (c *Client) CorruptRowsSkipped() int64 { return c.corrupt.Load() }

// ClientOptions tune a client store. The zero value is the production setting.
type ClientOptions struct {
	// KDF for a new store or a new passphrase; zero = DefaultKDF. Parameters below
	// DefaultKDF make a stolen file cheaper to attack: only a test binary may use them
	// (to keep suites fast); elsewhere they are refused with ErrWeakKDF.
	KDF KDFParams
	// Synchronous is "FULL" (default) or "NORMAL"; see SyncFull.
	Synchronous string
	// Logger receives warnings about damaged rows that were skipped (default: discard).
	Logger *slog.Logger
}

func (o ClientOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// CreateClient creates a new client store at path, protected by passphrase. A nil
// passphrase creates an unprotected store for the throwaway demo profile (marked as such
// in the file); an empty non-nil one is refused. ErrExists if a store is already there.
func CreateClient(ctx context.Context, path string, passphrase []byte) (*Client, error) {
	return CreateClientWith(ctx, path, passphrase, ClientOptions{})
}

// CreateClientWith is CreateClient with options.
func CreateClientWith(ctx context.Context, path string, passphrase []byte, opts ClientOptions) (*Client, error) {
	if passphrase != nil && len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	kdf := opts.KDF
	if kdf == (KDFParams{}) {
		kdf = DefaultKDF
	}
	if passphrase != nil {
		if err := kdf.validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if err := kdf.strongEnough(); err != nil {
			return nil, err
		}
	}
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	c, err := createClient(ctx, path, passphrase, kdf, opts)
	if err != nil && fresh && !errors.Is(err, ErrExists) {
		// Leave nothing half-made behind: the next CreateClient starts clean.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
	}
	return c, err
}

func createClient(ctx context.Context, path string, passphrase []byte, kdf KDFParams, opts ClientOptions) (*Client, error) {
	// An existing store is refused before anything is written to it.
	d, _, err := openDB(ctx, path, clientKind, opts.Synchronous, true, func(ctx context.Context, q *sql.DB) (*keyring, error) {
		var n int
		if err := q.QueryRowContext(ctx, "SELECT count(*) FROM keyring").Scan(&n); err != nil {
			return nil, fmt.Errorf("storage: read keyring: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: a client store is already at %s", ErrExists, path)
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	key, err := newStorageKey()
	if err != nil {
		d.close()
		return nil, err
	}
	w, err := wrapKey(key, passphrase, kdf)
	if err != nil {
		d.close()
		return nil, err
	}
	err = d.write(ctx, func(tx *txn) error {
		var n int
		if err := tx.scan(ctx, "SELECT count(*) FROM keyring", nil, &n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: a client store is already at %s", ErrExists, d.path)
		}
		return putKeyring(ctx, tx, w)
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("storage: create client store: %w", err)
	}
	c := &Client{db: d, keys: &keyring{key: key}, log: opts.logger()}
	c.demo.Store(w.demo)
	return c, nil
}

// OpenClient opens an existing client store. ErrNotFound if there is none at path,
// ErrWrongPassphrase (nothing changed) if passphrase does not unlock it, ErrNewerSchema
// if a newer pfschat wrote it.
func OpenClient(ctx context.Context, path string, passphrase []byte) (*Client, error) {
	return OpenClientWith(ctx, path, passphrase, ClientOptions{})
}

// OpenClientWith is OpenClient with options (Synchronous; KDF is not used here).
func OpenClientWith(ctx context.Context, path string, passphrase []byte, opts ClientOptions) (*Client, error) {
	if passphrase != nil && len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	// Check the passphrase before migrating: a wrong one must change nothing. The keyring
	// table has the same shape in every schema version.
	var key []byte
	var w *wrapped
	d, _, err := openDB(ctx, path, clientKind, opts.Synchronous, false, func(ctx context.Context, q *sql.DB) (*keyring, error) {
		var err error
		if w, err = readKeyring(ctx, q); err != nil {
			return nil, err
		}
		if key, err = w.unwrap(passphrase); err != nil {
			return nil, err
		}
		return &keyring{key: key}, nil
	})
	if err != nil {
		return nil, err
	}
	c := &Client{db: d, keys: &keyring{key: key}, log: opts.logger()}
	c.demo.Store(w.demo)
	return c, nil
}

func putKeyring(ctx context.Context, tx *txn, w *wrapped) error {
	mode := "argon2id"
	if w.demo {
		mode = "none"
	}
	salt := w.salt
	if salt == nil {
		salt = []byte{}
	}
	_, err := tx.exec(ctx, `INSERT INTO keyring (id, mode, kdf_time, kdf_memory, kdf_threads, salt, wrapped)
		VALUES (1, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, kdf_time = excluded.kdf_time,
		kdf_memory = excluded.kdf_memory, kdf_threads = excluded.kdf_threads,
		salt = excluded.salt, wrapped = excluded.wrapped`,
		mode, w.params.Time, w.params.MemoryKiB, w.params.Threads, salt, w.wrapped)
	return err
}

func readKeyring(ctx context.Context, q *sql.DB) (*wrapped, error) {
	var mode string
	var t, m, th int64
	w := &wrapped{}
	err := q.QueryRowContext(ctx, "SELECT mode, kdf_time, kdf_memory, kdf_threads, salt, wrapped FROM keyring WHERE id = 1").
		Scan(&mode, &t, &m, &th, &w.salt, &w.wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: the client store has no key (its creation was interrupted; remove the file and create it again)", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: read keyring: %w", err)
	}
	switch mode {
	case "none":
		w.demo = true
	case "argon2id":
		if t < 0 || t > maxKDFTime || m < 0 || m > maxKDFMemoryKiB || th < 0 || th > 255 {
			return nil, fmt.Errorf("%w: Argon2id parameters out of range", ErrCorrupt)
		}
		w.params = KDFParams{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(th)}
	default:
		return nil, fmt.Errorf("%w: unknown key wrapping mode %q", ErrCorrupt, mode)
	}
	return w, nil
}

// Demo reports whether the store has no passphrase (the throwaway demo profile).
func (c *Client) Demo() bool { return c.demo.Load() }

// KDF returns the Argon2id parameters the storage key is currently wrapped with (zero
// for a demo store).
func (c *Client) KDF(ctx context.Context) (KDFParams, error) {
	w, err := readKeyring(ctx, c.db.r)
	if err != nil {
		return KDFParams{}, err
	}
	return w.params, nil
}

// ChangePassphrase re-wraps the storage key under newPass with DefaultKDF and a fresh
// salt; nothing else is rewritten. nil makes it a demo (unprotected) store. Copies of the
// file taken before still open with the old passphrase: the storage key is unchanged.
func (c *Client) ChangePassphrase(ctx context.Context, newPass []byte) error {
	return c.ChangePassphraseWith(ctx, newPass, DefaultKDF)
}

// ChangePassphraseWith is ChangePassphrase with explicit KDF parameters.
func (c *Client) ChangePassphraseWith(ctx context.Context, newPass []byte, kdf KDFParams) error {
	if newPass != nil && len(newPass) == 0 {
		return ErrEmptyPassphrase
	}
	c.keys.mu.RLock()
	if c.keys.key == nil {
		c.keys.mu.RUnlock()
		return ErrClosed
	}
	w, err := wrapKey(c.keys.key, newPass, kdf)
	c.keys.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := c.db.write(ctx, func(tx *txn) error { return putKeyring(ctx, tx, w) }); err != nil {
		return fmt.Errorf("storage: change passphrase: %w", err)
	}
	c.demo.Store(w.demo)
	return nil
}

// Close closes the store and forgets the storage key.
func (c *Client) Close() error {
	c.keys.forget()
	return c.db.close()
}

// Path is the absolute path of the store file.
func (c *Client) Path() string { return c.db.path }

// IntegrityCheck runs SQLite's integrity_check.
func (c *Client) IntegrityCheck(ctx context.Context) error { return c.db.integrityCheck(ctx) }

// Meta returns a public value stored under key; ErrNotFound if unset. Not sealed: keep
// public things only here (relay URL, pinned relay key).
func (c *Client) Meta(ctx context.Context, key string) ([]byte, error) {
	return getMeta(ctx, c.db, key)
}

// SetMeta stores a public value (not sealed).
func (c *Client) SetMeta(ctx context.Context, key string, value []byte) error {
	return setMeta(ctx, c.db, key, value)
}

func getMeta(ctx context.Context, d *db, key string) ([]byte, error) {
	var v []byte
	err := d.queryRow(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: meta %q", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: read meta %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func setMeta(ctx context.Context, d *db, key string, value []byte) error {
	err := d.write(ctx, func(tx *txn) error { return setMetaTx(ctx, tx, key, value) })
	if err != nil {
		return fmt.Errorf("storage: set meta %q: %w", key, err)
	}
	return nil
}

func setMetaTx(ctx context.Context, tx *txn, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := tx.exec(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)
	return err
}

// ---- identity ----------------------------------------------------------------------

// Identity is the user's own identity: name, card and private key. PrivateKey is plain
// in memory and sealed at rest.
type Identity struct {
	Name       string
	CardID     string
	Card       []byte // the exported (relay-signed) card
	PrivateKey []byte // marshalled identity private key; sealed at rest
}

// SaveIdentity stores (or replaces) the identity.
func (c *Client) SaveIdentity(ctx context.Context, id Identity) error {
	sealed, err := c.keys.seal("identity", "private_key", "1", id.PrivateKey)
	if err != nil {
		return err
	}
	err = c.db.write(ctx, func(tx *txn) error { return saveIdentity(ctx, tx, id, sealed) })
	if err != nil {
		return fmt.Errorf("storage: save identity: %w", err)
	}
	return nil
}

func saveIdentity(ctx context.Context, tx *txn, id Identity, sealedKey []byte) error {
	card := id.Card
	if card == nil {
		card = []byte{}
	}
	_, err := tx.exec(ctx, `INSERT INTO identity (id, name, card_id, card, private_key_sealed) VALUES (1, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, card_id = excluded.card_id,
			card = excluded.card, private_key_sealed = excluded.private_key_sealed`,
		id.Name, id.CardID, card, sealedKey)
	return err
}

// SaveIdentityAndMeta stores (or replaces) the identity and sets a public meta value in
// one transaction: both or neither. A relay key re-pin uses it (the own card as the
// new key signed it, and that key), so that a failure never leaves the new card beside
// the old pin.
func (c *Client) SaveIdentityAndMeta(ctx context.Context, id Identity, key string, value []byte) error {
	sealed, err := c.keys.seal("identity", "private_key", "1", id.PrivateKey)
	if err != nil {
		return err
	}
	err = c.db.write(ctx, func(tx *txn) error {
		if err := saveIdentity(ctx, tx, id, sealed); err != nil {
			return err
		}
		return setMetaTx(ctx, tx, key, value)
	})
	if err != nil {
		return fmt.Errorf("storage: save identity and meta %q: %w", key, err)
	}
	return nil
}

// Identity returns the stored identity; ErrNotFound if none was saved yet.
func (c *Client) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	var sealed []byte
	err := c.db.queryRow(ctx, "SELECT name, card_id, card, private_key_sealed FROM identity WHERE id = 1").
		Scan(&id.Name, &id.CardID, &id.Card, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, fmt.Errorf("%w: no identity in this store", ErrNotFound)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("storage: read identity: %w", err)
	}
	if id.PrivateKey, err = c.keys.open("identity", "private_key", "1", sealed); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// ---- cards -------------------------------------------------------------------------

// Card is a peer's (or our own) card as seen by this client. Superseded cards (replaced
// by a key change) are kept for history.
type Card struct {
	ID         string
	Name       string
	Data       []byte // marshalled card
	FirstSeen  time.Time
	Verified   bool
	Superseded bool
}

// PutCard inserts or updates a card by ID. FirstSeen of an existing card is kept.
func (c *Client) PutCard(ctx context.Context, card Card) error {
	if card.ID == "" {
		return fmt.Errorf("%w: card without ID", ErrInvalid)
	}
	data := card.Data
	if data == nil {
		data = []byte{}
	}
	err := c.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, `INSERT INTO cards (id, name, data, first_seen, verified, superseded) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, data = excluded.data,
			verified = excluded.verified, superseded = excluded.superseded`,
			card.ID, card.Name, data, dbTime(card.FirstSeen), boolInt(card.Verified), boolInt(card.Superseded))
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: put card %s: %w", card.ID, err)
	}
	return nil
}

const cardCols = "id, name, data, first_seen, verified, superseded"

func scanCard(s interface{ Scan(...any) error }) (Card, error) {
	var cd Card
	var fs int64
	var v, sup int
	if err := s.Scan(&cd.ID, &cd.Name, &cd.Data, &fs, &v, &sup); err != nil {
		return Card{}, err
	}
	cd.FirstSeen, cd.Verified, cd.Superseded = goTime(fs), v != 0, sup != 0
	return cd, nil
}

// Card returns the card with this ID; ErrNotFound if unknown.
func (c *Client) Card(ctx context.Context, id string) (Card, error) {
	cd, err := scanCard(c.db.queryRow(ctx, "SELECT "+cardCols+" FROM cards WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Card{}, fmt.Errorf("%w: card %s", ErrNotFound, id)
	}
	if err != nil {
		return Card{}, fmt.Errorf("storage: read card %s: %w", id, err)
	}
	return cd, nil
}

// CardsByName returns every card seen for a name, oldest first (empty if none).
func (c *Client) CardsByName(ctx context.Context, name string) ([]Card, error) {
	rows, err := c.db.query(ctx, "SELECT "+cardCols+" FROM cards WHERE name = ? ORDER BY first_seen, id", name)
	if err != nil {
		return nil, fmt.Errorf("storage: cards of %q: %w", name, err)
	}
	defer rows.Close()
	var out []Card
	for rows.Next() {
		cd, err := scanCard(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: cards of %q: %w", name, err)
		}
		out = append(out, cd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: cards of %q: %w", name, err)
	}
	return out, nil
}

// SetCardVerified sets the verified flag; ErrNotFound if the card is unknown.
func (c *Client) SetCardVerified(ctx context.Context, id string, v bool) error {
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE cards SET verified = ? WHERE id = ?", boolInt(v), id)
		if err != nil {
			return fmt.Errorf("storage: verify card %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: card %s", ErrNotFound, id)
		}
		return nil
	})
}

// SetCardSuperseded marks a card as replaced by a newer one (kept for history).
func (c *Client) SetCardSuperseded(ctx context.Context, id string, v bool) error {
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE cards SET superseded = ? WHERE id = ?", boolInt(v), id)
		if err != nil {
			return fmt.Errorf("storage: supersede card %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: card %s", ErrNotFound, id)
		}
		return nil
	})
}

// ---- contacts ----------------------------------------------------------------------

// Contact is a person we talk to, bound to one card (CardID). PendingCardID is a new card
// seen for the name and not yet accepted (a key change); RejectedCardID the last one
// the user rejected.
type Contact struct {
	Name           string
	CardID         string
	PendingCardID  string
	RejectedCardID string
	AddedAt        time.Time
	Unread         int
	LastMessageAt  time.Time
	Verified       bool // the CardID card is verified
	// Consented: the user added, accepted or wrote to this contact (not only received
	// from them). Receipts go only to consented contacts. AddContact and a sent message
	// set it; a contact created by a stranger's first message starts without it.
	Consented bool
	// Blocked: the user blocked the contact (contactprefs.go); BlockSynced is the block
	// state the relay last confirmed. Nickname is a local display name (""), Muted turns
	// off desktop notifications for the contact.
	Blocked, BlockSynced bool
	Nickname             string
	Muted                bool
}

// AddContact adds a contact bound to a card already stored with PutCard.
// ErrExists if the name is taken; ErrNotFound if the card is not stored.
func (c *Client) AddContact(ctx context.Context, name, cardID string, at time.Time) error {
	return c.db.write(ctx, func(tx *txn) error { return addContact(ctx, tx, name, cardID, at) })
}

// AddStranger is AddContact for someone who wrote first: the contact starts without
// the user's consent to receipts (Contact.Consented), until the user writes to or
// accepts them.
func (c *Client) AddStranger(ctx context.Context, name, cardID string, at time.Time) error {
	return c.db.write(ctx, func(tx *txn) error {
		if err := addContact(ctx, tx, name, cardID, at); err != nil {
			return err
		}
		_, err := tx.exec(ctx, "UPDATE contacts SET consented = 0 WHERE name = ?", name)
		return err
	})
}

func addContact(ctx context.Context, tx *txn, name, cardID string, at time.Time) error {
	if name == "" {
		return fmt.Errorf("%w: contact without name", ErrInvalid)
	}
	var n int
	if err := tx.scan(ctx, "SELECT count(*) FROM contacts WHERE name = ?", []any{name}, &n); err != nil {
		return fmt.Errorf("storage: add contact %q: %w", name, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: contact %q", ErrExists, name)
	}
	if err := cardExists(ctx, tx, cardID); err != nil {
		return err
	}
	if _, err := tx.exec(ctx, "INSERT INTO contacts (name, card_id, added_at) VALUES (?, ?, ?)", name, cardID, dbTime(at)); err != nil {
		return fmt.Errorf("storage: add contact %q: %w", name, err)
	}
	return nil
}

func cardExists(ctx context.Context, tx *txn, cardID string) error {
	var n int
	if err := tx.scan(ctx, "SELECT count(*) FROM cards WHERE id = ?", []any{cardID}, &n); err != nil {
		return fmt.Errorf("storage: look up card %s: %w", cardID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: card %s is not stored (PutCard it first)", ErrNotFound, cardID)
	}
	return nil
}

// unreadFilledCount counts contact c's unread messages that lie before its newest
// c.unread incoming ones: placeholders filled by their resend after they were seen.
// They alone carry a reason among the unread (replaceMessage), and the partial index
// messages_unread_filled holds just them, so the count costs nothing when there are
// none, however many messages are unread.
const unreadFilledCount = `SELECT count(*) FROM messages m WHERE m.contact = c.name AND m.direction = 1 AND m.state < 3 AND m.reason <> ''
		AND (SELECT count(*) FROM messages n WHERE n.contact = c.name AND n.direction = 1 AND n.id > m.id) >= c.unread`

// contactQuery's unread is the stored count (the newest incoming messages) plus the older
// messages never marked read (UnreadMessages, unreadFilledCount).
const contactQuery = `SELECT c.name, c.card_id, c.pending_card_id, c.rejected_card_id, c.added_at,
	c.unread + (` + unreadFilledCount + `) AS unread_all,
	c.last_message_at, coalesce(k.verified, 0), c.consented, c.blocked, c.block_synced, c.nickname, c.muted
	FROM contacts c LEFT JOIN cards k ON k.id = c.card_id`

func scanContact(s interface{ Scan(...any) error }) (Contact, error) {
	var ct Contact
	var added, last int64
	var v int
	if err := s.Scan(&ct.Name, &ct.CardID, &ct.PendingCardID, &ct.RejectedCardID, &added, &ct.Unread, &last, &v, &ct.Consented,
		&ct.Blocked, &ct.BlockSynced, &ct.Nickname, &ct.Muted); err != nil {
		return Contact{}, err
	}
	ct.AddedAt, ct.LastMessageAt, ct.Verified = goTime(added), goTime(last), v != 0
	return ct, nil
}

// Contact returns one contact; ErrNotFound if unknown.
func (c *Client) Contact(ctx context.Context, name string) (Contact, error) {
	ct, err := scanContact(c.db.queryRow(ctx, contactQuery+" WHERE c.name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return Contact{}, fmt.Errorf("%w: contact %q", ErrNotFound, name)
	}
	if err != nil {
		return Contact{}, fmt.Errorf("storage: read contact %q: %w", name, err)
	}
	return ct, nil
}

// Contacts lists contacts: those with unread messages first, then by last activity
// (last message, else when added), newest first, then by name.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	rows, err := c.db.query(ctx, contactQuery+
		" ORDER BY unread_all > 0 DESC, max(c.last_message_at, c.added_at) DESC, c.name")
	if err != nil {
		return nil, fmt.Errorf("storage: list contacts: %w", err)
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		ct, err := scanContact(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: list contacts: %w", err)
		}
		out = append(out, ct)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list contacts: %w", err)
	}
	return out, nil
}

// UpdateContact writes CardID, PendingCardID and RejectedCardID of an existing contact
// (accepting, recording or rejecting a key change). Every card named must be stored.
// ErrNotFound if the contact is unknown.
func (c *Client) UpdateContact(ctx context.Context, ct Contact) error {
	return c.db.write(ctx, func(tx *txn) error {
		if err := cardExists(ctx, tx, ct.CardID); err != nil {
			return err
		}
		for _, id := range []string{ct.PendingCardID, ct.RejectedCardID} {
			if id == "" {
				continue
			}
			if err := cardExists(ctx, tx, id); err != nil {
				return err
			}
		}
		n, err := tx.execN(ctx, "UPDATE contacts SET card_id = ?, pending_card_id = ?, rejected_card_id = ? WHERE name = ?", ct.CardID, ct.PendingCardID, ct.RejectedCardID, ct.Name)
		if err != nil {
			return fmt.Errorf("storage: update contact %q: %w", ct.Name, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, ct.Name)
		}
		// Messages that came from the card now bound to the contact leave the
		// key-change warning: the user accepted that key.
		if _, err := tx.exec(ctx, "UPDATE messages SET key_pending = 0 WHERE contact = ? AND sender_card_id = ? AND key_pending = 1", ct.Name, ct.CardID); err != nil {
			return fmt.Errorf("storage: update contact %q: %w", ct.Name, err)
		}
		return nil
	})
}

// RenameContact renames a contact; its messages follow. Outbox items keep the relay
// address they were sent to. ErrNotFound / ErrExists.
func (c *Client) RenameContact(ctx context.Context, oldName, newName string) error {
	return c.db.write(ctx, func(tx *txn) error {
		var n int
		if err := tx.scan(ctx, "SELECT count(*) FROM contacts WHERE name = ?", []any{newName}, &n); err != nil {
			return fmt.Errorf("storage: rename contact: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w: contact %q", ErrExists, newName)
		}
		m, err := tx.execN(ctx, "UPDATE contacts SET name = ? WHERE name = ?", newName, oldName)
		if err != nil {
			return fmt.Errorf("storage: rename contact %q: %w", oldName, err)
		}
		if m == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, oldName)
		}
		return nil
	})
}

// DeleteContact removes a contact, its messages, its unblocks and the records of the
// files they sent (never fetched after). ErrNotFound if unknown.
func (c *Client) DeleteContact(ctx context.Context, name string) error {
	return c.db.write(ctx, func(tx *txn) error {
		if _, err := tx.exec(ctx, "DELETE FROM attachments WHERE direction = 1 AND contact = ?", name); err != nil {
			return fmt.Errorf("storage: delete contact %q: %w", name, err)
		}
		n, err := tx.execN(ctx, "DELETE FROM contacts WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("storage: delete contact %q: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, name)
		}
		return nil
	})
}

// ---- prekeys -----------------------------------------------------------------------

// PreKey is one of our own prekeys. Private is the marshalled private prekey, plain in
// memory and sealed at rest. HandedOutAt is when the relay reported it handed out
// (zero = still on the relay).
type PreKey struct {
	Kind        uint8
	ID          uint32
	CreatedAt   time.Time
	Private     []byte
	HandedOutAt time.Time
}

func preKeyRow(kind uint8, id uint32) string {
	return strconv.Itoa(int(kind)) + "/" + strconv.FormatUint(uint64(id), 10)
}

// PutPreKeys stores prekeys (insert or replace by kind and id) in one transaction.
func (c *Client) PutPreKeys(ctx context.Context, keys []PreKey) error {
	sealed := make([][]byte, len(keys))
	for i, k := range keys {
		s, err := c.keys.seal("prekeys", "private", preKeyRow(k.Kind, k.ID), k.Private)
		if err != nil {
			return err
		}
		sealed[i] = s
	}
	err := c.db.write(ctx, func(tx *txn) error {
		for i, k := range keys {
			_, err := tx.exec(ctx, `INSERT INTO prekeys (kind, id, created_at, private_sealed, handed_out_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (kind, id) DO UPDATE SET created_at = excluded.created_at,
				private_sealed = excluded.private_sealed, handed_out_at = excluded.handed_out_at`,
				k.Kind, k.ID, dbTime(k.CreatedAt), sealed[i], dbTime(k.HandedOutAt))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: put prekeys: %w", err)
	}
	return nil
}

func (c *Client) scanPreKey(s interface{ Scan(...any) error }) (PreKey, error) {
	var k PreKey
	var created, handed int64
	var sealed []byte
	if err := s.Scan(&k.Kind, &k.ID, &created, &sealed, &handed); err != nil {
		return PreKey{}, err
	}
	k.CreatedAt, k.HandedOutAt = goTime(created), goTime(handed)
	var err error
	if k.Private, err = c.keys.open("prekeys", "private", preKeyRow(k.Kind, k.ID), sealed); err != nil {
		return PreKey{Kind: k.Kind, ID: k.ID}, err // the ids name the damaged row
	}
	return k, nil
}

// PreKey returns one prekey; ErrNotFound if it does not exist (never was, or consumed).
func (c *Client) PreKey(ctx context.Context, kind uint8, id uint32) (PreKey, error) {
	k, err := c.scanPreKey(c.db.queryRow(ctx,
		"SELECT kind, id, created_at, private_sealed, handed_out_at FROM prekeys WHERE kind = ? AND id = ?", kind, id))
	if errors.Is(err, sql.ErrNoRows) {
		return PreKey{}, fmt.Errorf("%w: prekey %s", ErrNotFound, preKeyRow(kind, id))
	}
	if err != nil {
		return PreKey{}, fmt.Errorf("storage: read prekey %s: %w", preKeyRow(kind, id), err)
	}
	return k, nil
}

// PreKeys returns every prekey of a kind, by id.
func (c *Client) PreKeys(ctx context.Context, kind uint8) ([]PreKey, error) {
	rows, err := c.db.query(ctx,
		"SELECT kind, id, created_at, private_sealed, handed_out_at FROM prekeys WHERE kind = ? ORDER BY id", kind)
	if err != nil {
		return nil, fmt.Errorf("storage: list prekeys: %w", err)
	}
	defer rows.Close()
	var out []PreKey
	for rows.Next() {
		k, err := c.scanPreKey(rows)
		if errors.Is(err, ErrCorrupt) {
			c.skipCorrupt("prekey", preKeyRow(k.Kind, k.ID), err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("storage: list prekeys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list prekeys: %w", err)
	}
	return out, nil
}

// DeletePreKeys deletes prekeys of a kind by id (missing ids are ignored).
func (c *Client) DeletePreKeys(ctx context.Context, kind uint8, ids []uint32) error {
	err := c.db.write(ctx, func(tx *txn) error {
		for _, id := range ids {
			if _, err := tx.exec(ctx, "DELETE FROM prekeys WHERE kind = ? AND id = ?", kind, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: delete prekeys: %w", err)
	}
	return nil
}

// MarkPreKeysHandedOut records when the relay handed these keys out (they stay usable
// until consumed or deleted).
func (c *Client) MarkPreKeysHandedOut(ctx context.Context, kind uint8, ids []uint32, at time.Time) error {
	err := c.db.write(ctx, func(tx *txn) error {
		for _, id := range ids {
			if _, err := tx.exec(ctx, "UPDATE prekeys SET handed_out_at = ? WHERE kind = ? AND id = ? AND handed_out_at = 0", dbTime(at), kind, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: mark prekeys handed out: %w", err)
	}
	return nil
}

// NextPreKeyID reserves and returns the next id for a kind: 1, 2, 3... never reused,
// even after the key is deleted.
func (c *Client) NextPreKeyID(ctx context.Context, kind uint8) (uint32, error) {
	return c.ReservePreKeyIDs(ctx, kind, 1)
}

// ReservePreKeyIDs reserves n consecutive ids for a kind and returns the first.
func (c *Client) ReservePreKeyIDs(ctx context.Context, kind uint8, n int) (uint32, error) {
	first, err := c.ReservePreKeyIDsFor(ctx, []PreKeyIDs{{Kind: kind, N: n}})
	if err != nil {
		return 0, err
	}
	return first[0], nil
}

// PreKeyIDs asks ReservePreKeyIDsFor for N consecutive ids of one kind.
type PreKeyIDs struct {
	Kind uint8
	N    int
}

// ReservePreKeyIDsFor reserves the ids of every request in one transaction (a new
// profile's rotation needs four kinds: one commit, not four) and returns the first id
// of each, in order. Ids are never reused, even after their key is deleted.
func (c *Client) ReservePreKeyIDsFor(ctx context.Context, want []PreKeyIDs) ([]uint32, error) {
	for _, w := range want {
		if w.N < 1 {
			return nil, fmt.Errorf("%w: reserve %d prekey ids", ErrInvalid, w.N)
		}
	}
	first := make([]uint32, len(want))
	err := c.db.write(ctx, func(tx *txn) error {
		for i, w := range want {
			var f int64
			err := tx.scan(ctx, `INSERT INTO prekey_ids (kind, next) VALUES (?, 1 + ?)
				ON CONFLICT (kind) DO UPDATE SET next = next + ? RETURNING next - ?`,
				[]any{w.Kind, w.N, w.N, w.N}, &f)
			if err != nil {
				return err
			}
			if f+int64(w.N)-1 > 0xFFFFFFFF {
				return fmt.Errorf("%w: prekey ids of kind %d exhausted", ErrInvalid, w.Kind)
			}
			first[i] = uint32(f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: next prekey id: %w", err)
	}
	return first, nil
}

// ---- sessions ----------------------------------------------------------------------

// MaxSessionsPerPeer is how many sessions (the active one and older ones that may still
// receive late messages) are kept per peer card; the least recently used go first.
const MaxSessionsPerPeer = 5

// Session is a ratchet session with one peer card. State is the marshalled ratchet
// state, plain in memory and sealed at rest.
//
// Generation is the session row's commit counter as it was read (0 for a session not
// yet stored). A write of the session (PutSession, CommitSend, CommitReceive,
// CommitAwaited) is a compare-and-swap: it succeeds only while the row is still at
// Generation, and leaves it at Generation+1; otherwise it fails with a
// *StaleSessionError and changes nothing. The sealed state is bound to its generation,
// so not even a writer that bypasses this code can put an older state back unnoticed.
// This is what keeps two processes on one profile from ever reusing a chain key.
type Session struct {
	ID         string
	PeerCardID string
	Active     bool
	State      []byte
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Generation uint64
}

// sessionRowKey is the row key a session state is sealed to: the id, and from schema
// version 5 on the generation (generation 0 is a row sealed before it).
func sessionRowKey(id string, gen uint64) string {
	if gen == 0 {
		return id
	}
	return id + "#" + strconv.FormatUint(gen, 10)
}

// sealSession seals s's state for the generation its commit will create.
func (c *Client) sealSession(s Session) ([]byte, error) {
	return c.keys.seal("sessions", "state", sessionRowKey(s.ID, s.Generation+1), s.State)
}

// Sessions returns the sessions with a peer card: the active one first, then the most
// recently updated.
func (c *Client) Sessions(ctx context.Context, peerCardID string) ([]Session, error) {
	rows, err := c.db.query(ctx, `SELECT id, peer_card_id, active, state_sealed, created_at, updated_at, generation
		FROM sessions WHERE peer_card_id = ? ORDER BY active DESC, updated_at DESC, id`, peerCardID)
	if err != nil {
		return nil, fmt.Errorf("storage: sessions of %s: %w", peerCardID, err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var s Session
		var active int
		var created, updated int64
		var sealed []byte
		var gen int64
		if err := rows.Scan(&s.ID, &s.PeerCardID, &active, &sealed, &created, &updated, &gen); err != nil {
			return nil, fmt.Errorf("storage: sessions of %s: %w", peerCardID, err)
		}
		s.Active, s.CreatedAt, s.UpdatedAt, s.Generation = active != 0, goTime(created), goTime(updated), uint64(gen)
		if s.State, err = c.keys.open("sessions", "state", sessionRowKey(s.ID, s.Generation), sealed); err != nil {
			c.skipCorrupt("session", s.ID, err)
			continue
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: sessions of %s: %w", peerCardID, err)
	}
	return out, nil
}

// PutSession inserts or updates a session. Active=true demotes the peer's other
// sessions; at most MaxSessionsPerPeer are kept (the active one always).
func (c *Client) PutSession(ctx context.Context, s Session) error {
	sealed, err := c.sealSession(s)
	if err != nil {
		return err
	}
	if err := c.db.write(ctx, func(tx *txn) error { return putSession(ctx, tx, s, sealed) }); err != nil {
		return fmt.Errorf("storage: put session: %w", err)
	}
	return nil
}

func putSession(ctx context.Context, tx *txn, s Session, sealed []byte) error {
	if s.ID == "" || s.PeerCardID == "" {
		return fmt.Errorf("%w: session needs ID and PeerCardID", ErrInvalid)
	}
	created, updated := s.CreatedAt, s.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	if created.IsZero() {
		created = updated
	}
	if s.Active {
		if _, err := tx.exec(ctx, "UPDATE sessions SET active = 0 WHERE peer_card_id = ? AND active = 1 AND id <> ?", s.PeerCardID, s.ID); err != nil {
			return err
		}
	}
	if s.Generation >= math.MaxInt64 {
		return fmt.Errorf("%w: session generation %d", ErrInvalid, s.Generation)
	}
	// The common case is a state update of an existing session: one UPDATE, a
	// compare-and-swap on the generation. Only a new session inserts and trims the
	// peer's older ones.
	n, err := tx.execN(ctx, "UPDATE sessions SET peer_card_id = ?, active = ?, state_sealed = ?, updated_at = ?, generation = ? WHERE id = ? AND generation = ?",
		s.PeerCardID, boolInt(s.Active), sealed, dbTime(updated), int64(s.Generation+1), s.ID, int64(s.Generation))
	if err != nil || n > 0 {
		return err
	}
	var cur int64
	err = tx.scan(ctx, "SELECT generation FROM sessions WHERE id = ?", []any{s.ID}, &cur)
	switch {
	case err == nil:
		return &StaleSessionError{ID: s.ID, Read: s.Generation, Current: uint64(cur), Exists: true}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	case s.Generation != 0:
		return &StaleSessionError{ID: s.ID, Read: s.Generation}
	}
	if _, err := tx.exec(ctx, "INSERT INTO sessions (id, peer_card_id, active, state_sealed, created_at, updated_at, generation) VALUES (?, ?, ?, ?, ?, ?, 1)",
		s.ID, s.PeerCardID, boolInt(s.Active), sealed, dbTime(created), dbTime(updated)); err != nil {
		return err
	}
	_, err = tx.exec(ctx, `DELETE FROM sessions WHERE peer_card_id = ?1 AND id NOT IN
		(SELECT id FROM sessions WHERE peer_card_id = ?1 ORDER BY active DESC, updated_at DESC, id LIMIT ?2)`,
		s.PeerCardID, MaxSessionsPerPeer)
	return err
}

// DeleteSessions deletes every session with a peer card; "" deletes all sessions.
func (c *Client) DeleteSessions(ctx context.Context, peerCardID string) error {
	err := c.db.write(ctx, func(tx *txn) error {
		if peerCardID == "" {
			_, err := tx.exec(ctx, "DELETE FROM sessions")
			return err
		}
		_, err := tx.exec(ctx, "DELETE FROM sessions WHERE peer_card_id = ?", peerCardID)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: delete sessions: %w", err)
	}
	return nil
}

// SetContactConsented records that the user accepted (or withdrew acceptance of) a
// contact for receipts; ErrNotFound if unknown.
func (c *Client) SetContactConsented(ctx context.Context, name string, v bool) error {
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE contacts SET consented = ? WHERE name = ?", boolInt(v), name)
		if err != nil {
			return fmt.Errorf("storage: consent for %q: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, name)
		}
		return nil
	})
}
