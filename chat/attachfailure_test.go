package chat

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"pfschat/ratchet"
	"pfschat/relay/relaytest"
)

// TestAttachmentFailureReasonSealed: a failed download's reason names the file, which
// the store keeps sealed in the attachment's meta; the reason must be sealed too, not
// written to the row's clear column, while the API still says why it failed.
func TestAttachmentFailureReasonSealed(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	const name = "tax-return-2024-confidential.pdf"
	data := make([]byte, ratchet.StreamChunkSize+10)
	rand.Read(data)
	if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), name, data), "", nil); err != nil {
		t.Fatal(err)
	}
	m := waitAttachment(t, bob.c, "alice")
	// Another blob's capability: the relay answers "no such blob" and the download
	// fails for good, with the file's name in its reason.
	row, err := bob.c.store.Attachment(ctx, m.clientID)
	must(t, err)
	meta, err := readMeta(row)
	must(t, err)
	meta.Capability[0] ^= 1
	must(t, bob.c.putMeta(ctx, &row, meta))
	if _, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil); !errors.Is(err, ErrAttachmentGone) {
		t.Fatalf("download: %v, want %v", err, ErrAttachmentGone)
	}

	row, err = bob.c.store.Attachment(ctx, m.clientID)
	must(t, err)
	if row.State != AttachmentFailed {
		t.Fatalf("state %v, want failed", row.State)
	}
	if strings.Contains(row.Reason, "tax-return") {
		t.Errorf("the attachment's clear reason column names the file: %q", row.Reason)
	}
	a, err := bob.c.AttachmentOf(ctx, m.ID)
	must(t, err)
	if !strings.Contains(a.Reason, ErrAttachmentGone.Error()) || !strings.Contains(a.Reason, name) {
		t.Errorf("AttachmentOf's reason %q does not say why %s failed", a.Reason, name)
	}
	if _, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), ErrAttachmentGone.Error()) {
		t.Errorf("downloading it again: %v, want the earlier reason", err)
	}
}
