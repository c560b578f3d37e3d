package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

var bigAttachment = flag.Bool("big-attachment", false, "also round-trip a 50 MiB attachment (about 8 s on 2 cores; off in CI)")

func attachCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair is alice and bob on one relay, contacts of each other.
func attachPair(t *testing.T, opts relaytest.Options) (*relaytest.Relay, *user, *user) {
	r := relaytest.StartWith(t, opts)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := attachCtx(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	return r, alice, bob
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitAttachment(t testing.TB, c *Controller, from string) Message {
	t.Helper()
	ev := waitEvent(t, c, "an attachment from "+from, func(e Event) bool {
		return e.Kind == MessageReceived && e.Contact == from && e.Message.Attachment != nil
	})
	return *ev.Message
}

func dirEntries(t testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestAttachmentRoundTrips(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	src, down := t.TempDir(), t.TempDir()
	sizes := []int{0, 1, ratchet.StreamChunkSize, ratchet.StreamChunkSize + 1, relay.BlobChunkSize + 3}
	for i, n := range sizes {
		data := make([]byte, n)
		rand.Read(data)
		name := "file" + string(rune('a'+i)) + ".bin"
		var last int64 = -1
		sent, err := alice.c.SendFile(ctx, "bob", writeFile(t, src, name, data), "caption "+name, func(done, total int64) {
			if done < last || total != int64(n) {
				t.Errorf("progress %d/%d after %d", done, total, last)
			}
			last = done
		})
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if sent.Attachment == nil || sent.Attachment.State != AttachmentSent || last != int64(n) {
			t.Fatalf("%d bytes: sent %+v, progress ended at %d", n, sent.Attachment, last)
		}
		m := waitAttachment(t, bob.c, "alice")
		if m.Text != "caption "+name || m.Attachment.FileName != name || m.Attachment.Size != int64(n) || m.Attachment.State != AttachmentAvailable {
			t.Fatalf("%d bytes: received %+v %+v", n, m, m.Attachment)
		}
		path, err := bob.c.Download(ctx, m.ID, down, nil)
		if err != nil {
			t.Fatalf("%d bytes: download: %v", n, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) || filepath.Base(path) != name {
			t.Fatalf("%d bytes: saved %s: %v (%d bytes)", n, path, err, len(got))
		}
		a, err := bob.c.AttachmentOf(ctx, m.ID)
		if err != nil || a.State != AttachmentDownloaded || a.Path != path {
			t.Fatalf("%d bytes: after download %+v %v", n, a, err)
		}
		// Again: the same path, nothing new written.
		if again, err := bob.c.Download(ctx, m.ID, down, nil); err != nil || again != path {
			t.Fatalf("second download: %s %v", again, err)
		}
	}
	if n := len(dirEntries(t, down)); n != len(sizes) {
		t.Fatalf("%d files in the downloads directory, want %d", n, len(sizes))
	}
	// Nothing is left staged on either side.
	for _, u := range []*user{alice, bob} {
		if left := dirEntries(t, filepath.Join(u.p.Dir, "attachments")); len(left) != 0 {
			t.Fatalf("%s's attachment directory keeps %v", u.name, left)
		}
	}
}

func TestAttachmentBig(t *testing.T) {
	if !*bigAttachment {
		t.Skip("50 MiB round trip: run with -big-attachment (TestAttachmentRoundTrips covers the chunk edges in CI)")
	}
	_, alice, bob := attachPair(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}})
	ctx := attachCtx(t)
	data := make([]byte, 50<<20)
	rand.Read(data)
	if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "big.bin", data), "", nil); err != nil {
		t.Fatal(err)
	}
	m := waitAttachment(t, bob.c, "alice")
	path, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("50 MiB: %v, %d bytes back", err, len(got))
	}
}

func TestAttachmentNamesCollideAndSanitise(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	down := t.TempDir()
	// A file already there is never overwritten.
	writeFile(t, down, "notes.txt", []byte("mine"))
	for i := range 2 {
		if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "notes.txt", []byte{byte(i)}), "", nil); err != nil {
			t.Fatal(err)
		}
		m := waitAttachment(t, bob.c, "alice")
		path, err := bob.c.Download(ctx, m.ID, down, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"notes (2).txt", "notes (3).txt"}[i]; filepath.Base(path) != want {
			t.Fatalf("saved as %s, want %s", filepath.Base(path), want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(down, "notes.txt")); string(b) != "mine" {
		t.Fatal("an existing file was overwritten")
	}
}

