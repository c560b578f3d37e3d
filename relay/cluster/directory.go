package cluster

// Directory is the relay's directory (accounts, cards, replaced cards, prekeys, meta,
// invites, recovery verifiers, blocks) in one JetStream key-value bucket shared by every
// relay node. Where the SQLite store uses a transaction, it reads the keys involved
// and writes them back in one atomic batch that expects each key's revision as read
// (kv.go): two nodes racing for a name, a card or a one-time prekey cannot both win;
// the loser reads again.
//
// Keys (variable parts hex-encoded, so any name is one subject token):
//
//	acct.<name>          accountRec
//	card.<card id>       the name whose current card it is
//	repl.<card id>       replacedRec (a card replace_card or recover replaced)
//	pk.<card id>.<kind>  the card's prekeys of one kind, ascending by id
//	meta.<key>           a sealed value (relaykey.go)
//	inv.<code hash>      inviteRec
//	blk.<blocker>        the names blocker blocks
//	lim.<limit>.<key>    a shared token bucket (limits.go)
//	blob.<id>, bq.<owner> blob metadata and an owner's blob bytes (blobs.go)

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/server"
	"pfschat/storage"
)

// DirOptions configure NewDirectory.
type DirOptions struct {
	// SealKey seals the relay's secrets in the bucket (LoadSealKey); required, the
	// same on every node.
	SealKey []byte
	// Bucket names the key-value bucket ("" = <prefix>_dir).
	Bucket string
}

// Directory implements server.Store on a JetStream key-value bucket.
type Directory struct {
	b    *kvBucket
	seal sealer
	opts DirOptions
}

var (
	_ server.Store      = (*Directory)(nil)
	_ server.ChangeFeed = (*Directory)(nil)
)

// Prekey kinds (ratchet numbering); the signed and last-resort kinds are replaced by
// an upload, the one-time kinds handed out once each.
const (
	kindSignedPreKey  uint8 = 1
	kindOneTimePreKey uint8 = 2
	kindKEMLastResort uint8 = 3
	kindKEMOneTime    uint8 = 4
	maxKind                 = 4
)

// NewDirectory creates or opens the directory bucket.
func NewDirectory(ctx context.Context, c *Conn, o DirOptions) (*Directory, error) {
	if len(o.SealKey) != SealKeySize {
		return nil, fmt.Errorf("%w: the seal key must be %d bytes", ErrSealKey, SealKeySize)
	}
	if o.Bucket == "" {
		o.Bucket = c.Prefix() + "_dir"
	}
	if !validToken(o.Bucket) {
		return nil, fmt.Errorf("%w: bucket %q (letters, digits, '_' and '-' only)", ErrOptions, o.Bucket)
	}
	b, err := openBucket(ctx, c, o.Bucket, "pfschat relay directory")
	if err != nil {
		return nil, err
	}
	return &Directory{b: b, seal: sealer{key: slices.Clone(o.SealKey), bucket: o.Bucket}, opts: o}, nil
}

func hx(s string) string { return hex.EncodeToString([]byte(s)) }

func unhx(s string) (string, bool) {
	b, err := hex.DecodeString(s)
	return string(b), err == nil
}

func keyAcct(name string) string   { return "acct." + hx(name) }
func keyCard(id string) string     { return "card." + hx(id) }
func keyRepl(id string) string     { return "repl." + hx(id) }
func keyMeta(k string) string      { return "meta." + hx(k) }
func keyInvite(h []byte) string    { return "inv." + hex.EncodeToString(h) }
func keyBlocks(name string) string { return "blk." + hx(name) }
func keyPreKeys(card string, kind uint8) string {
	return "pk." + hx(card) + "." + strconv.Itoa(int(kind))
}

func nsTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func timeNs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ---- meta --------------------------------------------------------------------------

// Meta returns the value stored under key, opened; storage.ErrNotFound if unset.
func (d *Directory) Meta(ctx context.Context, key string) ([]byte, error) {
	e, err := d.b.get(ctx, keyMeta(key))
	if err != nil {
		return nil, err
	}
	if !e.exists() {
		return nil, fmt.Errorf("%w: meta %q", storage.ErrNotFound, key)
	}
	return d.seal.open(key, e.val)
}

// SetMeta stores a value under key, sealed.
func (d *Directory) SetMeta(ctx context.Context, key string, v []byte) error {
	sealed, err := d.seal.seal(key, v)
	if err != nil {
		return err
	}
	return retry(ctx, "set meta", func() error {
		e, err := d.b.get(ctx, keyMeta(key))
		if err != nil {
			return err
		}
		_, err = d.b.put(ctx, kvOp{key: keyMeta(key), val: sealed, rev: e.rev})
		return err
	})
}

