package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Direction of a message. The values are stored: never renumber them.
type Direction uint8

const (
	Incoming Direction = 1
	Outgoing Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Incoming:
		return "in"
	case Outgoing:
		return "out"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// DeliveryState of a message. Outgoing: Pending → Sent (relay accepted) → Delivered →
// Read, or Failed. Incoming: Delivered until read, or Undecryptable. The values are
// stored and the names printed (chat's JSON output): this is the one definition, which
// package chat re-exports; never renumber them.
type DeliveryState uint8

const (
	Pending       DeliveryState = 0 // committed, waiting in the outbox
	Sent          DeliveryState = 1 // the relay accepted it (durable in the peer's queue)
	Delivered     DeliveryState = 2 // the peer's device decrypted it (encrypted receipt)
	Read          DeliveryState = 3 // the peer read it (encrypted receipt)
	Failed        DeliveryState = 4 // the relay refused it; Reason says why
	Undecryptable DeliveryState = 5 // incoming message that could not be read; Reason says why
)

func (s DeliveryState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Sent:
		return "sent"
	case Delivered:
		return "delivered"
	case Read:
		return "read"
	case Failed:
		return "failed"
	case Undecryptable:
		return "undecryptable"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Message is one message of a conversation. Body is plain in memory, sealed at rest.
type Message struct {
	ID         int64
	Contact    string
	Direction  Direction
	Body       []byte
	SentAt     time.Time
	ReceivedAt time.Time
	State      DeliveryState
	Reason     string // why Failed / Undecryptable
	ClientID   string // sender-chosen id (dedup at the relay, receipts)
	RelayID    string // the relay's queue id of an incoming message
	// Seq is the sender's per-conversation sequence number (chat/PAYLOAD.md §3); 0
	// when the payload had none. Outgoing: CommitSend records it as the contact's last.
	Seq uint64
	// Order is the message's place in its conversation, assigned on insert (CommitSend
	// and CommitReceive set it in the Message they were given; setting it does nothing):
	// History and Messages return messages by it. An incoming message with a Seq lower
	// than messages that arrived before it is placed before them.
	Order int64
	// SenderCardID is the card an incoming message came from ("" before schema 5).
	SenderCardID string
	// KeyPending marks an incoming message from a changed identity key the user has not
	// accepted: it is shown only behind the key-change warning. Accepting that card
	// (UpdateContact with CardID = SenderCardID) clears it.
	KeyPending bool
	// HasAttachment: the message has an attachment row. Only the settling writes set
	// it (SettleOutbox, SettleOutboxAccepted, SettleRefused), so that the state change
	// they report can carry the file without a read of its own; false elsewhere.
	HasAttachment bool
}

// Cursor pages through a conversation. The zero Cursor starts at the newest message;
// BeforeID continues with the messages placed before that one (Message.Order).
type Cursor struct{ BeforeID int64 }

// MaxPage bounds the n of Messages.
const MaxPage = 1000

func msgRow(id int64) string { return strconv.FormatInt(id, 10) }

const messageCols = "id, contact, direction, body_sealed, sent_at, received_at, state, reason, client_id, relay_id, seq, ord, sender_card_id, key_pending"

func (c *Client) scanMessage(s interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var sealed []byte
	var sent, recv int64
	if err := s.Scan(&m.ID, &m.Contact, &m.Direction, &sealed, &sent, &recv, &m.State, &m.Reason, &m.ClientID, &m.RelayID, &m.Seq, &m.Order, &m.SenderCardID, &m.KeyPending); err != nil {
		return Message{}, err
	}
	m.SentAt, m.ReceivedAt = goTime(sent), goTime(recv)
	var err error
	if m.Body, err = c.keys.open("messages", "body", msgRow(m.ID), sealed); err != nil {
		return Message{ID: m.ID}, err // the id names the damaged row
	}
	return m, nil
}

// Messages returns up to n messages of a conversation older than cur, newest first, and
// the cursor of the next (older) page, which is zero when there is none. n <= 0 means 50.
func (c *Client) Messages(ctx context.Context, contact string, cur Cursor, n int) ([]Message, Cursor, error) {
	if n <= 0 {
		n = 50
	}
	if n > MaxPage {
		n = MaxPage
	}
	before := int64(1<<63 - 1)
	if cur.BeforeID > 0 {
		// The cursor's message may be gone (deleted): then continue below the newest
		// message that arrived before it.
		err := c.db.queryRow(ctx, `SELECT coalesce((SELECT ord FROM messages WHERE id = ?1 AND contact = ?2),
			(SELECT max(ord) + 1 FROM messages WHERE contact = ?2 AND id < ?1), -9223372036854775808)`, cur.BeforeID, contact).Scan(&before)
		if err != nil {
			return nil, Cursor{}, fmt.Errorf("storage: messages of %q: %w", contact, err)
		}
	}
	rows, err := c.db.query(ctx, "SELECT "+messageCols+
		" FROM messages WHERE contact = ? AND ord < ? ORDER BY ord DESC LIMIT ?", contact, before, n+1)
	if err != nil {
		return nil, Cursor{}, fmt.Errorf("storage: messages of %q: %w", contact, err)
	}
	defer rows.Close()
	out := make([]Message, 0, n)
	more := false
	for rows.Next() {
		if len(out) == n {
			more = true
			break
		}
		m, err := c.scanMessage(rows)
		if errors.Is(err, ErrCorrupt) {
			c.skipCorrupt("message", msgRow(m.ID), err)
			continue
		}
		if err != nil {
			return nil, Cursor{}, fmt.Errorf("storage: messages of %q: %w", contact, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, Cursor{}, fmt.Errorf("storage: messages of %q: %w", contact, err)
	}
	var next Cursor
	if more {
		next.BeforeID = out[len(out)-1].ID
	}
	return out, next, nil
}

// MaxUnreadWindow bounds the messages MessagesFromUnread returns.
const MaxUnreadWindow = 10000

// MessagesFromUnread returns the messages of a conversation from its first unread one to
// the newest, newest first: every message placed (Message.Order) at or after the oldest
// of its unread newest incoming messages (unread says how many; the unread messages are
// always the newest incoming ones). At most MaxUnreadWindow are returned, the newest
// ones; Messages with a cursor at the oldest returned goes on from there. One
// statement, whatever unread is: a reader opening a conversation at its first unread
// message does not page back to it. unread <= 0 returns nothing.
func (c *Client) MessagesFromUnread(ctx context.Context, contact string, unread int) ([]Message, error) {
	if unread <= 0 {
		return nil, nil
	}
	rows, err := c.db.query(ctx, "SELECT "+messageCols+` FROM messages WHERE contact = ?1 AND ord >= (
			SELECT min(ord) FROM (SELECT ord FROM messages WHERE contact = ?1 AND direction = 1 ORDER BY id DESC LIMIT ?2))
		ORDER BY ord DESC LIMIT ?3`, contact, unread, MaxUnreadWindow)
	if err != nil {
		return nil, fmt.Errorf("storage: unread window of %q: %w", contact, err)
	}
	out, err := c.scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("storage: unread window of %q: %w", contact, err)
	}
	return out, nil
}

// UnreadMessages returns a contact's unread incoming messages, newest first: the newest
// ones, as many as the unread count, and any older one never marked read (state
// Delivered: a placeholder filled by its resend after it was seen, replaceMessage;
// Contact's unread count includes it). One statement reads the count and the rows, so a
// message committed meanwhile cannot push an unread one out of the answer.
func (c *Client) UnreadMessages(ctx context.Context, contact string) ([]Message, error) {
	// Two indexed lookups: the newest rows (messages_by_contact) and those never marked
	// read (messages_unread), which are few.
	rows, err := c.db.query(ctx, "SELECT "+messageCols+` FROM messages WHERE id IN (
			SELECT id FROM (SELECT id FROM messages WHERE contact = ?1 AND direction = 1
				ORDER BY id DESC LIMIT (SELECT coalesce(max(unread), 0) FROM contacts WHERE name = ?1))
			UNION SELECT id FROM messages WHERE contact = ?1 AND direction = 1 AND state < 3)
		ORDER BY id DESC`, contact)
	if err != nil {
		return nil, fmt.Errorf("storage: unread messages of %q: %w", contact, err)
	}
	out, err := c.scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("storage: unread messages of %q: %w", contact, err)
	}
	return out, nil
}

// scanMessages reads every row of rows (and closes it), skipping a corrupt one as
// Messages does.
func (c *Client) scanMessages(rows *sql.Rows) ([]Message, error) {
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := c.scanMessage(rows)
		if errors.Is(err, ErrCorrupt) {
			c.skipCorrupt("message", msgRow(m.ID), err)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Message returns one message by id; ErrNotFound if unknown.
func (c *Client) Message(ctx context.Context, id int64) (Message, error) {
	return c.oneMessage(ctx, fmt.Sprintf("message %d", id), "id = ?", id)
}

// MessageByClientID returns the message with this client id, the outgoing one if both
// directions have it; ErrNotFound if none.
func (c *Client) MessageByClientID(ctx context.Context, clientID string) (Message, error) {
	if clientID == "" {
		return Message{}, fmt.Errorf("%w: empty client id", ErrNotFound)
	}
	return c.oneMessage(ctx, fmt.Sprintf("message with client id %q", clientID),
		"client_id = ? AND client_id <> '' ORDER BY direction DESC, id LIMIT 1", clientID)
}

// ReceivedByRelayID returns the incoming message committed from the relay delivery
// relayID (CommitReceive's ReceiveTx.RelayID); ErrNotFound if that delivery stored no
// message (a receipt, say) or is unknown.
func (c *Client) ReceivedByRelayID(ctx context.Context, relayID string) (Message, error) {
	if relayID == "" {
		return Message{}, fmt.Errorf("%w: empty relay id", ErrNotFound)
	}
	return c.oneMessage(ctx, fmt.Sprintf("message from relay delivery %q", relayID),
		"relay_id = ? AND relay_id <> '' AND direction = 1 LIMIT 1", relayID)
}

// oneMessage returns the first message "SELECT … FROM messages WHERE where" finds;
// ErrNotFound, naming what, if none.
func (c *Client) oneMessage(ctx context.Context, what, where string, args ...any) (Message, error) {
	m, err := c.scanMessage(c.db.queryRow(ctx, "SELECT "+messageCols+" FROM messages WHERE "+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	if err != nil {
		return Message{}, fmt.Errorf("storage: read %s: %w", what, err)
	}
	return m, nil
}

// SetDeliveryState sets a message's state and reason; ErrNotFound if unknown.
func (c *Client) SetDeliveryState(ctx context.Context, id int64, st DeliveryState, reason string) error {
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE messages SET state = ?, reason = ? WHERE id = ?", st, reason, id)
		if err != nil {
			return fmt.Errorf("storage: set state of message %d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: message %d", ErrNotFound, id)
		}
		return nil
	})
}

// MarkRead marks every incoming message of a contact read and zeroes its unread count.
func (c *Client) MarkRead(ctx context.Context, contact string) error {
	_, err := c.MarkReadClientIDs(ctx, contact)
	return err
}

// MarkReadClientIDs is MarkRead returning the client ids of the messages it marked (for
// read receipts), oldest first.
func (c *Client) MarkReadClientIDs(ctx context.Context, contact string) ([]string, error) {
	return c.MarkReadThrough(ctx, contact, 0)
}

// MarkReadThrough is MarkReadClientIDs for the incoming messages with an id up to and
// including through (0: all): later ones stay unread, and the unread count drops to
// the number of them (unread messages are always the newest incoming ones).
func (c *Client) MarkReadThrough(ctx context.Context, contact string, through int64) ([]string, error) {
	if through <= 0 {
		through = math.MaxInt64
	}
	var ids []string
	err := c.db.write(ctx, func(tx *txn) error {
		rows, err := tx.query(ctx, `UPDATE messages SET state = 3 WHERE contact = ? AND direction = 1 AND state < 3 AND id <= ?
			RETURNING id, client_id`, contact, through)
		if err != nil {
			return err
		}
		type row struct {
			id  int64
			cid string
		}
		var got []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.cid); err != nil {
				rows.Close()
				return err
			}
			got = append(got, r)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		sort.Slice(got, func(i, j int) bool { return got[i].id < got[j].id }) // RETURNING order is unspecified
		ids = ids[:0]
		for _, r := range got {
			if r.cid != "" {
				ids = append(ids, r.cid)
			}
		}
		if through == math.MaxInt64 {
			_, err = tx.exec(ctx, "UPDATE contacts SET unread = 0 WHERE name = ?", contact)
		} else {
			_, err = tx.exec(ctx, `UPDATE contacts SET unread = min(unread,
				(SELECT count(*) FROM messages WHERE contact = ? AND direction = 1 AND id > ?)) WHERE name = ?`,
				contact, through, contact)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: mark %q read: %w", contact, err)
	}
	return ids, nil
}

// ---- outbox ------------------------------------------------------------------------

// OutboxItem is a sealed wire message waiting for the relay to accept it. Payload is
// plain in memory, sealed at rest. MessageID is 0 for receipts.
type OutboxItem struct {
	Seq       int64
	ClientID  string
	To        string
	Payload   []byte
	MessageID int64
	CreatedAt time.Time
	// AwaitingSession marks a message queued before any session with To existed (and
	// no relay to start one): Payload is then the plain application payload, which
	// CommitAwaited replaces by its ciphertext once the handshake has run.
	AwaitingSession bool
}

// Outbox returns the pending sends in the order they were committed.
func (c *Client) Outbox(ctx context.Context) ([]OutboxItem, error) {
	rows, err := c.db.query(ctx, "SELECT seq, client_id, recipient, payload_sealed, message_id, created_at, awaiting_session FROM outbox ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("storage: read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var sealed []byte
		var created int64
		if err := rows.Scan(&it.Seq, &it.ClientID, &it.To, &sealed, &it.MessageID, &created, &it.AwaitingSession); err != nil {
			return nil, fmt.Errorf("storage: read outbox: %w", err)
		}
		it.CreatedAt = goTime(created)
		if it.Payload, err = c.keys.open("outbox", "payload", it.ClientID, sealed); err != nil {
			c.skipCorrupt("outbox item", it.ClientID, err)
			continue
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: read outbox: %w", err)
	}
	return out, nil
}

// RemoveOutbox removes an item once the relay accepted it and, in the same transaction,
// moves its message from Pending to Sent. Removing an absent item is not an error (the
// relay may confirm twice).
func (c *Client) RemoveOutbox(ctx context.Context, clientID string) error {
	_, _, err := c.SettleOutbox(ctx, clientID, "")
	return err
}

// SettleOutbox removes an item the relay has answered for good and, in the same
// transaction, moves its message on: from Pending to Sent when failure is "" (never
// backwards: a receipt may have come first), to Failed with failure as the reason
// otherwise. It returns the message as it then stands, read by the same statement that
// moved it, so the caller can report it without reading it again; ok is false when
// the item was not there (the relay may confirm twice) or carried no message (a
// receipt).
func (c *Client) SettleOutbox(ctx context.Context, clientID, failure string) (m Message, ok bool, err error) {
	return c.settleOutbox(ctx, clientID, failure, 0, nil)
}

// SettleRefused is SettleOutbox for an item the relay refused for good (failure: why,
// not ""), that commits notice, when not nil, in the same transaction: the withdrawn
// notice of the item's message (chat/PAYLOAD.md §4.6), an outbox item with no message
// and the ratchet state that encrypted it. The notice is committed exactly when ok is
// true — the item was there and its message was marked Failed — and otherwise nothing
// of it is, so a crash leaves either the refused item in the outbox or its settlement
// with its notice, never one without the other. ErrStaleSession (nothing changed) if
// the notice's session moved on meanwhile.
func (c *Client) SettleRefused(ctx context.Context, clientID, failure string, notice *SendTx) (m Message, ok bool, err error) {
	if failure == "" {
		return Message{}, false, fmt.Errorf("%w: a refusal without a reason", ErrInvalid)
	}
	if notice != nil && notice.Message != nil {
		return Message{}, false, fmt.Errorf("%w: a withdrawn notice is no message", ErrInvalid)
	}
	return c.settleOutbox(ctx, clientID, failure, 0, notice)
}

// SettleOutboxAccepted is SettleOutbox for an item the relay accepted under relayMsgID,
// which is recorded for its message (a retry request names it: chat/PAYLOAD.md §4.3;
// SentByRelayMsgID finds it).
func (c *Client) SettleOutboxAccepted(ctx context.Context, clientID string, relayMsgID int64) (m Message, ok bool, err error) {
	return c.settleOutbox(ctx, clientID, "", relayMsgID, nil)
}

func (c *Client) settleOutbox(ctx context.Context, clientID, failure string, relayMsgID int64, notice *SendTx) (m Message, ok bool, err error) {
	var sealedNotice sealedSend
	if notice != nil {
		if sealedNotice, err = c.sealSend(*notice); err != nil {
			return Message{}, false, fmt.Errorf("storage: remove %q from outbox: %w", clientID, err)
		}
	}
	var sealedBody []byte
	var sent, recv int64
	err = c.db.write(ctx, func(tx *txn) error {
		ok = false
		var msgID int64
		err := tx.scan(ctx, "DELETE FROM outbox WHERE client_id = ? RETURNING message_id", []any{clientID}, &msgID)
		if errors.Is(err, sql.ErrNoRows) || err == nil && msgID == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		q := "UPDATE messages SET state = iif(state = ?, ?, state) WHERE id = ? RETURNING " + messageCols
		args := []any{Pending, Sent, msgID}
		if failure != "" {
			q = "UPDATE messages SET state = ?, reason = ? WHERE id = ? RETURNING " + messageCols
			args = []any{Failed, failure, msgID}
		}
		err = tx.scan(ctx, q, args, &m.ID, &m.Contact, &m.Direction, &sealedBody, &sent, &recv, &m.State, &m.Reason, &m.ClientID, &m.RelayID, &m.Seq, &m.Order, &m.SenderCardID, &m.KeyPending)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the message was deleted with its contact
		}
		if err == nil && relayMsgID > 0 {
			err = recordRelayMsgID(ctx, tx, msgID, relayMsgID)
		}
		if err == nil {
			err = tx.scan(ctx, "SELECT EXISTS (SELECT 1 FROM attachments WHERE client_id = ?)", []any{m.ClientID}, &m.HasAttachment)
		}
		if err == nil && notice != nil {
			_, err = c.sendTx(ctx, tx, sealedNotice)
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return Message{}, false, fmt.Errorf("storage: remove %q from outbox: %w", clientID, err)
	}
	if !ok {
		return Message{}, false, nil
	}
	m.SentAt, m.ReceivedAt = goTime(sent), goTime(recv)
	if m.Body, err = c.keys.open("messages", "body", msgRow(m.ID), sealedBody); err != nil {
		return Message{}, false, err
	}
	return m, true, nil
}

// CommitAwaited commits the ciphertext of an item that was awaiting its session, in one
// transaction with the session state that encrypted it: the item keeps its client id,
// message and place in the queue, and is no longer awaiting. ErrNotFound if no item
// with that client id awaits a session.
func (c *Client) CommitAwaited(ctx context.Context, s Session, clientID string, payload []byte) error {
	sessSealed, err := c.sealSession(s)
	if err != nil {
		return err
	}
	sealed, err := c.keys.seal("outbox", "payload", clientID, payload)
	if err != nil {
		return err
	}
	err = c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, "UPDATE outbox SET payload_sealed = ?, awaiting_session = 0 WHERE client_id = ? AND awaiting_session = 1", sealed, clientID)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: outbox item %q awaiting a session", ErrNotFound, clientID)
		}
		return putSession(ctx, tx, s, sessSealed)
	})
	if err != nil {
		return fmt.Errorf("storage: commit awaited send %q: %w", clientID, err)
	}
	return nil
}

// ---- the two crash-safe commits ----------------------------------------------------

// SendTx is everything one send changes: the advanced ratchet state, the message (nil
// for a receipt) and the outbox item carrying the wire bytes.
type SendTx struct {
	Session Session  // skipped when Session.ID is ""
	Message *Message // ID is assigned; ClientID defaults to Outbox.ClientID
	Outbox  OutboxItem
	// ToCardID, with a Message, records the peer card it was encrypted for (a resend
	// goes only to that card: SentInfo).
	ToCardID string
}

// CommitSend commits a send in one transaction and returns the new message's id (0 for
// a receipt). ErrExists if the outbox already has the client id; nothing changes then.
func (c *Client) CommitSend(ctx context.Context, s SendTx) (int64, error) {
	sealed, err := c.sealSend(s)
	if err != nil {
		return 0, err
	}
	var msgID int64
	err = c.db.write(ctx, func(tx *txn) error {
		var err error
		msgID, err = c.sendTx(ctx, tx, sealed)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: commit send: %w", err)
	}
	return msgID, nil
}

// sealedSend is a SendTx with its session state and outbox payload sealed, ready to be
// written in a transaction (sendTx).
type sealedSend struct {
	SendTx
	session []byte // nil when SendTx.Session.ID is ""
	payload []byte
}

func (c *Client) sealSend(s SendTx) (sealedSend, error) {
	if s.Outbox.ClientID == "" {
		return sealedSend{}, fmt.Errorf("%w: outbox item without client id", ErrInvalid)
	}
	out := sealedSend{SendTx: s}
	if s.Session.ID != "" {
		var err error
		if out.session, err = c.sealSession(s.Session); err != nil {
			return sealedSend{}, err
		}
	}
	var err error
	if out.payload, err = c.keys.seal("outbox", "payload", s.Outbox.ClientID, s.Outbox.Payload); err != nil {
		return sealedSend{}, err
	}
	return out, nil
}

// sendTx writes a sealed send in tx and returns the new message's id (0 for a receipt).
// ErrExists if the outbox already has the client id.
func (c *Client) sendTx(ctx context.Context, tx *txn, s sealedSend) (int64, error) {
	var n int
	if err := tx.scan(ctx, "SELECT count(*) FROM outbox WHERE client_id = ?", []any{s.Outbox.ClientID}, &n); err != nil {
		return 0, err
	}
	if n > 0 {
		return 0, fmt.Errorf("%w: outbox item %q", ErrExists, s.Outbox.ClientID)
	}
	if s.session != nil {
		if err := putSession(ctx, tx, s.Session, s.session); err != nil {
			return 0, err
		}
	}
	var msgID int64
	if s.Message != nil {
		m := *s.Message
		m.Direction = Outgoing
		if m.ClientID == "" {
			m.ClientID = s.Outbox.ClientID
		}
		var err error
		if msgID, s.Message.Order, err = c.insertMessage(ctx, tx, m); err != nil {
			return 0, err
		}
		if s.ToCardID != "" {
			if err := recordToCard(ctx, tx, msgID, s.ToCardID); err != nil {
				return 0, err
			}
		}
		// Writing to a contact is consent to receipts going to them.
		if _, err := tx.exec(ctx, "UPDATE contacts SET consented = 1 WHERE name = ? AND consented = 0", m.Contact); err != nil {
			return 0, err
		}
	}
	created := s.Outbox.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.exec(ctx, "INSERT INTO outbox (client_id, recipient, payload_sealed, message_id, created_at, awaiting_session) VALUES (?, ?, ?, ?, ?, ?)",
		s.Outbox.ClientID, s.Outbox.To, s.payload, msgID, dbTime(created), s.Outbox.AwaitingSession)
	return msgID, err
}

// highestMessageID is an SQL expression: the highest message id ever given, deleted
// messages' included. Ids only grow: a new message gets one more.
const highestMessageID = `max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
	coalesce((SELECT max(id) FROM messages), 0))`

// insertMessage allocates the message id first, so the body can be sealed to it, then
// inserts the row and updates the contact's activity (and unread count for incoming).
func (c *Client) insertMessage(ctx context.Context, tx *txn, m Message) (id, ord int64, err error) {
	if m.Direction != Incoming && m.Direction != Outgoing {
		return 0, 0, fmt.Errorf("%w: message direction %d", ErrInvalid, m.Direction)
	}
	if err := tx.scan(ctx, "SELECT "+highestMessageID+" + 1", nil, &id); err != nil {
		return 0, 0, err
	}
	at := m.ReceivedAt
	if m.Direction == Outgoing || at.IsZero() {
		at = m.SentAt
	}
	if at.IsZero() {
		at = time.Now()
	}
	unread := 0
	if m.Direction == Incoming && m.State < Read || m.State == Undecryptable {
		unread = 1
	}
	n, err := tx.execN(ctx, "UPDATE contacts SET unread = unread + ?, last_message_at = max(last_message_at, ?) WHERE name = ?",
		unread, dbTime(at), m.Contact)
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("%w: contact %q (add the contact before its messages)", ErrNotFound, m.Contact)
	}
	body, err := c.keys.seal("messages", "body", msgRow(id), m.Body)
	if err != nil {
		return 0, 0, err
	}
	if m.Seq > math.MaxInt64 {
		return 0, 0, fmt.Errorf("%w: sequence number %d", ErrInvalid, m.Seq)
	}
	ord, err = placeMessage(ctx, tx, m)
	if err != nil {
		return 0, 0, err
	}
	if m.Direction == Outgoing && m.Seq > 0 {
		if _, err := tx.exec(ctx, "UPDATE contacts SET send_seq = max(send_seq, ?) WHERE name = ?", int64(m.Seq), m.Contact); err != nil {
			return 0, 0, err
		}
	}
	_, err = tx.exec(ctx, `INSERT INTO messages (id, contact, direction, body_sealed, sent_at, received_at, state, reason, client_id, relay_id, seq, ord, sender_card_id, key_pending)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, m.Contact, m.Direction, body, dbTime(m.SentAt), dbTime(m.ReceivedAt), m.State, m.Reason, m.ClientID, m.RelayID, int64(m.Seq), ord, m.SenderCardID, boolInt(m.KeyPending))
	if err != nil {
		return 0, 0, fmt.Errorf("insert message for %q: %w", m.Contact, err)
	}
	return id, ord, nil
}

// ordGap is the distance between the places of two messages appended in turn: room for
// 20 late messages in a row between them before the conversation's tail is shifted.
const ordGap = 1 << 20

// placeMessage returns the place (ord) of a new message in its conversation: after every
// other one, except an incoming message with a sequence number whose sender's later
// messages (a higher seq, sent no earlier by the sender's clock) arrived first — it goes
// just before the first of them. The clock check keeps a sender whose counter started
// again (a new installation) from sending its new messages back into old history.
func placeMessage(ctx context.Context, tx *txn, m Message) (int64, error) {
	var last int64
	if err := tx.scan(ctx, "SELECT coalesce(max(ord), 0) FROM messages WHERE contact = ?", []any{m.Contact}, &last); err != nil {
		return 0, err
	}
	if m.Direction != Incoming || m.Seq == 0 {
		return last + ordGap, nil
	}
	var next sql.NullInt64
	if err := tx.scan(ctx, `SELECT min(ord) FROM messages WHERE contact = ? AND direction = 1 AND seq > ? AND seq > 0 AND sent_at >= ?`,
		[]any{m.Contact, int64(m.Seq), dbTime(m.SentAt)}, &next); err != nil {
		return 0, err
	}
	if !next.Valid {
		return last + ordGap, nil
	}
	var prev int64
	if err := tx.scan(ctx, "SELECT coalesce(max(ord), ?) FROM messages WHERE contact = ? AND ord < ?",
		[]any{next.Int64 - 2*ordGap, m.Contact, next.Int64}, &prev); err != nil {
		return 0, err
	}
	if next.Int64-prev < 2 { // no room left: move the tail up
		if _, err := tx.exec(ctx, "UPDATE messages SET ord = ord + ? WHERE contact = ? AND ord >= ?", ordGap, m.Contact, next.Int64); err != nil {
			return 0, err
		}
		next.Int64 += ordGap
	}
	return prev + (next.Int64-prev)/2, nil
}

// NextSendSeq returns the sequence number the next message to contact carries: one more
// than the last one committed (CommitSend with Message.Seq).
func (c *Client) NextSendSeq(ctx context.Context, contact string) (uint64, error) {
	var last int64
	err := c.db.queryRow(ctx, "SELECT send_seq FROM contacts WHERE name = ?", contact).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: contact %q", ErrNotFound, contact)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: send sequence of %q: %w", contact, err)
	}
	return uint64(last) + 1, nil
}

// ReceiveTx is everything one receive changes.
type ReceiveTx struct {
	Session         *Session         // new ratchet state (nil: none, e.g. undecryptable)
	Message         *Message         // the decrypted message (nil for a receipt); ID is assigned
	ConsumedPreKeys []PreKeyRef      // one-time prekeys the initial message used: deleted
	RelayID         string           // the relay's id of the message: ErrDuplicate if seen
	DeliveryUpdates []DeliveryUpdate // receipts for our outgoing messages, by client id
	// Replaces, when not 0, is the id of the placeholder of an unreadable message from
	// Message.Contact that Message (its resend) takes the place of, keeping the id and
	// place; ErrNotFound if there is no such placeholder.
	Replaces int64

	// FirstMessage, for a first message that created Session, is recorded in the same
	// transaction; ErrReplayedFirstMessage (nothing changed) if it was recorded before.
	FirstMessage *FirstMessage
	// SkippedChains are the ratchet keys of the chains Session holds skipped message
	// keys for; those not recorded yet are recorded as first seen at Session.UpdatedAt
	// (see ExpiredSkippedChains).
	SkippedChains [][]byte
	// Decrypted is the ratchet header (chain key and number) of the message handled:
	// recorded, so that a copy of it is known as a replay (WasDecrypted).
	Decrypted *HeaderRef

	// Additions (optional).
	Card       *Card    // upserted first (the card of a first-time sender)
	NewContact *Contact // added when no contact of that name exists (Name, CardID, AddedAt, Consented)
	From       string   // sender's contact name: DeliveryUpdates only touch messages sent to
	// them; defaults to Message.Contact. Empty with no Message: any outgoing message.
	// Attachment is the message's attachment row (an incoming attachment), stored with it.
	Attachment *Attachment
}

// HeaderRef names a ratchet message by its header: the sender's ratchet public key
// (its chain) and its number in that chain. Both are public.
type HeaderRef struct {
	DH []byte
	N  uint32
}

// MaxDecryptedHeaders is how many decrypted message headers a profile remembers
// (about 60 bytes each): a copy of a message older than that, whose key is gone, can
// no longer be told from a late message and is shown as one.
const MaxDecryptedHeaders = 20000

var maxDecryptedHeaders = MaxDecryptedHeaders // tests lower it

// FirstMessage identifies an accepted first message: the prekeys it names and the
// initiator's ephemeral key. A copy of it is a replay, however many sessions later.
type FirstMessage struct {
	SignedPreKeyID uint32
	KEMKind        uint8
	KEMPreKeyID    uint32
	Ephemeral      []byte
}

// PreKeyRef names one of our prekeys.
type PreKeyRef struct {
	Kind uint8
	ID   uint32
}

// DeliveryUpdate moves an outgoing message, named by client id, to a later state. States
// only move forward (Sent < Delivered < Read); a Failed message may still become
// Delivered or Read.
type DeliveryUpdate struct {
	ClientID string
	State    DeliveryState
}

// CommitReceive commits a receive in one transaction: all of it, or (on any error)
// nothing. ErrDuplicate if RelayID was committed before. Returns the new message id, 0
// when there is no message.
func (c *Client) CommitReceive(ctx context.Context, r ReceiveTx) (int64, error) {
	p, err := c.prepareReceive(r)
	if err != nil {
		return 0, err
	}
	var msgID int64
	err = c.db.write(ctx, func(tx *txn) error {
		var err error
		msgID, err = c.receiveTx(ctx, tx, p)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: commit receive: %w", err)
	}
	return msgID, nil
}

// ReceiveResult is the outcome of one item of CommitReceiveBatch.
type ReceiveResult struct {
	MessageID int64 // 0 when there was no message or Err is set
	Err       error // this item was not applied (ErrDuplicate, ErrNotFound...)
}

// CommitReceiveBatch commits a burst of receives in one transaction: one fsync for all.
// Each item is still all-or-nothing on its own (a savepoint): an item that fails — a
// duplicate relay id, an unknown contact — is rolled back and reported in its result,
// and the others commit. The returned error is for the batch as a whole: nothing was
// committed. Items apply in order, so several states of one session are fine.
func (c *Client) CommitReceiveBatch(ctx context.Context, rs []ReceiveTx) ([]ReceiveResult, error) {
	res := make([]ReceiveResult, len(rs))
	prepared := make([]*preparedReceive, len(rs))
	for i, r := range rs {
		p, err := c.prepareReceive(r)
		if err != nil {
			return nil, err
		}
		prepared[i] = p
	}
	err := c.db.write(ctx, func(tx *txn) error {
		clear(res)
		for i, p := range prepared {
			if _, err := tx.exec(ctx, "SAVEPOINT receive_item"); err != nil {
				return err
			}
			id, err := c.receiveTx(ctx, tx, p)
			if err != nil {
				if !itemError(err) {
					return err // the database's trouble, not this item's: abort the batch
				}
				if _, rerr := tx.exec(ctx, "ROLLBACK TO receive_item"); rerr != nil {
					return rerr
				}
				res[i].Err = err
			} else {
				res[i].MessageID = id
			}
			if _, err := tx.exec(ctx, "RELEASE receive_item"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: commit receive batch of %d: %w", len(rs), err)
	}
	return res, nil
}

// itemError reports errors that belong to one receive (its data), not to the batch.
func itemError(err error) bool {
	return errors.Is(err, ErrDuplicate) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrStaleSession) || errors.Is(err, ErrReplayedFirstMessage) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrExists)
}

// preparedReceive is a ReceiveTx with its secrets sealed, ready for a transaction.
type preparedReceive struct {
	r          ReceiveTx
	sessSealed []byte
	from       string
	attSealed  []byte
}

func (c *Client) prepareReceive(r ReceiveTx) (*preparedReceive, error) {
	p := &preparedReceive{r: r, from: r.From}
	if r.Session != nil {
		var err error
		if p.sessSealed, err = c.sealSession(*r.Session); err != nil {
			return nil, err
		}
	}
	if p.from == "" && r.Message != nil {
		p.from = r.Message.Contact
	}
	if r.Attachment != nil {
		var err error
		if p.attSealed, err = c.sealAttachment(*r.Attachment); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// receiveTx applies one receive inside tx and returns the new message id.
func (c *Client) receiveTx(ctx context.Context, tx *txn, p *preparedReceive) (int64, error) {
	r, sessSealed, from := p.r, p.sessSealed, p.from
	var msgID int64
	if r.RelayID != "" {
		n, err := tx.execN(ctx, "INSERT INTO seen_relay_ids (relay_id, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
			r.RelayID, time.Now().UnixNano())
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, fmt.Errorf("%w: %s", ErrDuplicate, r.RelayID)
		}
	}
	if f := r.FirstMessage; f != nil {
		if len(f.Ephemeral) == 0 {
			return 0, fmt.Errorf("%w: first message without an ephemeral key", ErrInvalid)
		}
		n, err := tx.execN(ctx, "INSERT INTO first_messages (spk_id, kem_kind, kem_id, ephemeral, seen_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
			f.SignedPreKeyID, f.KEMKind, f.KEMPreKeyID, f.Ephemeral, time.Now().UnixNano())
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, fmt.Errorf("%w: signed prekey %d, KEM prekey %d/%d", ErrReplayedFirstMessage, f.SignedPreKeyID, f.KEMKind, f.KEMPreKeyID)
		}
	}
	if r.Card != nil {
		data := r.Card.Data
		if data == nil {
			data = []byte{}
		}
		if _, err := tx.exec(ctx, `INSERT INTO cards (id, name, data, first_seen, verified, superseded) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, r.Card.ID, r.Card.Name, data, dbTime(r.Card.FirstSeen),
			boolInt(r.Card.Verified), boolInt(r.Card.Superseded)); err != nil {
			return 0, err
		}
	}
	if r.NewContact != nil {
		var n int
		if err := tx.scan(ctx, "SELECT count(*) FROM contacts WHERE name = ?", []any{r.NewContact.Name}, &n); err != nil {
			return 0, err
		}
		if n == 0 {
			if err := addContact(ctx, tx, r.NewContact.Name, r.NewContact.CardID, r.NewContact.AddedAt); err != nil {
				return 0, err
			}
			if !r.NewContact.Consented {
				if _, err := tx.exec(ctx, "UPDATE contacts SET consented = 0 WHERE name = ?", r.NewContact.Name); err != nil {
					return 0, err
				}
			}
		}
	}
	if sessSealed != nil {
		if err := putSession(ctx, tx, *r.Session, sessSealed); err != nil {
			return 0, err
		}
	}
	if r.Session != nil {
		for _, dh := range r.SkippedChains {
			if _, err := tx.exec(ctx, "INSERT INTO skipped_chains (session_id, dh, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
				r.Session.ID, dh, dbTime(r.Session.UpdatedAt)); err != nil {
				return 0, err
			}
		}
	}
	if h := r.Decrypted; h != nil {
		if len(h.DH) == 0 {
			return 0, fmt.Errorf("%w: decrypted header without a ratchet key", ErrInvalid)
		}
		if _, err := tx.exec(ctx, "INSERT INTO decrypted_headers (dh, n) VALUES (?, ?) ON CONFLICT DO NOTHING", h.DH, h.N); err != nil {
			return 0, err
		}
		// Rows are appended (rowid = max + 1): the oldest go beyond the bound.
		if _, err := tx.exec(ctx, "DELETE FROM decrypted_headers WHERE rowid <= (SELECT max(rowid) FROM decrypted_headers) - ?", maxDecryptedHeaders); err != nil {
			return 0, err
		}
	}
	for _, k := range r.ConsumedPreKeys {
		if _, err := tx.exec(ctx, "DELETE FROM prekeys WHERE kind = ? AND id = ?", k.Kind, k.ID); err != nil {
			return 0, err
		}
	}
	if r.Message != nil {
		m := *r.Message
		m.Direction = Incoming
		if m.RelayID == "" {
			m.RelayID = r.RelayID
		}
		if r.Replaces != 0 {
			if err := c.replaceMessage(ctx, tx, r.Replaces, m); err != nil {
				return 0, err
			}
			msgID = r.Replaces
			if err := tx.scan(ctx, "SELECT ord FROM messages WHERE id = ?", []any{msgID}, &r.Message.Order); err != nil {
				return 0, err
			}
		} else {
			var err error
			if msgID, r.Message.Order, err = c.insertMessage(ctx, tx, m); err != nil {
				return 0, err
			}
		}
	}
	if r.Attachment != nil {
		if err := putAttachment(ctx, tx, *r.Attachment, p.attSealed); err != nil {
			return 0, err
		}
	}
	for _, u := range r.DeliveryUpdates {
		if u.State != Sent && u.State != Delivered && u.State != Read {
			return 0, fmt.Errorf("%w: receipt state %d", ErrInvalid, u.State)
		}
		q := "UPDATE messages SET state = ?1, reason = '' WHERE client_id = ?2 AND direction = 2 AND (state < ?1 OR state = 4)"
		args := []any{u.State, u.ClientID}
		if from != "" {
			q += " AND contact = ?3"
			args = append(args, from)
		}
		if _, err := tx.exec(ctx, q, args...); err != nil {
			return 0, err
		}
	}
	return msgID, nil
}

// SeenRelayID reports whether a relay message id was committed by CommitReceive.
func (c *Client) SeenRelayID(ctx context.Context, relayID string) (bool, error) {
	var n int
	if err := c.db.queryRow(ctx, "SELECT count(*) FROM seen_relay_ids WHERE relay_id = ?", relayID).Scan(&n); err != nil {
		return false, fmt.Errorf("storage: look up relay id: %w", err)
	}
	return n > 0, nil
}

// ForgetRelayIDs drops duplicate-detection entries committed before t (the relay deletes
// a message once acked, so old ids cannot come back). Returns how many were dropped.
func (c *Client) ForgetRelayIDs(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := c.db.write(ctx, func(tx *txn) error {
		var err error
		n, err = tx.execN(ctx, "DELETE FROM seen_relay_ids WHERE seen_at < ?", dbTime(before))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: forget relay ids: %w", err)
	}
	return int(n), nil
}

// WasDecrypted reports whether the message with header h was recorded as handled by
// CommitReceive (among the newest MaxDecryptedHeaders).
func (c *Client) WasDecrypted(ctx context.Context, h HeaderRef) (bool, error) {
	var n int
	if err := c.db.queryRow(ctx, "SELECT count(*) FROM decrypted_headers WHERE dh = ? AND n = ?", h.DH, h.N).Scan(&n); err != nil {
		return false, fmt.Errorf("storage: look up a decrypted header: %w", err)
	}
	return n > 0, nil
}

// FirstMessageSeen reports whether a first message was recorded (accepted before).
func (c *Client) FirstMessageSeen(ctx context.Context, f FirstMessage) (bool, error) {
	var n int
	err := c.db.queryRow(ctx, "SELECT count(*) FROM first_messages WHERE spk_id = ? AND kem_kind = ? AND kem_id = ? AND ephemeral = ?",
		f.SignedPreKeyID, f.KEMKind, f.KEMPreKeyID, f.Ephemeral).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("storage: look up first message: %w", err)
	}
	return n > 0, nil
}

// ForgetFirstMessages drops the records of first messages to signed prekeys that are
// deleted: a copy of such a message cannot be read any more, so it needs no record.
func (c *Client) ForgetFirstMessages(ctx context.Context, signedPreKeyIDs []uint32) error {
	err := c.db.write(ctx, func(tx *txn) error {
		for _, id := range signedPreKeyIDs {
			if _, err := tx.exec(ctx, "DELETE FROM first_messages WHERE spk_id = ?", id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: forget first messages: %w", err)
	}
	return nil
}

// SkippedChain is a chain of skipped message keys of a session, by its ratchet key.
type SkippedChain struct {
	SessionID  string
	PeerCardID string
	DH         []byte
	FirstSeen  time.Time
}

// ExpiredSkippedChains lists the recorded chains of skipped keys first seen before
// before, in sessions that still exist (records of deleted sessions are dropped).
func (c *Client) ExpiredSkippedChains(ctx context.Context, before time.Time) ([]SkippedChain, error) {
	err := c.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, "DELETE FROM skipped_chains WHERE session_id NOT IN (SELECT id FROM sessions)")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: skipped chains: %w", err)
	}
	rows, err := c.db.query(ctx, `SELECT k.session_id, s.peer_card_id, k.dh, k.first_seen FROM skipped_chains k
		JOIN sessions s ON s.id = k.session_id WHERE k.first_seen < ? ORDER BY k.session_id, k.first_seen`, dbTime(before))
	if err != nil {
		return nil, fmt.Errorf("storage: skipped chains: %w", err)
	}
	defer rows.Close()
	var out []SkippedChain
	for rows.Next() {
		var k SkippedChain
		var seen int64
		if err := rows.Scan(&k.SessionID, &k.PeerCardID, &k.DH, &seen); err != nil {
			return nil, fmt.Errorf("storage: skipped chains: %w", err)
		}
		k.FirstSeen = goTime(seen)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: skipped chains: %w", err)
	}
	return out, nil
}

// ExpireSkippedChains commits s (its state without the chains' keys; a
// compare-and-swap like every session write) and forgets the chains' records, in one
// transaction.
func (c *Client) ExpireSkippedChains(ctx context.Context, s Session, dhs [][]byte) error {
	sealed, err := c.sealSession(s)
	if err != nil {
		return err
	}
	err = c.db.write(ctx, func(tx *txn) error {
		if err := putSession(ctx, tx, s, sealed); err != nil {
			return err
		}
		for _, dh := range dhs {
			if _, err := tx.exec(ctx, "DELETE FROM skipped_chains WHERE session_id = ? AND dh = ?", s.ID, dh); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: expire skipped keys: %w", err)
	}
	return nil
}

// SeqMark is where one incoming message stands in its sender's sequence (Message.Seq).
type SeqMark struct {
	ID         int64
	Seq        uint64
	SentAt     time.Time
	ReceivedAt time.Time
	// UnblocksBefore is how many times the user had unblocked the sender
	// (SetContactBlocked) when the message arrived, 0 if never; what the sender sent
	// while blocked never arrived. Unblocks with no message stored between them count
	// once: they end one hole.
	UnblocksBefore int
}

// IncomingSeqs returns the sequence marks of a contact's incoming messages that carry a
// sequence number (Seq > 0), in no particular order, including those deleted locally;
// the bodies are not read.
func (c *Client) IncomingSeqs(ctx context.Context, contact string) ([]SeqMark, error) {
	// Messages deleted locally keep their place (deleted_seqs): they are no gap. Ids
	// only grow, so a message arrived after each unblock point below its id.
	rows, err := c.db.query(ctx, `SELECT id, seq, sent_at, received_at,
			(SELECT count(*) FROM unblocks WHERE contact = ?1 AND after_id < messages.id)
		FROM messages WHERE contact = ?1 AND direction = 1 AND seq > 0
		UNION ALL SELECT id, seq, sent_at, received_at,
			(SELECT count(*) FROM unblocks WHERE contact = ?1 AND after_id < deleted_seqs.id)
		FROM deleted_seqs WHERE contact = ?1`, contact)
	if err != nil {
		return nil, fmt.Errorf("storage: sequence numbers of %q: %w", contact, err)
	}
	defer rows.Close()
	var out []SeqMark
	for rows.Next() {
		var m SeqMark
		var seq, sent, recv int64
		if err := rows.Scan(&m.ID, &seq, &sent, &recv, &m.UnblocksBefore); err != nil {
			return nil, fmt.Errorf("storage: sequence numbers of %q: %w", contact, err)
		}
		m.Seq, m.SentAt, m.ReceivedAt = uint64(seq), goTime(sent), goTime(recv)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: sequence numbers of %q: %w", contact, err)
	}
	return out, nil
}
