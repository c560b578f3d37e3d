package storage

// The relay's blob store (relay/PROTOCOL.md "Blobs"): metadata in the relay database,
// bytes in files beside it, <db>.blobs/partial/<id> while an upload runs and
// <db>.blobs/<id> once committed (renamed atomically after an fsync).

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Blob errors.
var (
	// ErrBlobQuota: the owner's blobs would exceed the quota.
	ErrBlobQuota = errors.New("storage: blob quota exceeded")
	// ErrBlobOutOfOrder: a chunk was written at another offset than the blob's end.
	ErrBlobOutOfOrder = errors.New("storage: blob chunk out of order")
	// ErrBlobIncomplete: a commit before every byte arrived.
	ErrBlobIncomplete = errors.New("storage: blob incomplete")
	// ErrBlobDigest: a commit's CRC-32C or digest is not that of the stored bytes.
	ErrBlobDigest = errors.New("storage: blob digest mismatch")
)

// BlobCheck is what a commit compares an upload's stored bytes with: their CRC-32C
// (Castagnoli, 4 bytes big-endian), which the store keeps up to date as chunks are
// written, or, from clients that predate it, their SHA-256 (32 bytes), for which the
// store reads the blob back. Exactly one is set.
//
// The check guards the upload, not the file: the recipients verify the sealed
// stream's SHA-256 and every chunk's tag themselves. A CRC-32C catches what a
// transfer or a write can garble at a small fraction of a SHA-256's cost, which was a
// third of the relay's CPU per uploaded byte.
type BlobCheck struct {
	CRC32C []byte
	SHA256 []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// UpdateBlobCRC32C returns crc extended by p (start from 0).
func UpdateBlobCRC32C(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// BlobCRC32C is crc as BlobCheck.CRC32C and the protocol carry it.
func BlobCRC32C(crc uint32) []byte { return binary.BigEndian.AppendUint32(nil, crc) }

// Matches reports whether bytes whose CRC-32C is crc and whose SHA-256 is sha (nil
// when not computed: then a SHA-256 check fails) pass c.
func (c BlobCheck) Matches(crc uint32, sha []byte) bool {
	switch {
	case c.CRC32C != nil && c.SHA256 == nil:
		return subtle.ConstantTimeCompare(BlobCRC32C(crc), c.CRC32C) == 1
	case c.SHA256 != nil && c.CRC32C == nil:
		return sha != nil && subtle.ConstantTimeCompare(sha, c.SHA256) == 1
	}
	return false
}

// Blob is a blob's metadata. Received is how many bytes are stored (for an upload
// in progress; Size once committed).
type Blob struct {
	ID    string
	Owner string
	// OwnerCard, given to CreateBlob, is the card the owner's account must hold when the
	// upload is recorded (checked in the same transaction; not stored, not returned).
	// "" checks nothing (the store's own tests, tools).
	OwnerCard  string
	Size       int64
	Recipients int
	Committed  bool
	Received   int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// BlobStore keeps blobs for a relay: create it with (*Relay).Blobs.
type BlobStore struct {
	r   *Relay
	dir string

	mu  sync.Mutex
	ups map[string]*openUpload // uploads being written: their file open, their CRC running
	// committing holds the uploads CommitBlob is committing: no chunk is written to
	// them meanwhile (a put for an earlier offset would cut the file it checked).
	committing map[string]bool
	// readers are the files OpenBlob handed out, per blob: a deleted blob's are closed
	// at once, so that a connection idle after a download does not keep a deleted
	// file's space (and pass its owner's quota) until it goes.
	readers map[string]map[*BlobFile]struct{}
	// creating counts the CreateBlob calls under way per id: their file may exist
	// before their row, and the sweep of files without rows (removeOrphans) spares it.
	creating map[string]int
}

// BlobFile is a committed blob's file, open for reading (OpenBlob). It is closed
// when the blob is deleted; a read after that fails.
type BlobFile struct {
	f    *os.File
	b    *BlobStore
	id   string
	gone atomic.Bool // the blob was deleted: closeReaders closes f
}

// ReadAt reads the blob's bytes at off. After the blob's deletion it fails with
// os.ErrClosed.
func (f *BlobFile) ReadAt(p []byte, off int64) (int, error) {
	if f.gone.Load() {
		return 0, &os.PathError{Op: "read", Path: f.f.Name(), Err: os.ErrClosed}
	}
	return f.f.ReadAt(p, off)
}

// SyscallConn gives the file's descriptor to a relay that sends the blob's bytes to a
// socket with sendfile(2): its Control keeps the descriptor open for as long as the
// call runs, so a deletion's close meanwhile waits for it, and after the deletion it
// fails (os.ErrClosed).
func (f *BlobFile) SyscallConn() (syscall.RawConn, error) {
	if f.gone.Load() {
		return nil, &os.PathError{Op: "read", Path: f.f.Name(), Err: os.ErrClosed}
	}
	return f.f.SyscallConn()
}

// Close closes the file (again, after the blob's deletion closed it: no error).
func (f *BlobFile) Close() error {
	f.b.mu.Lock()
	_, open := f.b.readers[f.id][f]
	delete(f.b.readers[f.id], f)
	if len(f.b.readers[f.id]) == 0 {
		delete(f.b.readers, f.id)
	}
	f.b.mu.Unlock()
	if !open {
		return nil
	}
	return f.f.Close()
}

// closeReaders closes the files OpenBlob handed out for id (its blob is deleted).
// Reads fail from now on; the descriptors are closed on a goroutine of their own,
// since the last close of a deleted file frees its pages (about 40 ms for 100 MiB
// on the build machine), which the request that deleted it (a blob_done waiting
// for its answer) should not wait for.
func (b *BlobStore) closeReaders(id string) {
	b.mu.Lock()
	fs := b.readers[id]
	delete(b.readers, id)
	b.mu.Unlock()
	if len(fs) == 0 {
		return
	}
	for f := range fs {
		f.gone.Store(true)
	}
	go func() {
		for f := range fs {
			f.f.Close() // safe beside a ReadAt in another goroutine, which then fails
		}
	}()
}

// openUpload is an upload being written: AppendBlob extends its CRC-32C by each chunk
// as it writes it, so that the commit checks it without reading the blob back.
type openUpload struct {
	mu  sync.Mutex
	f   *os.File
	crc uint32
	n   int64 // bytes written and in crc: the file's length
	wb  *WriteBehind
}

// maxOpenUploads bounds the uploads kept open (a file and a CRC each); past it one is
// closed, and reads its stored bytes again when it goes on.
const maxOpenUploads = 64

// upload returns id's open upload, locked, positioned at offset: the file's length
// must be offset. A longer file is cut back to it only when what is past offset is
// less than a chunk of chunk bytes — the partial chunk a crash left, which Blob does
// not count — and only when the upload was not open: bytes this process wrote and
// answered for are never written over (another connection of the owner, behind on
// the upload, gets ErrBlobOutOfOrder), nor are whole chunks stored before. A shorter
// file is ErrBlobOutOfOrder.
func (b *BlobStore) upload(id string, chunk, offset int64) (*openUpload, error) {
	var u, victim *openUpload
	for {
		b.mu.Lock()
		if b.committing[id] {
			b.mu.Unlock()
			return nil, fmt.Errorf("%w: blob (being committed)", ErrNotFound)
		}
		u = b.ups[id]
		if u == nil {
			if len(b.ups) >= maxOpenUploads {
				for oid, o := range b.ups {
					delete(b.ups, oid)
					victim = o
					break
				}
			}
			u = &openUpload{}
			b.ups[id] = u
		}
		b.mu.Unlock()
		if victim != nil { // closed outside b.mu: never wait for an upload's lock under it
			victim.mu.Lock()
			if victim.f != nil {
				victim.f.Close()
				victim.f = nil
			}
			victim.mu.Unlock()
			victim = nil
		}
		u.mu.Lock()
		b.mu.Lock()
		current := b.ups[id] == u
		b.mu.Unlock()
		if current {
			break
		}
		u.mu.Unlock() // evicted or committed meanwhile: look again
	}
	if u.f != nil {
		if u.n == offset {
			return u, nil
		}
		u.mu.Unlock()
		return nil, fmt.Errorf("%w: the blob has %d bytes, the chunk starts at %d", ErrBlobOutOfOrder, u.n, offset)
	}
	f, err := os.OpenFile(b.path(id, false), os.O_RDWR, 0)
	if err != nil {
		u.mu.Unlock()
		b.forget(id, u)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: blob", ErrNotFound)
		}
		return nil, fmt.Errorf("storage: blob file: %w", err)
	}
	u.f = f
	// The CRC of what is stored up to offset (written before the relay restarted, or
	// before this upload was closed to make room), cutting off a crash's partial chunk.
	st, err := u.f.Stat()
	if err == nil && st.Size() < offset {
		err = fmt.Errorf("%w: the blob has %d bytes, the chunk starts at %d", ErrBlobOutOfOrder, st.Size(), offset)
	}
	if err == nil && st.Size() > offset && (chunk <= 0 || st.Size()-offset >= chunk) {
		err = fmt.Errorf("%w: the blob has %d bytes, the chunk starts at %d", ErrBlobOutOfOrder, st.Size(), offset)
	}
	if err == nil && st.Size() > offset {
		err = u.f.Truncate(offset)
	}
	if err == nil {
		u.crc, _, _, err = blobSums(io.NewSectionReader(u.f, 0, offset), false)
	}
	if err != nil {
		u.f.Close()
		u.f = nil
		u.mu.Unlock()
		b.forget(id, u)
		if errors.Is(err, ErrBlobOutOfOrder) {
			return nil, err
		}
		return nil, fmt.Errorf("storage: blob file: %w", err)
	}
	u.n = offset
	u.wb = NewWriteBehind(u.f, offset)
	return u, nil
}

// forget drops id's open upload u (closed by the caller, or closes it).
func (b *BlobStore) forget(id string, u *openUpload) {
	b.mu.Lock()
	if b.ups[id] == u {
		delete(b.ups, id)
	}
	b.mu.Unlock()
}

// closeAll closes every open upload's file (the relay store closes).
func (b *BlobStore) closeAll() {
	b.mu.Lock()
	ups := b.ups
	b.ups = make(map[string]*openUpload)
	b.mu.Unlock()
	for _, u := range ups {
		u.mu.Lock()
		if u.f != nil {
			u.f.Close()
			u.f = nil
		}
		u.mu.Unlock()
	}
}

// closeUpload closes and forgets id's open upload, if any.
func (b *BlobStore) closeUpload(id string) {
	b.mu.Lock()
	u := b.ups[id]
	delete(b.ups, id)
	b.mu.Unlock()
	if u != nil {
		u.mu.Lock()
		if u.f != nil {
			u.f.Close()
			u.f = nil
		}
		u.mu.Unlock()
	}
}

// Blobs returns the relay's blob store, its files in dir (default: the database's
// path + ".blobs"), creating the directories.
func (r *Relay) Blobs(dir string) (*BlobStore, error) {
	if dir == "" {
		dir = r.db.path + ".blobs"
	}
	if err := os.MkdirAll(filepath.Join(dir, "partial"), 0o700); err != nil {
		return nil, fmt.Errorf("storage: blob directory: %w", err)
	}
	b := &BlobStore{r: r, dir: dir, ups: make(map[string]*openUpload)}
	r.blobMu.Lock()
	r.blobStores = append(r.blobStores, b)
	r.blobMu.Unlock()
	return b, nil
}

// Dir is where the blob files are.
func (b *BlobStore) Dir() string { return b.dir }

func (b *BlobStore) path(id string, committed bool) string {
	if committed {
		return filepath.Join(b.dir, id)
	}
	return filepath.Join(b.dir, "partial", id)
}

// validID keeps ids file-name safe whatever the caller checked.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// BlobMinCharge is the least a blob counts against its owner's quota, one chunk of
// relay/PROTOCOL.md "Blobs": without it empty and tiny blobs, a database row and a
// file each, would cost nothing and an account could make them without end.
const BlobMinCharge = 32768

// BlobCharge is what a blob of size bytes counts against its owner's quota.
func BlobCharge(size int64) int64 { return max(size, BlobMinCharge) }

// CreateBlob records a new, empty upload and its file. The owner's blobs (uploading
// and committed), each counted as BlobCharge of its size, plus this one must stay
// within quota bytes (ErrBlobQuota; quota ≤ 0: no quota). With bl.OwnerCard the
// owner's account must still hold that card (ErrNotFound otherwise): checked in the
// write that records the upload, so a begin racing its account's deletion either
// commits first, and the deletion's purge of the owner's blobs that follows finds it,
// or sees the account gone — never lands under a name a new owner may take.
//
// The file is made first, the row after, and the file is removed when the row is not
// written: a file never exists without its row but in that window, which the sweep of
// files without rows (ExpireBlobs) spares. The other order left a window between the
// row's commit and the file's creation in which a purge (DeleteOwnerBlobs,
// DeleteBlob) removed the row and found no file to remove; the file made next then
// lived on with no row, charged to no quota and never removed.
func (b *BlobStore) CreateBlob(ctx context.Context, bl Blob, quota int64) error {
	if !validID(bl.ID) || bl.Owner == "" || bl.Size < 0 || bl.Recipients < 1 {
		return fmt.Errorf("%w: blob %q", ErrInvalid, bl.ID)
	}
	b.mu.Lock()
	if b.creating == nil {
		b.creating = make(map[string]int)
	}
	b.creating[bl.ID]++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.creating[bl.ID]--; b.creating[bl.ID] <= 0 {
			delete(b.creating, bl.ID)
		}
		b.mu.Unlock()
	}()
	p := b.path(bl.ID, false)
	// O_EXCL: an existing file is another upload's (or a crash's orphan, which the
	// sweep removes); it is never truncated or removed here.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: blob %s", ErrExists, bl.ID)
	}
	if err != nil {
		return fmt.Errorf("storage: create blob file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(p)
		return fmt.Errorf("storage: create blob file: %w", err)
	}
	err = b.r.db.write(ctx, func(tx *txn) error {
		if bl.OwnerCard != "" {
			var n int64
			if err := tx.scan(ctx, "SELECT count(*) FROM accounts WHERE name = ? AND card_id = ?", []any{bl.Owner, bl.OwnerCard}, &n); err != nil {
				return fmt.Errorf("storage: blob owner: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("%w: no account %q with card %s", ErrNotFound, bl.Owner, bl.OwnerCard)
			}
		}
		if quota > 0 {
			var used int64
			if err := tx.scan(ctx, "SELECT coalesce(sum(max(size, ?)), 0) FROM blobs WHERE owner = ?", []any{BlobMinCharge, bl.Owner}, &used); err != nil {
				return fmt.Errorf("storage: blob quota: %w", err)
			}
			if used+BlobCharge(bl.Size) > quota {
				return fmt.Errorf("%w: %d bytes stored, %d more asked, quota %d", ErrBlobQuota, used, bl.Size, quota)
			}
		}
		n, err := tx.execN(ctx, "INSERT OR IGNORE INTO blobs (id, owner, size, recipients, committed, created_at, expires_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
			bl.ID, bl.Owner, bl.Size, bl.Recipients, dbTime(bl.CreatedAt), dbTime(bl.ExpiresAt))
		if err != nil {
			return fmt.Errorf("storage: create blob: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: blob %s", ErrExists, bl.ID)
		}
		return nil
	})
	if err != nil {
		os.Remove(p) // the file this call made: no row was written for it
		return err
	}
	return nil
}

// Blob returns a blob's metadata (ErrNotFound: none, or expired at now). For an upload
// in progress Received is the stored length rounded down to whole chunks of chunk
// bytes (a chunk cut by a crash is written again).
func (b *BlobStore) Blob(ctx context.Context, id string, chunk int64, now time.Time) (Blob, error) {
	if !validID(id) {
		return Blob{}, fmt.Errorf("%w: blob", ErrNotFound)
	}
	var bl Blob
	var committed int
	var created, expires int64
	err := b.r.db.queryRow(ctx, "SELECT id, owner, size, recipients, committed, created_at, expires_at FROM blobs WHERE id = ?", id).
		Scan(&bl.ID, &bl.Owner, &bl.Size, &bl.Recipients, &committed, &created, &expires)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Blob{}, fmt.Errorf("%w: blob", ErrNotFound)
		}
		return Blob{}, fmt.Errorf("storage: blob: %w", err)
	}
	bl.Committed, bl.CreatedAt, bl.ExpiresAt = committed == 1, goTime(created), goTime(expires)
	if !now.Before(bl.ExpiresAt) {
		return Blob{}, fmt.Errorf("%w: blob expired", ErrNotFound)
	}
	if bl.Committed {
		bl.Received = bl.Size
		return bl, nil
	}
	st, err := os.Stat(b.path(id, false))
	if err != nil {
		return Blob{}, fmt.Errorf("storage: blob file: %w", err)
	}
	bl.Received = min(st.Size(), bl.Size)
	if bl.Received < bl.Size && chunk > 0 {
		bl.Received -= bl.Received % chunk
	}
	return bl, nil
}

