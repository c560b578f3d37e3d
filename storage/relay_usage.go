package storage

import (
	"context"
	"database/sql/driver"
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
type queueUsage struct {
	mu sync.Mutex
	m  map[string]usageDelta // nil: not known, count it again before use
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
	u.mu.Lock()
	u.m = m
	u.mu.Unlock()
	return nil
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
// it does not (a failed COMMIT may or may not have reached the disk).
func (u *queueUsage) settleOn(t *rawTxn, deltas usageDeltas) {
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
