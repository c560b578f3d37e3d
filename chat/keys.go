package chat

import (
	"context"
	"fmt"
	"slices"
	"time"

	"pfschat/ratchet"
	"pfschat/storage"
)

// Prekey lifetimes.
const (
	// SignedPreKeyMaxAge: the signed X25519 and last-resort ML-KEM prekeys are replaced
	// when older than this.
	SignedPreKeyMaxAge = 7 * 24 * time.Hour
	// RetiredPreKeyGrace: a replaced signed prekey's private half is kept this long for
	// initial messages still in flight, then deleted.
	RetiredPreKeyGrace = 30 * 24 * time.Hour
	// HandedOutGrace: a one-time prekey the relay handed out but no session consumed is
	// deleted this long after we noticed it was gone from the relay.
	HandedOutGrace = 30 * 24 * time.Hour
)

// RotateKeys keeps n one-time X25519 and n one-time ML-KEM prekeys on the relay, replaces
// the signed prekeys when older than SignedPreKeyMaxAge, and deletes private halves that
// are no longer needed: retired signed prekeys after RetiredPreKeyGrace, one-time prekeys
// the relay handed out and no session consumed after HandedOutGrace (the ones a session
// consumed are deleted in the same transaction that creates the session).
//
// It is idempotent, and concurrent calls wait for each other. Private halves are
// committed before their public halves are uploaded, so a crash never leaves a key on the
// relay that this client cannot use.
func (c *Controller) RotateKeys(ctx context.Context, n int) error {
	if n <= 0 {
		n = c.prefs.OneTimeKeys
	}
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	rc, err := c.relayClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*rpcTimeout)
	defer cancel()
	status, err := rc.PreKeyStatus(ctx)
	if err != nil {
		return fmt.Errorf("chat: asking the relay for prekey counts: %w", err)
	}
	now := c.now().UTC().Truncate(time.Second)
	var upload []ratchet.PublicPreKey

	// Signed prekeys: X25519 and the ML-KEM last resort.
	for _, kind := range []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.KEMLastResort} {
		keys, err := c.store.PreKeys(ctx, uint8(kind))
		if err != nil {
			return fmt.Errorf("chat: listing %s: %w", kindName(kind), err)
		}
		slices.SortFunc(keys, func(a, b storage.PreKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
		needNew := len(keys) == 0 || now.Sub(keys[len(keys)-1].CreatedAt) >= SignedPreKeyMaxAge || status.Counts[kind] == 0
		if needNew {
			pub, err := c.newPreKeys(ctx, kind, 1, now)
			if err != nil {
				return err
			}
			upload = append(upload, pub...)
			keys, err = c.store.PreKeys(ctx, uint8(kind))
			if err != nil {
				return fmt.Errorf("chat: listing %s: %w", kindName(kind), err)
			}
			slices.SortFunc(keys, func(a, b storage.PreKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
		}
		// A key retires when its successor is created; delete it a grace period later.
		var expired []uint32
		for i := 0; i+1 < len(keys); i++ {
			if now.Sub(keys[i+1].CreatedAt) > RetiredPreKeyGrace {
				expired = append(expired, keys[i].ID)
			}
		}
		if len(expired) > 0 {
			if err := c.store.DeletePreKeys(ctx, uint8(kind), expired); err != nil {
				return fmt.Errorf("chat: deleting retired %s: %w", kindName(kind), err)
			}
		}
	}

	// One-time prekeys: notice the ones handed out, forget them after a grace period,
	// and top up to n.
	for _, kind := range []ratchet.PreKeyKind{ratchet.OneTimePreKey, ratchet.KEMOneTime} {
		keys, err := c.store.PreKeys(ctx, uint8(kind))
		if err != nil {
			return fmt.Errorf("chat: listing %s: %w", kindName(kind), err)
		}
		onRelay := make(map[uint32]bool)
		ids := status.OneTimeIDs
		if kind == ratchet.KEMOneTime {
			ids = status.KEMOneTimeIDs
		}
		for _, id := range ids {
			onRelay[id] = true
		}
		var handedOut []storage.PreKey
		var expired []uint32
		for _, k := range keys {
			if onRelay[k.ID] {
				continue
			}
			if k.HandedOutAt.IsZero() {
				k.HandedOutAt = now
				handedOut = append(handedOut, k)
			} else if now.Sub(k.HandedOutAt) > HandedOutGrace {
				expired = append(expired, k.ID)
			}
		}
		if len(handedOut) > 0 {
			if err := c.store.PutPreKeys(ctx, handedOut); err != nil {
				return fmt.Errorf("chat: marking handed-out %s: %w", kindName(kind), err)
			}
		}
		if len(expired) > 0 {
			if err := c.store.DeletePreKeys(ctx, uint8(kind), expired); err != nil {
				return fmt.Errorf("chat: deleting unused %s: %w", kindName(kind), err)
			}
		}
		if missing := n - status.Counts[kind]; missing > 0 {
			pub, err := c.newPreKeys(ctx, kind, missing, now)
			if err != nil {
				return err
			}
			upload = append(upload, pub...)
		}
	}
	if len(upload) == 0 {
		return nil
	}
	if err := rc.UploadPreKeys(ctx, upload); err != nil {
		return fmt.Errorf("chat: uploading %d prekeys: %w", len(upload), err)
	}
	c.log.Info("prekeys published", "count", len(upload))
	return nil
}

// newPreKeys generates count prekeys of kind, commits their private halves and returns
// the public halves to upload.
func (c *Controller) newPreKeys(ctx context.Context, kind ratchet.PreKeyKind, count int, now time.Time) ([]ratchet.PublicPreKey, error) {
	rows := make([]storage.PreKey, 0, count)
	pubs := make([]ratchet.PublicPreKey, 0, count)
	for range count {
		id, err := c.store.NextPreKeyID(ctx, uint8(kind))
		if err != nil {
			return nil, fmt.Errorf("chat: allocating a %s id: %w", kindName(kind), err)
		}
		k, err := ratchet.GeneratePreKey(c.rand, c.id, kind, id, now)
		if err != nil {
			return nil, fmt.Errorf("chat: generating a %s: %w", kindName(kind), err)
		}
		priv, err := k.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("chat: encoding a %s: %w", kindName(kind), err)
		}
		rows = append(rows, storage.PreKey{Kind: uint8(kind), ID: id, CreatedAt: now, Private: priv})
		pubs = append(pubs, k.Public())
	}
	if err := c.store.PutPreKeys(ctx, rows); err != nil {
		return nil, fmt.Errorf("chat: storing %d %s: %w", count, kindName(kind), err)
	}
	return pubs, nil
}

// kindName names a prekey kind in the plural, from ratchet's one definition.
func kindName(k ratchet.PreKeyKind) string { return k.String() + "s" }

// rotateLoop runs RotateKeys on a timer and whenever woken (low-key notice, reconnect).
func (c *Controller) rotateLoop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.prefs.RotateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.rotateCh:
		}
		if !c.isOnline() {
			continue
		}
		if err := c.RotateKeys(ctx, c.prefs.OneTimeKeys); err != nil && ctx.Err() == nil {
			c.log.Warn("key rotation failed; will retry", "err", err)
		}
	}
}