// AppendBlob writes data at offset of an upload in progress; offset must be the
// stored length (a partial chunk of chunk bytes that a crash left behind is cut first
// when offset is the chunk edge before it), else ErrBlobOutOfOrder. Writing past the
// declared size is ErrInvalid.
func (b *BlobStore) AppendBlob(id string, size, chunk, offset int64, data []byte) error {
	if !validID(id) {
		return fmt.Errorf("%w: blob", ErrNotFound)
	}
	if offset+int64(len(data)) > size {
		return fmt.Errorf("%w: %d bytes at %d pass the blob's size %d", ErrInvalid, len(data), offset, size)
	}
	u, err := b.upload(id, chunk, offset)
	if err != nil {
		return err
	}
	if _, err := u.f.WriteAt(data, offset); err != nil {
		u.f.Close()
		u.f = nil
		u.mu.Unlock()
		b.forget(id, u)
		return fmt.Errorf("storage: blob write: %w", err)
	}
	defer u.mu.Unlock()
	u.crc = UpdateBlobCRC32C(u.crc, data)
	u.n += int64(len(data))
	u.wb.Written(u.n)
	return nil
}

// blobSums reads r to its end and returns its CRC-32C, its SHA-256 when withSHA (else
// nil) and its length.
func blobSums(r io.Reader, withSHA bool) (crc uint32, sha []byte, n int64, err error) {
	c, h := crc32.New(castagnoli), sha256.New()
	var w io.Writer = c
	if withSHA {
		w = io.MultiWriter(c, h)
	}
	if n, err = io.Copy(w, r); err != nil {
		return 0, nil, n, err
	}
	if withSHA {
		sha = h.Sum(nil)
	}
	return c.Sum32(), sha, n, nil
}

