package chat

import (
	"context"
	"fmt"
	"slices"
	"time"

	"pfschat/ratchet"
	"pfschat/storage"
)

// Prekey lifetimes: Signal's schedule (ratchet/SPEC.md §8.4).
const (
	// SignedPreKeyMaxAge: the signed X25519 and last-resort ML-KEM prekeys are replaced
	// when older than this.
	SignedPreKeyMaxAge = 2 * 24 * time.Hour
	// RetiredPreKeyGrace: a replaced signed prekey's private half is kept this long for
	// initial messages still in flight, then deleted.
	RetiredPreKeyGrace = 30 * 24 * time.Hour
	// MaxBundlePreKeyAge: an initiator refuses a bundle whose signed prekey was created
	// longer ago than this (its owner has not rotated it: the device may be gone, or
	// the relay is handing out an old key it should have dropped).
	MaxBundlePreKeyAge = 14 * 24 * time.Hour
	// HandedOutGrace: a one-time prekey the relay handed out but no session consumed is
	// deleted this long after we noticed it was gone from the relay.
	HandedOutGrace = 30 * 24 * time.Hour
	// MaxHandedOutPreKeys bounds, per kind, the one-time private keys kept for handed-out
	// public halves no session has used yet; beyond it the oldest go first.
	MaxHandedOutPreKeys = 200
	// OneTimePreKeyMaxAge bounds the life of every one-time private key, whatever the
	// relay's list says: a relay cannot make a client keep private keys for ever by
	// claiming it still holds their public halves.
	OneTimePreKeyMaxAge = 90 * 24 * time.Hour
	// SkippedKeyMaxAge: stored skipped message keys (for messages that arrive out of
	// order) are deleted this long after they were stored, chain by chain.
	SkippedKeyMaxAge = 30 * 24 * time.Hour
	// MaxListedPreKeys bounds, per kind, the one-time private keys kept because the
	// relay lists their public halves (the relay itself stores at most 100).
	MaxListedPreKeys = 100
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
	// The new keys of every kind are made at the end, in one transaction for their ids
	// and one for their private halves (a new profile's rotation made eight commits).
	var want []preKeyWant

	// Signed prekeys: X25519 and the ML-KEM last resort.
	for _, kind := range []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.KEMLastResort} {
		keys, err := c.store.PreKeys(ctx, uint8(kind))
		if err != nil {
			return fmt.Errorf("chat: listing %s: %w", kindName(kind), err)
		}
		slices.SortFunc(keys, func(a, b storage.PreKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
		needNew := len(keys) == 0 || now.Sub(keys[len(keys)-1].CreatedAt) >= SignedPreKeyMaxAge || status.Counts[kind] == 0
		if needNew {
			want = append(want, preKeyWant{kind, 1})
		}
		// A key retires when its successor is created; delete it a grace period later.
		// (A successor made in this call retires nothing yet: it was created now.)
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
			if kind == ratchet.SignedPreKey {
				// A copy of a first message to a deleted signed prekey cannot be read
				// any more: its replay record is no longer needed.
				if err := c.store.ForgetFirstMessages(ctx, expired); err != nil {
					return fmt.Errorf("chat: %w", err)
				}
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
		var listed, out []storage.PreKey // kept, newest last (keys are by id = by age)
		for _, k := range keys {
			switch {
			case now.Sub(k.CreatedAt) > OneTimePreKeyMaxAge:
				expired = append(expired, k.ID)
			case onRelay[k.ID]:
				listed = append(listed, k)
			case k.HandedOutAt.IsZero():
				k.HandedOutAt = now
				handedOut = append(handedOut, k)
				out = append(out, k)
			case now.Sub(k.HandedOutAt) > HandedOutGrace:
				expired = append(expired, k.ID)
			default:
				out = append(out, k)
			}
		}
		// Bounded in count too: the oldest beyond the caps go.
		if over := len(listed) - MaxListedPreKeys; over > 0 {
			for _, k := range listed[:over] {
				expired = append(expired, k.ID)
			}
		}
		if over := len(out) - MaxHandedOutPreKeys; over > 0 {
			slices.SortStableFunc(out, func(a, b storage.PreKey) int { return a.HandedOutAt.Compare(b.HandedOutAt) })
			drop := map[uint32]bool{}
			for _, k := range out[:over] {
				expired = append(expired, k.ID)
				drop[k.ID] = true
			}
			handedOut = slices.DeleteFunc(handedOut, func(k storage.PreKey) bool { return drop[k.ID] })
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
			want = append(want, preKeyWant{kind, missing})
		}
	}
	if len(want) == 0 {
		return nil
	}
	upload, err := c.newPreKeys(ctx, want, now)
	if err != nil {
		return err
	}
	if err := rc.UploadPreKeys(ctx, upload); err != nil {
		return fmt.Errorf("chat: uploading %d prekeys: %w", len(upload), err)
	}
	c.log.Info("prekeys published", "count", len(upload))
	return nil
}

// preKeyWant is count new prekeys of kind.
type preKeyWant struct {
	kind  ratchet.PreKeyKind
	count int
}

// newPreKeys generates the prekeys of every want, in order, commits their private
// halves and returns the public halves to upload.
func (c *Controller) newPreKeys(ctx context.Context, want []preKeyWant, now time.Time) ([]ratchet.PublicPreKey, error) {
	reqs := make([]storage.PreKeyIDs, len(want))
	total := 0
	for i, w := range want {
		reqs[i] = storage.PreKeyIDs{Kind: uint8(w.kind), N: w.count}
		total += w.count
	}
	// One transaction reserves every id (it used to be one per key: 200 fsyncs on a new
	// profile); ids reserved and then not stored, after a crash, are simply never used.
	first, err := c.store.ReservePreKeyIDsFor(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("chat: allocating %d prekey ids: %w", total, err)
	}
	rows := make([]storage.PreKey, 0, total)
	pubs := make([]ratchet.PublicPreKey, 0, total)
	for i, w := range want {
		for j := range w.count {
			id := first[i] + uint32(j)
			k, err := ratchet.GeneratePreKey(c.rand, c.id, w.kind, id, now)
			if err != nil {
				return nil, fmt.Errorf("chat: generating a %s: %w", w.kind, err)
			}
			priv, err := k.MarshalBinary()
			if err != nil {
				return nil, fmt.Errorf("chat: encoding a %s: %w", w.kind, err)
			}
			rows = append(rows, storage.PreKey{Kind: uint8(w.kind), ID: id, CreatedAt: now, Private: priv})
			pubs = append(pubs, k.Public())
		}
	}
	if err := c.store.PutPreKeys(ctx, rows); err != nil {
		return nil, fmt.Errorf("chat: storing %d prekeys: %w", len(rows), err)
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
		if _, err := c.ExpireSkippedKeys(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("expiring skipped message keys failed; will retry", "err", err)
		}
		c.expireArchivedSessions(ctx)
		if !c.isOnline() {
			continue
		}
		if err := c.RotateKeys(ctx, c.prefs.OneTimeKeys); err != nil && ctx.Err() == nil {
			c.log.Warn("key rotation failed; will retry", "err", err)
		}
	}
}

// ExpireSkippedKeys deletes the skipped message keys stored longer than
// SkippedKeyMaxAge (a chain's keys go together, dated by the first of them) and returns
// how many it deleted. A message that needed one can no longer be read. The background
// key rotation runs it; the session encoding is unchanged (ratchet/SPEC.md §13 holds no
// times): the dates are kept in the store beside the sealed state.
func (c *Controller) ExpireSkippedKeys(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	chains, err := c.store.ExpiredSkippedChains(ctx, c.now().Add(-SkippedKeyMaxAge))
	if err != nil {
		return 0, fmt.Errorf("chat: %w", err)
	}
	dropped := 0
	for i := 0; i < len(chains); {
		j := i
		for j < len(chains) && chains[j].SessionID == chains[i].SessionID {
			j++
		}
		s, err := c.loadSession(ctx, chains[i].PeerCardID, chains[i].SessionID)
		if err != nil {
			i = j
			continue // gone meanwhile: its records go with the next listing
		}
		var dhs [][]byte
		for _, k := range chains[i:j] {
			if len(k.DH) == 32 {
				dropped += s.s.DropSkippedChain([32]byte(k.DH))
			}
			dhs = append(dhs, k.DH)
		}
		row, err := c.sessionRow(s)
		if err != nil {
			return dropped, err
		}
		row.UpdatedAt = s.row.UpdatedAt // housekeeping is not activity
		if err := c.store.ExpireSkippedChains(ctx, row, dhs); err != nil {
			return dropped, fmt.Errorf("chat: %w", err)
		}
		i = j
	}
	if dropped > 0 {
		c.log.Info("expired skipped message keys", "count", dropped)
	}
	return dropped, nil
}
