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
// With it is the last queue id handed out (lastID), read from the AUTOINCREMENT
// sequence at the same times, so a group commit does not read it again.
type queueUsage struct {
	mu     sync.Mutex
	m      map[string]usageDelta // nil: not known, count it again before use
	lastID int64                 // valid while m is not nil
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
	var last int64
	found := false
	err = t.query(ctx, `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'queue'), 0),
		coalesce((SELECT max(id) FROM queue), 0))`, func(v []driver.Value) (err error) {
		found = true
		last, err = valueInt64(v[0], "last queue id")
		return err
	})
	if err != nil {
		return fmt.Errorf("last queue id: %w", err)
	}
	if !found {
		return errors.New("last queue id: no row")
	}
	u.mu.Lock()
	u.m, u.lastID = m, last
	u.mu.Unlock()
	return nil
}

// last is the last queue id handed out; ok is false when it is not known.
func (u *queueUsage) last() (id int64, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastID, u.m != nil
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
// it does not (a failed COMMIT may or may not have reached the disk). *last, if last is
// not nil, is the last queue id the transaction handed out (0: none).
func (u *queueUsage) settleOn(t *rawTxn, deltas usageDeltas, last *int64) {
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
		if last != nil && *last > u.lastID {
			u.lastID = *last
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
