package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pfschat/ratchet"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// placeCrashEnv makes the test binary a crash child (placeCrashChild) instead of
// running tests: "profile-dir\nattachment-dir\nmessage-id\ndownload-dir".
const placeCrashEnv = "PFSCHAT_CHAT_PLACE_CRASH_CHILD"

// placeCrashChild opens bob's profile and downloads the file of a message, stopping
// for the parent's SIGKILL once the file is in the downloads directory, before the
// record that says so commits.
func placeCrashChild(v string) error {
	f := strings.Split(v, "\n")
	if len(f) != 4 {
		return fmt.Errorf("%s: want 4 lines, got %d", placeCrashEnv, len(f))
	}
	id, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return err
	}
	ctx := context.Background()
	p := Profile{Dir: f[0], StoreOptions: storage.ClientOptions{KDF: testKDF, Synchronous: "NORMAL"}}
	p.Prefs.AttachmentDir = f[1]
	c, err := p.Open(ctx, testPass)
	if err != nil {
		return fmt.Errorf("opening bob: %w", err)
	}
	c.beforeSavedRecord = func() {
		fmt.Println("crash")
		select {} // the parent kills the process here
	}
	if _, err := c.Download(ctx, id, f[3], nil); err != nil {
		return fmt.Errorf("downloading: %w", err)
	}
	return errors.New("the download ended without reaching its crash point")
}

// otherFileSystem returns a new directory on another file system than dir (/dev/shm),
// so that a download assembled there is copied into dir, not linked; it skips the test
// when there is none.
func otherFileSystem(t *testing.T, dir string) string {
	t.Helper()
	var shm, here syscall.Stat_t
	if syscall.Stat("/dev/shm", &shm) != nil || syscall.Stat(dir, &here) != nil || shm.Dev == here.Dev {
		t.Skip("needs /dev/shm on a file system of its own")
	}
	other, err := os.MkdirTemp("/dev/shm", "pfschat-attachments-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(other) })
	return other
}

// A download killed (SIGKILL) once its file is in the downloads directory, before its
// record says so, is not saved a second time: the next run finds the file where the
// killed one put it — linked, or copied from another file system — checks that it is
// the attachment's, and records it. What a kill while saving can leave is tried: the
// path recorded but nothing there yet, the partial file gone or still linked to the
// saved one, a copy cut short. A file of the user's put
// at that name after the kill, of the same size, is never taken for it nor touched:
// the file is fetched again and saved beside it.
func TestDownloadKilledWhileSavingSavesOnce(t *testing.T) {
	data := make([]byte, 2*ratchet.StreamChunkSize+5)
	rand.Read(data)
	users := bytes.Repeat([]byte{'u'}, len(data))
	for _, tc := range []struct {
		name   string
		copied bool
		// after changes what the kill left: the saved file and the partial one.
		after func(t *testing.T, saved, part string)
		// want is the downloads directory afterwards, the file recorded first.
		want []string
	}{
		{name: "linked", want: []string{"photo.png"}},
		{name: "killed before the link", after: func(t *testing.T, saved, part string) {
			must(t, os.Rename(saved, part)) // the path recorded, nothing there yet
		}, want: []string{"photo.png"}},
		{name: "linked, partial kept", after: func(t *testing.T, saved, part string) {
			must(t, os.Link(saved, part)) // killed before the partial's name was removed
		}, want: []string{"photo.png"}},
		{name: "copied", copied: true, want: []string{"photo.png"}},
		{name: "copied, cut short", copied: true, after: func(t *testing.T, saved, part string) {
			// Killed in the middle of the copy: the partial is whole, the copy is not.
			must(t, os.WriteFile(part, data, 0o600))
			must(t, os.Truncate(saved, int64(len(data)/2)))
		}, want: []string{"photo.png"}},
		{name: "the user's file", after: func(t *testing.T, saved, part string) {
			must(t, os.Remove(saved))
			must(t, os.WriteFile(saved, users, 0o600))
		}, want: []string{"photo (2).png", "photo.png"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob, down, adir := downloadPair(t, tc.copied)
			ctx := attachCtx(t)
			_, err := alice.c.SendFile(ctx, "bob", writeFile(t, t.TempDir(), "photo.png", data), "", nil)
			must(t, err)
			m := waitAttachment(t, bob.c, "alice")
			bob.close()

			runCrashChild(t, placeCrashEnv+"="+strings.Join([]string{bob.p.Dir, adir, strconv.FormatInt(m.ID, 10), down}, "\n"), func(string) {})

			saved := filepath.Join(down, "photo.png")
			if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("the killed download did not save photo.png whole (%v)", err)
			}
			bob.reopen()
			realADir, err := bob.c.attachmentDir()
			must(t, err)
			part := partialStem(realADir, m.Attachment.ClientID) + ".plain"
			if tc.after != nil {
				tc.after(t, saved, part)
			}
			path, err := bob.c.Download(ctx, m.ID, down, nil)
			must(t, err)

			if files := dirEntries(t, down); !slices.Equal(files, tc.want) {
				t.Fatalf("the downloads directory holds %q, want %q", files, tc.want)
			}
			if want := filepath.Join(down, tc.want[0]); path != want {
				t.Fatalf("saved at %s, want %s", path, want)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s is not the file sent (%v)", path, err)
			}
			if len(tc.want) > 1 {
				if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, users) {
					t.Fatalf("the user's photo.png was changed (%v)", err)
				}
			}
			a, err := bob.c.AttachmentOf(ctx, m.ID)
			must(t, err)
			if a.State != AttachmentDownloaded || a.Path != path {
				t.Fatalf("the record says %v at %q, want downloaded at %s", a.State, a.Path, path)
			}
			if _, err := os.Stat(part); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the partial download is still there (%v)", err)
			}
			if again, err := bob.c.Download(ctx, m.ID, down, nil); err != nil || again != path {
				t.Fatalf("downloading again: %s, %v; want %s", again, err, path)
			}
		})
	}
}

