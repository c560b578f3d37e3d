package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A chunk put racing with the blob's commit (another connection of the uploader that
// thinks the upload is still at its start) never cuts the file the commit checked:
// either the put is refused, or it lands before the commit, which then finds the
// upload short and refuses. A committed blob's file always has the blob's size. Before,
// the put could reopen the upload between the commit's check and its rename, cut it
// back to the put's offset, and the relay committed a file shorter than the blob.
func TestBlobPutRacingCommitNeverCutsTheFile(t *testing.T) {
	ctx := context.Background()
	b := testBlobStore(t)
	const chunk = 32768
	data := bytes.Repeat([]byte("0123456789abcdef"), 2*chunk/16)
	check := BlobCheck{CRC32C: BlobCRC32C(UpdateBlobCRC32C(0, data))}
	now := time.Now()
	committed := 0
	for i := range 200 {
		bl := Blob{ID: fmt.Sprintf("%032x", i+1), Owner: "alice", Size: int64(len(data)), Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := b.CreateBlob(ctx, bl, 0); err != nil {
			t.Fatal(err)
		}
		if err := b.AppendBlob(bl.ID, bl.Size, chunk, 0, data); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var commitErr error
		commit := func() { defer wg.Done(); commitErr = b.CommitBlob(ctx, bl, check, now.Add(time.Hour)) }
		put := func() { defer wg.Done(); b.AppendBlob(bl.ID, bl.Size, chunk, 0, data[:chunk]) } // refused, or first
		wg.Add(2)
		// Which starts first alternates: the goroutine started last tends to run first
		// (the scheduler's runnext), and each side must win some rounds.
		if i%2 == 0 {
			go commit()
			go put()
		} else {
			go put()
			go commit()
		}
		wg.Wait()
		if commitErr != nil {
			if !errors.Is(commitErr, ErrBlobIncomplete) && !errors.Is(commitErr, ErrNotFound) {
				t.Fatalf("round %d: commit: %v", i, commitErr)
			}
			continue
		}
		committed++
		st, err := os.Stat(b.path(bl.ID, true))
		if err != nil || st.Size() != bl.Size {
			t.Fatalf("round %d: a committed blob of %d bytes has a file of %v bytes (%v)", i, bl.Size, st.Size(), err)
		}
	}
	if committed == 0 {
		t.Fatal("no commit won a round: the race was never run the way that matters")
	}
}

// A blob's file handed out for reading is closed when the blob is deleted (all its
// recipients fetched it, it expired, its owner went): a connection idle after its
// download no longer keeps the deleted file's space on disk until it goes.
func TestDeletedBlobClosesItsReaders(t *testing.T) {
	const chunk = 32768
	ctx := context.Background()
	b := testBlobStore(t)
	now := time.Now()
	data := []byte("a committed blob")
	check := BlobCheck{CRC32C: BlobCRC32C(UpdateBlobCRC32C(0, data))}
	for i, del := range []func(Blob) error{
		func(bl Blob) error { _, err := b.BlobFetched(ctx, bl.ID, "bob", now); return err },
		func(bl Blob) error { return b.DeleteBlob(ctx, bl.ID) },
		func(bl Blob) error { _, err := b.DeleteOwnerBlobs(ctx, "alice"); return err },
	} {
		bl := Blob{ID: fmt.Sprintf("%032x", 1000+i), Owner: "alice", Size: int64(len(data)), Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := b.CreateBlob(ctx, bl, 0); err != nil {
			t.Fatal(err)
		}
		if err := b.AppendBlob(bl.ID, bl.Size, chunk, 0, data); err != nil {
			t.Fatal(err)
		}
		if err := b.CommitBlob(ctx, bl, check, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		f, err := b.OpenBlob(bl.ID)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(data))
		if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data) {
			t.Fatalf("case %d: read before the deletion: %q %v", i, buf, err)
		}
		if err := del(bl); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(buf, 0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("case %d: a read after the deletion: %v, want the file closed", i, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("case %d: closing a reader the deletion closed: %v", i, err)
		}
	}
}

// testBlobStore is the blob store of a new relay database, closed with the test.
func testBlobStore(t *testing.T) *BlobStore {
	t.Helper()
	r, err := OpenRelay(context.Background(), filepath.Join(t.TempDir(), "r.db"), RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	b, err := r.Blobs("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AppendBlob cuts back only the partial chunk a crash left past the stored whole
// chunks, which Blob does not count, so the upload resumes at the chunk edge; it never
// writes over whole chunks stored before, nor over bytes this process wrote (another
// connection behind on the upload), open or reopened.
func TestAppendBlobCutsOnlyACrashTail(t *testing.T) {
	ctx := context.Background()
	b := testBlobStore(t)
	const chunk = 1000
	data := bytes.Repeat([]byte("0123456789"), 3*chunk/10)
	now := time.Now()
	bl := Blob{ID: fmt.Sprintf("%032x", 7), Owner: "alice", Size: int64(len(data)), Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, bl, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendBlob(bl.ID, bl.Size, chunk, 0, data[:chunk]); err != nil {
		t.Fatal(err)
	}
	// The relay dies half-way through chunk 1.
	b.closeAll()
	f, err := os.OpenFile(b.path(bl.ID, false), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{0xEE}, chunk/2))
	f.Close()
	if got, err := b.Blob(ctx, bl.ID, chunk, now); err != nil || got.Received != chunk {
		t.Fatalf("after the crash: %+v %v, want 1 chunk received", got, err)
	}
	if err := b.AppendBlob(bl.ID, bl.Size, chunk, chunk, data[chunk:2*chunk]); err != nil {
		t.Fatalf("chunk 1 over the crash's partial chunk: %v", err)
	}
	// Behind the upload: refused while it is open, and once it was closed too.
	if err := b.AppendBlob(bl.ID, bl.Size, chunk, chunk, bytes.Repeat([]byte{0xEE}, chunk)); !errors.Is(err, ErrBlobOutOfOrder) {
		t.Fatalf("chunk 1 again, upload open: %v, want ErrBlobOutOfOrder", err)
	}
	b.closeAll()
	if err := b.AppendBlob(bl.ID, bl.Size, chunk, 0, bytes.Repeat([]byte{0xEE}, chunk)); !errors.Is(err, ErrBlobOutOfOrder) {
		t.Fatalf("chunk 0 again, upload reopened: %v, want ErrBlobOutOfOrder", err)
	}
	if err := b.AppendBlob(bl.ID, bl.Size, chunk, 2*chunk, data[2*chunk:]); err != nil {
		t.Fatal(err)
	}
	check := BlobCheck{CRC32C: BlobCRC32C(UpdateBlobCRC32C(0, data))}
	if err := b.CommitBlob(ctx, bl, check, now.Add(time.Hour)); err != nil {
		t.Fatalf("commit: %v (the stored bytes are not the upload's)", err)
	}
}

// CreateBlob makes the upload's file before its row: a row never exists without its
// file, so a purge of the owner's blobs right after the row's commit (an account's
// deletion) finds both and leaves no file behind. Seen here through a file that cannot
// be made (a directory holds its path): the create fails and writes no row. (Made
// after the row, the file was missing in that window, and the purge's file removal
// came before the file.)
func TestCreateBlobWhoseFileCannotBeMadeWritesNoRow(t *testing.T) {
	ctx := context.Background()
	b := testBlobStore(t)
	now := time.Now()
	bl := Blob{ID: fmt.Sprintf("%032x", 1), Owner: "alice", Size: 100, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := os.Mkdir(b.path(bl.ID, false), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBlob(ctx, bl, 0); err == nil {
		t.Fatal("CreateBlob succeeded with a directory at its file's path")
	}
	var n int
	if err := b.r.db.queryRow(ctx, "SELECT count(*) FROM blobs WHERE id = ?", bl.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows of the blob whose file could not be made (%v), want none", n, err)
	}
}

// A CreateBlob whose row is not written (the owner's account is gone, the quota is
// full, the id is taken) leaves no file of its own and never touches the file of the
// blob that holds the id.
func TestRefusedCreateBlobLeavesNoFile(t *testing.T) {
	ctx := context.Background()
	b := testBlobStore(t)
	now := time.Now()
	bl := Blob{ID: fmt.Sprintf("%032x", 1), Owner: "alice", Size: 100, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, bl, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendBlob(bl.ID, bl.Size, 32768, 0, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBlob(ctx, bl, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("the same id again: %v, want ErrExists", err)
	}
	if got, err := b.Blob(ctx, bl.ID, 1, now); err != nil || got.Received != 4 {
		t.Fatalf("the first upload after a refused second: %+v, %v; want its 4 bytes", got, err)
	}
	gone := Blob{ID: fmt.Sprintf("%032x", 2), Owner: "bob", OwnerCard: "no-such-card", Size: 100, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, gone, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an owner without the card: %v, want ErrNotFound", err)
	}
	over := Blob{ID: fmt.Sprintf("%032x", 3), Owner: "alice", Size: 100, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, over, BlobMinCharge); !errors.Is(err, ErrBlobQuota) {
		t.Fatalf("over the quota: %v, want ErrBlobQuota", err)
	}
	for _, id := range []string{gone.ID, over.ID} {
		if _, err := os.Stat(b.path(id, false)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused blob %s has a file: %v", id, err)
		}
	}
}

// The expiry sweep removes blob files that have no row (a crash between a file's
// creation and its row's, or between a row's deletion and its file's), uploading or
// committed, and keeps every file that has one — and the file of a CreateBlob that
// has made its file and not yet its row.
func TestExpireBlobsRemovesFilesWithoutRows(t *testing.T) {
	ctx := context.Background()
	b := testBlobStore(t)
	now := time.Now()
	live := Blob{ID: fmt.Sprintf("%032x", 1), Owner: "alice", Size: 100, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, live, 0); err != nil {
		t.Fatal(err)
	}
	data := []byte("committed")
	done := Blob{ID: fmt.Sprintf("%032x", 2), Owner: "alice", Size: int64(len(data)), Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateBlob(ctx, done, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendBlob(done.ID, done.Size, 32768, 0, data); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitBlob(ctx, done, BlobCheck{CRC32C: BlobCRC32C(UpdateBlobCRC32C(0, data))}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	orphanUp, orphanDone := fmt.Sprintf("%032x", 3), fmt.Sprintf("%032x", 4)
	for _, f := range []string{b.path(orphanUp, false), b.path(orphanDone, true)} {
		if err := os.WriteFile(f, []byte("orphan"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A creation caught between its file and its row: the sweep spares its file.
	creating := Blob{ID: fmt.Sprintf("%032x", 5), Owner: "alice", Size: 100, Recipients: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	b.r.db.hook = func(step int) error {
		if step == 1 {
			b.r.db.hook = nil
			if _, err := b.ExpireBlobs(ctx, now); err != nil {
				t.Error(err)
			}
			if _, err := os.Stat(b.path(creating.ID, false)); err != nil {
				t.Errorf("the sweep removed the file of a blob being created: %v", err)
			}
		}
		return nil
	}
	if err := b.CreateBlob(ctx, creating, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ExpireBlobs(ctx, now); err != nil || n != 0 {
		t.Fatalf("ExpireBlobs: %d, %v; want nothing expired", n, err)
	}
	for _, f := range []string{b.path(orphanUp, false), b.path(orphanDone, true)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file without a row %s is there after the sweep: %v", filepath.Base(f), err)
		}
	}
	for _, f := range []string{b.path(live.ID, false), b.path(done.ID, true), b.path(creating.ID, false)} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("a blob's file is gone after the sweep: %v", err)
		}
	}
}
