package chat

// Relay key changes: a planned rotation the pinned key vouched for is followed (the
// relay client checks the statements; here the new key is pinned and the own card,
// re-signed by the relay, stored), and a key change nobody vouched for (a compromised
// key replaced) is accepted only by hand, with Repin.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/storage"
)

// relayKeyRotated is the relay client's OnRelayKeyRotated: it runs on the new
// connection before it is used.
func (c *Controller) relayKeyRotated(chain []relay.KeyRotation) {
	if len(chain) == 0 {
		return
	}
	newKey := chain[len(chain)-1].New
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rc, err := c.relayClient()
	if err != nil {
		c.log.Error("relay key rotated, but re-pinning failed", "err", err)
		return
	}
	if err := c.repin(ctx, rc, newKey); err != nil {
		c.log.Error("relay key rotated, but re-pinning failed", "err", err)
		return
	}
	c.log.Warn("relay key rotated by its operator; re-pinned (the old key signed the change)",
		"old", ratchet.Fingerprint(chain[0].Old), "new", ratchet.Fingerprint(newKey), "at", time.Unix(chain[len(chain)-1].Time, 0).UTC())
}

// cardLooker is what repin needs of a relay connection.
type cardLooker interface {
	LookupCard(ctx context.Context, name string) (*ratchet.Card, error)
}

// repin stores the own card as the relay now signs it (same ID, checked against
// newKey), then pins newKey.
func (c *Controller) repin(ctx context.Context, rc cardLooker, newKey ed25519.PublicKey) error {
	if err := c.loadIdentity(ctx); err != nil {
		return err
	}
	card, err := rc.LookupCard(ctx, c.name)
	if err != nil {
		return fmt.Errorf("chat: fetching the own card from the relay: %w", err)
	}
	if card.ID() != c.card.ID() {
		return fmt.Errorf("%w: the relay holds another card under %q (not this profile's)", ErrCardRejected, c.name)
	}
	if err := card.VerifyWithRelay(newKey); err != nil {
		return fmt.Errorf("%w: the relay's new key did not sign the own card: %w", ErrCardRejected, err)
	}
	priv, err := c.id.MarshalBinary()
	if err != nil {
		return err
	}
	// One transaction: a failure leaves the old card and the old pin, never the new
	// card (signed by a key the profile does not trust yet) beside the old pin.
	id := storage.Identity{Name: c.name, CardID: card.ID(), Card: []byte(card.Export()), PrivateKey: priv}
	if err := c.store.SaveIdentityAndMeta(ctx, id, metaRelayKey, newKey); err != nil {
		return fmt.Errorf("chat: pinning the relay key and saving the re-signed own card: %w", err)
	}
	c.connMu.Lock()
	c.relayKey = newKey
	c.connMu.Unlock()
	return nil
}

// RepinInfo is what Repin shows before it asks.
type RepinInfo struct {
	URL               string
	Pinned, Presented string // fingerprints
}

// ErrRepinDeclined is Repin's answer when confirm says no.
var ErrRepinDeclined = errors.New("chat: re-pin declined; nothing changed")

// Repin replaces the pinned relay key by hand, for a relay whose key was replaced
// without a statement from the old one (the old key was compromised; the operator
// announced the new fingerprint). It connects without the pin, shows both
// fingerprints to confirm (compare the new one with the operator's announcement) and
// pins the relay's key and the own card as the relay now signs it. The controller must
// not be initialized (open it with Profile.NewController).
func (c *Controller) Repin(ctx context.Context, confirm func(RepinInfo) bool) error {
	if err := c.loadIdentity(ctx); err != nil {
		return err
	}
	pinned, err := c.store.Meta(ctx, metaRelayKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("chat: reading the pinned relay key: %w", err)
	}
	rc := c.prefs.Dial(client.Config{URL: c.prefs.RelayURL, Logger: c.log.With("part", "relay-client")})
	defer rc.Close()
	if err := rc.Connect(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrOffline, c.prefs.RelayURL, err)
	}
	presented := rc.RelayKey()
	if len(pinned) == ed25519.PublicKeySize && ed25519.PublicKey(pinned).Equal(presented) {
		return fmt.Errorf("chat: the relay at %s presents the pinned key %s: nothing to re-pin", c.prefs.RelayURL, ratchet.Fingerprint(presented))
	}
	if !confirm(RepinInfo{URL: c.prefs.RelayURL, Pinned: ratchet.Fingerprint(pinned), Presented: ratchet.Fingerprint(presented)}) {
		return ErrRepinDeclined
	}
	if err := c.repin(ctx, rc, presented); err != nil {
		return err
	}
	c.log.Warn("relay key re-pinned by hand", "old", ratchet.Fingerprint(pinned), "new", ratchet.Fingerprint(presented))
	return nil
}