// CommitBlob completes an upload: every byte must be there (ErrBlobIncomplete) and
// pass check (ErrBlobDigest: the upload is deleted). The file is synced and renamed
// into place; the blob then lives until expires.
func (b *BlobStore) CommitBlob(ctx context.Context, bl Blob, check BlobCheck, expires time.Time) error {
	p := b.path(bl.ID, false)
	// The CRC AppendBlob kept, when it covers the whole blob and is what check asks
	// for; else read the blob back.
	var crc uint32
	var sha []byte
	var n int64
	kept, synced := false, false
	b.mu.Lock()
	if b.committing[bl.ID] {
		b.mu.Unlock()
		return fmt.Errorf("%w: blob (being committed)", ErrNotFound)
	}
	u := b.ups[bl.ID]
	delete(b.ups, bl.ID)
	if b.committing == nil {
		b.committing = make(map[string]bool)
	}
	b.committing[bl.ID] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.committing, bl.ID)
		b.mu.Unlock()
	}()
	if u != nil {
		u.mu.Lock()
		if u.f != nil {
			if u.n == bl.Size {
				crc, n, kept = u.crc, u.n, check.SHA256 == nil
				if err := u.f.Sync(); err != nil {
					u.f.Close()
					u.f = nil
					u.mu.Unlock()
					return fmt.Errorf("storage: sync %s: %w", bl.ID, err)
				}
				synced = true
			}
			u.f.Close()
			u.f = nil
		}
		u.mu.Unlock()
	}
	if !kept {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: blob", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("storage: blob file: %w", err)
		}
		crc, sha, n, err = blobSums(f, check.SHA256 != nil)
		f.Close()
		if err != nil {
			return fmt.Errorf("storage: blob read: %w", err)
		}
	}
	if n != bl.Size {
		return fmt.Errorf("%w: %d of %d bytes", ErrBlobIncomplete, n, bl.Size)
	}
	if !check.Matches(crc, sha) {
		b.DeleteBlob(ctx, bl.ID)
		return fmt.Errorf("%w: the upload is dropped", ErrBlobDigest)
	}
	if !synced {
		if err := syncFile(p); err != nil {
			return err
		}
	}
	if err := os.Rename(p, b.path(bl.ID, true)); err != nil {
		return fmt.Errorf("storage: blob commit: %w", err)
	}
	if err := SyncDir(b.dir); err != nil {
		return err
	}
	return b.r.db.write(ctx, func(tx *txn) error {
		_, err := tx.exec(ctx, "UPDATE blobs SET committed = 1, expires_at = ? WHERE id = ?", dbTime(expires), bl.ID)
		if err != nil {
			return fmt.Errorf("storage: blob commit: %w", err)
		}
		return nil
	})
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("storage: sync %s: %w", filepath.Base(p), err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: sync %s: %w", filepath.Base(p), err)
	}
	return nil
}

