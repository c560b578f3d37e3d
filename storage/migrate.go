package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
)

// Data steps of the client schema's migrations (storeKind.dataSteps): row rewrites a
// migration's SQL cannot do because the values are sealed.

// legacyAwaitingPrefix started the outbox payload of a message waiting for its session
// before schema version 4, and legacyEncryptedSuffix the client id of the ciphertext
// such a message got once its session existed (an item of its own, so a crash between
// the two was recognised). Both only survive here, to read stores written then.
const (
	legacyAwaitingPrefix  = "\x00pfschat-awaiting-session\x00"
	legacyEncryptedSuffix = ".e"
)

// awaitingSessionColumn (version 4) moves the "waiting for a session" state from the
// payload prefix to the awaiting_session column: a waiting item loses its prefix and is
// marked; a waiting item whose ciphertext was already committed as "<id>.e" is replaced
// by that ciphertext, keeping the ".e" client id (the relay may already hold it under
// that id and drops it as a duplicate), the message and the place in the queue.
func awaitingSessionColumn(ctx context.Context, tx *txn, keys *keyring) error {
	type item struct {
		seq       int64
		clientID  string
		sealed    []byte
		messageID int64
	}
	rows, err := tx.query(ctx, "SELECT seq, client_id, payload_sealed, message_id FROM outbox ORDER BY seq")
	if err != nil {
		return err
	}
	var items []item
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.seq, &it.clientID, &it.sealed, &it.messageID); err != nil {
			rows.Close()
			return err
		}
		items = append(items, it)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	if keys == nil {
		if keys, err = demoKeys(ctx, tx); err != nil {
			return err
		}
	}
	encrypted := make(map[string]item) // base client id → its ".e" item
	for _, it := range items {
		if base, ok := strings.CutSuffix(it.clientID, legacyEncryptedSuffix); ok {
			encrypted[base] = it
		}
	}
	for _, it := range items {
		payload, err := keys.open("outbox", "payload", it.clientID, it.sealed)
		if err != nil {
			return fmt.Errorf("outbox item %q: %w", it.clientID, err)
		}
		plain, waiting := bytes.CutPrefix(payload, []byte(legacyAwaitingPrefix))
		if !waiting {
			continue
		}
		if enc, ok := encrypted[it.clientID]; ok {
			if _, err := tx.exec(ctx, "DELETE FROM outbox WHERE seq = ?", it.seq); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, "UPDATE outbox SET seq = ?, message_id = ? WHERE seq = ?", it.seq, it.messageID, enc.seq); err != nil {
				return err
			}
			continue
		}
		sealed, err := keys.seal("outbox", "payload", it.clientID, plain)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "UPDATE outbox SET payload_sealed = ?, awaiting_session = 1 WHERE seq = ?", sealed, it.seq); err != nil {
			return err
		}
	}
	return nil
}

// demoKeys returns the storage key of a store without a passphrase, read inside tx; a
// migration that must open sealed rows of a protected store gets the key from its
// caller instead.
func demoKeys(ctx context.Context, tx *txn) (*keyring, error) {
	var mode string
	var wrapped []byte
	if err := tx.scan(ctx, "SELECT mode, wrapped FROM keyring WHERE id = 1", nil, &mode, &wrapped); err != nil {
		return nil, fmt.Errorf("reading the keyring to migrate sealed rows: %w", err)
	}
	if mode != "none" || len(wrapped) != storageKeySize {
		return nil, fmt.Errorf("%w: migrating sealed rows needs the storage key", ErrInvalid)
	}
	return &keyring{key: wrapped}, nil
}