// CreateMeta stores a value under key unless one is there: storage.ErrExists then.
// Nodes starting together each make a relay key; the first stored is everyone's.
func (d *Directory) CreateMeta(ctx context.Context, key string, v []byte) error {
	sealed, err := d.seal.seal(key, v)
	if err != nil {
		return err
	}
	return retry(ctx, "create meta", func() error {
		e, err := d.b.get(ctx, keyMeta(key))
		if err != nil {
			return err
		}
		if e.exists() {
			return fmt.Errorf("%w: meta %q", storage.ErrExists, key)
		}
		_, err = d.b.put(ctx, kvOp{key: keyMeta(key), val: sealed, rev: e.rev})
		return err
	})
}

// ---- accounts ----------------------------------------------------------------------

func (d *Directory) account(ctx context.Context, name string) (accountRec, kvEntry, error) {
	e, err := d.b.get(ctx, keyAcct(name))
	if err != nil || !e.exists() {
		return accountRec{}, e, err
	}
	a, err := decodeAccount(e.val)
	if err == nil && a.Name != name {
		err = fmt.Errorf("%w: account %q holds %q", ErrDamaged, name, a.Name)
	}
	return a, e, err
}

func (a *accountRec) public() storage.Account {
	return storage.Account{Name: a.Name, CardID: a.CardID, Card: a.Card, CreatedAt: nsTime(a.CreatedAt)}
}

// CreateAccount registers an account. storage.ErrExists if the name or the card ID is
// taken.
func (d *Directory) CreateAccount(ctx context.Context, a storage.Account) error {
	return d.createAccount(ctx, a, nil, time.Time{})
}

// CreateAccountInvited is CreateAccount paid for with one use of the invite whose code
// hashes to inviteHash, in the same transaction: storage.ErrBadInvite (nothing
// changed) if it is unknown, used up or expired at now; storage.ErrExists as
// CreateAccount (the invite keeps its use).
func (d *Directory) CreateAccountInvited(ctx context.Context, a storage.Account, inviteHash []byte, now time.Time) error {
	if inviteHash == nil {
		inviteHash = []byte{}
	}
	return d.createAccount(ctx, a, inviteHash, now)
}

