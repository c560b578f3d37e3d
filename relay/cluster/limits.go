package cluster

// Shared limits (server.SharedLimiter): the abuse limits that protect a victim or a
// shared resource — bundles fetched per target, low_prekeys notices, registrations per
// address, recovery attempts, prekey uploads and account writes per name — count in
// the directory's bucket, so N relay nodes do not make them N times weaker. Each (limit, key) is one key holding a GCRA token
// bucket (its theoretical arrival time), updated by compare-and-set; it expires once
// the bucket would be full again.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"pfschat/relay/server"
)

var _ server.SharedLimiter = (*Directory)(nil)

// keyLimit names the bucket of (limit, key): the key hashed (an address or a name,
// bounded and subject-safe).
func keyLimit(limit, key string) string {
	h := sha256.Sum256([]byte(key))
	return "lim." + hx(limit) + "." + hex.EncodeToString(h[:16])
}

// Allow takes one token from the bucket of (limit, key), which holds burst tokens
// and gains one every interval, or says how long until one is there.
func (d *Directory) Allow(ctx context.Context, limit, key string, now time.Time, interval time.Duration, burst int) (bool, time.Duration, error) {
	if interval <= 0 || burst <= 0 {
		return false, 0, errors.New("relay/cluster: a shared limit needs a positive interval and burst")
	}
	ok, wait := false, time.Duration(0)
	k := keyLimit(limit, key)
	err := retry(ctx, "shared limit "+limit, func() error {
		e, err := d.b.get(ctx, k)
		if err != nil {
			return err
		}
		tat := now.UnixNano()
		if e.exists() {
			stored, err := decodeBucket(e.val)
			if err != nil {
				return err
			}
			tat = max(tat, stored)
		}
		tolerance := int64(burst-1) * int64(interval)
		if ahead := tat - now.UnixNano(); ahead > tolerance {
			ok, wait = false, time.Duration(ahead-tolerance)
			return nil
		}
		next := tat + int64(interval)
		// The key lives until the bucket is full again (at least a second: the
		// server's smallest TTL).
		ttl := max(time.Duration(next-now.UnixNano()), time.Second)
		if _, err := d.b.put(ctx, kvOp{key: k, val: encodeBucket(next), rev: e.rev, ttl: ttl}); err != nil {
			return err
		}
		ok, wait = true, 0
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("relay/cluster: shared limit %s: %w", limit, err)
	}
	return ok, wait, nil
}
