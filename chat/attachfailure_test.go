package chat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"pfschat/ratchet"
	"pfschat/relay/client"
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
	if _, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil); !errors.Is(err, ErrAttachmentFailed) || !strings.Contains(err.Error(), ErrAttachmentGone.Error()) {
		t.Errorf("downloading it again: %v, want ErrAttachmentFailed with the earlier reason", err)
	}
}

// droppingBlobs is a relay whose connection drops at every download request.
type droppingBlobs struct {
	*client.Client
	gets atomic.Int32
}

func (d *droppingBlobs) BlobGetOwned(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error {
	d.gets.Add(1)
	return client.ErrConnectionLost
}

// A download whose connection drops each time before a byte more arrives stops after
// maxFetchStalls tries with ErrAttachmentStalled, and stays to be resumed: a hostile
// relay answering with what the client cannot read made recv wait for ever.
func TestDownloadStopsWhenItsConnectionKeepsDropping(t *testing.T) {
	var db *droppingBlobs
	bob, m := fileToADialedBob(t, "photo.jpg", func(cfg client.Config) RelayClient { db = &droppingBlobs{Client: client.New(cfg)}; return db })
	ctx := attachCtx(t)
	_, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if !errors.Is(err, ErrAttachmentStalled) || !strings.Contains(err.Error(), "photo.jpg") {
		t.Fatalf("download: %v, want ErrAttachmentStalled naming the file", err)
	}
	if n := db.gets.Load(); n != maxFetchStalls {
		t.Fatalf("%d tries, want %d", n, maxFetchStalls)
	}
	row, err := bob.c.store.Attachment(ctx, m.clientID)
	if err != nil || row.State != AttachmentFetching {
		t.Fatalf("after it stopped: state %v (%v), want fetching, to be resumed", row.State, err)
	}
}

// silentBlobs is a relay that stays connected but never answers a download request:
// the client gives up on it with client.ErrBlobStalled (after two minutes, in life).
type silentBlobs struct {
	*client.Client
	gets atomic.Int32
}

func (d *silentBlobs) BlobGetOwned(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error {
	d.gets.Add(1)
	return fmt.Errorf("relay: downloading blob %s: %w", id, client.ErrBlobStalled)
}

// A relay that stops answering a download without dropping its connection stalls it
// as one whose connection keeps dropping does: ErrAttachmentStalled (file_stalled
// through the daemon, not internal_error), the download left to be resumed. Found by
// an outside tester.
func TestDownloadStopsWhenTheRelayStopsAnswering(t *testing.T) {
	var sb *silentBlobs
	bob, m := fileToADialedBob(t, "scan.pdf", func(cfg client.Config) RelayClient { sb = &silentBlobs{Client: client.New(cfg)}; return sb })
	ctx := attachCtx(t)
	_, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if !errors.Is(err, ErrAttachmentStalled) || !strings.Contains(err.Error(), "scan.pdf") {
		t.Fatalf("download: %v, want ErrAttachmentStalled naming the file", err)
	}
	if n := sb.gets.Load(); n != 1 {
		t.Fatalf("%d requests, want 1 (the client already waited for its answer)", n)
	}
	row, err := bob.c.store.Attachment(ctx, m.clientID)
	if err != nil || row.State != AttachmentFetching {
		t.Fatalf("after it stopped: state %v (%v), want fetching, to be resumed", row.State, err)
	}
}

// fileToADialedBob: alice sends bob, whose relay connection dial makes, a small file
// called name; it returns bob and the message that brought it.
func fileToADialedBob(t *testing.T, name string, dial func(client.Config) RelayClient) (*user, Message) {
	t.Helper()
	r := relaytest.Start(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob", func(p *Profile) { p.Prefs.Dial = dial })
	ctx := attachCtx(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), name, []byte("not much")), "", nil); err != nil {
		t.Fatal(err)
	}
	return bob, waitAttachment(t, bob.c, "alice")
}
