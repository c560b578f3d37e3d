package server

// Blobs (PROTOCOL.md "Blobs"): encrypted attachments uploaded in numbered chunks over
// the logged-in connection, committed when complete, fetched by id plus a capability
// (the relay's HMAC of the id), deleted after their declared fetches or their TTL.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"pfschat/relay"
	"pfschat/storage"
)

// BlobStore keeps the relay's blobs. *storage.BlobStore (SQLite metadata, files beside
// the database) implements it; a scaled-out relay can put the bytes in an object store.
type BlobStore interface {
	// CreateBlob records an empty upload; storage.ErrBlobQuota when the owner's blobs
	// would pass quota bytes.
	CreateBlob(ctx context.Context, b storage.Blob, quota int64) error
	// Blob returns a blob's metadata, Received rounded down to whole chunks of chunk
	// bytes; storage.ErrNotFound when there is none or it expired at now.
	Blob(ctx context.Context, id string, chunk int64, now time.Time) (storage.Blob, error)
	// AppendBlob writes an upload's bytes at offset, its stored length
	// (storage.ErrBlobOutOfOrder otherwise).
	AppendBlob(id string, size, offset int64, data []byte) error
	// CommitBlob completes an upload whose bytes hash to digest
	// (storage.ErrBlobIncomplete, storage.ErrBlobDigest).
	CommitBlob(ctx context.Context, b storage.Blob, digest []byte, expires time.Time) error
	// OpenBlob opens a committed blob's bytes.
	OpenBlob(id string) (*os.File, error)
	// BlobFetched records a complete fetch by name; the blob goes once its recipients did.
	BlobFetched(ctx context.Context, id, name string) (deleted bool, err error)
	// ExpireBlobs deletes the blobs whose time ran out.
	ExpireBlobs(ctx context.Context, now time.Time) (int, error)
}

// Blob limit names (PROTOCOL.md "Blobs").
const (
	LimitMaxBlobBytes   = "max_blob_bytes"
	LimitBlobQuotaBytes = "blob_quota_bytes"
)

// metaBlobKey is the relay store's meta key holding the capability HMAC key.
const metaBlobKey = "blob_capability_key"

// blobCapabilityDomain separates the capability MAC from every other use of the key.
const blobCapabilityDomain = "pfschat/v2/relay/blob-capability"

// BlobCapability is the capability of blob id under key: HMAC-SHA256(key, domain ‖
// 0x00 ‖ id).
func BlobCapability(key []byte, id string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(blobCapabilityDomain))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return m.Sum(nil)
}

func (s *Server) initBlobs(ctx context.Context, cfg Config) error {
	s.blobs = cfg.Blobs
	if s.blobs == nil && cfg.Store != nil {
		bs, err := cfg.Store.Blobs("")
		if err != nil {
			return err
		}
		s.blobs = bs
	}
	if s.blobs == nil {
		return nil
	}
	key, err := s.dir.Meta(ctx, metaBlobKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		key = make([]byte, 32)
		rand.Read(key)
		if err := s.createMeta(ctx, metaBlobKey, &key); err != nil {
			return fmt.Errorf("relay: saving the blob capability key: %w", err)
		}
	case err != nil:
		return fmt.Errorf("relay: loading the blob capability key: %w", err)
	case len(key) != 32:
		return fmt.Errorf("relay: stored blob capability key has %d bytes, want 32: the database is damaged", len(key))
	}
	s.blobKey = key
	s.blobSweepDone = make(chan struct{})
	go s.blobSweeper()
	return nil
}

// blobSweeper deletes expired blobs at start and hourly.
func (s *Server) blobSweeper() {
	defer close(s.blobSweepDone)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		if n, err := s.blobs.ExpireBlobs(context.Background(), s.now()); err != nil {
			s.log.Error("expiring blobs", "err", err)
		} else if n > 0 {
			s.log.Info("expired blobs", "count", n)
		}
		select {
		case <-t.C:
		case <-s.stopPing:
			return
		}
	}
}

// blobConn is a connection's blob state: the upload it is writing and the blob it is
// reading, so chunk frames cost no metadata lookup.
type blobConn struct {
	up       storage.Blob
	upNext   int64 // the next chunk the upload expects
	readID   string
	readSize int64
	readFile *os.File
}

func (c *conn) closeBlobs() {
	if c.blob.readFile != nil {
		c.blob.readFile.Close()
		c.blob.readFile = nil
	}
}

func (c *conn) noBlobs(f *relay.Frame) bool {
	if c.s.blobs == nil {
		c.replyError(f.ID, relay.CodeUnknownType, "this relay stores no blobs", "")
		return true
	}
	return false
}

func (c *conn) blobNotFound(reqID uint64) {
	c.replyError(reqID, relay.CodeBlobNotFound, "no such blob: unknown, expired, deleted after its fetches, or not yours / not this capability", "")
}

