package client

import (
	"context"
	"fmt"
	"time"

	"pfschat/relay"
)

// DeleteAccount deletes this client's account on the relay: its card, prekeys and
// queued messages go, and its name is free for anyone to register. The request is
// signed with the identity key (relay.DeleteAccountDomain); the relay closes the
// connection after answering, so close the client afterwards.
func (c *Client) DeleteAccount(ctx context.Context) error {
	if c.cfg.Identity == nil || c.cfg.Card == nil {
		return fmt.Errorf("relay: deleting an account needs the client's identity and card")
	}
	rk := c.RelayKey()
	if len(rk) == 0 {
		return ErrNotConnected
	}
	now := time.Now().Unix()
	cardID := c.cfg.Card.ID()
	sig := c.cfg.Identity.Sign(relay.DeleteAccountDomain, relay.DeleteAccountMessage(rk, cardID, now))
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeDeleteAccount, CardID: cardID, Time: now, Signature: sig})
	if err != nil {
		return fmt.Errorf("relay: deleting the account %s: %w", c.cfg.Card.Identity, err)
	}
	if resp.Type != relay.TypeOK {
		return fmt.Errorf("relay: deleting the account: unexpected answer %q", resp.Type)
	}
	return nil
}
