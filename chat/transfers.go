package chat

// Transfer events (issue 15): while an attachment is uploaded or downloaded the
// controller reports it on Events as TransferProgress — once per whole percent, and once
// at the end with the state it ended in — so that whoever shows the conversation (the
// UI, the owner API's subscribers) can draw "uploading 42%" whoever started the
// transfer: the UI itself, a `pfschat send-file` through the UI's socket, or an upload
// an earlier run left half done.

import (
	"context"
	"sync"
	"time"

	"pfschat/storage"
)

// Transfer is where one upload or download stands.
type Transfer struct {
	ClientID  string // the attachment's (Attachment.ClientID)
	MessageID int64  // its message; 0 while a file uploads (its message is written once the relay has it)
	Outgoing  bool
	FileName  string // as the sender named it (show it through SafeFileName)
	MediaType string
	Size      int64 // bytes of the file
	Done      int64 // bytes of the file transferred so far
	// State is AttachmentUploading or AttachmentFetching while it runs; at the end
	// AttachmentSent, AttachmentDownloaded, AttachmentFailed (Reason says why), or the
	// running state again when it stopped to resume later (a lost connection, a
	// cancelled context).
	State  AttachmentState
	Reason string
	Ended  bool // the last event of this run of the transfer
}

// Percent is Done of Size in whole percent (100 for an empty file).
func (t Transfer) Percent() int {
	if t.Size <= 0 {
		return 100
	}
	return int(min(t.Done, t.Size) * 100 / t.Size)
}

// transferReporter returns a Progress that passes every report on to progress and emits
// a TransferProgress event each time the whole percentage changes. Safe for concurrent
// use (chunks may be acknowledged on another goroutine).
func (c *Controller) transferReporter(contact string, t Transfer, progress Progress) Progress {
	var mu sync.Mutex
	last := -1
	return func(done, total int64) {
		if progress != nil {
			progress(done, total)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Done, t.Size = done, total
		if p := t.Percent(); p != last {
			last = p
			tt := t
			c.emit(Event{Kind: TransferProgress, Contact: contact, Transfer: &tt})
		}
	}
}

// watchTransfer wraps progress for the transfer of row (transferReporter) and returns
// the function that emits the transfer's last event (endTransfer): call it once the
// transfer returned.
func (c *Controller) watchTransfer(ctx context.Context, row storage.Attachment, messageID int64, progress Progress) (Progress, func()) {
	t, err := rowTransfer(row, messageID)
	if err != nil {
		return progress, func() {}
	}
	if !t.Outgoing {
		t.State = AttachmentFetching
	}
	return c.transferReporter(row.Contact, t, progress), func() { c.endTransfer(ctx, row.Contact, row.ClientID) }
}

// rowTransfer is the Transfer of an attachment row, read from its meta.
func rowTransfer(row storage.Attachment, messageID int64) (Transfer, error) {
	meta, err := readMeta(row)
	if err != nil {
		return Transfer{}, err
	}
	return Transfer{ClientID: row.ClientID, MessageID: messageID, Outgoing: row.Direction == storage.Outgoing,
		FileName: meta.FileName, MediaType: meta.MediaType, Size: meta.Size, Done: row.DoneBytes, State: row.State}, nil
}

// endTransfer emits the last TransferProgress event of a run of a transfer: the
// attachment as stored now, with its message when there is one.
func (c *Controller) endTransfer(ctx context.Context, contact, clientID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	row, err := c.store.Attachment(ctx, clientID)
	if err != nil {
		return
	}
	var msg *Message
	var id int64
	if r, err := c.store.MessageByClientID(ctx, clientID); err == nil {
		m := toMessage(r)
		c.fillAttachment(ctx, &m)
		msg, id = &m, m.ID
	}
	t, err := rowTransfer(row, id)
	if err != nil {
		return
	}
	t.Ended = true
	if meta, err := readMeta(row); err == nil {
		t.Reason = failureReason(row, meta)
	}
	c.emit(Event{Kind: TransferProgress, Contact: contact, Message: msg, Transfer: &t})
}