func (c *conn) blobError(f *relay.Frame, what string, err error) {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		c.blobNotFound(f.ID)
	default:
		c.internal(f.ID, what, err)
	}
}

func (c *conn) onBlobBegin(f *relay.Frame) {
	if c.noBlobs(f) {
		return
	}
	l := c.s.limits
	if !relay.BlobSizeAllowed(f.Size, l.MaxBlobBytes) {
		c.s.m.limited(LimitMaxBlobBytes)
		c.replyError(f.ID, relay.CodeBlobTooLarge, fmt.Sprintf("a blob of %d bytes is over this relay's %d", f.Size, l.MaxBlobBytes), LimitMaxBlobBytes)
		return
	}
	if c.s.disk.storageFull() {
		c.replyError(f.ID, relay.CodeStorageFull, "the relay's disk is nearly full: uploads are refused until space returns; retry later", "min_free")
		return
	}
	var raw [relay.BlobIDLen / 2]byte
	rand.Read(raw[:])
	now := c.s.now()
	b := storage.Blob{ID: hex.EncodeToString(raw[:]), Owner: c.acct.name, Size: f.Size, Recipients: f.Recipients,
		CreatedAt: now, ExpiresAt: now.Add(min(l.BlobUploadTTL, l.BlobTTL))}
	ctx, cancel := c.opCtx()
	defer cancel()
	err := c.s.blobs.CreateBlob(ctx, b, l.BlobQuotaBytes)
	if errors.Is(err, storage.ErrBlobQuota) {
		c.s.m.limited(LimitBlobQuotaBytes)
		c.replyError(f.ID, relay.CodeBlobQuota, "your blobs would pass this relay's quota of "+strconv.FormatInt(l.BlobQuotaBytes, 10)+
			" bytes; wait until recipients fetch them or they expire", LimitBlobQuotaBytes)
		return
	}
	if err != nil {
		c.internal(f.ID, "creating a blob", err)
		return
	}
	c.blob.up, c.blob.upNext = b, 0
	c.send(&relay.Frame{Type: relay.TypeBlob, ID: f.ID, BlobID: b.ID, ExpiresAt: b.ExpiresAt.UnixMilli()})
}

// ownUpload loads the upload id of this connection's account (nil: answered).
func (c *conn) ownUpload(f *relay.Frame) (*storage.Blob, bool) {
	if c.blob.up.ID == f.BlobID && !c.blob.up.Committed {
		return &c.blob.up, true
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	b, err := c.s.blobs.Blob(ctx, f.BlobID, relay.BlobChunkSize, c.s.now())
	if err != nil {
		c.blobError(f, "reading a blob", err)
		return nil, false
	}
	if b.Owner != c.acct.name {
		c.blobNotFound(f.ID)
		return nil, false
	}
	c.blob.up, c.blob.upNext = b, b.Received/relay.BlobChunkSize
	if b.Received == b.Size {
		c.blob.upNext = relay.BlobChunks(b.Size)
	}
	return &c.blob.up, true
}

func (c *conn) onBlobResume(f *relay.Frame) {
	if c.noBlobs(f) {
		return
	}
	c.blob.up = storage.Blob{} // look again: another connection may have written
	b, ok := c.ownUpload(f)
	if !ok {
		return
	}
	ans := &relay.Frame{Type: relay.TypeBlob, ID: f.ID, BlobID: b.ID, Size: b.Size, Next: c.blob.upNext, ExpiresAt: b.ExpiresAt.UnixMilli()}
	if b.Committed {
		ans.Capability = BlobCapability(c.s.blobKey, b.ID)
	}
	c.send(ans)
}

func (c *conn) onBlobPut(f *relay.Frame) {
	if c.noBlobs(f) {
		return
	}
	b, ok := c.ownUpload(f)
	if !ok {
		return
	}
	chunks := relay.BlobChunks(b.Size)
	off := f.Index * relay.BlobChunkSize
	want := int64(relay.BlobChunkSize)
	if f.Index == chunks-1 {
		want = b.Size - off
	}
	switch {
	case b.Committed || f.Index >= chunks:
		c.replyError(f.ID, relay.CodeBadField, fmt.Sprintf("chunk %d of a blob of %d chunks", f.Index, chunks), "")
		return
	case f.Index != c.blob.upNext:
		c.send(&relay.Frame{Type: relay.TypeError, ID: f.ID, Code: relay.CodeBlobOutOfOrder, Next: c.blob.upNext,
			Message: fmt.Sprintf("chunk %d arrived, the relay needs chunk %d next", f.Index, c.blob.upNext)})
		return
	case int64(len(f.Data)) != want:
		c.replyError(f.ID, relay.CodeBadField, fmt.Sprintf("chunk %d has %d bytes, want %d", f.Index, len(f.Data), want), "")
		return
	}
	err := c.s.blobs.AppendBlob(b.ID, b.Size, off, f.Data)
	if errors.Is(err, storage.ErrBlobOutOfOrder) {
		c.blob.up = storage.Blob{}
		c.send(&relay.Frame{Type: relay.TypeError, ID: f.ID, Code: relay.CodeBlobOutOfOrder,
			Message: "the upload changed on another connection; blob_resume to learn the next chunk"})
		return
	}
	if err != nil {
		c.blob.up = storage.Blob{}
		c.blobError(f, "storing a blob chunk", err)
		return
	}
	c.blob.upNext++
	c.replyOK(f.ID)
}

func (c *conn) onBlobCommit(f *relay.Frame) {
	if c.noBlobs(f) {
		return
	}
	c.blob.up = storage.Blob{}
	b, ok := c.ownUpload(f)
	if !ok {
		return
	}
	bl := *b
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute) // hashes the whole blob
	defer cancel()
	if !bl.Committed {
		expires := c.s.now().Add(c.s.limits.BlobTTL)
		err := c.s.blobs.CommitBlob(ctx, bl, f.Digest, expires)
		switch {
		case errors.Is(err, storage.ErrBlobIncomplete):
			c.send(&relay.Frame{Type: relay.TypeError, ID: f.ID, Code: relay.CodeBlobIncomplete, Next: c.blob.upNext,
				Message: fmt.Sprintf("the blob lacks chunks from %d on; send them, then commit", c.blob.upNext)})
			return
		case errors.Is(err, storage.ErrBlobDigest):
			c.blob.up = storage.Blob{}
			c.replyError(f.ID, relay.CodeBlobDigestMismatch, "the stored bytes do not hash to this digest; the upload was dropped: begin again", "")
			return
		case err != nil:
			c.blob.up = storage.Blob{}
			c.blobError(f, "committing a blob", err)
			return
		}
		bl.ExpiresAt = expires
	}
	c.blob.up = storage.Blob{}
	c.send(&relay.Frame{Type: relay.TypeBlob, ID: f.ID, BlobID: bl.ID, Size: bl.Size, Capability: BlobCapability(c.s.blobKey, bl.ID),
		ExpiresAt: bl.ExpiresAt.UnixMilli()})
}