// OpenBlob opens a committed blob's bytes for reading.
func (b *BlobStore) OpenBlob(id string) (*BlobFile, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: blob", ErrNotFound)
	}
	f, err := os.Open(b.path(id, true))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob", ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	bf := &BlobFile{f: f, b: b, id: id}
	b.mu.Lock()
	if b.readers == nil {
		b.readers = make(map[string]map[*BlobFile]struct{})
	}
	if b.readers[id] == nil {
		b.readers[id] = make(map[*BlobFile]struct{})
	}
	b.readers[id][bf] = struct{}{}
	b.mu.Unlock()
	return bf, nil
}

// BlobFetched records that name fetched the blob completely. Once as many distinct
// names as its recipients did, the blob is deleted (deleted reports it). ErrNotFound:
// no such committed blob, or it expired at now (the hourly sweep has not yet removed
// it; a fetch of it is refused too).
func (b *BlobStore) BlobFetched(ctx context.Context, id, name string, now time.Time) (deleted bool, err error) {
	err = b.r.db.write(ctx, func(tx *txn) error {
		deleted = false
		var recipients, n int
		if err := tx.scan(ctx, "SELECT recipients FROM blobs WHERE id = ? AND committed = 1 AND expires_at > ?", []any{id, dbTime(now)}, &recipients); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: blob", ErrNotFound)
			}
			return fmt.Errorf("storage: blob fetched: %w", err)
		}
		if _, err := tx.exec(ctx, "INSERT OR IGNORE INTO blob_fetches (blob_id, name) VALUES (?, ?)", id, name); err != nil {
			return fmt.Errorf("storage: blob fetched: %w", err)
		}
		if err := tx.scan(ctx, "SELECT count(*) FROM blob_fetches WHERE blob_id = ?", []any{id}, &n); err != nil {
			return fmt.Errorf("storage: blob fetched: %w", err)
		}
		if n < recipients {
			return nil
		}
		deleted = true
		return deleteBlobRows(ctx, tx, id)
	})
	if err == nil && deleted {
		os.Remove(b.path(id, true))
		b.closeReaders(id)
	}
	return deleted, err
}