func TestSafeFileName(t *testing.T) {
	long := strings.Repeat("x", 100<<10) + ".pdf"
	cases := map[string]string{
		"../../etc/passwd":          "_.._etc_passwd",
		".bashrc":                   "bashrc",
		"..":                        "attachment",
		"":                          "attachment",
		"report\x1b[31m.pdf":        "report_[31m.pdf",
		"evil\u202egnp.exe":         "evil_gnp.exe",
		"a\\b":                      "a_b",
		"-rf":                       "rf",
		"trailing. . ":              "trailing",
		"photo.jpg":                 "photo.jpg",
		"résumé 2026.odt":           "résumé 2026.odt",
		"\xff\xfe.txt":              "_.txt",
		"new\nline.txt":             "new_line.txt",
		"C:\\Windows\\system32.dll": "C__Windows_system32.dll",
		`Q3: "plan" <v2>|*?.txt`:    "Q3_ _plan_ _v2____.txt",
		// Invisible characters that are not format (Cf) characters: default ignorable
		// code points (Hangul fillers, the combining grapheme joiner) and variation selectors.
		"invoice\u3164.pdf":           "invoice_.pdf",
		"\u3164":                      "_",
		"a\u034fb.txt":                "a_b.txt",
		"a\u115f\u1160b\uffa0.txt":    "a__b_.txt",
		"a\u17b4\u17b5b":              "a__b",
		"x\ufe0f\u180b\U000e0100.png": "x___.png",
		// Cut to 200 bytes without an extension: no trailing space (found by FuzzSafeFileName).
		strings.Repeat("0", 199) + " 000":                         strings.Repeat("0", 199),
		strings.Repeat("0", 198) + ". " + strings.Repeat("x", 20): strings.Repeat("0", 198),
		// Names Windows reserves for devices, in any case, with or without an
		// extension, with spaces before it or trailing dots and spaces: an underscore
		// in front, as Signal Desktop does.
		"CON":         "_CON",
		"con.txt":     "_con.txt",
		"Prn.pdf":     "_Prn.pdf",
		"aux":         "_aux",
		"NUL.tar.gz":  "_NUL.tar.gz",
		"nul .txt":    "_nul .txt",
		"nul. ":       "_nul",
		"CON . .":     "_CON",
		" con.txt":    "_con.txt",
		"..nul":       "_nul",
		"COM1":        "_COM1",
		"com9.exe":    "_com9.exe",
		"LPT1.log":    "_LPT1.log",
		"lpt5":        "_lpt5",
		"COM¹.txt":    "_COM¹.txt",
		"conin$":      "_conin$",
		"CONOUT$.txt": "_CONOUT$.txt",
		"con:stream":  "con_stream",
		"dir/CON":     "dir_CON",
		"_CON.txt":    "_CON.txt",
		"COM0":        "COM0",
		"COM10.txt":   "COM10.txt",
		"LPT":         "LPT",
		"console.txt": "console.txt",
		"nul_.txt":    "nul_.txt",
		"a.con":       "a.con",
		"conın$":      "conın$",
		"conx.txt":    "conx.txt",
		"C O N.txt":   "C O N.txt",
		// Reserved once cut to 200 bytes; 200 bytes and reserved: the underscore fits
		// within 200 bytes, the extension kept.
		"con" + strings.Repeat(" ", 300) + "x":    "_con",
		"nul" + strings.Repeat(" ", 193) + ".txt": "_nul" + strings.Repeat(" ", 192) + ".txt",
	}
	for in, want := range cases {
		if got := SafeFileName(in); got != want {
			t.Errorf("SafeFileName(%q) = %q, want %q", in, got, want)
		}
	}
	got := SafeFileName(long)
	if len(got) > maxSavedName || !strings.HasSuffix(got, ".pdf") {
		t.Errorf("100 KB name: %d bytes, %q…", len(got), got[:10])
	}
}

// tamperRelay rewrites what the relay stores to test the receiver's checks.
func blobFile(t *testing.T, r *relaytest.Relay) string {
	t.Helper()
	ents, err := os.ReadDir(r.Path + ".blobs")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			return filepath.Join(r.Path+".blobs", e.Name())
		}
	}
	t.Fatal("no committed blob")
	return ""
}

