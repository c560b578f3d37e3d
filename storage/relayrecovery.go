package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Identity recovery on the relay (relay/PROTOCOL.md "Identity replacement and
// recovery"): each account may hold a recovery verifier, a keyed hash the relay
// computes; this file stores and swaps it, the relay computes and compares.

// ErrRecoveryRefused: RecoverAccount's check refused the stored verifier (a wrong
// code), or the account has none. Nothing changed.
var ErrRecoveryRefused = errors.New("storage: recovery refused")

// SetRecovery sets the recovery verifier of name's account, as long as cardID is
// still its card. ErrNotFound when there is no such account with that card.
func (r *Relay) SetRecovery(ctx context.Context, name, cardID string, verifier []byte) error {
	return r.db.write(ctx, func(tx *txn) error {
		res, err := tx.exec(ctx, "UPDATE accounts SET recovery = ? WHERE name = ? AND card_id = ?", verifier, name, cardID)
		if err != nil {
			return fmt.Errorf("storage: set the recovery verifier of %q: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("%w: account %q with card %s", ErrNotFound, name, cardID)
		}
		return nil
	})
}

// HasRecovery reports whether name's account has a recovery verifier. ErrNotFound
// when there is no such account.
func (r *Relay) HasRecovery(ctx context.Context, name string) (bool, error) {
	var v []byte
	err := r.db.queryRow(ctx, "SELECT recovery FROM accounts WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("%w: account %q", ErrNotFound, name)
	}
	if err != nil {
		return false, fmt.Errorf("storage: read the recovery verifier of %q: %w", name, err)
	}
	return len(v) > 0, nil
}

// RecoverAccount replaces name's card by newAcc's, in one transaction, if check
// accepts the account's stored recovery verifier: the new card and newAcc.Recovery
// (the next verifier) are stored, the old card's prekeys dropped. It returns the old
// card's ID. ErrNotFound: no such account; ErrRecoveryRefused: no verifier stored, or
// check said no; ErrExists: the new card belongs to another account, or was replaced
// before. A refusal
// changes nothing.
func (r *Relay) RecoverAccount(ctx context.Context, name string, check func(stored []byte) bool, newAcc Account) (string, error) {
	var oldCard string
	err := r.db.write(ctx, func(tx *txn) error {
		var stored, oldBlob []byte
		err := tx.scan(ctx, "SELECT card_id, card, recovery FROM accounts WHERE name = ?", []any{name}, &oldCard, &oldBlob, &stored)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: account %q", ErrNotFound, name)
		}
		if err != nil {
			return fmt.Errorf("storage: recover %q: %w", name, err)
		}
		if len(stored) == 0 || !check(stored) {
			return fmt.Errorf("%w: %q", ErrRecoveryRefused, name)
		}
		if err := cardTaken(ctx, tx, newAcc.CardID, name); err != nil {
			return fmt.Errorf("storage: recover %q: %w", name, err)
		}
		if _, err := tx.exec(ctx, "UPDATE accounts SET card_id = ?, card = ?, created_at = ?, recovery = ? WHERE name = ?",
			newAcc.CardID, newAcc.Card, dbTime(newAcc.CreatedAt), newAcc.Recovery, name); err != nil {
			return fmt.Errorf("storage: recover %q: %w", name, err)
		}
		if oldCard != newAcc.CardID {
			if _, err := tx.exec(ctx, "DELETE FROM prekeys WHERE card_id = ?", oldCard); err != nil {
				return fmt.Errorf("storage: drop prekeys of the old card: %w", err)
			}
			if err := rememberReplaced(ctx, tx, name, oldCard, oldBlob, newAcc.CreatedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return oldCard, nil
}

// MaxReplacedCards bounds the replaced cards a name's account remembers: the oldest
// are forgotten (a login with one then answers login_failed, not card_replaced), so
// that an account replacing its card in a loop cannot grow the database without end.
// relay/cluster keeps the same number.
const MaxReplacedCards = 64

// rememberReplaced records a card replace_card or recover replaced, forgetting the
// name's oldest beyond MaxReplacedCards.
// cardTaken is ErrExists when cardID may not become name's card: another account's
// card, or a card replaced before (of any name, among the MaxReplacedCards each name's
// replacements remember): a replaced card never becomes current again, so a client
// that saw it replaced is never contradicted.
func cardTaken(ctx context.Context, tx *txn, cardID, name string) error {
	var other, replaced int
	if err := tx.scan(ctx, "SELECT count(*) FROM accounts WHERE card_id = ? AND name <> ?", []any{cardID, name}, &other); err != nil {
		return err
	}
	if other > 0 {
		return fmt.Errorf("%w: card %s is registered to another account", ErrExists, cardID)
	}
	if err := tx.scan(ctx, "SELECT count(*) FROM replaced_cards WHERE card_id = ? AND card_id NOT IN (SELECT card_id FROM accounts WHERE name = ?)",
		[]any{cardID, name}, &replaced); err != nil {
		return err
	}
	if replaced > 0 {
		return fmt.Errorf("%w: card %s was replaced; a replaced card does not come back", ErrExists, cardID)
	}
	return nil
}

func rememberReplaced(ctx context.Context, tx *txn, name, cardID string, card []byte, at time.Time) error {
	if card == nil {
		card = []byte{}
	}
	if _, err := tx.exec(ctx, "INSERT OR REPLACE INTO replaced_cards (card_id, name, card, replaced_at) VALUES (?, ?, ?, ?)",
		cardID, name, card, dbTime(at)); err != nil {
		return fmt.Errorf("storage: remembering the replaced card of %q: %w", name, err)
	}
	// rowid, not replaced_at, orders them: replacements within one millisecond tie.
	if _, err := tx.exec(ctx, "DELETE FROM replaced_cards WHERE name = ? AND rowid NOT IN (SELECT rowid FROM replaced_cards WHERE name = ? ORDER BY rowid DESC LIMIT ?)",
		name, name, MaxReplacedCards); err != nil {
		return fmt.Errorf("storage: forgetting the oldest replaced cards of %q: %w", name, err)
	}
	return nil
}

// ReplacedCard returns the card with this ID that replace_card or recover replaced,
// with the name it belonged to (the name still has an account). ErrNotFound if none.
func (r *Relay) ReplacedCard(ctx context.Context, cardID string) (Account, error) {
	var a Account
	var at int64
	err := r.db.queryRow(ctx, "SELECT name, card_id, card, replaced_at FROM replaced_cards WHERE card_id = ?", cardID).
		Scan(&a.Name, &a.CardID, &a.Card, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: replaced card %s", ErrNotFound, cardID)
	}
	if err != nil {
		return Account{}, fmt.Errorf("storage: read replaced card %s: %w", cardID, err)
	}
	a.CreatedAt = goTime(at)
	return a, nil
}
