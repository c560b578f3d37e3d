package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBadInvite: an invite code is unknown, used up or expired.
var ErrBadInvite = errors.New("storage: invite code unknown, used up or expired")

// Invite is a stored invite code: Hash is the SHA-256 of the code (the code itself is
// never stored), UsesLeft how many registrations it still allows, ExpiresAt when it
// stops working (zero: never).
type Invite struct {
	Hash      []byte
	UsesLeft  int
	ExpiresAt time.Time
	CreatedAt time.Time
}

// CreateInvite stores an invite. ErrExists if its hash is already stored.
func (r *Relay) CreateInvite(ctx context.Context, inv Invite) error {
	if len(inv.Hash) != 32 || inv.UsesLeft <= 0 {
		return fmt.Errorf("%w: an invite needs a 32-byte hash and at least one use", ErrInvalid)
	}
	return r.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "INSERT OR IGNORE INTO invites (hash, uses_left, expires_at, created_at) VALUES (?, ?, ?, ?)",
			inv.Hash, inv.UsesLeft, dbTime(inv.ExpiresAt), dbTime(inv.CreatedAt))
		if err != nil {
			return fmt.Errorf("storage: create invite: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: invite", ErrExists)
		}
		return nil
	})
}

// CreateAccountInvited is CreateAccount paid for with one use of the invite whose
// code hashes to inviteHash, in one transaction: ErrBadInvite (nothing changed) if the
// invite is unknown, used up or expired at now; ErrExists as CreateAccount (the
// invite keeps its use).
func (r *Relay) CreateAccountInvited(ctx context.Context, a Account, inviteHash []byte, now time.Time) error {
	return r.createAccount(ctx, a, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE invites SET uses_left = uses_left - 1 WHERE hash = ? AND uses_left > 0 AND (expires_at = 0 OR expires_at > ?)",
			inviteHash, dbTime(now))
		if err != nil {
			return fmt.Errorf("storage: using an invite: %w", err)
		}
		if n == 0 {
			return ErrBadInvite
		}
		if _, err := tx.exec(ctx, "DELETE FROM invites WHERE hash = ? AND uses_left <= 0", inviteHash); err != nil {
			return fmt.Errorf("storage: using an invite: %w", err)
		}
		return nil
	})
}