func TestAttachmentTampering(t *testing.T) {
	r, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 3*ratchet.StreamChunkSize+100)
	rand.Read(data)
	cases := []struct {
		name string
		edit func(t *testing.T, blob string)
		meta func(m *attachmentMeta)
		want error
	}{
		{"flipped byte", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			b[1000] ^= 1
			os.WriteFile(p, b, 0o600)
		}, nil, ErrAttachmentDigest},
		{"swapped chunks", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			c := ratchet.StreamSealedChunkSize
			x := append(append(append([]byte(nil), b[c:2*c]...), b[:c]...), b[2*c:]...)
			os.WriteFile(p, x, 0o600)
		}, nil, ErrAttachmentDigest},
		{"wrong digest in the message", nil, func(m *attachmentMeta) { m.Digest[0] ^= 1 }, ErrAttachmentDigest},
		{"wrong key in the message", nil, func(m *attachmentMeta) { m.Key[0] ^= 1 }, ErrAttachmentCorrupt},
		{"wrong size in the message", nil, func(m *attachmentMeta) { m.Size-- }, ErrAttachmentDigest},
		{"another blob's capability", nil, func(m *attachmentMeta) { m.Capability[0] ^= 1 }, ErrAttachmentGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			down := t.TempDir()
			if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "x.bin", data), "", nil); err != nil {
				t.Fatal(err)
			}
			m := waitAttachment(t, bob.c, "alice")
			if tc.edit != nil {
				tc.edit(t, blobFile(t, r))
			}
			if tc.meta != nil {
				row, err := bob.c.store.Attachment(ctx, m.clientID)
				must(t, err)
				meta, err := readMeta(row)
				must(t, err)
				tc.meta(&meta)
				must(t, bob.c.putMeta(ctx, &row, meta))
			}
			_, err := bob.c.Download(ctx, m.ID, down, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("download: %v, want %v", err, tc.want)
			}
			failedLeavingNothing(t, bob, m.ID, down)
			// Clean the relay for the next case.
			os.RemoveAll(r.Path + ".blobs")
			os.MkdirAll(r.Path+".blobs/partial", 0o700)
		})
	}
}

// failedLeavingNothing checks that the attachment of message id failed with a reason
// and that its download left nothing, in dir or in the profile.
func failedLeavingNothing(t *testing.T, bob *user, id int64, dir string) {
	t.Helper()
	if left := dirEntries(t, dir); len(left) != 0 {
		t.Fatalf("the downloads directory has %v", left)
	}
	a, _ := bob.c.AttachmentOf(attachCtx(t), id)
	if a == nil || a.State != AttachmentFailed || a.Reason == "" {
		t.Fatalf("attachment after the download: %+v", a)
	}
	if left := dirEntries(t, filepath.Join(bob.p.Dir, "attachments")); len(left) != 0 {
		t.Fatalf("partial files kept: %v", left)
	}
}

// A message naming a blob the relay cannot serve as the message describes it — an id
// that is not a relay's blob id (any printable ASCII passes PAYLOAD.md §4.5), or a size
// whose sealed stream runs past the blob's end on a chunk boundary (the relay answers
// bad_field, not a short chunk) — fails the attachment with a typed error, and leaves
// nothing behind; it is not left "fetching", to fail the same way at every try.
func TestAttachmentTheRelayCannotServe(t *testing.T) {
	r, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	// Sealed, exactly 8 relay chunks: a size claiming more asks for chunk 8 of 8.
	data := make([]byte, 4*ratchet.StreamChunkSize-4*ratchet.StreamTagSize)
	rand.Read(data)
	for _, tc := range []struct {
		name string
		meta func(m *attachmentMeta)
		want error
	}{
		{"a blob id no relay gives", func(m *attachmentMeta) { m.BlobID = "b-7f3a" }, ErrAttachmentGone},
		{"a size past the blob's last chunk", func(m *attachmentMeta) { m.Size += ratchet.StreamChunkSize }, ErrAttachmentDigest},
		{"a size one byte past the blob", func(m *attachmentMeta) { m.Size++ }, ErrAttachmentDigest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := t.TempDir()
			if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "x.bin", data), "", nil); err != nil {
				t.Fatal(err)
			}
			m := waitAttachment(t, bob.c, "alice")
			row, err := bob.c.store.Attachment(ctx, m.clientID)
			must(t, err)
			meta, err := readMeta(row)
			must(t, err)
			tc.meta(&meta)
			must(t, bob.c.putMeta(ctx, &row, meta))
			if _, err := bob.c.Download(ctx, m.ID, down, nil); !errors.Is(err, tc.want) {
				t.Fatalf("download: %v, want %v", err, tc.want)
			}
			failedLeavingNothing(t, bob, m.ID, down)
			// Clean the relay for the next case.
			os.RemoveAll(r.Path + ".blobs")
			os.MkdirAll(r.Path+".blobs/partial", 0o700)
		})
	}
}

