package cluster

// Blobs keeps the relay's blobs (attachments) in a JetStream object store shared by
// every node: an upload appends its chunks as messages on the object's chunk subject
// ($O.<bucket>.C.<blob id>), each expecting the subject's last sequence as read, so
// two connections continuing one upload on two nodes cannot interleave; the commit
// reads them back, checks the CRC-32C or digest and publishes the object's info, after which
// the blob is an ordinary object (`nats obj get` reads it, its SHA-256 checked). The
// metadata (owner, size, recipients, who fetched it, expiry) and each owner's quota
// usage live in the directory's bucket, changed by compare-and-set.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/server"
	"pfschat/storage"
)

var _ server.BlobStore = (*Blobs)(nil)

// Blobs implements server.BlobStore on a JetStream object store.
type Blobs struct {
	d       *Directory
	js      jetstream.JetStream
	stream  jetstream.Stream
	bucket  string
	timeout time.Duration
}

// BlobOptions configure NewBlobs.
type BlobOptions struct {
	// Bucket names the object store ("" = <prefix>_blobs).
	Bucket string
}

// hdrOffset is the header of a chunk message giving its offset in the blob.
const hdrOffset = "Pfschat-Blob-Offset"

// NewBlobs creates or opens the blob object store; the metadata goes in d's bucket.
func NewBlobs(ctx context.Context, c *Conn, d *Directory, o BlobOptions) (*Blobs, error) {
	if o.Bucket == "" {
		o.Bucket = c.Prefix() + "_blobs"
	}
	if !validToken(o.Bucket) {
		return nil, fmt.Errorf("%w: bucket %q (letters, digits, '_' and '-' only)", ErrOptions, o.Bucket)
	}
	err := untilCtx(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, 2*c.Timeout())
		defer cancel()
		_, err := c.JetStream().CreateOrUpdateObjectStore(actx, jetstream.ObjectStoreConfig{
			Bucket: o.Bucket, Description: "pfschat relay blobs", Storage: jetstream.FileStorage, Replicas: c.Replicas(),
		})
		return err
	})
	if err != nil {
		return nil, dirUnavailable(fmt.Errorf("relay/cluster: blob store %s: %w", o.Bucket, err))
	}
	sctx, cancel := context.WithTimeout(ctx, c.Timeout())
	defer cancel()
	st, err := c.JetStream().Stream(sctx, "OBJ_"+o.Bucket)
	if err != nil {
		return nil, dirUnavailable(fmt.Errorf("relay/cluster: blob store %s: %w", o.Bucket, err))
	}
	return &Blobs{d: d, js: c.JetStream(), stream: st, bucket: o.Bucket, timeout: c.Timeout()}, nil
}

// validBlobID: 1 to 64 lower-case hex digits (ids are made by the relay).
func validBlobID(id string) bool {
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

func keyBlob(id string) string              { return "blob." + id }
func keyUsage(owner string) string          { return "bq." + hx(owner) }
func (b *Blobs) chunkSubj(id string) string { return "$O." + b.bucket + ".C." + id }
func (b *Blobs) metaSubj(id string) string {
	return "$O." + b.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(id))
}

func (b *Blobs) blob(ctx context.Context, id string) (blobRec, kvEntry, error) {
	e, err := b.d.b.get(ctx, keyBlob(id))
	if err != nil || !e.exists() {
		return blobRec{}, e, err
	}
	r, err := decodeBlob(e.val)
	return r, e, err
}

