package storage

// The relay's secrets at rest (RelayOptions.SealKey): every value of Meta (the relay's
// Ed25519 seed, the recovery and blob-capability HMAC keys, the key rotation
// statements) sealed under the relay key with a RelaySealer, so that relay.db, a
// backup of it or a copy of its disk is not enough to impersonate the relay. The
// store's own bookkeeping in meta (the queue id ceiling, the seal check) is not a
// value of Meta and stays as it is.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// relayMetaContext is the RelaySealer context of the SQLite relay store's secrets (a
// relay cluster's are bound to its bucket under another domain).
const relayMetaContext = "pfschat/v2/relay/sqlite-meta"

// sealCheckKey is the meta row that marks a store whose secrets are sealed. It holds
// one of the sealState texts sealed under the relay key, so that the key is checked
// when the store opens, before anything is read or written, and a store without
// secrets yet is known to be sealed too.
const sealCheckKey = "relay_secrets_sealed"

// sealState is what a store's seal check says.
type sealState string

const (
	notSealed sealState = "" // no seal check: the secrets are in the clear
	// sealedWALPending: the secrets were sealed in place, and the WAL that held their
	// clear copies has not been truncated yet.
	sealedWALPending sealState = "sealed; the WAL is not cleared yet"
	sealedClean      sealState = "sealed"
)

// checkMetaKey refuses the meta rows that are the store's own, not values of Meta.
func checkMetaKey(key string) error {
	if key == idCeilingKey || key == sealCheckKey {
		return fmt.Errorf("%w: meta key %q is the store's own", ErrInvalid, key)
	}
	return nil
}

// readSealCheck reads the seal check of an existing store through q and checks seal
// against it (seal nil: no key given): ErrRelayKeyNeeded when the store is sealed and
// no key was given, ErrRelayKey when the key does not open it.
func readSealCheck(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, seal *RelaySealer) (sealState, error) {
	var v []byte
	err := q.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", sealCheckKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return notSealed, nil
	}
	if err != nil {
		return notSealed, fmt.Errorf("storage: reading the relay's seal check: %w", err)
	}
	if seal == nil {
		return notSealed, fmt.Errorf("%w: they open only with the relay key they were sealed under", ErrRelayKeyNeeded)
	}
	pt, err := seal.Open(sealCheckKey, v)
	if errors.Is(err, ErrRelayKey) {
		return notSealed, fmt.Errorf("%w: it is not the key the relay's secrets are sealed under", ErrRelayKey)
	}
	if err != nil {
		return notSealed, fmt.Errorf("storage: the relay's seal check: %w", err)
	}
	switch st := sealState(pt); st {
	case sealedWALPending, sealedClean:
		return st, nil
	}
	return notSealed, fmt.Errorf("%w: the relay's seal check holds %q", ErrCorrupt, pt)
}

// Sealed reports whether the relay's secrets in this store are sealed.
func (r *Relay) Sealed() bool { return r.seal != nil }

// sealOnOpen brings a store opened with a relay key to sealed (state is what its seal
// check said): a store not sealed yet is sealed, in place when it holds secrets; a
// store sealed in place whose WAL was not cleared then has it cleared now.
func (r *Relay) sealOnOpen(ctx context.Context, state sealState) error {
	if r.seal == nil {
		return nil
	}
	switch state {
	case notSealed:
		return r.sealSecrets(ctx)
	case sealedWALPending:
		if r.opts.SealInPlace {
			return r.clearWAL(ctx)
		}
	}
	return nil
}

// sealSecrets seals every value of Meta in one transaction and marks the store sealed;
// when there were secrets in the clear, it then clears the WAL that held them.
func (r *Relay) sealSecrets(ctx context.Context) error {
	// secure_delete ON for this transaction (the store's is FAST, see OpenRelay): FAST
	// zeroes what a row frees on its page, but not a page the update frees, which a
	// meta table grown past one page (rotation statements, 137 bytes a rotation) could
	// free with a secret's clear copy on it. The writer is one connection.
	if _, err := r.db.w.ExecContext(ctx, "PRAGMA secure_delete = ON"); err != nil {
		return fmt.Errorf("storage: sealing the relay's secrets: %w", err)
	}
	defer r.db.w.ExecContext(context.WithoutCancel(ctx), "PRAGMA secure_delete = FAST")
	inClear := 0
	err := r.db.write(ctx, func(tx *txn) error {
		inClear = 0
		rows, err := tx.query(ctx, "SELECT key, value FROM meta WHERE key NOT IN (?, ?)", idCeilingKey, sealCheckKey)
		if err != nil {
			return err
		}
		type row struct {
			key   string
			value []byte
		}
		var secrets []row
		for rows.Next() {
			var s row
			if err := rows.Scan(&s.key, &s.value); err != nil {
				rows.Close()
				return err
			}
			secrets = append(secrets, s)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(secrets) > 0 && !r.opts.SealInPlace {
			return fmt.Errorf("%w: %s keeps them in the clear; they are sealed in place only by the relay itself, started with its relay key", ErrRelayNotSealed, r.db.path)
		}
		for _, s := range secrets {
			sealed, err := r.seal.Seal(s.key, s.value)
			clear(s.value)
			if err != nil {
				return err
			}
			if _, err := tx.exec(ctx, "UPDATE meta SET value = ? WHERE key = ?", sealed, s.key); err != nil {
				return err
			}
		}
		inClear = len(secrets)
		state := sealedClean
		if inClear > 0 {
			state = sealedWALPending
		}
		return r.setSealCheck(ctx, tx, state)
	})
	if errors.Is(err, ErrRelayNotSealed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("storage: sealing the relay's secrets: %w", err)
	}
	if inClear == 0 {
		return nil
	}
	return r.clearWAL(ctx)
}

// clearWAL checkpoints the WAL into the database file and truncates it to nothing,
// then marks the store's seal clean. The secrets' clear copies were in the WAL's
// frames of the meta pages; in the database file they were overwritten by sealing,
// which runs with secure_delete ON (what a row frees on its page, and any page it
// frees, is zeroed), so no VACUUM is needed.
func (r *Relay) clearWAL(ctx context.Context) error {
	var busy, walFrames, checkpointed int
	if err := r.db.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &walFrames, &checkpointed); err != nil {
		return fmt.Errorf("storage: clearing the relay's WAL: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("%w: the relay's secrets in %s are sealed now, but their clear copies in its WAL could not be cleared: another process is reading the database (a backup?); when it is done, open it again with the relay key", ErrBusy, r.db.path)
	}
	err := r.db.write(ctx, func(tx *txn) error { return r.setSealCheck(ctx, tx, sealedClean) })
	if err != nil {
		return fmt.Errorf("storage: marking the relay's WAL cleared: %w", err)
	}
	return nil
}

func (r *Relay) setSealCheck(ctx context.Context, tx *txn, state sealState) error {
	v, err := r.seal.Seal(sealCheckKey, []byte(state))
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", sealCheckKey, v)
	return err
}

// sealMeta is what the value v of Meta's key is stored as: sealed in a sealed store.
func (r *Relay) sealMeta(key string, v []byte) ([]byte, error) {
	if r.seal == nil {
		return v, nil
	}
	b, err := r.seal.Seal(key, v)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return b, nil
}

// openMeta is the value of Meta's key stored as b.
func (r *Relay) openMeta(key string, b []byte) ([]byte, error) {
	if r.seal == nil {
		return b, nil
	}
	v, err := r.seal.Open(key, b)
	if err != nil {
		return nil, fmt.Errorf("storage: meta %q: %w", key, err)
	}
	return v, nil
}