// A failed download's error and reason name the file as SafeFileName shows it, never
// with the sender's bidi overrides or invisible characters (PAYLOAD.md §4.5: the name
// is shown sanitised): they reach the terminal (the CLI prints them).
func TestAttachmentFailureNamesTheFileSanitised(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	hostile := "invoice\u202efdp.exe" // as a hostile sender sends it (pfschat's send the name sanitised)
	if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "invoice.pdf", []byte("x")), "", nil); err != nil {
		t.Fatal(err)
	}
	m := waitAttachment(t, bob.c, "alice")
	row, err := bob.c.store.Attachment(ctx, m.clientID)
	must(t, err)
	meta, err := readMeta(row)
	must(t, err)
	meta.Capability[0] ^= 1 // the relay answers blob_not_found
	meta.FileName = hostile
	must(t, bob.c.putMeta(ctx, &row, meta))
	clean := func(what, s string) {
		t.Helper()
		if strings.Contains(s, "\u202e") || !strings.Contains(s, SafeFileName(hostile)) {
			t.Errorf("%s does not name the file sanitised: %q", what, s)
		}
	}
	_, err = bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if !errors.Is(err, ErrAttachmentGone) {
		t.Fatalf("download: %v", err)
	}
	clean("the error", err.Error())
	a, err := bob.c.AttachmentOf(ctx, m.ID)
	must(t, err)
	clean("the reason", a.Reason)
	_, err = bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if err == nil {
		t.Fatal("a failed attachment downloaded again")
	}
	clean("the error of a second try", err.Error())
}

// A sender killed after some chunks were acknowledged: the next run resumes the upload
// from the relay's next chunk, without sending the done ones again, and sends the message.
func TestAttachmentResumeAfterKill(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 10*relay.BlobChunkSize)
	rand.Read(data)
	path := writeFile(t, t.TempDir(), "resume.bin", data)
	// The first run stops (as if killed) once 4 chunks are acknowledged.
	kctx, kill := context.WithCancel(ctx)
	_, err := alice.c.SendFile(kctx, "bob", path, "", func(done, total int64) {
		if done >= 4*relay.BlobChunkSize {
			kill()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("killed send: %v", err)
	}
	rows, err := alice.c.store.AttachmentsIn(ctx, storage.AttachmentUploading)
	if err != nil || len(rows) != 1 {
		t.Fatalf("pending uploads: %d %v", len(rows), err)
	}
	alice.reopen()
	var first int64 = -1
	msgs, err := alice.c.ResumeUploads(ctx, func(done, total int64) {
		if first < 0 {
			first = done
		}
	})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("resume: %v (%d messages)", err, len(msgs))
	}
	if first < 4*relay.BlobChunkSize*int64(len(data))/int64(len(data)+16*10) {
		t.Fatalf("the resumed upload started at %d bytes: done chunks were sent again", first)
	}
	m := waitAttachment(t, bob.c, "alice")
	saved, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(saved); !bytes.Equal(got, data) {
		t.Fatal("resumed upload: bytes differ")
	}
}

// A file sent before the relay was ever reached in this run (its limit unknown) is
// recorded at once, not held in the call: an owner stopped before the relay came back
// finishes it on its next start (ResumeUploads), and one over the relay's limit fails
// once the relay has said so. The call waited for the relay before recording anything,
// and such a file was forgotten (found by an outside tester, through the daemon).
func TestSendFileBeforeTheRelayIsReached(t *testing.T) {
	r, alice, bob := attachPair(t, relaytest.Options{Limits: server.Limits{MaxBlobBytes: 64 << 10}})
	ctx := attachCtx(t)
	data := make([]byte, 20<<10)
	rand.Read(data)
	small := writeFile(t, t.TempDir(), "small.bin", data)
	big := writeFile(t, t.TempDir(), "big.bin", make([]byte, 100<<10))
	r.Close()
	alice.p.Prefs.AllowOffline, alice.p.Prefs.StayUp = true, true // as the daemon runs
	alice.reopen()                                                // a new run that has not reached the relay
	for _, path := range []string{small, big} {
		// Stopped as an owner is stopped: once the file shows, or at the latest
		// after a while (the call waited for the relay before).
		sctx, stop := context.WithTimeout(ctx, 3*time.Second)
		_, err := alice.c.SendFile(sctx, "bob", path, "", func(done, total int64) { stop() })
		stop()
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v", path, err)
		}
	}
	rows, err := alice.c.store.AttachmentsIn(ctx, storage.AttachmentUploading)
	if err != nil || len(rows) != 2 {
		t.Fatalf("files recorded while the relay was away: %d (%v), want 2", len(rows), err)
	}
	alice.reopen()
	r.StartAgain(t)
	msgs, err := alice.c.ResumeUploads(ctx, nil)
	if len(msgs) != 1 || err == nil || !strings.Contains(err.Error(), relay.CodeBlobTooLarge) {
		t.Fatalf("resumed: %d messages, %v; want small.bin sent and big.bin refused", len(msgs), err)
	}
	m := waitAttachment(t, bob.c, "alice")
	saved, err := bob.c.Download(ctx, m.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(saved); !bytes.Equal(got, data) {
		t.Fatal("bytes differ")
	}
	failed, err := alice.c.store.AttachmentsIn(ctx, storage.AttachmentFailed)
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed attachments: %d (%v), want big.bin's", len(failed), err)
	}
}

