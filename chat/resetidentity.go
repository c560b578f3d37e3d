package chat

// Identity replacement with the old key at hand (`pfschat reset-identity`): a new
// identity key and card replace the old card on the relay through replace_card, signed
// in by the old key; sessions and prekeys of the old key go; contacts see the key
// change on the next message and confirm it.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"pfschat/ratchet"
	"pfschat/storage"
)

// ErrOutboxNotEmpty: ResetIdentity refuses while messages encrypted under the old
// key still wait to be sent.
var ErrOutboxNotEmpty = errors.New("chat: messages are still waiting to be sent; let them go out first (connect, or pfschat send's outbox drains), then reset")

// ResetIdentity replaces this profile's identity key: it makes a new key and card,
// puts the card in place of the old one on the relay (replace_card, authorised by the
// logged-in old key), stores the new identity, drops every session and prekey of the
// old key and publishes new prekeys. The recovery code stays. Contacts see the name's
// key change on the next message and must confirm it. It needs the relay, its backlog
// received (read with the old key), and an empty outbox (ErrOutboxNotEmpty). If the process dies between the relay's answer and the
// store, the profile can no longer log in: recover the name with the recovery code.
func (c *Controller) ResetIdentity(ctx context.Context) (*ratchet.Card, error) {
	// What the relay holds for us now was encrypted for the old key: it is received
	// and read with it first, or else the new key could only count it as lost
	// (PAYLOAD.md §4.4). Seen in the identity walk: a text sent before the reset,
	// fetched by the reset command after the card was replaced.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.WaitSynced(sctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chat: the relay's messages for the old key did not all arrive, so it was not replaced (nothing changed; try again): %w", err)
	}
	var signed *ratchet.Card
	for range 3 { // receipts may be queued between the flush and the check: try again
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c.Flush(fctx) // what the old sessions encrypted goes out first
		cancel()
		if signed, err = c.resetIdentity(ctx); !errors.Is(err, ErrOutboxNotEmpty) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if err := c.RotateKeys(ctx, 0); err != nil {
		return signed, fmt.Errorf("chat: identity replaced, but publishing the new prekeys failed (they are published on the next connection): %w", err)
	}
	return signed, nil
}

func (c *Controller) resetIdentity(ctx context.Context) (*ratchet.Card, error) {
	rc, err := c.relayClient()
	if err != nil {
		return nil, err
	}
	replacer, ok := rc.(interface {
		ReplaceCard(ctx context.Context, card *ratchet.Card) (*ratchet.Card, error)
		SetIdentity(id *ratchet.IdentityKey, card *ratchet.Card)
	})
	if !ok {
		return nil, fmt.Errorf("chat: this relay client cannot replace cards")
	}
	if !c.isOnline() {
		return nil, fmt.Errorf("%w: %s", ErrOffline, c.prefs.RelayURL)
	}
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if items, err := c.store.Outbox(ctx); err != nil {
		return nil, fmt.Errorf("chat: reading the outbox: %w", err)
	} else if len(items) > 0 {
		return nil, fmt.Errorf("%w (%d waiting)", ErrOutboxNotEmpty, len(items))
	}
	key, err := ratchet.GenerateIdentityKey(c.rand)
	if err != nil {
		return nil, fmt.Errorf("chat: generating identity key: %w", err)
	}
	card, err := ratchet.NewCard(key, c.name, c.card.IdentityType, c.card.Device, c.now().UTC().Truncate(time.Second), nil)
	if err != nil {
		return nil, fmt.Errorf("chat: creating card: %w", err)
	}
	signed, err := replacer.ReplaceCard(ctx, card)
	if err != nil {
		return nil, fmt.Errorf("chat: replacing the card on the relay: %w", err)
	}
	if err := signed.VerifyWithRelay(ed25519.PublicKey(c.relayKeyNow())); err != nil || signed.ID() != card.ID() {
		return nil, fmt.Errorf("%w: the relay's answer to replace_card is not our new card, signed", ErrCardRejected)
	}
	priv, err := key.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := c.store.SaveIdentity(ctx, storage.Identity{Name: c.name, CardID: signed.ID(), Card: []byte(signed.Export()), PrivateKey: priv}); err != nil {
		return nil, fmt.Errorf("chat: saving the new identity (recover the name with the recovery code): %w", err)
	}
	replacer.SetIdentity(key, signed)
	c.id, c.card = key, signed
	// Sessions and prekeys belong to the old key: contacts' sessions with it are
	// useless to the new one, and prekeys signed by it would not verify.
	cts, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, fmt.Errorf("chat: listing contacts: %w", err)
	}
	for _, ct := range cts {
		for _, id := range []string{ct.CardID, ct.PendingCardID, ct.RejectedCardID} {
			if id == "" {
				continue
			}
			if err := c.store.DeleteSessions(ctx, id); err != nil {
				return nil, fmt.Errorf("chat: dropping the sessions with %s: %w", ct.Name, err)
			}
		}
	}
	for _, kind := range []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.OneTimePreKey, ratchet.KEMLastResort, ratchet.KEMOneTime} {
		keys, err := c.store.PreKeys(ctx, uint8(kind))
		if err != nil {
			return nil, fmt.Errorf("chat: listing %s: %w", kindName(kind), err)
		}
		ids := make([]uint32, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		if len(ids) > 0 {
			if err := c.store.DeletePreKeys(ctx, uint8(kind), ids); err != nil {
				return nil, fmt.Errorf("chat: deleting %s: %w", kindName(kind), err)
			}
		}
	}
	c.log.Warn("identity key replaced", "new_card", signed.ID()[:16])
	return signed, nil
}
