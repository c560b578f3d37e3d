package chat

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// TestHistoryAttachments: History, HistoryFromUnread and Unread, which read a page's
// attachments together, give each message the attachment it has — the one fillAttachment
// finds for it alone — and none to the others (text messages, and a file whose record
// cannot be read), over a window of more messages than one read of the attachments takes.
func TestHistoryAttachments(t *testing.T) {
	ctx := t.Context()
	c := aliceKnowingBob(t)
	const read, unread = 100, storage.AttachmentsChunk + 100
	for i := range read + unread {
		st := storage.Read
		if i >= read {
			st = storage.Delivered
		}
		cid := fmt.Sprintf("in:bob/%d", i)
		tx := storage.ReceiveTx{Message: &storage.Message{Contact: "bob", Direction: storage.Incoming, Body: []byte(fmt.Sprint("msg ", i)), State: st, ClientID: cid}}
		if i%3 == 0 {
			meta, err := json.Marshal(attachmentMeta{Key: make([]byte, 32), Digest: make([]byte, 32), Size: int64(i), FileName: fmt.Sprintf("f%d.txt", i), MediaType: "text/plain"})
			if err != nil {
				t.Fatal(err)
			}
			if i == 300 {
				meta = []byte("not json") // a record that cannot be read: no file, as alone
			}
			tx.Attachment = &storage.Attachment{ClientID: cid, Contact: "bob", Direction: storage.Incoming, State: AttachmentAvailable,
				Meta: meta, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		}
		if _, err := c.store.CommitReceive(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, msgs []Message) {
		t.Helper()
		files := 0
		for _, m := range msgs {
			var i int
			if _, err := fmt.Sscanf(m.Text, "msg %d", &i); err != nil {
				t.Fatalf("%s: message %q", what, m.Text)
			}
			alone := m
			alone.Attachment = nil
			c.fillAttachment(ctx, &alone)
			if !reflect.DeepEqual(alone.Attachment, m.Attachment) {
				t.Fatalf("%s: %q has %+v, alone %+v", what, m.Text, m.Attachment, alone.Attachment)
			}
			switch {
			case i%3 != 0 || i == 300:
				if m.Attachment != nil {
					t.Fatalf("%s: %q has a file: %+v", what, m.Text, m.Attachment)
				}
			case m.Attachment == nil || m.Attachment.FileName != fmt.Sprintf("f%d.txt", i) || m.Attachment.Size != int64(i) ||
				m.Attachment.ClientID != fmt.Sprintf("in:bob/%d", i) || m.Attachment.State != AttachmentAvailable:
				t.Fatalf("%s: %q has %+v", what, m.Text, m.Attachment)
			default:
				files++
			}
		}
		if files == 0 || !strings.HasPrefix(msgs[0].Text, "msg ") {
			t.Fatalf("%s: no file among %d messages", what, len(msgs))
		}
	}
	page, err := c.History(ctx, "bob", 0, 50)
	if err != nil || len(page) != 50 {
		t.Fatalf("History: %d messages, %v", len(page), err)
	}
	check("History", page)
	window, _, err := c.HistoryFromUnread(ctx, "bob", unread, 50)
	if err != nil || len(window) != unread+50 {
		t.Fatalf("HistoryFromUnread: %d messages, %v", len(window), err)
	}
	check("HistoryFromUnread", window)
	all, err := c.Unread(ctx)
	if err != nil || len(all) != unread {
		t.Fatalf("Unread: %d messages, %v", len(all), err)
	}
	check("Unread", all)
}

// BenchmarkHistoryAttachments: a conversation opened at the first of 3,000 unread
// messages, every one a file: HistoryFromUnread (its attachments read together), and
// the same window's attachments filled together or one query per message (the code
// before).
func BenchmarkHistoryAttachments(b *testing.B) {
	ctx := b.Context()
	c := newUser(b, relaytest.Start(b), "alice").c
	if err := c.store.PutCard(ctx, storage.Card{ID: "card-bob", Name: "bob", Data: []byte("x"), FirstSeen: time.Now()}); err != nil {
		b.Fatal(err)
	}
	if err := c.store.AddContact(ctx, "bob", "card-bob", time.Now()); err != nil {
		b.Fatal(err)
	}
	const unread = 3000
	meta, err := json.Marshal(attachmentMeta{Key: make([]byte, 32), Digest: make([]byte, 32), Size: 1234, FileName: "f.txt", MediaType: "text/plain"})
	if err != nil {
		b.Fatal(err)
	}
	var batch []storage.ReceiveTx
	for i := range unread + 50 {
		st := storage.Delivered
		if i < 50 {
			st = storage.Read
		}
		cid := fmt.Sprintf("in:bob/%d", i)
		batch = append(batch, storage.ReceiveTx{
			Message:    &storage.Message{Contact: "bob", Direction: storage.Incoming, Body: []byte("msg"), State: st, ClientID: cid},
			Attachment: &storage.Attachment{ClientID: cid, Contact: "bob", Direction: storage.Incoming, State: AttachmentAvailable, Meta: meta, CreatedAt: time.Now(), UpdatedAt: time.Now()}})
		if len(batch) == 500 || i == unread+49 {
			if _, err := c.store.CommitReceiveBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	window, _, err := c.HistoryFromUnread(ctx, "bob", unread, 50)
	if err != nil || len(window) != unread+50 || window[0].Attachment == nil {
		b.Fatalf("%d messages, %v", len(window), err)
	}
	b.Run("HistoryFromUnread", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c.HistoryFromUnread(ctx, "bob", unread, 50); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("attachments together", func(b *testing.B) {
		for b.Loop() {
			c.fillAttachments(ctx, window)
		}
	})
	b.Run("attachments one by one", func(b *testing.B) {
		for b.Loop() {
			for i := range window {
				c.fillAttachment(ctx, &window[i])
			}
		}
	})
}