func TestAttachmentLimits(t *testing.T) {
	_, alice, _ := attachPair(t, relaytest.Options{Limits: server.Limits{MaxBlobBytes: 100 << 10}})
	ctx := attachCtx(t)
	if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "fits.bin", make([]byte, 100<<10)), "", nil); err != nil {
		t.Fatalf("a file of exactly the limit: %v", err)
	}
	big := writeFile(t, t.TempDir(), "big.bin", make([]byte, 100<<10+1))
	if _, err := alice.c.SendFile(ctx, "bob", big, "", nil); !errors.Is(err, ErrFileTooLarge) ||
		!strings.Contains(err.Error(), "big.bin is 102401 bytes, the relay takes files up to 102400") {
		t.Fatalf("over the relay's size: %v", err)
	}
	bigger := writeFile(t, t.TempDir(), "bigger.bin", make([]byte, 200<<10))
	if _, err := alice.c.SendFile(ctx, "bob", bigger, "", nil); !errors.Is(err, ErrFileTooLarge) ||
		!strings.Contains(err.Error(), "bigger.bin is 200.0 KiB, the relay takes files up to 100.0 KiB (102400 bytes)") {
		t.Fatalf("twice the relay's size: %v", err)
	}
	if _, err := alice.c.SendFile(ctx, "bob", t.TempDir(), "", nil); err == nil {
		t.Fatal("a directory was sent")
	}
	// A caption under MaxTextBytes that does not fit one message beside a long file
	// name is refused before the upload (it failed after it, at every resume); the
	// largest that fits is sent.
	long := writeFile(t, t.TempDir(), strings.Repeat("n", 200)+".txt", []byte("x"))
	_, err := alice.c.SendFile(ctx, "bob", long, strings.Repeat("c", MaxTextBytes), nil)
	var most int
	if !errors.Is(err, ErrTextTooLong) || !strings.Contains(err.Error(), "beside this file's name and type at most ") {
		t.Fatalf("a caption too long beside the name: %v", err)
	} else if _, scanErr := fmt.Sscanf(err.Error()[strings.LastIndex(err.Error(), "at most ")+len("at most "):], "%d", &most); scanErr != nil || most <= 0 || most >= MaxTextBytes {
		t.Fatalf("the most that fits: %q (%v)", err, scanErr)
	}
	if ups, err := alice.c.store.AttachmentsIn(ctx, AttachmentUploading, AttachmentUploaded); err != nil || len(ups) != 0 {
		t.Fatalf("the refused file left uploads: %v, %v", ups, err)
	}
	if _, err := alice.c.SendFile(ctx, "bob", long, strings.Repeat("c", most), nil); err != nil {
		t.Fatalf("the longest caption that fits (%d bytes): %v", most, err)
	}
}

// The relay restarts in the middle of an upload and again in the middle of a download:
// both resume once the controller has reconnected, and the bytes arrive intact.
func TestAttachmentSurvivesRelayRestart(t *testing.T) {
	r, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 12*relay.BlobChunkSize+9)
	rand.Read(data)
	restarted := false
	_, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "r.bin", data), "", func(done, total int64) {
		if !restarted && done >= 5*relay.BlobChunkSize {
			restarted = true
			r.Restart(t) // drops every connection; the relay keeps its files
		}
	})
	if err != nil || !restarted {
		t.Fatalf("upload across a restart: %v (restarted %v)", err, restarted)
	}
	m := waitAttachment(t, bob.c, "alice")
	restarted = false
	path, err := bob.c.Download(ctx, m.ID, t.TempDir(), func(done, total int64) {
		if !restarted && done >= 5*relay.BlobChunkSize {
			restarted = true
			r.Restart(t)
		}
	})
	if err != nil || !restarted {
		t.Fatalf("download across a restart: %v (restarted %v)", err, restarted)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("bytes differ after the restarts")
	}
}

// An attachment whose id the receiver already holds from that sender is a duplicate
// (PAYLOAD.md §3: the receiver de-duplicates by id): not shown again, and the first
// one's attachment is left as it was.
func TestDuplicateAttachmentIDShownOnce(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	sent, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "first.bin", []byte("first")), "first", nil)
	must(t, err)
	got := waitAttachment(t, bob.c, "alice")
	sm, err := alice.c.store.Message(ctx, sent.ID)
	must(t, err)
	again, err := payload.Encode(&payload.Payload{Type: payload.Attachment, At: time.Now(), ID: sm.ClientID, Seq: sm.Seq, Text: "second",
		Attachment: payload.AttachmentRef{BlobID: "other", FileName: "second.bin", Size: 9}})
	must(t, err)
	must(t, alice.c.onSession(ctx, "bob", false, func(s *Session) error {
		_, err := alice.c.commitEncrypted(ctx, s, "bob", again, newClientID(), nil)
		return err
	}))
	if _, err := alice.c.Send(ctx, "bob", "marker"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "marker") // in order: the duplicate came first
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	if len(h) != 2 || h[0].Text != "marker" || h[1].ID != got.ID || h[1].Text != "first" {
		t.Fatalf("bob's conversation %+v, want the first attachment and the marker", h)
	}
	a, err := bob.c.AttachmentOf(ctx, got.ID)
	if err != nil || a.FileName != "first.bin" || a.Size != 5 {
		t.Fatalf("the first attachment after its duplicate: %+v %v", a, err)
	}
}