func (d *Directory) createAccount(ctx context.Context, a storage.Account, invite []byte, now time.Time) error {
	if a.Name == "" || a.CardID == "" {
		return fmt.Errorf("%w: account needs a name and a card ID", storage.ErrInvalid)
	}
	card := a.Card
	if card == nil {
		card = []byte{}
	}
	rec := accountRec{Name: a.Name, CardID: a.CardID, Card: card, CreatedAt: timeNs(a.CreatedAt), Recovery: a.Recovery}
	if invite == nil {
		return retry(ctx, "create account", func() error { return d.createOpen(ctx, &rec) })
	}
	return retry(ctx, "create account", func() error {
		ea, err := d.b.get(ctx, keyAcct(a.Name))
		if err != nil {
			return err
		}
		if ea.exists() {
			return fmt.Errorf("%w: name %q is taken", storage.ErrExists, a.Name)
		}
		ec, err := d.b.get(ctx, keyCard(a.CardID))
		if err != nil {
			return err
		}
		if ec.exists() {
			return fmt.Errorf("%w: card %s is already registered", storage.ErrExists, a.CardID)
		}
		ops := []kvOp{
			{key: keyAcct(a.Name), val: rec.encode(), rev: ea.rev},
			{key: keyCard(a.CardID), val: encodeCard(a.Name), rev: ec.rev},
		}
		if invite != nil {
			op, err := d.useInvite(ctx, invite, now)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		return d.b.commit(ctx, ops)
	})
}

// createOpen registers rec without an invite in two single-key writes instead of a
// transaction (at R1 an atomic batch stages on disk: about 8× the time of two
// writes): first the card's index entry, then the account, which is what makes the
// registration. Readers go from the index to the account and check it names the
// card, so an index entry whose account was not written (a lost race, a crash
// between) is never an answer; a lost race takes its entry back, and a later
// registration of the same name and card reuses it. A card's id covers its name, so
// an entry naming another name means the card is taken.
func (d *Directory) createOpen(ctx context.Context, rec *accountRec) error {
	ea, err := d.b.get(ctx, keyAcct(rec.Name))
	if err != nil {
		return err
	}
	if ea.exists() {
		return fmt.Errorf("%w: name %q is taken", storage.ErrExists, rec.Name)
	}
	ec, err := d.b.get(ctx, keyCard(rec.CardID))
	if err != nil {
		return err
	}
	if ec.exists() {
		owner, err := decodeCard(ec.val)
		if err != nil {
			return err
		}
		if owner != rec.Name {
			return fmt.Errorf("%w: card %s is already registered", storage.ErrExists, rec.CardID)
		}
	}
	rev, err := d.b.put(ctx, kvOp{key: keyCard(rec.CardID), val: encodeCard(rec.Name), rev: ec.rev})
	if err != nil {
		return err
	}
	_, err = d.b.put(ctx, kvOp{key: keyAcct(rec.Name), val: rec.encode(), rev: ea.rev})
	if !errors.Is(err, errConflict) {
		// Written, or its outcome unknown (unavailable): the entry stays either way.
		return err
	}
	// Someone else registered the name first. Take the entry back, unless the name's
	// account now holds this very card (the same registration twice).
	if a, e, rerr := d.account(ctx, rec.Name); rerr != nil || (e.exists() && a.CardID == rec.CardID) {
		return err
	}
	d.b.put(ctx, tombstone(keyCard(rec.CardID), rev)) // lost to a rewrite: then it is not ours
	return err
}

// AccountByName returns the account registered under name; storage.ErrNotFound if
// none.
func (d *Directory) AccountByName(ctx context.Context, name string) (storage.Account, error) {
	if name == "" {
		return storage.Account{}, fmt.Errorf("%w: account with name %q", storage.ErrNotFound, name)
	}
	a, e, err := d.account(ctx, name)
	if err != nil {
		return storage.Account{}, err
	}
	if !e.exists() {
		return storage.Account{}, fmt.Errorf("%w: account with name %q", storage.ErrNotFound, name)
	}
	return a.public(), nil
}

// AccountByCardID returns the account whose current card has this ID;
// storage.ErrNotFound if none.
func (d *Directory) AccountByCardID(ctx context.Context, id string) (storage.Account, error) {
	notFound := fmt.Errorf("%w: account with card_id %q", storage.ErrNotFound, id)
	if id == "" {
		return storage.Account{}, notFound
	}
	e, err := d.b.get(ctx, keyCard(id))
	if err != nil {
		return storage.Account{}, err
	}
	if !e.exists() {
		return storage.Account{}, notFound
	}
	name, err := decodeCard(e.val)
	if err != nil {
		return storage.Account{}, err
	}
	a, ea, err := d.account(ctx, name)
	if err != nil {
		return storage.Account{}, err
	}
	if !ea.exists() || a.CardID != id {
		return storage.Account{}, notFound
	}
	return a.public(), nil
}

// dropCardOps are the writes that retire card id of name's account: its prekeys
// and its index entry go, a replaced-card record remembers it (at at).
func (d *Directory) retireCardOps(ctx context.Context, a *accountRec, card []byte, at time.Time) ([]kvOp, error) {
	ops, err := d.preKeyDeletes(ctx, a.CardID)
	if err != nil {
		return nil, err
	}
	ec, err := d.b.get(ctx, keyCard(a.CardID))
	if err != nil {
		return nil, err
	}
	if ec.exists() {
		ops = append(ops, tombstone(keyCard(a.CardID), ec.rev))
	}
	er, err := d.b.get(ctx, keyRepl(a.CardID))
	if err != nil {
		return nil, err
	}
	if card == nil {
		card = []byte{}
	}
	r := replacedRec{Name: a.Name, CardID: a.CardID, Card: card, ReplacedAt: timeNs(at)}
	ops = append(ops, kvOp{key: keyRepl(a.CardID), val: r.encode(), rev: er.rev})
	a.Replaced = slices.DeleteFunc(a.Replaced, func(id string) bool { return id == a.CardID })
	a.Replaced = append(a.Replaced, a.CardID)
	for len(a.Replaced) > maxReplaced {
		old := a.Replaced[0]
		a.Replaced = a.Replaced[1:]
		eo, err := d.b.get(ctx, keyRepl(old))
		if err != nil {
			return nil, err
		}
		if eo.exists() {
			ops = append(ops, tombstone(keyRepl(old), eo.rev))
		}
	}
	return ops, nil
}

// preKeyDeletes are the writes deleting every prekey of a card.
func (d *Directory) preKeyDeletes(ctx context.Context, cardID string) ([]kvOp, error) {
	var ops []kvOp
	for k := uint8(1); k <= maxKind; k++ {
		e, err := d.b.get(ctx, keyPreKeys(cardID, k))
		if err != nil {
			return nil, err
		}
		if e.exists() {
			ops = append(ops, tombstone(keyPreKeys(cardID, k), e.rev))
		}
	}
	return ops, nil
}

// swapCard changes a's card to newID (new card bytes and created time set by the
// caller afterwards) and returns the writes besides the account's own: the new index
// entry and what retireCardOps does. storage.ErrExists if newID is another name's, or
// a card replaced before.
func (d *Directory) swapCard(ctx context.Context, a *accountRec, newID string, at time.Time) ([]kvOp, error) {
	en, err := d.b.get(ctx, keyCard(newID))
	if err != nil {
		return nil, err
	}
	if en.exists() {
		if owner, err := decodeCard(en.val); err != nil || owner != a.Name {
			return nil, fmt.Errorf("%w: card %s is registered to another account", storage.ErrExists, newID)
		}
	}
	if newID == a.CardID {
		return nil, nil
	}
	// A replaced card never becomes current again (as storage's cardTaken).
	if er, err := d.b.get(ctx, keyRepl(newID)); err != nil {
		return nil, err
	} else if er.exists() {
		return nil, fmt.Errorf("%w: card %s was replaced; a replaced card does not come back", storage.ErrExists, newID)
	}
	ops, err := d.retireCardOps(ctx, a, a.Card, at)
	if err != nil {
		return nil, err
	}
	return append(ops, kvOp{key: keyCard(newID), val: encodeCard(a.Name), rev: en.rev}), nil
}

// ReplaceCard swaps the card of an existing account (key change) and drops the
// prekeys published for the old card. storage.ErrNotFound if no such name,
// storage.ErrExists if the new card belongs to another account or was replaced
// before. newAcc.Name is
// ignored; CreatedAt is kept when zero.
func (d *Directory) ReplaceCard(ctx context.Context, name, fromCardID string, newAcc storage.Account) error {
	return retry(ctx, "replace card", func() error {
		a, e, err := d.account(ctx, name)
		if err != nil {
			return err
		}
		if !e.exists() {
			return fmt.Errorf("%w: account %q", storage.ErrNotFound, name)
		}
		if fromCardID != "" && a.CardID != fromCardID {
			return fmt.Errorf("%w: account %q with card %s (its card is another now)", storage.ErrNotFound, name, fromCardID)
		}
		ops, err := d.swapCard(ctx, &a, newAcc.CardID, newAcc.CreatedAt)
		if err != nil {
			return err
		}
		a.CardID, a.Card = newAcc.CardID, newAcc.Card
		if a.Card == nil {
			a.Card = []byte{}
		}
		if !newAcc.CreatedAt.IsZero() {
			a.CreatedAt = timeNs(newAcc.CreatedAt)
		}
		return d.b.commit(ctx, append(ops, kvOp{key: keyAcct(name), val: a.encode(), rev: e.rev}))
	})
}

// ReplacedCard returns the card with this ID that replace_card or recover replaced,
// with the name it belonged to; storage.ErrNotFound if none.
func (d *Directory) ReplacedCard(ctx context.Context, cardID string) (storage.Account, error) {
	e, err := d.b.get(ctx, keyRepl(cardID))
	if err != nil {
		return storage.Account{}, err
	}
	if !e.exists() {
		return storage.Account{}, fmt.Errorf("%w: replaced card %s", storage.ErrNotFound, cardID)
	}
	r, err := decodeReplaced(e.val)
	if err != nil {
		return storage.Account{}, err
	}
	return storage.Account{Name: r.Name, CardID: r.CardID, Card: r.Card, CreatedAt: nsTime(r.ReplacedAt)}, nil
}

// SetRecovery sets the recovery verifier of name's account, as long as cardID is still
// its card; storage.ErrNotFound otherwise.
func (d *Directory) SetRecovery(ctx context.Context, name, cardID string, verifier []byte) error {
	return retry(ctx, "set recovery", func() error {
		a, e, err := d.account(ctx, name)
		if err != nil {
			return err
		}
		if !e.exists() || a.CardID != cardID {
			return fmt.Errorf("%w: account %q with card %s", storage.ErrNotFound, name, cardID)
		}
		a.Recovery = slices.Clone(verifier)
		_, err = d.b.put(ctx, kvOp{key: keyAcct(name), val: a.encode(), rev: e.rev})
		return err
	})
}

// HasRecovery reports whether name's account has a recovery verifier;
// storage.ErrNotFound when there is no such account.
func (d *Directory) HasRecovery(ctx context.Context, name string) (bool, error) {
	a, e, err := d.account(ctx, name)
	if err != nil {
		return false, err
	}
	if !e.exists() {
		return false, fmt.Errorf("%w: account %q", storage.ErrNotFound, name)
	}
	return len(a.Recovery) > 0, nil
}

// RecoverAccount replaces name's card by newAcc's if check accepts the stored recovery
// verifier, in one transaction: the new card and newAcc.Recovery are stored, the old
// card's prekeys dropped. It returns the old card's ID. storage.ErrNotFound: no such
// account; storage.ErrRecoveryRefused: no verifier, or check said no;
// storage.ErrExists: the new card is another account's, or was replaced before. A
// refusal changes nothing.
func (d *Directory) RecoverAccount(ctx context.Context, name string, check func(stored []byte) bool, newAcc storage.Account) (string, error) {
	var oldCard string
	err := retry(ctx, "recover account", func() error {
		a, e, err := d.account(ctx, name)
		if err != nil {
			return err
		}
		if !e.exists() {
			return fmt.Errorf("%w: account %q", storage.ErrNotFound, name)
		}
		if len(a.Recovery) == 0 || !check(a.Recovery) {
			return fmt.Errorf("%w: %q", storage.ErrRecoveryRefused, name)
		}
		oldCard = a.CardID
		ops, err := d.swapCard(ctx, &a, newAcc.CardID, newAcc.CreatedAt)
		if err != nil {
			return err
		}
		a.CardID, a.Card, a.CreatedAt, a.Recovery = newAcc.CardID, newAcc.Card, timeNs(newAcc.CreatedAt), slices.Clone(newAcc.Recovery)
		if a.Card == nil {
			a.Card = []byte{}
		}
		return d.b.commit(ctx, append(ops, kvOp{key: keyAcct(name), val: a.encode(), rev: e.rev}))
	})
	if err != nil {
		return "", err
	}
	return oldCard, nil
}

// TouchLogins records when accounts logged in (name → time) for the account expiry;
// a name with no account is skipped.
func (d *Directory) TouchLogins(ctx context.Context, logins map[string]time.Time) error {
	for name, at := range logins {
		err := retry(ctx, "record a login", func() error {
			a, e, err := d.account(ctx, name)
			if err != nil || !e.exists() || timeNs(at) <= a.LastLogin {
				return err
			}
			a.LastLogin = timeNs(at)
			_, err = d.b.put(ctx, kvOp{key: keyAcct(name), val: a.encode(), rev: e.rev})
			return err
		})
		if err != nil {
			return fmt.Errorf("relay/cluster: record %d logins: %w", len(logins), err)
		}
	}
	return nil
}

// LastActive is when name last logged in, or registered if later;
// storage.ErrNotFound if no such account.
func (d *Directory) LastActive(ctx context.Context, name string) (time.Time, error) {
	a, e, err := d.account(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	if !e.exists() {
		return time.Time{}, fmt.Errorf("%w: account %q", storage.ErrNotFound, name)
	}
	return nsTime(max(a.CreatedAt, a.LastLogin)), nil
}

// DeleteAccount deletes the account name if its current card is cardID, with the
// card's prekeys, its replaced cards and its blocks, in one transaction (which also
// rewrites the name's blob usage record: see Blobs.CreateBlob). The queue is
// not the directory's: the server purges it (server.QueuePurger), so it returns 0
// queued messages. storage.ErrNotFound if the name has no account with that card.
func (d *Directory) DeleteAccount(ctx context.Context, name, cardID string) (int, error) {
	err := retry(ctx, "delete account", func() error {
		a, e, err := d.account(ctx, name)
		if err != nil {
			return err
		}
		if !e.exists() || a.CardID != cardID {
			return fmt.Errorf("%w: no account %q with card %s", storage.ErrNotFound, name, cardID)
		}
		ops, err := d.preKeyDeletes(ctx, cardID)
		if err != nil {
			return err
		}
		for _, k := range append([]string{keyCard(cardID), keyBlocks(name)}, replKeys(a.Replaced)...) {
			ek, err := d.b.get(ctx, k)
			if err != nil {
				return err
			}
			if ek.exists() {
				op := tombstone(k, ek.rev)
				if k == keyBlocks(name) { // named by the name: its marker stays (markerTTL)
					op.ttl = 0
				}
				ops = append(ops, op)
			}
		}
		// The owner's blob usage record is written too, as it is (or a delete marker
		// where there is none): a Blobs.CreateBlob that read it before this commit then
		// conflicts and finds the account gone, so no upload lands under the name after
		// the server's purge of its blobs (which reads the record's ids).
		ue, err := d.b.get(ctx, keyUsage(name))
		if err != nil {
			return err
		}
		ops = append(ops, kvOp{key: keyUsage(name), val: ue.val, del: !ue.exists(), rev: ue.rev})
		return d.b.commit(ctx, append(ops, kvOp{key: keyAcct(name), del: true, rev: e.rev}))
	})
	return 0, err
}

func replKeys(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = keyRepl(id)
	}
	return out
}

// scanTries bounds the watches one scan makes.
const scanTries = 3

// scan calls f with every live key under prefix (e.g. "acct.") and its value. It reads
// them with a watch (an ordered consumer), which a cluster recovering from an outage
// may leave silent: a watch with no news for the connection's timeout is given up
// and the scan starts over, scanTries times at most.
func (d *Directory) scan(ctx context.Context, prefix string, f func(key string, val []byte) error) error {
	type kv struct {
		key string
		val []byte
	}
	var all []kv
	watch := func() error {
		all = all[:0]
		// A watchdog ends the attempt when the watch is silent for the timeout, while
		// it is made too (making it can hang on a stream that lost its leader).
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		idle := time.AfterFunc(d.b.timeout, cancel)
		defer idle.Stop()
		silent := func(err error) error {
			if ctx.Err() == nil && wctx.Err() != nil {
				return dirUnavailable(fmt.Errorf("relay/cluster: listing %s: no answer within %v", prefix, d.b.timeout))
			}
			return dirUnavailable(fmt.Errorf("relay/cluster: listing %s: %w", prefix, err))
		}
		w, err := d.b.kv.Watch(wctx, prefix+">", jetstream.IgnoreDeletes())
		if err != nil {
			return silent(err)
		}
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return silent(errors.New("the watch ended"))
				}
				if e == nil {
					return nil // every current value was delivered
				}
				all = append(all, kv{strings.TrimPrefix(e.Key(), prefix), e.Value()})
				idle.Reset(d.b.timeout)
			case <-wctx.Done():
				return silent(wctx.Err())
			}
		}
	}
	var err error
	for try := 0; try < scanTries; try++ {
		if err = watch(); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	for _, e := range all {
		if err := f(e.key, e.val); err != nil {
			return err
		}
	}
	return nil
}

