package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Blocks (relay schema version 6): a blocker refuses a blocked name's messages and
// bundle fetches (PROTOCOL.md "Blocking").

// ErrTooManyBlocks: the blocker has the most blocks the relay keeps.
var ErrTooManyBlocks = errors.New("storage: too many blocks")

// Block records that blocker blocks blocked; blocking again is no change. ErrTooManyBlocks
// (nothing written) when blocker already has max blocks (max <= 0: no limit).
func (r *Relay) Block(ctx context.Context, blocker, blocked string, at time.Time, max int) error {
	err := r.db.write(ctx, func(tx *txn) error {
		var exists, n int
		if err := tx.scan(ctx, "SELECT count(*) FILTER (WHERE blocked = ?2), count(*) FROM blocks WHERE blocker = ?1",
			[]any{blocker, blocked}, &exists, &n); err != nil {
			return err
		}
		if exists > 0 {
			return nil
		}
		if max > 0 && n >= max {
			return ErrTooManyBlocks
		}
		_, err := tx.exec(ctx, "INSERT INTO blocks (blocker, blocked, created_at) VALUES (?, ?, ?)", blocker, blocked, dbTime(at))
		return err
	})
	if err != nil && !errors.Is(err, ErrTooManyBlocks) {
		return fmt.Errorf("storage: block: %w", err)
	}
	return err
}

// Unblock removes a block; unblocking a name not blocked is no change.
func (r *Relay) Unblock(ctx context.Context, blocker, blocked string) error {
	err := r.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, "DELETE FROM blocks WHERE blocker = ? AND blocked = ?", blocker, blocked)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: unblock: %w", err)
	}
	return nil
}

// Blocks returns every block as blocker → the names it blocks.
func (r *Relay) Blocks(ctx context.Context) (map[string][]string, error) {
	rows, err := r.db.query(ctx, "SELECT blocker, blocked FROM blocks ORDER BY blocker, blocked")
	if err != nil {
		return nil, fmt.Errorf("storage: blocks: %w", err)
	}
	defer rows.Close()
	out := make(map[string][]string)
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return nil, fmt.Errorf("storage: blocks: %w", err)
		}
		out[a] = append(out[a], b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: blocks: %w", err)
	}
	return out, nil
}
