package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// What a session reset and a retry request need (issue 13 point 2, chat/PAYLOAD.md
// §4.3): archived sessions that still receive, outgoing messages found by the relay's
// msg_id, resends that reuse their message, and a resend that takes the place of the
// placeholder of the message that could not be read.

// ArchiveSessions demotes every session with the peer card: none is active any more, so
// the next send starts a new session, while the archived ones still decrypt messages
// the peer sent under them (they are kept up to MaxSessionsPerPeer, and until
// DeleteIdleSessions drops them).
func (c *Client) ArchiveSessions(ctx context.Context, peerCardID string) error {
	if peerCardID == "" {
		return fmt.Errorf("%w: ArchiveSessions needs a peer card", ErrInvalid)
	}
	err := c.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, "UPDATE sessions SET active = 0 WHERE peer_card_id = ? AND active = 1", peerCardID)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: archive sessions: %w", err)
	}
	return nil
}

// DeleteIdleSessions deletes the archived (not active) sessions last used before t, with
// the skipped-chain records that belong to them, and returns how many went.
func (c *Client) DeleteIdleSessions(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := c.db.write(ctx, func(tx *txn) error {
		var err error
		if n, err = tx.execN(ctx, "DELETE FROM sessions WHERE active = 0 AND updated_at < ?", dbTime(before)); err != nil || n == 0 {
			return err
		}
		_, err = tx.exec(ctx, "DELETE FROM skipped_chains WHERE session_id NOT IN (SELECT id FROM sessions)")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: delete idle sessions: %w", err)
	}
	return int(n), nil
}

// SentInfo is what a resend needs to know about an outgoing message besides the
// message itself: the peer card it was encrypted for, the relay msg_id it was last
// accepted under (0 until then) and how many times it was re-sent.
type SentInfo struct {
	ToCardID   string
	RelayMsgID int64
	Resends    int
}

func recordToCard(ctx context.Context, tx *txn, msgID int64, cardID string) error {
	_, err := tx.exec(ctx, `INSERT INTO sent_info (message_id, to_card_id) VALUES (?, ?)
		ON CONFLICT (message_id) DO UPDATE SET to_card_id = excluded.to_card_id`, msgID, cardID)
	return err
}

func recordRelayMsgID(ctx context.Context, tx *txn, msgID, relayMsgID int64) error {
	_, err := tx.exec(ctx, `INSERT INTO sent_info (message_id, relay_msg_id) VALUES (?, ?)
		ON CONFLICT (message_id) DO UPDATE SET relay_msg_id = excluded.relay_msg_id`, msgID, relayMsgID)
	return err
}

// SentInfo returns what is recorded about outgoing message id (zero values when
// nothing is).
func (c *Client) SentInfo(ctx context.Context, id int64) (SentInfo, error) {
	var si SentInfo
	err := c.db.queryRow(ctx, "SELECT to_card_id, relay_msg_id, resends FROM sent_info WHERE message_id = ?", id).
		Scan(&si.ToCardID, &si.RelayMsgID, &si.Resends)
	if errors.Is(err, sql.ErrNoRows) {
		return SentInfo{}, nil
	}
	if err != nil {
		return SentInfo{}, fmt.Errorf("storage: sent info of message %d: %w", id, err)
	}
	return si, nil
}

// SentByRelayMsgID returns the outgoing message to contact that the relay accepted under
// relayMsgID (SettleOutboxAccepted); ErrNotFound if none.
func (c *Client) SentByRelayMsgID(ctx context.Context, contact string, relayMsgID int64) (Message, error) {
	if relayMsgID <= 0 {
		return Message{}, fmt.Errorf("%w: relay msg id %d", ErrNotFound, relayMsgID)
	}
	return c.oneMessage(ctx, fmt.Sprintf("message to %s accepted as relay msg %d", contact, relayMsgID),
		"id IN (SELECT message_id FROM sent_info WHERE relay_msg_id = ?) AND contact = ? AND direction = 2 ORDER BY id DESC LIMIT 1", relayMsgID, contact)
}

// UndecryptableByRelayMsgID returns the placeholder of the message from contact that
// arrived as relay msg relayMsgID and could not be read; ErrNotFound if none.
func (c *Client) UndecryptableByRelayMsgID(ctx context.Context, contact string, relayMsgID int64) (Message, error) {
	if relayMsgID <= 0 {
		return Message{}, fmt.Errorf("%w: relay msg id %d", ErrNotFound, relayMsgID)
	}
	// Incoming relay ids are "msg_id:digest" (chat); the range picks that prefix.
	prefix := strconv.FormatInt(relayMsgID, 10) + ":"
	return c.oneMessage(ctx, fmt.Sprintf("unreadable message from %s, relay msg %d", contact, relayMsgID),
		"relay_id >= ? AND relay_id < ? AND contact = ? AND direction = 1 AND state = ? LIMIT 1",
		prefix, prefix[:len(prefix)-1]+";", contact, Undecryptable)
}

// SetReason changes the reason of a message (a placeholder's, say) without changing its
// state; ErrNotFound if unknown.
func (c *Client) SetReason(ctx context.Context, id int64, reason string) error {
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE messages SET reason = ? WHERE id = ?", reason, id)
		if err != nil {
			return fmt.Errorf("storage: set reason of message %d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: message %d", ErrNotFound, id)
		}
		return nil
	})
}