// An attachment pfschat records as unreadable (a size over 2^62, PAYLOAD.md §4.5) did
// arrive: its sequence number is taken (§3), not reported as a message that has not.
func TestUnreadableAttachmentTakesItsSeq(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	if _, err := alice.c.Send(ctx, "bob", "one"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "one")
	seq, err := alice.c.store.NextSendSeq(ctx, "bob")
	must(t, err)
	clientID, now := newClientID(), time.Now()
	huge, err := payload.Encode(&payload.Payload{Type: payload.Attachment, At: now, ID: clientID, Seq: seq,
		Attachment: payload.AttachmentRef{BlobID: "b", FileName: "huge.bin", Size: 1<<62 + 1}})
	must(t, err)
	must(t, alice.c.onSession(ctx, "bob", false, func(s *Session) error {
		_, err := alice.c.commitEncrypted(ctx, s, "bob", huge, clientID, &storage.Message{Contact: "bob",
			Direction: storage.Outgoing, SentAt: now, State: storage.Pending, ClientID: clientID, Seq: seq})
		return err
	}))
	if _, err := alice.c.Send(ctx, "bob", "three"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "three")
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	if len(h) != 3 || h[1].State != UndecryptableState || h[1].Seq != seq {
		t.Fatalf("bob's conversation %+v, want the unreadable attachment between the texts, with its seq %d", h, seq)
	}
	marks, err := bob.c.store.IncomingSeqs(ctx, "alice")
	must(t, err)
	if gaps := findGaps(marks, time.Now().Add(time.Hour)); len(gaps) != 0 {
		t.Fatalf("holes %+v: the unreadable attachment's number is reported missing", gaps)
	}
}

// partialDownload has bob start fetching m's file and stop after its first piece, as
// a closed laptop does: the decrypted beginning waits in the profile for a resume.
func partialDownload(t *testing.T, bob *user, m Message) string {
	t.Helper()
	ctx, cancel := context.WithCancel(attachCtx(t))
	defer cancel()
	_, derr := bob.c.Download(ctx, m.ID, t.TempDir(), func(done, total int64) {
		if done > 0 && done < total {
			cancel()
		}
	})
	if derr == nil {
		t.Fatal("the download was not stopped part-way")
	}
	adir, err := bob.c.attachmentDir()
	must(t, err)
	part := partialStem(adir, m.Attachment.ClientID) + ".plain"
	if fi, err2 := os.Stat(part); err2 != nil || fi.Size() == 0 {
		t.Fatalf("no partial download at %s: %v (the download: %v)", part, err2, derr)
	}
	return part
}

// Deleting a message whose file was being fetched, clearing the conversation or
// removing the contact removes what the download left and its record: the file is not
// fetched again (PendingDownloads), and no decrypted part of it stays on disk.
func TestDeletedAttachmentLeavesNoPartialDownload(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 64*ratchet.StreamChunkSize) // 4 MiB: many runs, so a stop lands part-way
	rand.Read(data)
	src := t.TempDir()
	gone := func(what, part string, m Message) {
		t.Helper()
		if _, err := os.Stat(part); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: the partial download is still there (%v)", what, err)
		}
		if _, err := bob.c.store.Attachment(ctx, m.Attachment.ClientID); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: the attachment's record is still there (%v)", what, err)
		}
		pending, err := bob.c.PendingDownloads(ctx)
		must(t, err)
		if len(pending) != 0 {
			t.Fatalf("%s: still to download: %+v", what, pending)
		}
	}
	for _, how := range []string{"delete", "clear", "remove"} {
		_, err := alice.c.SendFile(ctx, "bob", writeFile(t, src, how+".bin", data), "", nil)
		must(t, err)
		m := waitAttachment(t, bob.c, "alice")
		part := partialDownload(t, bob, m)
		deleteAttachmentMessage(t, bob, how, m)
		gone(how, part, m)
	}
}

// deleteAttachmentMessage makes bob lose alice's message m in one of the three ways
// that drop an attachment: "delete" (the message), "clear" (the conversation) or
// "remove" (alice).
func deleteAttachmentMessage(t *testing.T, bob *user, how string, m Message) {
	t.Helper()
	ctx := t.Context()
	switch how {
	case "delete":
		must(t, bob.c.DeleteMessage(ctx, "alice", m.ID))
	case "clear":
		_, err := bob.c.ClearConversation(ctx, "alice")
		must(t, err)
	case "remove":
		must(t, bob.c.RemoveContact(ctx, "alice"))
	default:
		t.Fatalf("no way to delete called %q", how)
	}
}

