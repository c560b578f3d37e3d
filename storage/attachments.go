package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AttachmentState is where an attachment stands (schema version 11).
type AttachmentState int

const (
	AttachmentUploading  AttachmentState = 1 // outgoing: sealed, being uploaded
	AttachmentUploaded   AttachmentState = 2 // outgoing: committed on the relay; its message not yet queued
	AttachmentSent       AttachmentState = 3 // outgoing: its message is queued or beyond
	AttachmentAvailable  AttachmentState = 4 // incoming: not fetched yet
	AttachmentFetching   AttachmentState = 5 // incoming: download under way
	AttachmentDownloaded AttachmentState = 6 // incoming: verified and saved
	AttachmentFailed     AttachmentState = 7 // Reason says why
)

func (s AttachmentState) String() string {
	switch s {
	case AttachmentUploading:
		return "uploading"
	case AttachmentUploaded:
		return "uploaded"
	case AttachmentSent:
		return "sent"
	case AttachmentAvailable:
		return "available"
	case AttachmentFetching:
		return "downloading"
	case AttachmentDownloaded:
		return "downloaded"
	case AttachmentFailed:
		return "failed"
	}
	return fmt.Sprintf("attachment-state(%d)", int(s))
}

// Attachment is one attachment row. Meta is opaque to the store (the chat layer's
// encoding of key, digest, blob id, names and paths) and sealed at rest.
type Attachment struct {
	ClientID  string
	Contact   string
	Direction Direction
	State     AttachmentState
	DoneBytes int64 // uploaded or downloaded so far (progress)
	Meta      []byte
	// Reason is stored in the clear (so is everything but Meta): it must not name the
	// file or hold anything else Meta seals.
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (c *Client) sealAttachment(a Attachment) ([]byte, error) {
	if a.ClientID == "" || a.Contact == "" || (a.Direction != Incoming && a.Direction != Outgoing) {
		return nil, fmt.Errorf("%w: attachment needs a client id, a contact and a direction", ErrInvalid)
	}
	return c.keys.seal("attachments", "meta", a.ClientID, a.Meta)
}

func putAttachment(ctx context.Context, tx *txn, a Attachment, sealed []byte) error {
	_, err := tx.exec(ctx, `INSERT INTO attachments (client_id, contact, direction, state, done_bytes, meta_sealed, reason, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (client_id) DO UPDATE SET state = excluded.state, done_bytes = excluded.done_bytes,
			meta_sealed = excluded.meta_sealed, reason = excluded.reason, updated_at = excluded.updated_at`,
		a.ClientID, a.Contact, a.Direction, a.State, a.DoneBytes, sealed, a.Reason, dbTime(a.CreatedAt), dbTime(a.UpdatedAt))
	if err != nil {
		return fmt.Errorf("storage: put attachment: %w", err)
	}
	return nil
}

// PutAttachment records an attachment row. An outgoing row is inserted or replaced.
// An incoming row comes into being only with its message (when it is received), so it
// is only updated: once its message is deleted (DeleteMessage, ClearConversation,
// DeleteContact) it is ErrNotFound, and a download still running does not write the
// record of a file the user deleted back.
func (c *Client) PutAttachment(ctx context.Context, a Attachment) error {
	sealed, err := c.sealAttachment(a)
	if err != nil {
		return err
	}
	if a.Direction == Outgoing {
		return c.db.write(ctx, func(tx *txn) error { return putAttachment(ctx, tx, a, sealed) })
	}
	return c.db.write(ctx, func(tx *txn) error {
		n, err := tx.execN(ctx, `UPDATE attachments SET state = ?, done_bytes = ?, meta_sealed = ?, reason = ?, updated_at = ?
			WHERE client_id = ? AND direction = ?`,
			a.State, a.DoneBytes, sealed, a.Reason, dbTime(a.UpdatedAt), a.ClientID, a.Direction)
		if err != nil {
			return fmt.Errorf("storage: put attachment: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: attachment %s", ErrNotFound, a.ClientID)
		}
		return nil
	})
}

// SetAttachmentProgress records progress without rewriting the sealed meta.
func (c *Client) SetAttachmentProgress(ctx context.Context, clientID string, done int64, at time.Time) error {
	return c.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, "UPDATE attachments SET done_bytes = ?, updated_at = ? WHERE client_id = ?", done, dbTime(at), clientID)
		return err
	})
}

