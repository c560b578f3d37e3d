package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"unicode/utf8"
)

// What the user decides about a contact (schema version 7): block, nickname, mute, and
// the local deletion of messages.

// MaxNicknameBytes bounds a nickname (a local display name).
const MaxNicknameBytes = 64

// setContactColumn writes one column of an existing contact; ErrNotFound if unknown.
func (c *Client) setContactColumn(ctx context.Context, name, col string, v any) error {
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE contacts SET "+col+" = ? WHERE name = ?", v, name)
		if err != nil {
			return fmt.Errorf("storage: contact %q: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, name)
		}
		return nil
	})
}

// SetContactBlocked blocks or unblocks a contact locally; the relay's state
// (BlockSynced) is recorded apart by SetBlockSynced once the relay confirmed it.
// Unblocking a blocked contact records an unblock point (the unblocks table, schema
// version 13): the messages that arrive from then on count it in
// SeqMark.UnblocksBefore. Unblocking one that is not blocked records nothing.
func (c *Client) SetContactBlocked(ctx context.Context, name string, v bool) error {
	if v {
		return c.setContactColumn(ctx, name, "blocked", 1)
	}
	return c.db.write(ctx, func(tx *txn) error {
		if _, err := tx.exec(ctx, `INSERT OR IGNORE INTO unblocks (contact, after_id)
			SELECT name, `+highestMessageID+` FROM contacts WHERE name = ? AND blocked = 1`, name); err != nil {
			return fmt.Errorf("storage: unblocking %q: %w", name, err)
		}
		n, err := tx.execN(ctx, "UPDATE contacts SET blocked = 0 WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("storage: unblocking %q: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, name)
		}
		return nil
	})
}

// SetBlockSynced records the block state the relay confirmed for a contact.
func (c *Client) SetBlockSynced(ctx context.Context, name string, v bool) error {
	return c.setContactColumn(ctx, name, "block_synced", boolInt(v))
}

// SetContactMuted turns desktop notifications for a contact off (true) or on.
func (c *Client) SetContactMuted(ctx context.Context, name string, v bool) error {
	return c.setContactColumn(ctx, name, "muted", boolInt(v))
}

// SetContactNickname sets a contact's local display name ("" removes it). It must be
// valid UTF-8 of at most MaxNicknameBytes without control characters (ErrInvalid).
func (c *Client) SetContactNickname(ctx context.Context, name, nick string) error {
	if len(nick) > MaxNicknameBytes || !utf8.ValidString(nick) {
		return fmt.Errorf("%w: a nickname is at most %d bytes of UTF-8", ErrInvalid, MaxNicknameBytes)
	}
	for _, r := range nick {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: a nickname cannot hold control characters", ErrInvalid)
		}
	}
	return c.setContactColumn(ctx, name, "nickname", nick)
}

// DeleteMessage deletes one message of a contact's conversation from this profile only,
// with the record of its file when it is an incoming attachment (never fetched after).
// An incoming message leaves its place in the sender's sequence (deleted_seqs), so it
// is not reported as missing; an unread one no longer counts as unread. An outgoing
// message still in the outbox is still sent: deleting is local. ErrNotFound when the
// contact has no message with that id.
func (c *Client) DeleteMessage(ctx context.Context, contact string, id int64) error {
	return c.db.write(ctx, func(tx *txn) error {
		var dir Direction
		err := tx.scan(ctx, "SELECT direction FROM messages WHERE id = ? AND contact = ?", []any{id, contact}, &dir)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: message %d of %q", ErrNotFound, id, contact)
		}
		if err != nil {
			return fmt.Errorf("storage: delete message %d: %w", id, err)
		}
		if dir == Incoming {
			// Unread messages are the newest incoming ones: this one is unread when
			// fewer than the unread count came after it.
			if _, err := tx.exec(ctx, `UPDATE contacts SET unread = unread - 1 WHERE name = ?1 AND unread >
				(SELECT count(*) FROM messages WHERE contact = ?1 AND direction = 1 AND id > ?2)`, contact, id); err != nil {
				return fmt.Errorf("storage: delete message %d: %w", id, err)
			}
		}
		if err := keepSeqs(ctx, tx, "id = ?", id); err != nil {
			return err
		}
		// Its file, if it has one and it is incoming, is not to be fetched any more.
		if _, err := tx.exec(ctx, `DELETE FROM attachments WHERE direction = 1 AND client_id =
			(SELECT client_id FROM messages WHERE id = ? AND client_id <> '')`, id); err != nil {
			return fmt.Errorf("storage: delete message %d: %w", id, err)
		}
		if _, err := tx.exec(ctx, "DELETE FROM messages WHERE id = ?", id); err != nil {
			return fmt.Errorf("storage: delete message %d: %w", id, err)
		}
		if _, err := tx.exec(ctx, setLastMessageAt, contact); err != nil {
			return fmt.Errorf("storage: delete message %d: %w", id, err)
		}
		return nil
	})
}

// setLastMessageAt sets a contact's last_message_at (?1 its name) to the time of its
// newest message left after a deletion, as CommitReceive and the sends set it (the time
// received, or sent for an outgoing message), 0 with none: the contact list showed the
// time of a deleted message.
const setLastMessageAt = `UPDATE contacts SET last_message_at = coalesce((SELECT
	max(CASE WHEN direction = 2 OR received_at = 0 THEN sent_at ELSE received_at END)
	FROM messages WHERE contact = ?1), 0) WHERE name = ?1`

// ClearConversation deletes every message of a contact's conversation from this
// profile (the contact stays) and returns how many; see DeleteMessage.
func (c *Client) ClearConversation(ctx context.Context, contact string) (int, error) {
	var n int64
	err := c.db.write(ctx, func(tx *txn) error {
		var k int
		if err := tx.scan(ctx, "SELECT count(*) FROM contacts WHERE name = ?", []any{contact}, &k); err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, contact)
		}
		if err := keepSeqs(ctx, tx, "contact = ?", contact); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "DELETE FROM attachments WHERE direction = 1 AND contact = ?", contact); err != nil {
			return err
		}
		var err error
		if n, err = tx.execN(ctx, "DELETE FROM messages WHERE contact = ?", contact); err != nil {
			return err
		}
		_, err = tx.exec(ctx, "UPDATE contacts SET unread = 0, last_message_at = 0 WHERE name = ?", contact)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: clear the conversation with %q: %w", contact, err)
	}
	return int(n), nil
}

// keepSeqs records the sequence marks of the incoming messages matching where before
// they are deleted.
func keepSeqs(ctx context.Context, tx *txn, where string, arg any) error {
	_, err := tx.exec(ctx, `INSERT OR IGNORE INTO deleted_seqs (id, contact, seq, sent_at, received_at)
		SELECT id, contact, seq, sent_at, received_at FROM messages WHERE `+where+` AND direction = 1 AND seq > 0`, arg)
	if err != nil {
		return fmt.Errorf("storage: keeping the sequence numbers of deleted messages: %w", err)
	}
	return nil
}
