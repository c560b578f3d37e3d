package chat

import (
	"crypto/rand"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/relaytest"
)

// collectTransfer reads c's TransferProgress events of the first transfer in that
// direction until its last one (returned with its message), and checks that the
// percentages only grow.
func collectTransfer(t *testing.T, c *Controller, outgoing bool) ([]Transfer, *Message) {
	t.Helper()
	var got []Transfer
	clientID := ""
	for {
		ev := waitEvent(t, c, "a transfer's end", func(e Event) bool {
			return e.Kind == TransferProgress && e.Transfer.Outgoing == outgoing && (clientID == "" || e.Transfer.ClientID == clientID)
		})
		tr := *ev.Transfer
		clientID = tr.ClientID
		if n := len(got); n > 0 && !tr.Ended && tr.Percent() <= got[n-1].Percent() {
			t.Fatalf("progress went %d%% → %d%%", got[n-1].Percent(), tr.Percent())
		}
		if tr.Ended && (ev.Message == nil) != (tr.MessageID == 0) {
			t.Fatalf("last event: message %v, transfer's message %d", ev.Message, tr.MessageID)
		}
		got = append(got, tr)
		if tr.Ended {
			return got, ev.Message
		}
	}
}

// TestTransferProgressEvents: an upload and a download report their whole percentages
// on Events as they go, then end with the attachment's state and its message, so the
// UI can show "uploading 42%" → sent → downloaded with the saved path.
func TestTransferProgressEvents(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 48*relay.BlobChunkSize+7) // 1.5 MiB: several acknowledgements, whatever the run of chunks per message
	rand.Read(data)
	path := writeFile(t, t.TempDir(), "photo.bin", data)
	sent, err := alice.c.SendFile(ctx, "bob", path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	up, upMsg := collectTransfer(t, alice.c, true)
	if len(up) < 4 || up[0].MessageID != 0 || up[0].FileName != "photo.bin" || up[0].Size != int64(len(data)) {
		t.Fatalf("upload events: %+v", up)
	}
	// The first comes at 0%, before any chunk is acknowledged: a file waiting for the
	// relay shows in the conversation at once.
	if up[0].Done != 0 || up[0].State != AttachmentUploading {
		t.Fatalf("the first upload event %+v, want 0 bytes done, uploading", up[0])
	}
	if last := up[len(up)-1]; last.State != AttachmentSent || last.MessageID != sent.ID || last.Percent() != 100 {
		t.Fatalf("the upload ended %+v, want sent as message %d", last, sent.ID)
	}
	if upMsg.Attachment == nil || upMsg.Attachment.State != AttachmentSent || upMsg.Attachment.Path != path {
		t.Fatalf("the upload's message: %+v", upMsg.Attachment)
	}
	if up[len(up)-2].Percent() != 100 {
		t.Fatalf("the upload's progress stopped at %d%%", up[len(up)-2].Percent())
	}

	m := waitAttachment(t, bob.c, "alice")
	saved, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	down, downMsg := collectTransfer(t, bob.c, false)
	if len(down) < 4 || down[0].MessageID != m.ID || down[0].State != AttachmentFetching {
		t.Fatalf("download events: %+v", down)
	}
	last := down[len(down)-1]
	if last.State != AttachmentDownloaded || last.Percent() != 100 {
		t.Fatalf("the download ended %+v", last)
	}
	if downMsg.ID != m.ID || downMsg.Attachment == nil || downMsg.Attachment.State != AttachmentDownloaded || downMsg.Attachment.Path != saved {
		t.Fatalf("the download's message: %+v, saved at %s", downMsg.Attachment, saved)
	}
}

// TestMayAutoDownload: a file from a stranger (a message request) never downloads by
// itself; once the request is accepted the next one may; our own files and a blocked
// contact's never.
func TestMayAutoDownload(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := attachCtx(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "note.txt", []byte("hello"))
	sent, err := alice.c.SendFile(ctx, "bob", path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := waitAttachment(t, bob.c, "alice")
	if bob.c.MayAutoDownload(ctx, first) {
		t.Fatal("a stranger's file (a message request) may download by itself")
	}
	if alice.c.MayAutoDownload(ctx, sent) {
		t.Fatal("our own file may download")
	}
	if err := bob.c.AcceptRequest(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if !bob.c.MayAutoDownload(ctx, first) {
		t.Fatal("an accepted contact's file may not download")
	}
	if bob.c.MayAutoDownload(ctx, Message{Contact: "alice", Attachment: first.Attachment, KeyPending: true}) {
		t.Fatal("a file behind an unaccepted key change may download")
	}
	// A new key waiting for bob (one a relay could present) does not hold back the
	// files the trusted key sent.
	ct, err := bob.c.store.Contact(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ratchet.NewCard(k, "alice", "username", "test", time.Now().UTC().Truncate(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.c.putCard(ctx, other, false); err != nil {
		t.Fatal(err)
	}
	ct.PendingCardID = other.ID()
	if err := bob.c.store.UpdateContact(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if !bob.c.MayAutoDownload(ctx, first) {
		t.Fatal("the trusted key's file may not download while a new key waits")
	}
	// A contact bob blocks stays consented (unblocking gives the contact back), but
	// their files wait for him: blocking is what made the daemon look for them.
	if err := bob.c.Block(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if bob.c.MayAutoDownload(ctx, first) {
		t.Fatal("a blocked contact's file may download by itself")
	}
}

// A file sent while the relay is unreachable shows at once, at 0%: its upload waits for
// the relay, and nothing showed the file until then (found by a tester in the UI).
func TestUploadShowsWhileTheRelayIsDown(t *testing.T) {
	r, alice, _ := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	r.Close()
	path := writeFile(t, t.TempDir(), "notes.txt", []byte("while down"))
	sent := make(chan error, 1)
	go func() {
		_, err := alice.c.SendFile(ctx, "bob", path, "", nil)
		sent <- err
	}()
	ev := waitEvent(t, alice.c, "the queued upload's first event", func(e Event) bool {
		return e.Kind == TransferProgress && e.Transfer.Outgoing
	})
	if tr := ev.Transfer; tr.Done != 0 || tr.Ended || tr.FileName != "notes.txt" {
		t.Fatalf("first event of an upload waiting for the relay: %+v", tr)
	}
	select {
	case err := <-sent:
		t.Fatalf("SendFile returned while the relay was down: %v", err)
	default:
	}
	r.StartAgain(t)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// A file sent from a controller that has not reached its relay yet waits for it, as
// every call does: the relay's file limit is unknown until its hello, and it was taken
// for a relay without files ("the relay takes no attachments"; found through the
// daemon, which opens its profile whether or not the relay is up).
func TestSendFileBeforeTheRelayWasReached(t *testing.T) {
	r, alice, _ := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	r.Close()
	alice.p.Prefs.AllowOffline = true // as the daemon and the UI open a profile
	alice.reopen()                    // a controller that has never seen this relay's hello
	path := writeFile(t, t.TempDir(), "notes.txt", []byte("before the relay"))
	sent := make(chan error, 1)
	go func() {
		_, err := alice.c.SendFile(ctx, "bob", path, "", nil)
		sent <- err
	}()
	r.StartAgain(t)
	if err := <-sent; err != nil {
		t.Fatalf("a file sent before the relay was reached: %v", err)
	}
}
