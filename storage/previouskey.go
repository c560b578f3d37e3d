package storage

import (
	"context"
	"fmt"
	"strings"
)

// UndecryptableWithSuffix returns contact's newest incoming undecryptable message whose
// reason ends with suffix (chat's one summary line for the messages sent to a previous
// identity key); ErrNotFound if none. suffix must hold no '%' or '_' (LIKE wildcards).
func (c *Client) UndecryptableWithSuffix(ctx context.Context, contact, suffix string) (Message, error) {
	if suffix == "" || strings.ContainsAny(suffix, "%_") {
		return Message{}, fmt.Errorf("%w: reason suffix %q", ErrInvalid, suffix)
	}
	return c.oneMessage(ctx, fmt.Sprintf("unreadable message from %s ending %q", contact, suffix),
		"contact = ? AND direction = 1 AND state = ? AND reason LIKE ? ORDER BY id DESC LIMIT 1",
		contact, Undecryptable, "%"+suffix)
}