// A message deleted (or its conversation cleared, or its sender removed) while its file
// downloads leaves nothing behind, whenever the delete comes: while the file is
// fetched, or once it is linked or copied into the downloads directory and before it
// is recorded as saved. The download fails; neither the downloads directory nor the
// profile keeps any of the file, and its record is not written back.
func TestDeleteWhileDownloadingLeavesNothing(t *testing.T) {
	data := make([]byte, 64*ratchet.StreamChunkSize) // 4 MiB: many pieces, so a delete lands part-way
	rand.Read(data)
	for _, tc := range []struct {
		name   string
		copied bool // assembled on another file system, so copied into place
		placed bool // deleted once in place, else while fetched
	}{
		{name: "fetching"},
		{name: "linked", placed: true},
		{name: "copied", copied: true, placed: true},
	} {
		for _, how := range []string{"delete", "clear", "remove"} {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				alice, bob, down, _ := downloadPair(t, tc.copied)
				ctx := attachCtx(t)
				_, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "photo.png", data), "", nil)
				must(t, err)
				m := waitAttachment(t, bob.c, "alice")
				deleted := false
				remove := func() {
					if deleted {
						return
					}
					deleted = true
					deleteAttachmentMessage(t, bob, how, m)
				}
				var progress Progress
				var fetched, total int64 // the progress reported at most, and the size
				if tc.placed {
					bob.c.beforeSavedRecord = remove
				} else {
					progress = func(done, size int64) {
						fetched, total = max(fetched, done), size
						if done > 0 && done < size {
							remove()
						}
					}
				}
				path, err := bob.c.Download(ctx, m.ID, down, progress)
				if !deleted {
					t.Fatalf("the download ended (%s, %v) before the message was deleted", path, err)
				}
				if !tc.placed && fetched >= total {
					t.Fatalf("the download went on to the end (%d of %d bytes) after its message was deleted", fetched, total)
				}
				if !errors.Is(err, ErrUnknownMessage) {
					t.Fatalf("the download of a deleted message returned %q, %v; want ErrUnknownMessage", path, err)
				}
				if files := dirEntries(t, down); len(files) != 0 {
					t.Fatalf("the downloads directory keeps %q (the download: %v)", files, err)
				}
				realADir, aerr := bob.c.attachmentDir()
				must(t, aerr)
				if files := dirEntries(t, realADir); len(files) != 0 {
					t.Fatalf("the attachment directory keeps %q (the download: %v)", files, err)
				}
				if a, aerr := bob.c.store.Attachment(ctx, m.Attachment.ClientID); !errors.Is(aerr, storage.ErrNotFound) {
					t.Fatalf("the deleted message's attachment is recorded again: %v %v", a.State, aerr)
				}
			})
		}
	}
}

// A download stopped as it ends (the context cancelled with the last piece in) either
// saved the file and recorded it as downloaded, or saved nothing: never a saved file
// under a record still fetching, which a resume would fetch and save again.
func TestDownloadStoppedAtTheEndSavesOnceOrNot(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 2*ratchet.StreamChunkSize+5)
	rand.Read(data)
	for i := range 4 {
		name := fmt.Sprintf("end-%d.bin", i)
		_, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), name, data), "", nil)
		must(t, err)
		m := waitAttachment(t, bob.c, "alice")
		down := t.TempDir()
		stop, cancel := context.WithCancel(ctx)
		path, err := bob.c.Download(stop, m.ID, down, func(done, total int64) {
			if done == total {
				cancel()
			}
		})
		cancel()
		row, rerr := bob.c.store.Attachment(ctx, m.Attachment.ClientID)
		must(t, rerr)
		files := dirEntries(t, down)
		switch {
		case err == nil:
			if row.State != AttachmentDownloaded || len(files) != 1 || filepath.Join(down, files[0]) != path {
				t.Fatalf("%s: returned %s, but the record is %v and the directory holds %q", name, path, row.State, files)
			}
		case len(files) != 0:
			t.Fatalf("%s: the download failed (%v) but saved %q (record %v)", name, err, files, row.State)
		}
	}
}

// A download into a relative directory is recorded by its absolute path: the record
// outlives the working directory of the process that saved it.
func TestDownloadRecordsAnAbsolutePath(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	work := t.TempDir()
	t.Chdir(work)
	if _, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "notes.txt", []byte("hi")), "", nil); err != nil {
		t.Fatal(err)
	}
	m := waitAttachment(t, bob.c, "alice")
	if err := os.Mkdir("down", 0o700); err != nil {
		t.Fatal(err)
	}
	path, err := bob.c.Download(ctx, m.ID, "down", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(work, "down", "notes.txt"); path != want {
		t.Fatalf("saved as %q, want %q", path, want)
	}
	a, err := bob.c.AttachmentOf(ctx, m.ID)
	if err != nil || a.Path != path {
		t.Fatalf("recorded path %q (%v), want %q", a.Path, err, path)
	}
}

