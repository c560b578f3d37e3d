package storage_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"pfschat/chat"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// TestHistoryReadsAttachmentsOnce counts the SQLite statements a conversation's page
// costs its reader through a real controller: the page of messages, then one statement
// for the attachments of all of them, not one per message (41 and 43 statements for
// this page of 40 before, where half the messages are files; 2 and 4 now).
func TestHistoryReadsAttachmentsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two controllers and a relay")
	}
	registerOnce.Do(func() { sql.Register("sqlite-counting", counting) })
	defer storage.UseDriver("sqlite-counting")()
	ctx := t.Context()
	r := relaytest.Start(t)
	profile := func(name string) chat.Profile {
		p := chat.Profile{Dir: filepath.Join(t.TempDir(), name),
			StoreOptions: storage.ClientOptions{KDF: storage.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Synchronous: storage.SyncNormal}}
		p.Prefs.OneTimeKeys = 5
		return p
	}
	pa, pb := profile("alice"), profile("bob")
	alice, err := pa.Create(ctx, "alice", []byte("pass"), r.URL)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := pb.Create(ctx, "bob", []byte("pass"), r.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	if _, err := alice.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	const files = 20
	src := t.TempDir()
	for i := range files {
		p := filepath.Join(src, fmt.Sprintf("f%d.txt", i))
		if err := os.WriteFile(p, []byte(fmt.Sprint("file ", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.SendFile(ctx, "alice", p, "", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, "alice", fmt.Sprint("text ", i)); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 2*files; {
		waitFor(t, alice, func(e chat.Event) bool { return e.Kind == chat.MessageReceived })
		n++
	}
	alice.Close()

	// Counted on alice's store opened again without a connection: nothing else reads it.
	abs, err := filepath.Abs(pa.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	counting.target.Store(&abs)
	t.Cleanup(func() { counting.target.Store(nil) })
	alice, err = pa.NewController(ctx, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	count := func(what string, read func() ([]chat.Message, error)) int64 {
		t.Helper()
		r0 := counting.reads.Load()
		msgs, err := read()
		reads := counting.reads.Load() - r0
		if err != nil || len(msgs) != 2*files {
			t.Fatalf("%s: %d messages, %v", what, len(msgs), err)
		}
		got := 0
		for _, m := range msgs {
			if m.Attachment != nil {
				got++
			}
		}
		if got != files {
			t.Fatalf("%s: %d files, want %d", what, got, files)
		}
		t.Logf("%s of %d messages, %d of them files: %d statements", what, len(msgs), files, reads)
		return reads
	}
	if n := count("History", func() ([]chat.Message, error) { return alice.History(ctx, "bob", 0, 50) }); n != 2 {
		t.Errorf("History: %d statements, want 2 (the page, its attachments)", n)
	}
	if n := count("HistoryFromUnread", func() ([]chat.Message, error) {
		msgs, _, err := alice.HistoryFromUnread(ctx, "bob", 2*files, 50)
		return msgs, err
	}); n != 4 {
		t.Errorf("HistoryFromUnread: %d statements, want 4 (3 for the unread window and the older page, 1 for their attachments)", n)
	}
}