// PinnedRelayKey is the relay key this profile pinned, read from its store (nil
// before the first contact), and the relay's URL.
func (c *Controller) PinnedRelayKey(ctx context.Context) (ed25519.PublicKey, string, error) {
	k, err := c.store.Meta(ctx, metaRelayKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, c.prefs.RelayURL, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("chat: reading the pinned relay key: %w", err)
	}
	return ed25519.PublicKey(k), c.prefs.RelayURL, nil
}

// ErrRepinChanged: the relay presents a key other than the one the user confirmed.
var ErrRepinChanged = errors.New("chat: the relay's key is not the one you confirmed; nothing changed")

// RepinRelay re-pins a running controller's relay key by hand (the UI's action on a
// relay-key mismatch): after the user compared presented — the fingerprint a
// *RelayKeyChangedError showed — with the operator's announcement and confirmed it,
// it connects without the pin, checks the relay still proves that very key (else
// ErrRepinChanged, nothing changed), pins it with the own card as the relay now signs
// it, and lets the connection retry at once under the new pin.
func (c *Controller) RepinRelay(ctx context.Context, presented string) error {
	if err := c.loadIdentity(ctx); err != nil {
		return err
	}
	rc := c.prefs.Dial(client.Config{URL: c.prefs.RelayURL, Logger: c.log.With("part", "relay-client"),
		InsecureWS: c.prefs.InsecureWS, RootCAs: c.prefs.RootCAs})
	defer rc.Close()
	if err := rc.Connect(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrOffline, c.prefs.RelayURL, err)
	}
	key := rc.RelayKey()
	pinned := c.relayKeyNow()
	if len(pinned) == ed25519.PublicKeySize && pinned.Equal(key) {
		return fmt.Errorf("chat: the relay at %s presents the pinned key %s again: nothing to re-pin", c.prefs.RelayURL, ratchet.Fingerprint(key))
	}
	if ratchet.Fingerprint(key) != presented {
		return fmt.Errorf("%w (you confirmed %s; the relay at %s now presents %s)", ErrRepinChanged, presented, c.prefs.RelayURL, ratchet.Fingerprint(key))
	}
	if err := c.repin(ctx, rc, key); err != nil {
		return err
	}
	c.log.Warn("relay key re-pinned by hand", "old", ratchet.Fingerprint(pinned), "new", ratchet.Fingerprint(key))
	c.connMu.Lock()
	main := c.rc
	c.connMu.Unlock()
	if p, ok := main.(interface{ SetPinnedRelayKey(ed25519.PublicKey) }); ok {
		p.SetPinnedRelayKey(key)
	}
	return nil
}

// DeleteAccount deletes this profile's account on the relay: its card, prekeys and
// queued messages go and its name is free for anyone. The local profile stays (remove
// its folder to forget it too).
func (c *Controller) DeleteAccount(ctx context.Context) error {
	rc, err := c.relayClient()
	if err != nil {
		return err
	}
	d, ok := rc.(interface{ DeleteAccount(context.Context) error })
	if !ok {
		return fmt.Errorf("chat: this relay client cannot delete accounts")
	}
	return d.DeleteAccount(ctx)
}
