package ui

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// TestAttachmentsInTheUI drives the UI over real controllers and a real relay: a
// contact's small file is saved as it arrives, and a file over the auto-download limit
// waits for ctrl+o.
func TestAttachmentsInTheUI(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := contactsOnRelay(t, r)
	downloads := t.TempDir()
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob", AutoDownloadMax: 64 << 10, DownloadDir: downloads}, 200, 30)
	fr.WaitText(t, "relay connected", "bob")
	src := t.TempDir()
	small := []byte("small enough")
	write := func(name string, data []byte) string {
		p := filepath.Join(src, name)
		chattest.Must(t, os.WriteFile(p, data, 0o600))
		return p
	}
	if _, err := bob.SendFile(ctx, "alice", write("small.txt", small), "", nil); err != nil {
		t.Fatal(err)
	}
	fr.WaitFor(t, "the small file saved by itself", func(s string) bool {
		l := lineWith(s, "📎 small.txt")
		return strings.Contains(string(l), "saved "+downloads)
	})
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<10) // 80 KiB: over the limit
	if _, err := bob.SendFile(ctx, "alice", write("big.bin", big), "", nil); err != nil {
		t.Fatal(err)
	}
	fr.WaitFor(t, "the big file waiting", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 big.bin")), "ctrl+o or /download to fetch")
	})
	if got, err := os.ReadDir(downloads); err != nil || len(got) != 1 {
		t.Fatalf("downloads before ctrl+o: %v %v", got, err)
	}
	press(tm, "ctrl+o")
	fr.WaitFor(t, "the big file saved on demand", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 big.bin")), "saved "+downloads)
	})
	for name, want := range map[string][]byte{"small.txt": small, "big.bin": big} {
		if got, err := os.ReadFile(filepath.Join(downloads, name)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
	}

	quitUI(t, tm)
}

// TestSendFilesFromTheUI: a file sent with /file ends "sent" and reaches the other side
// whole; one sent by another client of the profile (send-file through the UI's socket)
// shows too.
func TestSendFilesFromTheUI(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := contactsOnRelay(t, r)
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob", DownloadDir: t.TempDir()}, 200, 30)
	fr.WaitText(t, "relay connected", "bob")
	src := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(src, name)
		chattest.Must(t, os.WriteFile(p, data, 0o600))
		return p
	}
	tm.Type("/file " + write("report.pdf", []byte("%PDF-1.7 a report")))
	press(tm, "enter")
	fr.WaitFor(t, "the sent file", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 report.pdf")), "sent")
	})
	m := chattest.WaitEvent(t, bob, "alice's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil && e.Message.Attachment.FileName == "report.pdf"
	})
	if p, err := bob.Download(ctx, m.Message.ID, t.TempDir(), nil); err != nil {
		t.Fatal(err)
	} else if got, _ := os.ReadFile(p); string(got) != "%PDF-1.7 a report" {
		t.Fatalf("bob got %q", got)
	}
	// A file sent by another client of this profile (a `pfschat send-file` through the
	// UI's socket calls the same controller): its upload and its message show too.
	if _, err := alice.SendFile(ctx, "bob", write("from-cli.txt", []byte("sent elsewhere")), "", nil); err != nil {
		t.Fatal(err)
	}
	fr.WaitFor(t, "the file sent elsewhere", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 from-cli.txt")), "sent")
	})
	quitUI(t, tm)
}

// An upload an earlier run left half done (killed after 4 of 10 chunks) is finished by
// the UI when it starts: its message appears, sent, and bob gets the whole file.
func TestUIResumesUploads(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := contactsOnRelay(t, r)
	data := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB: 10 chunks
	path := filepath.Join(t.TempDir(), "resume.bin")
	chattest.Must(t, os.WriteFile(path, data, 0o600))
	kctx, kill := context.WithCancel(ctx)
	if _, err := alice.SendFile(kctx, "bob", path, "", func(done, total int64) {
		if done >= total*4/10 {
			kill()
		}
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed upload: %v", err)
	}
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 200, 30)
	fr.WaitFor(t, "the resumed upload sent", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 resume.bin")), "· sent")
	})
	m := chattest.WaitEvent(t, bob, "alice's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	p, err := bob.Download(ctx, m.Message.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatalf("bob got %d bytes", len(got))
	}
	quitUI(t, tm)
}

// A message request's small file waits (nothing is fetched by itself from a stranger);
// once the user accepts the request, carol is a contact and her file is fetched as a
// contact's is, without ctrl+o.
func TestAcceptedRequestsFileDownloadsByItself(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, carol := newUser(t, r, "alice"), newUser(t, r, "carol")
	chattest.AddContact(t, carol, "alice")
	src := filepath.Join(t.TempDir(), "hello.txt")
	chattest.Must(t, os.WriteFile(src, []byte("from a stranger"), 0o600))
	if _, err := carol.SendFile(ctx, "alice", src, "", nil); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, alice, "carol's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message != nil && e.Message.Attachment != nil
	})
	downloads := t.TempDir()
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "carol", AutoDownloadMax: 64 << 10, DownloadDir: downloads}, 200, 30)
	fr.WaitFor(t, "the request's file waiting", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 hello.txt")), "ctrl+o or /download to fetch")
	})
	tm.Type("/accept-request")
	press(tm, "enter")
	fr.WaitFor(t, "carol's file saved by itself once accepted", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 hello.txt")), "saved "+downloads)
	})
	if got, err := os.ReadFile(filepath.Join(downloads, "hello.txt")); err != nil || string(got) != "from a stranger" {
		t.Fatalf("carol's file: %q %v", got, err)
	}
	quitUI(t, tm)
}

// A file bob sent from his new key waits behind the key change; once the user accepts
// the key, it is fetched as bob's files are, without ctrl+o.
func TestFileBehindAcceptedKeyDownloadsByItself(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := contactsOnRelay(t, r)
	chattest.Send(t, bob, alice, "from the old phone")
	code := bob.TakeRecoveryCode()
	bob.Close()

	downloads := t.TempDir()
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob", AutoDownloadMax: 64 << 10, DownloadDir: downloads}, 200, 30)
	fr.WaitText(t, "from the old phone")

	p := chattest.NewProfile(t, "bob-new")
	c, err := p.Recover(ctx, "bob", code, chattest.Passphrase, r.URL)
	chattest.Must(t, err)
	bob2 := &chattest.User{Controller: c, Name: "bob", Profile: p, Passphrase: chattest.Passphrase}
	t.Cleanup(func() { bob2.Close() })
	chattest.AddContact(t, bob2, "alice")
	src := filepath.Join(t.TempDir(), "new.txt")
	chattest.Must(t, os.WriteFile(src, []byte("from the new phone"), 0o600))
	if _, err := bob2.SendFile(ctx, "alice", src, "", nil); err != nil {
		t.Fatal(err)
	}
	fr.WaitText(t, "⚠ bob's safety number changed")
	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitText(t, "Identity key changed: bob", "new safety number:")
	tm.Type("a")
	fr.WaitFor(t, "bob's new file saved by itself once his key is accepted", func(s string) bool {
		return strings.Contains(string(lineWith(s, "📎 new.txt")), "saved "+downloads)
	})
	if got, err := os.ReadFile(filepath.Join(downloads, "new.txt")); err != nil || string(got) != "from the new phone" {
		t.Fatalf("bob's file: %q %v", got, err)
	}
	quitUI(t, tm)
}