// usageOp is the write adding blob id (size bytes, counted as storage.BlobCharge) to
// owner's blobs, or with add false taking it off; it returns the bytes before.
func (b *Blobs) usageOp(ctx context.Context, owner, id string, size int64, add bool) (kvOp, int64, error) {
	e, err := b.d.b.get(ctx, keyUsage(owner))
	if err != nil {
		return kvOp{}, 0, err
	}
	var u usageRec
	if e.exists() {
		if u, err = decodeUsage(e.val); err != nil {
			return kvOp{}, 0, err
		}
	}
	used := u.Bytes
	i := slices.Index(u.IDs, id)
	switch {
	case add && i < 0:
		if len(u.IDs) >= maxOwnerBlobs {
			return kvOp{}, used, fmt.Errorf("%w: %d blobs stored", storage.ErrBlobQuota, len(u.IDs))
		}
		u.IDs, u.Bytes = append(u.IDs, id), u.Bytes+storage.BlobCharge(size)
	case !add && i >= 0:
		u.IDs, u.Bytes = slices.Delete(u.IDs, i, i+1), max(u.Bytes-storage.BlobCharge(size), 0)
	default:
		return kvOp{}, used, nil // counted already, or not at all
	}
	if len(u.IDs) == 0 {
		return kvOp{key: keyUsage(owner), del: true, rev: e.rev}, used, nil
	}
	return kvOp{key: keyUsage(owner), val: u.encode(), rev: e.rev}, used, nil
}

func withOps(ops []kvOp, op kvOp) []kvOp {
	if op.key == "" {
		return ops
	}
	return append(ops, op)
}

// CreateBlob records a new, empty upload. The owner's blobs (uploading and
// committed) plus this one must stay within quota bytes (storage.ErrBlobQuota; quota
// ≤ 0: none); storage.ErrExists if the id is taken. With bl.OwnerCard the owner's
// account must hold that card (storage.ErrNotFound otherwise), as of the commit: the
// account is read after the owner's usage record, whose revision the commit expects,
// and Directory.DeleteAccount writes that record in its own transaction — so a
// deletion committed before this commit makes it conflict and look again, and one
// committed after finds the blob in the record and purges it.
func (b *Blobs) CreateBlob(ctx context.Context, bl storage.Blob, quota int64) error {
	if !validBlobID(bl.ID) || bl.Owner == "" || bl.Size < 0 || bl.Recipients < 1 {
		return fmt.Errorf("%w: blob %q", storage.ErrInvalid, bl.ID)
	}
	rec := blobRec{Owner: bl.Owner, Size: bl.Size, Recipients: int64(bl.Recipients), Object: bl.ID,
		CreatedAt: timeNs(bl.CreatedAt), ExpiresAt: timeNs(bl.ExpiresAt)}
	return retry(ctx, "create blob", func() error {
		e, err := b.d.b.get(ctx, keyBlob(bl.ID))
		if err != nil {
			return err
		}
		if e.exists() {
			return fmt.Errorf("%w: blob %s", storage.ErrExists, bl.ID)
		}
		uop, used, err := b.usageOp(ctx, bl.Owner, bl.ID, bl.Size, true)
		if err != nil {
			return err
		}
		if quota > 0 && used+storage.BlobCharge(bl.Size) > quota {
			return fmt.Errorf("%w: %d bytes stored, %d more asked, quota %d", storage.ErrBlobQuota, used, bl.Size, quota)
		}
		if bl.OwnerCard != "" { // after the usage record's read: see above
			a, ae, err := b.d.account(ctx, bl.Owner)
			if err != nil {
				return err
			}
			if !ae.exists() || a.CardID != bl.OwnerCard {
				return fmt.Errorf("%w: no account %q with card %s", storage.ErrNotFound, bl.Owner, bl.OwnerCard)
			}
		}
		return b.d.b.commit(ctx, withOps([]kvOp{{key: keyBlob(bl.ID), val: rec.encode(), rev: e.rev}}, uop))
	})
}

