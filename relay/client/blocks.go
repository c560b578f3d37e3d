package client

import (
	"context"
	"fmt"

	"pfschat/relay"
)

// Block asks the relay to refuse name's messages to this card's name and name's bundle
// fetches of it (PROTOCOL.md "Blocking"). Blocking a name twice is no error.
func (c *Client) Block(ctx context.Context, name string) error {
	if _, err := c.do(ctx, &relay.Frame{Type: relay.TypeBlock, Name: name}); err != nil {
		return fmt.Errorf("relay: block: %w", err)
	}
	return nil
}

// Unblock takes a block back; unblocking a name not blocked is no error.
func (c *Client) Unblock(ctx context.Context, name string) error {
	if _, err := c.do(ctx, &relay.Frame{Type: relay.TypeUnblock, Name: name}); err != nil {
		return fmt.Errorf("relay: unblock: %w", err)
	}
	return nil
}