const attachmentCols = "client_id, contact, direction, state, done_bytes, meta_sealed, reason, created_at, updated_at"

func (c *Client) scanAttachment(s interface{ Scan(...any) error }) (Attachment, error) {
	var a Attachment
	var sealed []byte
	var created, updated int64
	if err := s.Scan(&a.ClientID, &a.Contact, &a.Direction, &a.State, &a.DoneBytes, &sealed, &a.Reason, &created, &updated); err != nil {
		return Attachment{}, err
	}
	a.CreatedAt, a.UpdatedAt = goTime(created), goTime(updated)
	var err error
	if a.Meta, err = c.keys.open("attachments", "meta", a.ClientID, sealed); err != nil {
		return Attachment{}, err
	}
	return a, nil
}

// Attachment returns the attachment of a message by its client id (ErrNotFound).
func (c *Client) Attachment(ctx context.Context, clientID string) (Attachment, error) {
	a, err := c.scanAttachment(c.db.queryRow(ctx, "SELECT "+attachmentCols+" FROM attachments WHERE client_id = ?", clientID))
	if errors.Is(err, sql.ErrNoRows) {
		return Attachment{}, fmt.Errorf("%w: attachment %s", ErrNotFound, clientID)
	}
	if err != nil {
		return Attachment{}, fmt.Errorf("storage: attachment: %w", err)
	}
	return a, nil
}

// AttachmentsChunk is how many client ids one statement of AttachmentsOf looks up: a
// page of a conversation (50 messages, or the UI's unread window) is one statement.
const AttachmentsChunk = 500

// AttachmentsOf returns the attachments of the messages with these client ids, keyed by
// client id; an id without one (a text message) is absent. It costs one statement per
// AttachmentsChunk ids, not one per message. The ids go in as one JSON array, so the
// statement is the same (and prepared once) whatever their number.
func (c *Client) AttachmentsOf(ctx context.Context, clientIDs []string) (map[string]Attachment, error) {
	out := make(map[string]Attachment)
	for len(clientIDs) > 0 {
		chunk := clientIDs[:min(len(clientIDs), AttachmentsChunk)]
		clientIDs = clientIDs[len(chunk):]
		ids, err := json.Marshal(chunk)
		if err != nil {
			return nil, fmt.Errorf("storage: attachments: %w", err)
		}
		rows, err := c.db.query(ctx, "SELECT "+attachmentCols+" FROM attachments WHERE client_id IN (SELECT value FROM json_each(?))", string(ids))
		if err != nil {
			return nil, fmt.Errorf("storage: attachments: %w", err)
		}
		if err := c.scanAttachments(rows, func(a Attachment) { out[a.ClientID] = a }); err != nil {
			return nil, fmt.Errorf("storage: attachments: %w", err)
		}
	}
	return out, nil
}

// IncomingAttachmentIDs lists the client ids of the attachments contact sent (every
// state); their sealed records are not opened.
func (c *Client) IncomingAttachmentIDs(ctx context.Context, contact string) ([]string, error) {
	rows, err := c.db.query(ctx, "SELECT client_id FROM attachments WHERE direction = 1 AND contact = ?", contact)
	if err != nil {
		return nil, fmt.Errorf("storage: attachments of %q: %w", contact, err)
	}
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("storage: attachments of %q: %w", contact, err)
		}
		out = append(out, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("storage: attachments of %q: %w", contact, err)
	}
	return out, nil
}

// AttachmentsIn lists the attachments in any of the states, oldest first.
func (c *Client) AttachmentsIn(ctx context.Context, states ...AttachmentState) ([]Attachment, error) {
	var out []Attachment
	for _, st := range states {
		rows, err := c.db.query(ctx, "SELECT "+attachmentCols+" FROM attachments WHERE state = ? ORDER BY created_at", st)
		if err != nil {
			return nil, fmt.Errorf("storage: attachments: %w", err)
		}
		if err := c.scanAttachments(rows, func(a Attachment) { out = append(out, a) }); err != nil {
			return nil, fmt.Errorf("storage: attachments: %w", err)
		}
	}
	return out, nil
}

// scanAttachments hands every row of rows to each, then closes rows.
func (c *Client) scanAttachments(rows *sql.Rows, each func(Attachment)) error {
	for rows.Next() {
		a, err := c.scanAttachment(rows)
		if err != nil {
			rows.Close()
			return err
		}
		each(a)
	}
	return errors.Join(rows.Err(), rows.Close())
}
