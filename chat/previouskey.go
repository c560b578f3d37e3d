package chat

// Messages sent to a previous identity key (chat/PAYLOAD.md §4.4, "Messages to a
// previous key"): after a recovery or a reset-identity, what contacts had encrypted for
// the replaced card can never be read here. Receipts cannot be told from texts before
// decryption, so such messages are not shown one placeholder each: a conversation holds
// one summary line, "N messages sent to your previous key could not be read", whose
// count goes up; a sender who is not a contact gets none (logged only).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/storage"
)

// previousKeySuffix ends the Reason of the summary line.
const previousKeySuffix = " sent to your previous key could not be read"

// PreviousKeyCount reports whether m is the summary line of messages sent to a previous
// identity key, and how many it stands for.
func PreviousKeyCount(m Message) (int, bool) {
	if m.Outgoing || m.State != UndecryptableState || !strings.HasSuffix(m.Reason, previousKeySuffix) {
		return 0, false
	}
	num, _, _ := strings.Cut(m.Reason, " ")
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

func previousKeyReason(n int) string {
	if n == 1 {
		return "1 message" + previousKeySuffix
	}
	return strconv.Itoa(n) + " messages" + previousKeySuffix
}

// toPreviousKey reports whether a message that could not be decrypted was sent to a
// previous identity key of ours: its initial header names a responder card that is not
// our current one, or the relay received it before our current card was made (to the
// card's second: a message is addressed by name, and what the relay took before this
// card existed was encrypted for an earlier card of the name).
func toPreviousKey(own *ratchet.Card, env *ratchet.Envelope, in *client.Incoming) bool {
	if own == nil {
		return false
	}
	if env != nil && env.Initial != nil && env.Initial.ResponderCardID != own.ID() {
		return true
	}
	// A card's time has second precision (truncated): anything the relay took before
	// that second predates the card. A message from within that second is not
	// counted as sent to a previous key — it may be to this card, and a failure is
	// then shown as undecryptable, never hidden. A relay clock far off the client's
	// makes this rule miss the same way.
	return !in.ReceivedAt.IsZero() && !own.CreatedAt.IsZero() && in.ReceivedAt.Before(own.CreatedAt.Truncate(time.Second))
}

// errPreviousKey is the event error of a new summary line.
var errPreviousKey = errors.New("a message sent to your previous identity key could not be read")

// previousKeyMessage records a message sent to a previous key: the relay id (so it is
// acked and never handled again) and the contact's summary line, made or counted up.
// c.mu must be held.
func (c *Controller) previousKeyMessage(ctx context.Context, in *client.Incoming, relayID string, res *received, now time.Time) (*received, error) {
	c.log.Info("a message sent to a previous identity key of ours; counted, not shown", "from", in.From)
	if _, err := c.store.Contact(ctx, in.From); errors.Is(err, storage.ErrNotFound) {
		if _, err := c.store.CommitReceive(ctx, storage.ReceiveTx{RelayID: relayID}); err != nil {
			return nil, err
		}
		return res, nil
	} else if err != nil {
		return nil, err
	}
	sum, err := c.store.UndecryptableWithSuffix(ctx, in.From, previousKeySuffix)
	if errors.Is(err, storage.ErrNotFound) {
		msg := &storage.Message{Contact: in.From, Direction: storage.Incoming, ReceivedAt: now,
			SentAt: in.ReceivedAt, State: UndecryptableState, Reason: previousKeyReason(1), RelayID: relayID}
		id, err := c.store.CommitReceive(ctx, storage.ReceiveTx{Message: msg, RelayID: relayID})
		if err != nil {
			return nil, err
		}
		msg.ID = id
		res.msg, res.undecrypt = msg, errPreviousKey
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := c.store.CommitReceive(ctx, storage.ReceiveTx{RelayID: relayID}); err != nil {
		return nil, err
	}
	n, ok := PreviousKeyCount(toMessage(sum))
	if !ok {
		c.log.Warn("the summary line of messages to a previous key does not parse", "id", sum.ID, "err", fmt.Errorf("reason %q", sum.Reason))
		return res, nil
	}
	sum.Reason = previousKeyReason(n + 1)
	if err := c.store.SetReason(ctx, sum.ID, sum.Reason); err != nil {
		// The message is recorded as handled: it is not worth a redelivery.
		c.log.Warn("counting a message to a previous key", "from", in.From, "err", err)
		return res, nil
	}
	res.previousKey = &sum
	return res, nil
}