// stored is how far an upload got: its stored bytes and the sequence of its last chunk
// message (0: none).
func (b *Blobs) stored(ctx context.Context, id string) (end int64, seq uint64, err error) {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	m, err := b.stream.GetLastMsgForSubject(rctx, b.chunkSubj(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, dirUnavailable(fmt.Errorf("relay/cluster: blob %s: %w", id, err))
	}
	off, err := strconv.ParseInt(m.Header.Get(hdrOffset), 10, 64)
	if err != nil || off < 0 {
		return 0, 0, fmt.Errorf("%w: blob %s: chunk %d has no offset", ErrDamaged, id, m.Sequence)
	}
	return off + int64(len(m.Data)), m.Sequence, nil
}

// Blob returns a blob's metadata (storage.ErrNotFound: none, or expired at now); for
// an upload in progress Received is the stored length rounded down to whole chunks of
// chunk bytes.
func (b *Blobs) Blob(ctx context.Context, id string, chunk int64, now time.Time) (storage.Blob, error) {
	if !validBlobID(id) {
		return storage.Blob{}, fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	r, e, err := b.blob(ctx, id)
	if err != nil {
		return storage.Blob{}, err
	}
	if !e.exists() {
		return storage.Blob{}, fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	bl := storage.Blob{ID: id, Owner: r.Owner, Size: r.Size, Recipients: int(r.Recipients), Committed: r.Committed,
		CreatedAt: nsTime(r.CreatedAt), ExpiresAt: nsTime(r.ExpiresAt)}
	if !now.Before(bl.ExpiresAt) {
		return storage.Blob{}, fmt.Errorf("%w: blob expired", storage.ErrNotFound)
	}
	if bl.Committed {
		bl.Received = bl.Size
		return bl, nil
	}
	end, _, err := b.stored(ctx, id)
	if err != nil {
		return storage.Blob{}, err
	}
	bl.Received = min(end, bl.Size)
	if bl.Received < bl.Size && chunk > 0 {
		bl.Received -= bl.Received % chunk
	}
	return bl, nil
}

// AppendBlob stores data at offset of an upload in progress; offset must be the
// stored length (storage.ErrBlobOutOfOrder otherwise, also when another connection
// appended meanwhile). Writing past the declared size is storage.ErrInvalid.
func (b *Blobs) AppendBlob(id string, size, _, offset int64, data []byte) error {
	if !validBlobID(id) {
		return fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	if offset < 0 || offset+int64(len(data)) > size {
		return fmt.Errorf("%w: %d bytes at %d pass the blob's size %d", storage.ErrInvalid, len(data), offset, size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	r, e, err := b.blob(ctx, id)
	if err != nil {
		return err
	}
	if !e.exists() || r.Committed {
		return fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	end, seq, err := b.stored(ctx, id)
	if err != nil {
		return err
	}
	if end != offset {
		return fmt.Errorf("%w: the blob has %d bytes, the chunk starts at %d", storage.ErrBlobOutOfOrder, end, offset)
	}
	m := nats.NewMsg(b.chunkSubj(id))
	m.Header.Set(hdrOffset, strconv.FormatInt(offset, 10))
	m.Data = data
	if _, err := b.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(seq)); err != nil {
		if errors.Is(pubError(id, err), errConflict) {
			return fmt.Errorf("%w: another connection appended to the blob", storage.ErrBlobOutOfOrder)
		}
		return dirUnavailable(fmt.Errorf("relay/cluster: storing a chunk of blob %s: %w", id, err))
	}
	return nil
}

// chunkReader reads a blob's chunk messages in order, checking their offsets.
type chunkReader struct {
	b    *Blobs
	id   string
	next uint64 // the stream sequence to look from
	off  int64  // the offset the next chunk must have
}

// read returns the next chunk (io.EOF after the last).
func (c *chunkReader) read(ctx context.Context) (int64, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, c.b.timeout)
	defer cancel()
	m, err := c.b.stream.GetMsg(rctx, c.next, jetstream.WithGetMsgSubject(c.b.chunkSubj(c.id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, dirUnavailable(fmt.Errorf("relay/cluster: reading blob %s: %w", c.id, err))
	}
	off, err := strconv.ParseInt(m.Header.Get(hdrOffset), 10, 64)
	if err != nil || off != c.off {
		return 0, nil, fmt.Errorf("%w: blob %s: chunk at sequence %d is at offset %q, want %d", ErrDamaged, c.id, m.Sequence, m.Header.Get(hdrOffset), c.off)
	}
	c.next = m.Sequence + 1
	c.off += int64(len(m.Data))
	return off, m.Data, nil
}

// CommitBlob completes an upload: every byte must be there (storage.ErrBlobIncomplete)
// and pass check (storage.ErrBlobDigest: the upload is deleted). The object's info
// (with the SHA-256 an object store's info carries) is published; the blob then lives
// until expires.
func (b *Blobs) CommitBlob(ctx context.Context, bl storage.Blob, check storage.BlobCheck, expires time.Time) error {
	r, e, err := b.blob(ctx, bl.ID)
	if err != nil {
		return err
	}
	if !e.exists() {
		return fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	if r.Committed {
		return nil
	}
	h := sha256.New()
	var crc uint32
	cr := &chunkReader{b: b, id: bl.ID, next: 1}
	chunks := 0
	for {
		_, data, err := cr.read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		h.Write(data)
		crc = storage.UpdateBlobCRC32C(crc, data)
		chunks++
	}
	if cr.off != r.Size {
		return fmt.Errorf("%w: %d of %d bytes", storage.ErrBlobIncomplete, cr.off, r.Size)
	}
	sum := h.Sum(nil)
	if !check.Matches(crc, sum) {
		b.DeleteBlob(ctx, bl.ID)
		return fmt.Errorf("%w: the upload is dropped", storage.ErrBlobDigest)
	}
	info := jetstream.ObjectInfo{ObjectMeta: jetstream.ObjectMeta{Name: bl.ID}, Bucket: b.bucket, NUID: bl.ID,
		Size: uint64(r.Size), Chunks: uint32(chunks), Digest: "SHA-256=" + base64.URLEncoding.EncodeToString(sum)}
	raw, err := json.Marshal(info)
	if err != nil {
		return err
	}
	mm := nats.NewMsg(b.metaSubj(bl.ID))
	mm.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	mm.Data = raw
	pctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if _, err := b.js.PublishMsg(pctx, mm); err != nil {
		return dirUnavailable(fmt.Errorf("relay/cluster: committing blob %s: %w", bl.ID, err))
	}
	return retry(ctx, "commit blob", func() error {
		r, e, err := b.blob(ctx, bl.ID)
		if err != nil {
			return err
		}
		if !e.exists() {
			return fmt.Errorf("%w: blob", storage.ErrNotFound)
		}
		r.Committed, r.Received, r.Chunks, r.ExpiresAt = true, r.Size, int64(chunks), timeNs(expires)
		_, err = b.d.b.put(ctx, kvOp{key: keyBlob(bl.ID), val: r.encode(), rev: e.rev})
		return err
	})
}

// BlobReader reads a committed blob at any offset (server.BlobReader).
type BlobReader struct {
	b    *Blobs
	id   string
	size int64
	cur  *chunkReader // positioned after the chunk held
	off  int64        // the held chunk's offset
	data []byte       // the held chunk
}

// OpenBlob opens a committed blob for reading (storage.ErrNotFound if there is none).
func (b *Blobs) OpenBlob(id string) (server.BlobReader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	if !validBlobID(id) {
		return nil, fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	r, e, err := b.blob(ctx, id)
	if err != nil {
		return nil, err
	}
	if !e.exists() || !r.Committed {
		return nil, fmt.Errorf("%w: blob", storage.ErrNotFound)
	}
	return &BlobReader{b: b, id: id, size: r.Size}, nil
}

// ReadAt reads len(p) bytes at off (io.EOF past the end). Sequential reads cost one
// message read per chunk; a read behind the held chunk starts over.
func (r *BlobReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("relay/cluster: negative offset")
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.b.timeout)
	defer cancel()
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= r.size {
			return n, io.EOF
		}
		if r.cur == nil || at < r.off {
			r.cur, r.data, r.off = &chunkReader{b: r.b, id: r.id, next: 1}, nil, 0
		}
		for at >= r.off+int64(len(r.data)) {
			o, data, err := r.cur.read(ctx)
			if errors.Is(err, io.EOF) {
				return n, fmt.Errorf("%w: blob %s ends at %d of %d bytes", ErrDamaged, r.id, r.cur.off, r.size)
			}
			if err != nil {
				return n, err
			}
			r.off, r.data = o, data
		}
		n += copy(p[n:], r.data[at-r.off:])
	}
	return n, nil
}

// Close releases the reader.
func (r *BlobReader) Close() error {
	r.cur, r.data = nil, nil
	return nil
}

// BlobFetched records that name fetched the blob completely; once as many distinct
// names as its recipients did, the blob is deleted (deleted reports it).
// storage.ErrNotFound: no such committed blob, or it expired at now.
func (b *Blobs) BlobFetched(ctx context.Context, id, name string, now time.Time) (deleted bool, err error) {
	err = retry(ctx, "blob fetched", func() error {
		deleted = false
		r, e, err := b.blob(ctx, id)
		if err != nil {
			return err
		}
		if !e.exists() || !r.Committed {
			return fmt.Errorf("%w: blob", storage.ErrNotFound)
		}
		if r.ExpiresAt <= timeNs(now) {
			return fmt.Errorf("%w: blob expired", storage.ErrNotFound)
		}
		if !slices.Contains(r.Fetched, name) {
			r.Fetched = append(r.Fetched, name)
		}
		if int64(len(r.Fetched)) < r.Recipients {
			_, err := b.d.b.put(ctx, kvOp{key: keyBlob(id), val: r.encode(), rev: e.rev})
			return err
		}
		uop, _, err := b.usageOp(ctx, r.Owner, id, r.Size, false)
		if err != nil {
			return err
		}
		if err := b.d.b.commit(ctx, withOps([]kvOp{tombstone(keyBlob(id), e.rev)}, uop)); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err == nil && deleted {
		b.purge(ctx, id)
	}
	return deleted, err
}

// purge drops a blob's chunks and object info.
func (b *Blobs) purge(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return errors.Join(
		b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.chunkSubj(id))),
		b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.metaSubj(id))))
}

// DeleteBlob deletes a blob, committed or not, with its bytes.
func (b *Blobs) DeleteBlob(ctx context.Context, id string) error {
	err := retry(ctx, "delete blob", func() error {
		r, e, err := b.blob(ctx, id)
		if err != nil || !e.exists() {
			return err
		}
		uop, _, err := b.usageOp(ctx, r.Owner, id, r.Size, false)
		if err != nil {
			return err
		}
		return b.d.b.commit(ctx, withOps([]kvOp{tombstone(keyBlob(id), e.rev)}, uop))
	})
	if err != nil {
		return err
	}
	return b.purge(ctx, id)
}

// DeleteOwnerBlobs deletes every blob of owner, committed or not (its account was
// deleted), and returns how many.
func (b *Blobs) DeleteOwnerBlobs(ctx context.Context, owner string) (int, error) {
	e, err := b.d.b.get(ctx, keyUsage(owner))
	if err != nil || !e.exists() {
		return 0, err
	}
	u, err := decodeUsage(e.val)
	if err != nil {
		return 0, err
	}
	for i, id := range u.IDs {
		if err := b.DeleteBlob(ctx, id); err != nil {
			return i, fmt.Errorf("relay/cluster: deleting the blobs of %q: %w", owner, err)
		}
	}
	return len(u.IDs), nil
}

// ExpireBlobs deletes the blobs whose time ran out at now and returns how many.
func (b *Blobs) ExpireBlobs(ctx context.Context, now time.Time) (int, error) {
	var ids []string
	err := b.d.scan(ctx, "blob.", func(key string, val []byte) error {
		r, err := decodeBlob(val)
		if err != nil {
			return err
		}
		if r.ExpiresAt <= timeNs(now) {
			ids = append(ids, strings.Clone(key))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("relay/cluster: expire blobs: %w", err)
	}
	for _, id := range ids {
		if err := b.DeleteBlob(ctx, id); err != nil {
			return 0, fmt.Errorf("relay/cluster: expire blobs: %w", err)
		}
	}
	return len(ids), nil
}
