package chat

import (
	"context"
	"fmt"

	"pfschat/ratchet"
)

// OneTimeKeysOnRelay reports how many one-time prekeys the relay holds for this user
// right now: X25519 and ML-KEM. RotateKeys tops up to at least its count and never
// takes keys back, so after it these are what a user should be told, not the count asked.
func (c *Controller) OneTimeKeysOnRelay(ctx context.Context) (x25519, mlkem int, err error) {
	rc, err := c.relayClient()
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	status, err := rc.PreKeyStatus(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("asking the relay for prekey counts: %w", err)
	}
	return status.Counts[ratchet.OneTimePreKey], status.Counts[ratchet.KEMOneTime], nil
}