func deleteBlobRows(ctx context.Context, tx *txn, id string) error {
	if _, err := tx.exec(ctx, "DELETE FROM blob_fetches WHERE blob_id = ?", id); err != nil {
		return fmt.Errorf("storage: delete blob: %w", err)
	}
	if _, err := tx.exec(ctx, "DELETE FROM blobs WHERE id = ?", id); err != nil {
		return fmt.Errorf("storage: delete blob: %w", err)
	}
	return nil
}

// DeleteBlob deletes a blob, committed or not, and its file.
func (b *BlobStore) DeleteBlob(ctx context.Context, id string) error {
	b.closeUpload(id)
	err := b.r.db.write(ctx, func(tx *txn) error { return deleteBlobRows(ctx, tx, id) })
	os.Remove(b.path(id, false))
	os.Remove(b.path(id, true))
	b.closeReaders(id)
	return err
}

// DeleteOwnerBlobs deletes every blob of owner, committed or uploading (the account
// is deleted: its name may go to someone else), and returns how many.
func (b *BlobStore) DeleteOwnerBlobs(ctx context.Context, owner string) (int, error) {
	return b.deleteWhere(ctx, "SELECT id FROM blobs WHERE owner = ?", owner)
}

// ExpireBlobs deletes the blobs whose time ran out at now and returns how many. It
// also removes the blob files that have no row (removeOrphans), which it does not
// count.
func (b *BlobStore) ExpireBlobs(ctx context.Context, now time.Time) (int, error) {
	n, err := b.deleteWhere(ctx, "SELECT id FROM blobs WHERE expires_at <= ?", dbTime(now))
	if err != nil {
		return n, err
	}
	if _, err := b.removeOrphans(ctx); err != nil {
		return n, err
	}
	return n, nil
}

