package client

import (
	"context"
	"fmt"

	"pfschat/ratchet"
	"pfschat/relay"
)

// Recover registers card under its name in place of the name's current card, by the
// proof of the name's recovery code (relay.RecoveryCode.Proof); newProof is the proof
// of the code that replaces it. No login is needed: it is how a user who lost the
// identity key gets the name back. A wrong code is a *relay.ProtocolError with
// relay.CodeRecoveryFailed; too many attempts, relay.CodeRateLimited.
func (c *Client) Recover(ctx context.Context, card *ratchet.Card, proof, newProof []byte) (*ratchet.Card, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeRecover, Card: card.Export(), Recovery: proof, NewRecovery: newProof})
	if err != nil {
		return nil, fmt.Errorf("relay: recovering %s: %w", card.Identity, err)
	}
	return c.checkCard(resp, card.Identity, card.ID())
}

// SetRecovery replaces the logged-in name's recovery code by the one whose proof is
// given.
func (c *Client) SetRecovery(ctx context.Context, proof []byte) error {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeSetRecovery, Recovery: proof})
	if err != nil {
		return fmt.Errorf("relay: setting the recovery code: %w", err)
	}
	if resp.Type != relay.TypeOK {
		return fmt.Errorf("relay: setting the recovery code: unexpected answer %q", resp.Type)
	}
	return nil
}