// Two messages bring the same file (same bytes, same name). The download of the first
// is killed after it recorded where the file goes and before the file got there; the
// second is then downloaded, to that free name. The first, resumed, must not take the
// second's file for its own (its bytes are identical, so a check of the bytes alone
// cannot tell them apart): each record owns the path it names, and the first is saved
// beside the second.
func TestKilledDownloadDoesNotTakeAnIdenticalFile(t *testing.T) {
	data := make([]byte, 2*ratchet.StreamChunkSize+5)
	rand.Read(data)
	for _, copied := range []bool{false, true} {
		t.Run(map[bool]string{false: "linked", true: "copied"}[copied], func(t *testing.T) {
			alice, bob, down, adir := downloadPair(t, copied)
			ctx := attachCtx(t)
			src := writeFile(t, t.TempDir(), "photo.png", data)
			_, err := alice.c.SendFile(ctx, "bob", src, "", nil)
			must(t, err)
			first := waitAttachment(t, bob.c, "alice")
			_, err = alice.c.SendFile(ctx, "bob", src, "", nil)
			must(t, err)
			second := waitAttachment(t, bob.c, "alice")
			bob.close()

			runCrashChild(t, placeCrashEnv+"="+strings.Join([]string{bob.p.Dir, adir, strconv.FormatInt(first.ID, 10), down}, "\n"), func(string) {})
			bob.reopen()
			realADir, err := bob.c.attachmentDir()
			must(t, err)
			// Killed before the file got there: the path recorded, the partial whole.
			must(t, os.Remove(filepath.Join(down, "photo.png")))
			must(t, os.WriteFile(partialStem(realADir, first.Attachment.ClientID)+".plain", data, 0o600))

			secondPath, err := bob.c.Download(ctx, second.ID, down, nil)
			must(t, err)
			if want := filepath.Join(down, "photo.png"); secondPath != want {
				t.Fatalf("the second file was saved at %s, want %s", secondPath, want)
			}
			firstPath, err := bob.c.Download(ctx, first.ID, down, nil)
			must(t, err)
			if firstPath == secondPath {
				t.Fatalf("both messages' files are recorded at %s", firstPath)
			}
			if files := dirEntries(t, down); !slices.Equal(files, []string{"photo (2).png", "photo.png"}) {
				t.Fatalf("the downloads directory holds %q, want both files", files)
			}
			for _, m := range []Message{first, second} {
				a, err := bob.c.AttachmentOf(ctx, m.ID)
				must(t, err)
				if got, err := os.ReadFile(a.Path); a.State != AttachmentDownloaded || err != nil || !bytes.Equal(got, data) {
					t.Fatalf("message %d: %v at %s (%v), want the file sent, downloaded", m.ID, a.State, a.Path, err)
				}
			}
		})
	}
}

// downloadPair makes alice and bob, contacts of each other on a fresh relay, and bob's
// downloads directory down; with copied, bob assembles downloads in adir on another
// file system than down, so they are copied into place instead of linked.
func downloadPair(t *testing.T, copied bool) (alice, bob *user, down, adir string) {
	t.Helper()
	down = t.TempDir()
	if copied {
		adir = otherFileSystem(t, down)
	}
	r := relaytest.StartWith(t, relaytest.Options{})
	alice = newUser(t, r, "alice")
	bob = newUser(t, r, "bob", func(p *Profile) { p.Prefs.AttachmentDir = adir })
	ctx := attachCtx(t)
	_, err := alice.c.AddContact(ctx, "bob")
	must(t, err)
	_, err = bob.c.AddContact(ctx, "alice")
	must(t, err)
	return alice, bob, down, adir
}
