package storage

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TouchLogins records when accounts logged in (name → time, for account expiry), in
// one transaction. The relay batches logins and records each account at most about
// twice a day: the expiry is counted in days.
func (r *Relay) TouchLogins(ctx context.Context, logins map[string]time.Time) error {
	if len(logins) == 0 {
		return nil
	}
	err := r.db.write(ctx, func(tx *txn) error {
		for name, at := range logins {
			if _, err := tx.exec(ctx, "UPDATE accounts SET last_login = max(last_login, ?) WHERE name = ?", dbTime(at), name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: record %d logins: %w", len(logins), err)
	}
	return nil
}

// LastActive is when name last logged in, or registered if it has not logged in
// since the relay started recording logins; ErrNotFound if no such account.
func (r *Relay) LastActive(ctx context.Context, name string) (time.Time, error) {
	var t int64
	err := r.db.queryRow(ctx, "SELECT max(created_at, last_login) FROM accounts WHERE name = ?", name).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("%w: account %q", ErrNotFound, name)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("storage: last login of %q: %w", name, err)
	}
	return goTime(t), nil
}

// DeleteAccount deletes the account name if its current card is cardID, with the
// card's prekeys, the messages queued for it and its duplicate-detection entries (so a
// new owner of the name starts clean), in one transaction. Messages it sent that wait
// in other queues stay. It returns how many queued messages went; ErrNotFound if the
// name has no account with that card.
func (r *Relay) DeleteAccount(ctx context.Context, name, cardID string) (int, error) {
	n := 0
	err := r.db.writeRaw(ctx, func(t *rawTxn) error {
		gone, err := t.exec(ctx, "DELETE FROM accounts WHERE name = ? AND card_id = ?", name, cardID)
		if err != nil {
			return err
		}
		if gone == 0 {
			return fmt.Errorf("%w: no account %q with card %s", ErrNotFound, name, cardID)
		}
		if _, err := t.exec(ctx, "DELETE FROM replaced_cards WHERE name = ?", name); err != nil { // relayrecovery.go
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM prekeys WHERE card_id = ?", cardID); err != nil {
			return err
		}
		msgs, err := t.exec(ctx, "DELETE FROM queue WHERE recipient = ?", name)
		if err != nil {
			return err
		}
		n = int(msgs)
		r.usage.settleGone(t, name)
		if _, err := t.exec(ctx, "DELETE FROM dedup WHERE sender = ?", name); err != nil {
			return err
		}
		// The account's blocks go with it (a new owner of the name starts with none).
		_, err = t.exec(ctx, "DELETE FROM blocks WHERE blocker = ?", name)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return 0, err
		}
		return 0, fmt.Errorf("storage: delete account %q: %w", name, err)
	}
	return n, nil
}

// IdleAccount is an account not active since a cutoff.
type IdleAccount struct {
	Name, CardID string
	LastActive   time.Time
}

// IdleAccounts lists the accounts whose last login (or registration) is before
// cutoff, oldest first, at most limit of them.
func (r *Relay) IdleAccounts(ctx context.Context, cutoff time.Time, limit int) ([]IdleAccount, error) {
	rows, err := r.db.query(ctx, `SELECT name, card_id, max(created_at, last_login) AS active FROM accounts
		WHERE max(created_at, last_login) < ? ORDER BY active LIMIT ?`, dbTime(cutoff), limit)
	if err != nil {
		return nil, fmt.Errorf("storage: idle accounts: %w", err)
	}
	defer rows.Close()
	var out []IdleAccount
	for rows.Next() {
		var a IdleAccount
		var t int64
		if err := rows.Scan(&a.Name, &a.CardID, &t); err != nil {
			return nil, fmt.Errorf("storage: idle accounts: %w", err)
		}
		a.LastActive = goTime(t)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: idle accounts: %w", err)
	}
	return out, nil
}

// ReplaceRelayKey changes the relay's key in one transaction: meta[seedKey] goes from
// oldSeed (checked: ErrExists if it changed meanwhile) to newSeed, statement is
// appended to meta[logKey] (nil statement: meta[logKey] is deleted), and every account's card is rewritten by
// resign (the relay's signature under the new key). It returns how many cards it
// re-signed. In a sealed store both meta values are sealed as SetMeta seals them.
func (r *Relay) ReplaceRelayKey(ctx context.Context, seedKey string, oldSeed, newSeed []byte, logKey string, statement []byte,
	resign func(card []byte) ([]byte, error)) (int, error) {
	n := 0
	err := r.db.write(ctx, func(tx *txn) error {
		n = 0
		var stored []byte
		if err := tx.scan(ctx, "SELECT value FROM meta WHERE key = ?", []any{seedKey}, &stored); err != nil {
			return fmt.Errorf("reading the relay key: %w", err)
		}
		cur, err := r.openMeta(seedKey, stored)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(cur, oldSeed) != 1 {
			return fmt.Errorf("%w: the relay key changed meanwhile", ErrExists)
		}
		rows, err := tx.query(ctx, "SELECT name, card FROM accounts")
		if err != nil {
			return err
		}
		type acc struct {
			name string
			card []byte
		}
		var accs []acc
		for rows.Next() {
			var a acc
			if err := rows.Scan(&a.name, &a.card); err != nil {
				rows.Close()
				return err
			}
			accs = append(accs, a)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, a := range accs {
			card, err := resign(a.card)
			if err != nil {
				return fmt.Errorf("re-signing the card of %q: %w", a.name, err)
			}
			if _, err := tx.exec(ctx, "UPDATE accounts SET card = ? WHERE name = ?", card, a.name); err != nil {
				return err
			}
			n++
		}
		seed, err := r.sealMeta(seedKey, newSeed)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "UPDATE meta SET value = ? WHERE key = ?", seed, seedKey); err != nil {
			return err
		}
		if statement == nil {
			_, err = tx.exec(ctx, "DELETE FROM meta WHERE key = ?", logKey)
			return err
		}
		var log []byte
		err = tx.scan(ctx, "SELECT value FROM meta WHERE key = ?", []any{logKey}, &log)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("reading the key rotation statements: %w", err)
		default:
			if log, err = r.openMeta(logKey, log); err != nil {
				return err
			}
		}
		if log, err = r.sealMeta(logKey, append(log, statement...)); err != nil {
			return err
		}
		_, err = tx.exec(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", logKey, log)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: replace the relay key: %w", err)
	}
	return n, nil
}