// capable checks f's capability for its blob in constant time.
func (c *conn) capable(f *relay.Frame) bool {
	if hmac.Equal(f.Capability, BlobCapability(c.s.blobKey, f.BlobID)) {
		return true
	}
	c.blobNotFound(f.ID)
	return false
}

func (c *conn) onBlobGet(f *relay.Frame) {
	if c.noBlobs(f) || !c.capable(f) {
		return
	}
	if c.blob.readID != f.BlobID {
		c.closeBlobs()
		ctx, cancel := c.opCtx()
		b, err := c.s.blobs.Blob(ctx, f.BlobID, relay.BlobChunkSize, c.s.now())
		cancel()
		if err == nil && !b.Committed {
			err = storage.ErrNotFound
		}
		var file *os.File
		if err == nil {
			file, err = c.s.blobs.OpenBlob(b.ID)
		}
		if err != nil {
			c.blobError(f, "reading a blob", err)
			return
		}
		c.blob.readID, c.blob.readSize, c.blob.readFile = b.ID, b.Size, file
	}
	chunks := relay.BlobChunks(c.blob.readSize)
	if f.Index >= chunks {
		c.replyError(f.ID, relay.CodeBadField, fmt.Sprintf("chunk %d of a blob of %d chunks", f.Index, chunks), "")
		return
	}
	off := f.Index * relay.BlobChunkSize
	n := min(int64(relay.BlobChunkSize), c.blob.readSize-off)
	buf := make([]byte, n)
	if _, err := c.blob.readFile.ReadAt(buf, off); err != nil && err != io.EOF {
		c.closeBlobs()
		c.blob.readID = ""
		c.internal(f.ID, "reading a blob chunk", err)
		return
	}
	c.s.m.frameOut(relay.TypeBlobChunk)
	if !c.out.tryPush(outItem{raw: relay.AppendBlobChunk(make([]byte, 0, 64+base64.StdEncoding.EncodedLen(len(buf))), f.ID, buf)}) {
		c.slow()
	}
}

func (c *conn) onBlobDone(f *relay.Frame) {
	if c.noBlobs(f) || !c.capable(f) {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	deleted, err := c.s.blobs.BlobFetched(ctx, f.BlobID, c.acct.name)
	if err != nil {
		c.blobError(f, "recording a blob fetch", err)
		return
	}
	if deleted && c.blob.readID == f.BlobID {
		c.closeBlobs()
		c.blob.readID = ""
	}
	c.replyOK(f.ID)
}