// Every state change of an outgoing file (sent, delivered) is an event whose message
// carries the file: a subscriber replaces its copy of the message with the event's, and
// without it a file turned into its caption. Found by a client of the daemon's API
// written from API.md alone.
func TestOutgoingFileDeliveryEventsCarryTheFile(t *testing.T) {
	_, alice, _ := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	evs := alice.c.Events()
	sent, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "report.txt", []byte("quarterly")), "the report", nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev := <-evs
		if ev.Kind != DeliveryChanged || ev.Message == nil || ev.Message.ID != sent.ID {
			continue
		}
		if a := ev.Message.Attachment; a == nil || a.FileName != "report.txt" || ev.Message.Text != "the report" {
			t.Fatalf("delivery event of a file message (%s): %+v, attachment %+v", ev.Message.State, ev.Message, a)
		}
		if ev.Message.State >= Delivered {
			return
		}
	}
}

// PendingDownloads lists the files not downloaded yet oldest first, in the order they
// arrived, whether their download never started or stopped half way (the store lists
// them by state: the one stopped half way came after the newer ones).
func TestPendingDownloadsOldestFirst(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	big := make([]byte, 64*ratchet.StreamChunkSize) // 4 MiB: many runs, so a stop lands part-way
	rand.Read(big)
	src := t.TempDir()
	var ids []int64
	for i, data := range [][]byte{big, []byte("second"), []byte("third")} {
		_, err := alice.c.SendFile(ctx, "bob", writeFile(t, src, fmt.Sprint("file", i), data), "", nil)
		must(t, err)
		m := waitAttachment(t, bob.c, "alice")
		ids = append(ids, m.ID)
		if i == 0 {
			partialDownload(t, bob, m) // the oldest stops half way
		}
	}
	pending, err := bob.c.PendingDownloads(ctx)
	must(t, err)
	var got []int64
	for _, m := range pending {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("PendingDownloads lists messages %v, want %v (the order they arrived)", got, ids)
	}
}

// A Download of a file another call is downloading already (the owner fetching it by
// itself while 'pfschat recv' asks for it) waits for that download and answers with the
// path it saved the file to, not "being downloaded already"; nothing is saved twice.
func TestDownloadWaitsForTheOneUnderWay(t *testing.T) {
	_, alice, bob := attachPair(t, relaytest.Options{})
	ctx := attachCtx(t)
	data := make([]byte, 64*ratchet.StreamChunkSize) // 4 MiB: many runs, so the first is held part-way
	rand.Read(data)
	_, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "big.bin", data), "", nil)
	must(t, err)
	m := waitAttachment(t, bob.c, "alice")
	type result struct {
		path string
		err  error
	}
	held, release := make(chan struct{}), make(chan struct{})
	first, second := make(chan result, 1), make(chan result, 1)
	firstDir, secondDir := t.TempDir(), t.TempDir()
	go func() {
		var once sync.Once
		p, err := bob.c.Download(ctx, m.ID, firstDir, func(done, total int64) {
			if done > 0 && done < total {
				once.Do(func() {
					close(held)
					<-release
				})
			}
		})
		first <- result{p, err}
	}()
	select {
	case <-held:
	case r := <-first:
		t.Fatalf("the first download was not held part-way: %+v", r)
	}
	go func() {
		p, err := bob.c.Download(ctx, m.ID, secondDir, nil)
		second <- result{p, err}
	}()
	// The second call is waiting once a goroutine is parked in downloadRun.wait.
	buf := make([]byte, 1<<20)
	for !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*downloadRun).wait") {
		select {
		case r := <-second:
			close(release)
			t.Fatalf("the second Download answered while the first ran: %q, %v", r.path, r.err)
		case <-ctx.Done():
			t.Fatal("the second Download never waited")
		default:
			runtime.Gosched()
		}
	}
	close(release)
	r1, r2 := <-first, <-second
	if r1.err != nil || filepath.Dir(r1.path) != firstDir {
		t.Fatalf("the first download: %q, %v", r1.path, r1.err)
	}
	if r2.err != nil || r2.path != r1.path {
		t.Fatalf("the second download: %q, %v; want the first's path %q", r2.path, r2.err, r1.path)
	}
	if got, err := os.ReadFile(r1.path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("saved %d bytes, %v", len(got), err)
	}
	if left := dirEntries(t, secondDir); len(left) != 0 {
		t.Fatalf("the second call's dir holds %v", left)
	}
}