// MaxResends bounds how many times one message is sent again on retry requests.
const MaxResends = 3

// ErrResendLimit: the message was sent again MaxResends times already.
var ErrResendLimit = errors.New("storage: message already re-sent the most times allowed")

// CommitResend commits a resend of outgoing message messageID in one transaction: the
// session state that encrypted it and a new outbox item (its own client id) that
// settles onto the same message, whose resend count goes up. ErrNotFound if the message
// is not an outgoing one, ErrResendLimit after MaxResends, ErrExists if the outbox
// already has the client id.
func (c *Client) CommitResend(ctx context.Context, s Session, messageID int64, it OutboxItem) error {
	if it.ClientID == "" || s.ID == "" {
		return fmt.Errorf("%w: a resend needs a session and a client id", ErrInvalid)
	}
	sessSealed, err := c.sealSession(s)
	if err != nil {
		return err
	}
	payload, err := c.keys.seal("outbox", "payload", it.ClientID, it.Payload)
	if err != nil {
		return err
	}
	err = c.db.write(ctx, func(tx *txn) error {
		var n int
		if err := tx.scan(ctx, "SELECT count(*) FROM messages WHERE id = ? AND direction = 2", []any{messageID}, &n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: outgoing message %d", ErrNotFound, messageID)
		}
		if _, err := tx.exec(ctx, `INSERT INTO sent_info (message_id, resends) VALUES (?, 1)
			ON CONFLICT (message_id) DO UPDATE SET resends = resends + 1`, messageID); err != nil {
			return err
		}
		var resends int
		if err := tx.scan(ctx, "SELECT resends FROM sent_info WHERE message_id = ?", []any{messageID}, &resends); err != nil {
			return err
		}
		if resends > MaxResends {
			return ErrResendLimit
		}
		if err := tx.scan(ctx, "SELECT count(*) FROM outbox WHERE client_id = ?", []any{it.ClientID}, &n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: outbox item %q", ErrExists, it.ClientID)
		}
		if err := putSession(ctx, tx, s, sessSealed); err != nil {
			return err
		}
		created := it.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		_, err = tx.exec(ctx, "INSERT INTO outbox (client_id, recipient, payload_sealed, message_id, created_at, awaiting_session) VALUES (?, ?, ?, ?, ?, 0)",
			it.ClientID, it.To, payload, messageID, dbTime(created))
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: commit resend of message %d: %w", messageID, err)
	}
	return nil
}

// replaceMessage turns the placeholder id (an unreadable incoming message of m.Contact)
// into m, in place: it keeps its id and place in the conversation. m has a reason (the
// unread count finds it by it). ErrNotFound if id is no such placeholder.
func (c *Client) replaceMessage(ctx context.Context, tx *txn, id int64, m Message) error {
	if m.Reason == "" {
		return fmt.Errorf("%w: the message replacing placeholder %d has no reason", ErrInvalid, id)
	}
	body, err := c.keys.seal("messages", "body", msgRow(id), m.Body)
	if err != nil {
		return err
	}
	n, err := tx.execN(ctx, `UPDATE messages SET body_sealed = ?, sent_at = ?, received_at = ?, state = ?, reason = ?,
		client_id = ?, seq = ?, sender_card_id = ?, key_pending = ? WHERE id = ? AND contact = ? AND direction = 1 AND state = ?`,
		body, dbTime(m.SentAt), dbTime(m.ReceivedAt), m.State, m.Reason, m.ClientID, int64(m.Seq), m.SenderCardID,
		boolInt(m.KeyPending), id, m.Contact, Undecryptable)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: unreadable message %d from %q", ErrNotFound, id, m.Contact)
	}
	// A placeholder not yet seen is among the newest unread count of messages and stays
	// there. One already seen lies before them: its message is unread by its state
	// (Delivered) and its reason, which UnreadMessages and contactQuery go by; the
	// stored count (the newest N) is left as it is, as it cannot reach the message
	// without taking in read ones after it.
	return nil
}

// RecordToCard records the peer card outgoing message id was encrypted for (a message
// that waited for its session learns it when the handshake runs).
func (c *Client) RecordToCard(ctx context.Context, id int64, cardID string) error {
	err := c.db.write(ctx, func(tx *txn) error { return recordToCard(ctx, tx, id, cardID) })
	if err != nil {
		return fmt.Errorf("storage: record the card of message %d: %w", id, err)
	}
	return nil
}
