package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
)

// DeleteAccount deletes this client's account on the relay: its card, prekeys and
// queued messages go, and its name is free for anyone to register. The request is
// signed with the identity key (relay.DeleteAccountDomain); the relay closes the
// connection after answering, so close the client afterwards.
func (c *Client) DeleteAccount(ctx context.Context) error {
	id, card := c.identity()
	if id == nil || card == nil {
		return fmt.Errorf("relay: deleting an account needs the client's identity and card")
	}
	rk := c.RelayKey()
	if len(rk) == 0 {
		return ErrNotConnected
	}
	now := time.Now().Unix()
	cardID := card.ID()
	sig := id.Sign(relay.DeleteAccountDomain, relay.DeleteAccountMessage(rk, cardID, now))
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeDeleteAccount, CardID: cardID, Time: now, Signature: sig})
	if err != nil {
		return fmt.Errorf("relay: deleting the account %s: %w", card.Identity, err)
	}
	if resp.Type != relay.TypeOK {
		return fmt.Errorf("relay: deleting the account: unexpected answer %q", resp.Type)
	}
	return nil
}

// checkRelayKey compares the hello's key with the pinned one. A different key passes
// only with a chain of rotation statements from the pinned key (returned); otherwise
// it is ErrRelayKeyMismatch.
func checkRelayKey(pinned ed25519.PublicKey, hello *relay.Frame) ([]relay.KeyRotation, error) {
	if pinned == nil || bytes.Equal(pinned, hello.RelayKey) {
		return nil, nil
	}
	chain, err := relay.FollowKeyRotations(pinned, hello.RelayKey, hello.KeyRotations)
	if err != nil {
		return nil, &RelayKeyMismatchError{Pinned: bytes.Clone(pinned), Presented: bytes.Clone(hello.RelayKey), Chain: err}
	}
	return chain, nil
}

// reportRotation logs a followed key rotation and tells the owner.
func (c *Client) reportRotation(chain []relay.KeyRotation) {
	if len(chain) == 0 {
		return
	}
	last := chain[len(chain)-1]
	c.log.Warn("relay key rotated: re-pinned", "old", ratchet.Fingerprint(chain[0].Old), "new", ratchet.Fingerprint(last.New),
		"at", time.Unix(last.Time, 0).UTC())
	if c.cfg.OnRelayKeyRotated != nil {
		c.cfg.OnRelayKeyRotated(chain)
	}
}