// removeOrphans removes the blob files, uploading or committed, that have no row in
// the database and returns how many: what a crash left between a file's creation and
// its row's (CreateBlob), or between a row's deletion and its file's (DeleteBlob,
// BlobFetched). A file nobody counts against a quota and nothing else removes. The
// files of a CreateBlob under way are spared: it has made its file and not yet
// written its row, or is about to remove the file. Their ids are read after the
// directory is listed and before the rows are, so that a creation not among them had
// settled before the rows were read (its row is there, or its file gone).
func (b *BlobStore) removeOrphans(ctx context.Context) (int, error) {
	type file struct {
		id        string
		committed bool
	}
	var files []file
	for _, committed := range []bool{false, true} {
		dir := b.dir
		if !committed {
			dir = filepath.Join(b.dir, "partial")
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return 0, fmt.Errorf("storage: blob directory: %w", err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && validID(e.Name()) {
				files = append(files, file{e.Name(), committed})
			}
		}
	}
	if len(files) == 0 {
		return 0, nil
	}
	b.mu.Lock()
	busy := make(map[string]bool, len(b.creating))
	for id := range b.creating {
		busy[id] = true
	}
	b.mu.Unlock()
	rows, err := b.r.db.query(ctx, "SELECT id FROM blobs")
	if err != nil {
		return 0, fmt.Errorf("storage: blob rows: %w", err)
	}
	known := make(map[string]bool)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("storage: blob rows: %w", err)
		}
		known[id] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("storage: blob rows: %w", err)
	}
	n := 0
	for _, f := range files {
		if known[f.id] || busy[f.id] {
			continue
		}
		if err := os.Remove(b.path(f.id, f.committed)); err == nil {
			n++
		}
	}
	return n, nil
}

// deleteWhere deletes the blobs the query names.
func (b *BlobStore) deleteWhere(ctx context.Context, query string, arg any) (int, error) {
	rows, err := b.r.db.query(ctx, query, arg)
	if err != nil {
		return 0, fmt.Errorf("storage: delete blobs: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("storage: delete blobs: %w", err)
	}
	for _, id := range ids {
		if err := b.DeleteBlob(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
