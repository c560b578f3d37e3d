package storage

import (
	"fmt"
	"testing"
)

// TestAttachmentsOf: the attachments of many messages in one call, across more ids than
// one statement takes: each present id with its own row (opened), none for an id
// without one, nothing for no ids.
func TestAttachmentsOf(t *testing.T) {
	c := newClient(t, []byte("pass"))
	addPeer(t, c, "bob")
	ctx := t.Context()
	const n = AttachmentsChunk + 100
	var ids []string
	want := make(map[string]string)
	for i := range n {
		id := fmt.Sprintf("msg-%d", i)
		ids = append(ids, id)
		if i%3 != 0 {
			continue // a text message: no attachment
		}
		meta := fmt.Sprintf("meta of %d", i)
		if err := c.PutAttachment(ctx, Attachment{ClientID: id, Contact: "bob", Direction: Outgoing, State: AttachmentSent,
			DoneBytes: int64(i), Meta: []byte(meta), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		want[id] = meta
	}
	got, err := c.AttachmentsOf(ctx, append(ids, `an "id" with quotes`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d attachments, want %d", len(got), len(want))
	}
	for id, meta := range want {
		a, ok := got[id]
		if !ok || a.ClientID != id || string(a.Meta) != meta || a.Contact != "bob" || a.State != AttachmentSent {
			t.Fatalf("%s: %+v %v (want meta %q)", id, a, ok, meta)
		}
		single, err := c.Attachment(ctx, id)
		if err != nil || single.DoneBytes != a.DoneBytes || !single.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("%s: %+v, alone %+v %v", id, a, single, err)
		}
	}
	if none, err := c.AttachmentsOf(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("no ids: %v %v", none, err)
	}
}
