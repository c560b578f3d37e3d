package storage

import (
	"context"
	"database/sql/driver"
)

// senderQuota checks the per-(sender, recipient) quota of one Enqueue batch: a sender
// may fill at most 1/SenderQuota of a recipient's queue, in count and in bytes. While
// the recipient's whole queue is under the quota no sender can be over it, so the
// common case costs nothing; past it, the pair's usage is counted once per batch
// (a scan of the recipient's queue, at most MaxQueueCount rows) and followed in Go.
type senderQuota struct {
	pairs map[dedupKey]*pairUsage // (sender, recipient)
}

// pairUsage is a pair's usage: what this batch accepted so far, plus what was queued
// before it once counted (counted).
type pairUsage struct {
	usageDelta
	counted bool
}

func (q *senderQuota) check(ctx context.Context, t *rawTxn, opts RelayOptions, m *QueuedMessage, recipient *usageDelta) (*QueueFullError, error) {
	maxCount := int64(opts.MaxQueueCount / opts.SenderQuota)
	maxBytes := opts.MaxQueueBytes / int64(opts.SenderQuota)
	size := int64(len(m.Body))
	key := dedupKey{m.From, m.To}
	if q.pairs == nil {
		q.pairs = map[dedupKey]*pairUsage{}
	}
	p := q.pairs[key]
	if p == nil {
		p = &pairUsage{}
		q.pairs[key] = p
	}
	under := (maxCount <= 0 || recipient.count < maxCount) && (maxBytes <= 0 || recipient.bytes+size <= maxBytes)
	if !under && !p.counted {
		// The recipient's queue (this batch included) is past the quota: count what
		// the sender had queued before the batch.
		var before usageDelta
		err := t.query(ctx, "SELECT count(*), coalesce(sum(length(body)), 0) FROM queue WHERE recipient = ? AND sender = ?",
			func(v []driver.Value) (err error) {
				if before.count, err = valueInt64(v[0], "count"); err != nil {
					return err
				}
				before.bytes, err = valueInt64(v[1], "bytes")
				return err
			}, m.To, m.From)
		if err != nil {
			return nil, err
		}
		p.count += before.count
		p.bytes += before.bytes
		p.counted = true
	}
	if !under {
		switch {
		case maxCount > 0 && p.count >= maxCount:
			return &QueueFullError{Recipient: m.To, Limit: "sender_quota", Max: maxCount, Current: p.count}, nil
		case maxBytes > 0 && p.bytes+size > maxBytes:
			return &QueueFullError{Recipient: m.To, Limit: "sender_quota", Max: maxBytes, Current: p.bytes}, nil
		}
	}
	p.count++
	p.bytes += size
	return nil, nil
}
