package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
)

// queueUsage is every recipient's queued message count and bytes, kept in memory
// (schema version 10 dropped the queue_usage table: its upserts and reads were two of
// a group commit's six statements and a b-tree page written per recipient per commit).
// It is derived data: it is counted from the queue when the store opens, changed only
// after a write transaction commits (rawTxn.settle, still holding the writer), and
// counted again, inside the next write transaction, after one that may or may not have
// committed. The relay database has one writer process (`pfschat relay` holds its
// lock), so no other process changes the queue under it.
//
// With it are the last queue id handed out and the end of the ids reserved in meta
// (see migration 0010), read at the same times, so a group commit does not read them.
type queueUsage struct {
	mu  sync.Mutex
	m   map[string]usageDelta // nil: not known, count it again before use
	ids queueIDs              // valid while m is not nil
}

// queueIDs is the last queue id handed out and the reserved ceiling (meta
// 'queue_id_ceiling'): ids up to the ceiling may have been handed out before a
// restart, so a store that opens starts after it.
type queueIDs struct{ last, ceiling int64 }

// idBlock is how many queue ids a reservation adds past the ids a commit needs: one
// meta write per idBlock messages, and at most that many ids skipped by a restart.
const idBlock = 1 << 14

const (
	idCeilingKey = "queue_id_ceiling"
	idCeilingSet = "INSERT OR REPLACE INTO meta (key, value) VALUES ('" + idCeilingKey + "', ?)"
)

// grant hands out n ids after ids.last (the first is the returned value + 1) and
// reserves past the ceiling in t if they go beyond it; *ids is the state to settle
// once t commits.
func (ids *queueIDs) grant(ctx context.Context, t *rawTxn, n int) (after int64, err error) {
	after = ids.last
	ids.last += int64(n)
	if ids.last > ids.ceiling {
		ids.ceiling = ids.last + idBlock
		if _, err := t.exec(ctx, idCeilingSet, ids.ceiling); err != nil {
			return 0, fmt.Errorf("reserve queue ids: %w", err)
		}
	}
	return after, nil
}

const usageCount = "SELECT recipient, count(*), coalesce(sum(length(body)), 0) FROM queue GROUP BY recipient"

// ensure counts the usage again, inside write transaction t, if it is not known.
func (u *queueUsage) ensure(ctx context.Context, t *rawTxn) error {
	u.mu.Lock()
	known := u.m != nil
	u.mu.Unlock()
	if known {
		return nil
	}
	m := map[string]usageDelta{}
	err := t.query(ctx, usageCount, func(v []driver.Value) error {
		name, err := valueString(v[0], "queue.recipient")
		if err != nil {
			return err
		}
		count, err := valueInt64(v[1], "count(*)")
		if err != nil {
			return err
		}
		bytes, err := valueInt64(v[2], "sum(length(body))")
		if err != nil {
			return err
		}
		m[name] = usageDelta{count: count, bytes: bytes}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count queue usage: %w", err)
	}
	var ids queueIDs
	found := false
	err = t.query(ctx, `SELECT coalesce((SELECT value FROM meta WHERE key = '`+idCeilingKey+`'), -1),
		coalesce((SELECT max(id) FROM queue), 0)`, func(v []driver.Value) (err error) {
		found = true
		if ids.ceiling, err = valueInt64(v[0], "meta "+idCeilingKey); err != nil {
			return err
		}
		ids.last, err = valueInt64(v[1], "max(queue.id)")
		return err
	})
	if err != nil {
		return fmt.Errorf("queue ids: %w", err)
	}
	if !found || ids.ceiling < 0 {
		return errors.New("queue ids: no reserved ceiling in meta")
	}
	ids.last = max(ids.last, ids.ceiling)
	u.mu.Lock()
	u.m, u.ids = m, ids
	u.mu.Unlock()
	return nil
}

// idState is the queue id state; ok is false when it is not known.
func (u *queueUsage) idState() (ids queueIDs, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ids, u.m != nil
}

// get is to's usage; ok is false when the usage is not known.
func (u *queueUsage) get(to string) (d usageDelta, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		return usageDelta{}, false
	}
	return u.m[to], true
}

// total is the number of queued messages; ok is false when the usage is not known.
func (u *queueUsage) total() (n int64, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		return 0, false
	}
	for _, d := range u.m {
		n += d.count
	}
	return n, true
}

// settleOn makes t apply deltas to the usage once it commits, and forget the usage if
// it does not (a failed COMMIT may or may not have reached the disk). *ids, if ids is
// not nil, is the queue id state after the transaction (zero: it handed out none).
func (u *queueUsage) settleOn(t *rawTxn, deltas usageDeltas, ids *queueIDs) {
	t.settle = func(committed bool) {
		u.mu.Lock()
		defer u.mu.Unlock()
		if !committed {
			u.m = nil
			return
		}
		if u.m == nil {
			return
		}
		if ids != nil && ids.last > u.ids.last {
			u.ids = *ids
		}
		for name, d := range deltas {
			cur := u.m[name]
			cur.count += d.count
			cur.bytes += d.bytes
			if cur.count <= 0 {
				delete(u.m, name)
				continue
			}
			u.m[name] = cur
		}
	}
}

// forget makes the usage unknown: the next write transaction counts it again. Called
// inside a write transaction that deletes queued messages outside rawTxn's settling
// (it holds the writer, so no other write uses the usage before that count).
func (u *queueUsage) forget() {
	u.mu.Lock()
	u.m = nil
	u.mu.Unlock()
}

// settleGone makes t drop to's usage once it commits (its queue was emptied), and
// forget the whole usage if it does not.
func (u *queueUsage) settleGone(t *rawTxn, to string) {
	t.settle = func(committed bool) {
		u.mu.Lock()
		defer u.mu.Unlock()
		if !committed {
			u.m = nil
			return
		}
		delete(u.m, to)
	}
}