// IdleAccounts lists the accounts whose last login (or registration) is before
// cutoff, oldest first, at most limit of them. It reads every account (hourly, with
// --account-expiry).
func (d *Directory) IdleAccounts(ctx context.Context, cutoff time.Time, limit int) ([]storage.IdleAccount, error) {
	var out []storage.IdleAccount
	c := timeNs(cutoff)
	err := d.scan(ctx, "acct.", func(_ string, val []byte) error {
		a, err := decodeAccount(val)
		if err != nil {
			return err
		}
		if active := max(a.CreatedAt, a.LastLogin); active < c {
			out = append(out, storage.IdleAccount{Name: a.Name, CardID: a.CardID, LastActive: nsTime(active)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay/cluster: idle accounts: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastActive.Before(out[j].LastActive) })
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// ---- prekeys -----------------------------------------------------------------------

func validKind(kind uint8) error {
	if kind == 0 || kind > maxKind {
		return fmt.Errorf("%w: prekey kind %d", storage.ErrInvalid, kind)
	}
	return nil
}

func (d *Directory) preKeys(ctx context.Context, cardID string, kind uint8) ([]preKey, kvEntry, error) {
	if err := validKind(kind); err != nil {
		return nil, kvEntry{}, err
	}
	e, err := d.b.get(ctx, keyPreKeys(cardID, kind))
	if err != nil || !e.exists() {
		return nil, e, err
	}
	keys, err := decodePreKeys(e.val)
	return keys, e, err
}

// PutPreKeys stores a card's public prekeys in one transaction. A signed prekey or a
// last-resort KEM prekey replaces the one of its kind; one-time keys are added, those
// whose id is stored already skipped. With maxOneTime > 0 the upload is judged on the
// lists the transaction read and writes back only if none of them changed since
// (expected revisions): when a one-time kind's stored keys plus the upload's keys of
// that kind (stored ids included) exceed maxOneTime, nothing is stored and the error
// is a *storage.TooManyPreKeysError. So uploads of one card on several nodes at once
// are judged one after another, as the SQLite store's transactions are: a loser of
// the race reads the lists again and is judged on them. Returns how many keys were
// stored.
func (d *Directory) PutPreKeys(ctx context.Context, cardID string, keys []storage.StoredPreKey, maxOneTime int) (int, error) {
	adding := map[uint8]int{}
	for _, k := range keys {
		if err := validKind(k.Kind); err != nil {
			return 0, fmt.Errorf("relay/cluster: put prekeys of %s: %w", cardID, err)
		}
		if k.Kind != kindSignedPreKey && k.Kind != kindKEMLastResort {
			adding[k.Kind]++
		}
	}
	stored := 0
	err := retry(ctx, "put prekeys", func() error {
		stored = 0
		lists := map[uint8][]preKey{}
		entries := map[uint8]kvEntry{}
		for _, k := range keys {
			if _, ok := entries[k.Kind]; ok {
				continue
			}
			list, e, err := d.preKeys(ctx, cardID, k.Kind)
			if err != nil {
				return err
			}
			if n := adding[k.Kind]; maxOneTime > 0 && len(list)+n > maxOneTime {
				return &storage.TooManyPreKeysError{Kind: k.Kind, Stored: len(list), Adding: n, Max: maxOneTime}
			}
			lists[k.Kind], entries[k.Kind] = list, e
		}
		for _, k := range keys {
			data := k.Data
			if data == nil {
				data = []byte{}
			}
			list := lists[k.Kind]
			switch k.Kind {
			case kindSignedPreKey, kindKEMLastResort:
				lists[k.Kind] = []preKey{{ID: k.ID, Data: slices.Clone(data)}}
				stored++
				continue
			}
			i, found := slices.BinarySearchFunc(list, k.ID, func(p preKey, id uint32) int { return cmpU32(p.ID, id) })
			if found {
				continue
			}
			lists[k.Kind] = slices.Insert(list, i, preKey{ID: k.ID, Data: slices.Clone(data)})
			stored++
		}
		ops := make([]kvOp, 0, len(lists))
		for kind, list := range lists {
			val := encodePreKeys(list)
			if max := d.b.nc.MaxPayload(); max > 0 && int64(len(val)) > max-1024 {
				return fmt.Errorf("%w: card %s's prekeys of kind %d take %d bytes, over what the NATS server takes in one message (max_payload %d): lower the relay's one-time prekey limit or raise max_payload",
					storage.ErrInvalid, cardID, kind, len(val), max)
			}
			ops = append(ops, kvOp{key: keyPreKeys(cardID, kind), val: val, rev: entries[kind].rev})
		}
		sort.Slice(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
		return d.b.commit(ctx, ops)
	})
	if err != nil {
		return 0, fmt.Errorf("relay/cluster: put prekeys of %s: %w", cardID, err)
	}
	return stored, nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CountPreKeys counts a card's stored prekeys of a kind.
func (d *Directory) CountPreKeys(ctx context.Context, cardID string, kind uint8) (int, error) {
	keys, _, err := d.preKeys(ctx, cardID, kind)
	if err != nil {
		return 0, fmt.Errorf("relay/cluster: count prekeys: %w", err)
	}
	return len(keys), nil
}

// PreKeyIDs lists the ids of a card's stored prekeys of a kind, ascending.
func (d *Directory) PreKeyIDs(ctx context.Context, cardID string, kind uint8) ([]uint32, error) {
	keys, _, err := d.preKeys(ctx, cardID, kind)
	if err != nil {
		return nil, fmt.Errorf("relay/cluster: prekey ids: %w", err)
	}
	ids := make([]uint32, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids, nil
}

// LatestPreKey returns the card's prekey of a kind with the highest id;
// storage.ErrNotFound if none.
func (d *Directory) LatestPreKey(ctx context.Context, cardID string, kind uint8) (storage.StoredPreKey, error) {
	keys, _, err := d.preKeys(ctx, cardID, kind)
	if err != nil {
		return storage.StoredPreKey{}, fmt.Errorf("relay/cluster: latest prekey: %w", err)
	}
	if len(keys) == 0 {
		return storage.StoredPreKey{}, fmt.Errorf("%w: no prekey of kind %d for card %s", storage.ErrNotFound, kind, cardID)
	}
	k := keys[len(keys)-1]
	return storage.StoredPreKey{Kind: kind, ID: k.ID, Data: k.Data}, nil
}

// TakePreKey removes and returns one prekey of a kind (lowest id first): the list is
// written back without it only if nobody changed it since it was read, so two nodes
// never hand out the same key. storage.ErrNotFound when none is left.
func (d *Directory) TakePreKey(ctx context.Context, cardID string, kind uint8) (storage.StoredPreKey, error) {
	if kind == kindSignedPreKey || kind == kindKEMLastResort {
		return storage.StoredPreKey{}, fmt.Errorf("%w: prekey kind %d is shared, not taken (use LatestPreKey)", storage.ErrInvalid, kind)
	}
	var got storage.StoredPreKey
	err := retry(ctx, "take prekey", func() error {
		keys, e, err := d.preKeys(ctx, cardID, kind)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("%w: no prekey of kind %d left for card %s", storage.ErrNotFound, kind, cardID)
		}
		got = storage.StoredPreKey{Kind: kind, ID: keys[0].ID, Data: keys[0].Data}
		op := kvOp{key: keyPreKeys(cardID, kind), val: encodePreKeys(keys[1:]), rev: e.rev}
		if len(keys) == 1 {
			op.val, op.del = nil, true
		}
		_, err = d.b.put(ctx, op)
		return err
	})
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return storage.StoredPreKey{}, err
		}
		return storage.StoredPreKey{}, fmt.Errorf("relay/cluster: take prekey: %w", err)
	}
	return got, nil
}

// ---- invites -----------------------------------------------------------------------

// CreateInvite stores an invite; storage.ErrExists if its hash is already stored.
func (d *Directory) CreateInvite(ctx context.Context, inv storage.Invite) error {
	if len(inv.Hash) != 32 || inv.UsesLeft <= 0 {
		return fmt.Errorf("%w: an invite needs a 32-byte hash and at least one use", storage.ErrInvalid)
	}
	rec := inviteRec{UsesLeft: int64(inv.UsesLeft), ExpiresAt: timeNs(inv.ExpiresAt), CreatedAt: timeNs(inv.CreatedAt)}
	return retry(ctx, "create invite", func() error {
		e, err := d.b.get(ctx, keyInvite(inv.Hash))
		if err != nil {
			return err
		}
		if e.exists() {
			return fmt.Errorf("%w: invite", storage.ErrExists)
		}
		_, err = d.b.put(ctx, kvOp{key: keyInvite(inv.Hash), val: rec.encode(), rev: e.rev})
		return err
	})
}

// useInvite is the write that spends one use of an invite: storage.ErrBadInvite if it
// is unknown, used up or expired at now.
func (d *Directory) useInvite(ctx context.Context, hash []byte, now time.Time) (kvOp, error) {
	if len(hash) != 32 {
		return kvOp{}, storage.ErrBadInvite
	}
	e, err := d.b.get(ctx, keyInvite(hash))
	if err != nil {
		return kvOp{}, err
	}
	if !e.exists() {
		return kvOp{}, storage.ErrBadInvite
	}
	inv, err := decodeInvite(e.val)
	if err != nil {
		return kvOp{}, err
	}
	if inv.UsesLeft <= 0 || (inv.ExpiresAt != 0 && inv.ExpiresAt <= timeNs(now)) {
		return kvOp{}, storage.ErrBadInvite
	}
	inv.UsesLeft--
	if inv.UsesLeft == 0 {
		// Named by the code's hash, 128 random bits that are never issued again: its
		// marker expires (markerTTL). Gone, the key reads as never written, which is
		// as unusable (ErrBadInvite), and a registration that read the invite before
		// this last use still conflicts.
		return tombstone(keyInvite(hash), e.rev), nil
	}
	return kvOp{key: keyInvite(hash), val: inv.encode(), rev: e.rev}, nil
}

// ---- blocks ------------------------------------------------------------------------

func (d *Directory) blockList(ctx context.Context, blocker string) ([]string, kvEntry, error) {
	e, err := d.b.get(ctx, keyBlocks(blocker))
	if err != nil || !e.exists() {
		return nil, e, err
	}
	names, err := decodeBlocks(e.val)
	return names, e, err
}

// Block records that blocker blocks blocked; blocking again is no change.
// storage.ErrTooManyBlocks (nothing written) when blocker has max blocks already
// (max <= 0: no limit).
func (d *Directory) Block(ctx context.Context, blocker, blocked string, at time.Time, max int) error {
	return retry(ctx, "block", func() error {
		names, e, err := d.blockList(ctx, blocker)
		if err != nil {
			return err
		}
		i, found := slices.BinarySearch(names, blocked)
		if found {
			return nil
		}
		if max > 0 && len(names) >= max {
			return storage.ErrTooManyBlocks
		}
		names = slices.Insert(names, i, blocked)
		_, err = d.b.put(ctx, kvOp{key: keyBlocks(blocker), val: encodeBlocks(names), rev: e.rev})
		return err
	})
}

// Unblock removes a block; unblocking a name not blocked is no change.
func (d *Directory) Unblock(ctx context.Context, blocker, blocked string) error {
	return retry(ctx, "unblock", func() error {
		names, e, err := d.blockList(ctx, blocker)
		if err != nil {
			return err
		}
		i, found := slices.BinarySearch(names, blocked)
		if !found {
			return nil
		}
		names = slices.Delete(names, i, i+1)
		op := kvOp{key: keyBlocks(blocker), val: encodeBlocks(names), rev: e.rev}
		if len(names) == 0 {
			op.val, op.del = nil, true
		}
		_, err = d.b.put(ctx, op)
		return err
	})
}

// Blocks returns every block as blocker → the names it blocks (sorted).
func (d *Directory) Blocks(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	err := d.scan(ctx, "blk.", func(key string, val []byte) error {
		blocker, ok := unhx(key)
		if !ok {
			return fmt.Errorf("%w: blocks key %q", ErrDamaged, key)
		}
		names, err := decodeBlocks(val)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			out[blocker] = names
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay/cluster: blocks: %w", err)
	}
	return out, nil
}

// ---- queue-side answers ------------------------------------------------------------

// Expire deletes nothing: queued messages expire by their per-message TTL in the
// queue's stream, invites are checked when used.
func (d *Directory) Expire(ctx context.Context, now time.Time) (int, error) { return 0, nil }

// QueueDepth is 0: the queue counts its own (the server asks it).
func (d *Directory) QueueDepth(ctx context.Context) (int, error) { return 0, nil }

// ---- changes -----------------------------------------------------------------------

// WatchChanges calls f with every change to an account or to a blocker's blocks,
// made by any node, starting with the current state of each, until ctx ends
// (server.ChangeFeed: the node's caches follow other nodes' writes).
func (d *Directory) WatchChanges(ctx context.Context, f func(server.Change)) error {
	// Until the current state is delivered, a watchdog ends a watch silent for the
	// timeout (making one can hang on a stream that lost its leader); then silence is
	// just no change.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dog := time.AfterFunc(d.b.timeout, cancel)
	defer dog.Stop()
	w, err := d.b.kv.WatchFiltered(wctx, []string{"acct.>", "blk.>"})
	if err != nil {
		return dirUnavailable(fmt.Errorf("relay/cluster: watching the directory: %w", err))
	}
	defer w.Stop()
	initial := true
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return dirUnavailable(errors.New("relay/cluster: the directory watch ended"))
			}
			if e == nil {
				dog.Stop() // the initial values are all delivered
				initial = false
				continue
			}
			if initial {
				dog.Reset(d.b.timeout)
			}
			if ch, ok := changeOf(e.Key(), e.Value(), e.Operation() != jetstream.KeyValuePut); ok {
				f(ch)
			}
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil
			}
			return dirUnavailable(errors.New("relay/cluster: the directory watch did not answer in time"))
		}
	}
}

// changeOf turns a watched key's new state into a server.Change (false: not one to
// report, or damaged).
func changeOf(key string, val []byte, deleted bool) (server.Change, bool) {
	switch {
	case strings.HasPrefix(key, "acct."):
		name, ok := unhx(key[len("acct."):])
		if !ok || name == "" {
			return server.Change{}, false
		}
		if deleted {
			return server.Change{Account: name, Deleted: true}, true
		}
		a, err := decodeAccount(val)
		if err != nil {
			return server.Change{}, false
		}
		return server.Change{Account: name, CardID: a.CardID}, true
	case strings.HasPrefix(key, "blk."):
		name, ok := unhx(key[len("blk."):])
		if !ok || name == "" {
			return server.Change{}, false
		}
		var names []string
		if !deleted {
			var err error
			if names, err = decodeBlocks(val); err != nil {
				return server.Change{}, false
			}
		}
		return server.Change{Blocker: name, Blocks: names, BlocksChanged: true}, true
	}
	return server.Change{}, false
}
