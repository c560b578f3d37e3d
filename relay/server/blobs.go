package server

// Blobs (PROTOCOL.md "Blobs"): encrypted attachments uploaded in numbered chunks over
// the logged-in connection, committed when complete, fetched by id plus a capability
// (the relay's HMAC of the id), deleted after their declared fetches or their TTL.

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"pfschat/relay"
	"pfschat/storage"
)

// BlobStore keeps the relay's blobs. *storage.BlobStore (SQLite metadata, files beside
// the database) implements it; a scaled-out relay can put the bytes in an object store.
type BlobStore interface {
	// CreateBlob records an empty upload; storage.ErrBlobQuota when the owner's blobs
	// would pass quota bytes; storage.ErrNotFound when b.OwnerCard is set and the
	// owner's account does not hold it, checked atomically with the write (a deletion
	// of the account commits either after it, and its purge finds the blob, or before,
	// and the upload is refused).
	CreateBlob(ctx context.Context, b storage.Blob, quota int64) error
	// Blob returns a blob's metadata, Received rounded down to whole chunks of chunk
	// bytes; storage.ErrNotFound when there is none or it expired at now.
	Blob(ctx context.Context, id string, chunk int64, now time.Time) (storage.Blob, error)
	// AppendBlob writes an upload's bytes at offset, its stored length
	// (storage.ErrBlobOutOfOrder otherwise: never over bytes stored before, but for
	// less than a chunk of chunk bytes that a crash left past a chunk edge).
	AppendBlob(id string, size, chunk, offset int64, data []byte) error
	// CommitBlob completes an upload whose bytes pass check
	// (storage.ErrBlobIncomplete, storage.ErrBlobDigest).
	CommitBlob(ctx context.Context, b storage.Blob, check storage.BlobCheck, expires time.Time) error
	// OpenBlob opens a committed blob's bytes.
	OpenBlob(id string) (BlobReader, error)
	// BlobFetched records a complete fetch by name; the blob goes once its recipients did.
	// storage.ErrNotFound: none, not committed, or expired at now.
	BlobFetched(ctx context.Context, id, name string, now time.Time) (deleted bool, err error)
	// ExpireBlobs deletes the blobs whose time ran out.
	ExpireBlobs(ctx context.Context, now time.Time) (int, error)
	// DeleteOwnerBlobs deletes every blob and upload of owner (a deleted account; its
	// name may be registered again by someone else) and returns how many.
	DeleteOwnerBlobs(ctx context.Context, owner string) (int, error)
}

// blobMetrics are the blob counters of /metrics.
type blobMetrics struct {
	begun, committed, fetched atomic.Uint64
	bytesIn, bytesOut         atomic.Uint64 // chunk bytes stored, sent
	bytesSentFromFile         atomic.Uint64 // of bytesOut, sent with sendfile(2)
	tooLarge, quota, digest   atomic.Uint64 // refusals
	deletedFetched            atomic.Uint64 // deleted once every recipient fetched them
	deletedExpired            atomic.Uint64
	deletedAccount            atomic.Uint64 // with their owner's account
}

func (m *blobMetrics) write(p func(string, ...any)) {
	counter := func(name, help string, v uint64) {
		p("# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("pfschat_relay_blob_uploads_total", "Blob uploads begun (blob_begin accepted).", m.begun.Load())
	counter("pfschat_relay_blob_commits_total", "Blob uploads committed.", m.committed.Load())
	counter("pfschat_relay_blob_fetches_total", "Complete fetches recorded (blob_done).", m.fetched.Load())
	p("# HELP pfschat_relay_blob_bytes_total Blob chunk bytes stored (in) and sent (out).\n# TYPE pfschat_relay_blob_bytes_total counter\n")
	p("pfschat_relay_blob_bytes_total{direction=\"in\"} %d\npfschat_relay_blob_bytes_total{direction=\"out\"} %d\n", m.bytesIn.Load(), m.bytesOut.Load())
	counter("pfschat_relay_blob_sendfile_bytes_total", "Of the blob chunk bytes sent, those sent from the blob's file by sendfile(2), without a copy through the relay (Linux, plain sockets).", m.bytesSentFromFile.Load())
	p("# HELP pfschat_relay_blob_refusals_total Blob uploads refused, by reason.\n# TYPE pfschat_relay_blob_refusals_total counter\n")
	p("pfschat_relay_blob_refusals_total{reason=\"blob_too_large\"} %d\npfschat_relay_blob_refusals_total{reason=\"blob_quota\"} %d\npfschat_relay_blob_refusals_total{reason=\"blob_digest_mismatch\"} %d\n",
		m.tooLarge.Load(), m.quota.Load(), m.digest.Load())
	p("# HELP pfschat_relay_blobs_deleted_total Blobs deleted, by why.\n# TYPE pfschat_relay_blobs_deleted_total counter\n")
	p("pfschat_relay_blobs_deleted_total{reason=\"fetched\"} %d\npfschat_relay_blobs_deleted_total{reason=\"expired\"} %d\npfschat_relay_blobs_deleted_total{reason=\"account_deleted\"} %d\n",
		m.deletedFetched.Load(), m.deletedExpired.Load(), m.deletedAccount.Load())
}

// deleteAccountBlobs deletes a deleted account's blobs. A failure is logged: the
// blobs then go when they expire.
func (s *Server) deleteAccountBlobs(ctx context.Context, name string) {
	if s.blobs == nil {
		return
	}
	n, err := s.blobs.DeleteOwnerBlobs(ctx, name)
	if err != nil {
		s.log.Error("deleting a deleted account's blobs", "name", name, "err", err)
		return
	}
	s.m.blob.deletedAccount.Add(uint64(n))
	s.blobGen.Add(1)
}

// BlobReader reads a committed blob's bytes at any offset: a file of the SQLite
// store's, a reader of an object store's chunks (relay/cluster).
type BlobReader interface {
	io.ReaderAt
	io.Closer
}

// FileBlobs is the SQLite store's blob files as a BlobStore.
type FileBlobs struct{ *storage.BlobStore }

// OpenBlob opens a committed blob's file.
func (f FileBlobs) OpenBlob(id string) (BlobReader, error) {
	file, err := f.BlobStore.OpenBlob(id)
	if err != nil {
		return nil, err
	}
	return file, nil
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
		s.blobs = FileBlobs{bs}
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
			s.m.blob.deletedExpired.Add(uint64(n))
			s.blobGen.Add(1)
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
	up          storage.Blob
	upNext      int64 // the next chunk the upload expects
	readID      string
	readSize    int64
	readExpires time.Time // when the blob readFile serves expires: then it is looked up again
	readGen     uint64    // the server's blobGen when readFile was opened
	readFile    BlobReader
	// readRaw is readFile's descriptor when the writer sends its runs with sendfile
	// (a file on a plain socket), else nil.
	readRaw syscall.RawConn
	// out holds a token per blob chunk message queued for the writer: at most
	// maxBlobOut (4 MiB), so a client asking faster than it reads is paused (its
	// requests wait in TCP) instead of filling the relay's memory.
	out chan struct{}
}

// maxBlobOut is how many blob chunk answers (binary runs, or JSON chunks) one
// connection may have queued.
const maxBlobOut = 16

// takeBlobSlot waits for room for one more blob chunk answer in the writer's queue;
// false when the connection closes first.
func (c *conn) takeBlobSlot() bool {
	if c.blob.out == nil {
		c.blob.out = make(chan struct{}, maxBlobOut) // before the first push: the writer sees it
	}
	select {
	case c.blob.out <- struct{}{}:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// blobSent is the writer's word that a blob chunk message went out (or was dropped).
func (c *conn) blobSent() {
	select {
	case <-c.blob.out:
	default:
	}
}

// closeBlobs lets go of the blob file this connection serves downloads from. The
// close runs on a goroutine of its own: closing the last handle of a blob deleted
// meanwhile (its last fetch, its expiry) frees its blocks, 35–120 ms for 100 MiB on
// ext4, and this connection's next frames need not wait for that.
func (c *conn) closeBlobs() {
	c.blob.readRaw = nil
	if f := c.blob.readFile; f != nil {
		c.blob.readFile = nil
		go f.Close()
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
		c.s.m.blob.tooLarge.Add(1)
		c.s.m.limited(LimitMaxBlobBytes)
		c.replyError(f.ID, relay.CodeBlobTooLarge, fmt.Sprintf("a blob of %d bytes is over this relay's %d", f.Size, l.MaxBlobBytes), LimitMaxBlobBytes)
		return
	}
	if short := c.s.disk.shortage(); short != shortOfNothing {
		c.s.m.limited(LimitMinFree)
		c.replyError(f.ID, relay.CodeStorageFull, short.refusal()+": uploads are refused until space returns; retry later", LimitMinFree)
		return
	}
	var raw [relay.BlobIDLen / 2]byte
	rand.Read(raw[:])
	now := c.s.now()
	// OwnerCard: the store records the upload only if the account still holds this
	// connection's card, in the same write. The acctGone check below is the cheap,
	// early answer; a begin already past it when its account's deletion starts is
	// refused by the store instead of landing under the name after the deletion's
	// purge of its blobs, in a new owner's quota (found by a red team).
	b := storage.Blob{ID: hex.EncodeToString(raw[:]), Owner: c.acct.name, OwnerCard: c.acct.cardID, Size: f.Size, Recipients: f.Recipients,
		CreatedAt: now, ExpiresAt: now.Add(min(l.BlobUploadTTL, l.BlobTTL))}
	ctx, cancel := c.opCtx()
	defer cancel()
	if c.acctGone.Load() {
		// Its account is being deleted: a blob begun now would outlive it, under its
		// name, in a new owner's quota (found by a red team). The connection is closing.
		c.replyError(f.ID, relay.CodeAccountDeleted, "the account this connection logged in with is being deleted", "")
		return
	}
	err := c.s.blobs.CreateBlob(ctx, b, l.BlobQuotaBytes)
	if errors.Is(err, storage.ErrNotFound) {
		// The account was deleted (or its card replaced) since this connection logged
		// in: its notice is closing the connection.
		c.replyError(f.ID, relay.CodeAccountDeleted, "the account this connection logged in with is gone", "")
		return
	}
	if errors.Is(err, storage.ErrBlobQuota) {
		c.s.m.blob.quota.Add(1)
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
	c.s.m.blob.begun.Add(1)
	c.send(&relay.Frame{Type: relay.TypeBlob, ID: f.ID, BlobID: b.ID, ExpiresAt: b.ExpiresAt.UnixMilli()})
}

// ownUpload loads the upload id of this connection's account (nil: answered). The
// connection's own upload is taken as it is until it expires; then it is looked up
// again, and is blob_not_found, as on any other connection.
func (c *conn) ownUpload(f *relay.Frame) (*storage.Blob, bool) {
	if c.blob.up.ID == f.BlobID && !c.blob.up.Committed && c.s.now().Before(c.blob.up.ExpiresAt) {
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
	switch {
	case b.Committed || f.Index >= chunks:
		c.replyError(f.ID, relay.CodeBadField, fmt.Sprintf("chunk %d of a blob of %d chunks", f.Index, chunks), "")
		return
	case f.Index != c.blob.upNext:
		c.send(&relay.Frame{Type: relay.TypeError, ID: f.ID, Code: relay.CodeBlobOutOfOrder, Next: c.blob.upNext,
			Message: fmt.Sprintf("chunk %d arrived, the relay needs chunk %d next", f.Index, c.blob.upNext)})
		return
	}
	// One chunk (blob_put) or a run of them (a binary put message): whole chunks, but
	// for a run that ends at the blob's last byte.
	if end := off + int64(len(f.Data)); end > b.Size || end != b.Size && len(f.Data)%relay.BlobChunkSize != 0 {
		want := min(int64(relay.BlobChunkSize), b.Size-off)
		c.replyError(f.ID, relay.CodeBadField, fmt.Sprintf("chunk %d: %d bytes; a chunk has %d bytes here, a run whole chunks up to the blob's end at %d",
			f.Index, len(f.Data), want, b.Size), "")
		return
	}
	err := c.s.blobs.AppendBlob(b.ID, b.Size, relay.BlobChunkSize, off, f.Data)
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
	c.blob.upNext = relay.BlobChunks(off + int64(len(f.Data)))
	c.s.m.blob.bytesIn.Add(uint64(len(f.Data)))
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
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute) // may read the whole blob back
	defer cancel()
	if !bl.Committed {
		expires := c.s.now().Add(c.s.limits.BlobTTL)
		err := c.s.blobs.CommitBlob(ctx, bl, storage.BlobCheck{CRC32C: f.CRC32C, SHA256: f.Digest}, expires)
		switch {
		case errors.Is(err, storage.ErrBlobIncomplete):
			c.send(&relay.Frame{Type: relay.TypeError, ID: f.ID, Code: relay.CodeBlobIncomplete, Next: c.blob.upNext,
				Message: fmt.Sprintf("the blob lacks chunks from %d on; send them, then commit", c.blob.upNext)})
			return
		case errors.Is(err, storage.ErrBlobDigest):
			c.s.m.blob.digest.Add(1)
			c.blob.up = storage.Blob{}
			c.replyError(f.ID, relay.CodeBlobDigestMismatch, "the stored bytes do not match this crc32c or digest; the upload was dropped: begin again", "")
			return
		case err != nil:
			c.blob.up = storage.Blob{}
			c.blobError(f, "committing a blob", err)
			return
		}
		bl.ExpiresAt = expires
		c.s.m.blob.committed.Add(1)
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
	// The open file serves the next chunks, unless a blob was deleted since (its
	// account, its expiry, its last fetch) or it expired, even if the hourly sweep has
	// not deleted it yet: then the metadata is looked up again.
	if gen := c.s.blobGen.Load(); c.blob.readID != f.BlobID || c.blob.readGen != gen || !c.s.now().Before(c.blob.readExpires) {
		c.closeBlobs()
		c.blob.readID, c.blob.readGen = "", gen
		ctx, cancel := c.opCtx()
		b, err := c.s.blobs.Blob(ctx, f.BlobID, relay.BlobChunkSize, c.s.now())
		cancel()
		if err == nil && !b.Committed {
			err = storage.ErrNotFound
		}
		var file BlobReader
		if err == nil {
			file, err = c.s.blobs.OpenBlob(b.ID)
		}
		if err != nil {
			c.blobError(f, "reading a blob", err)
			return
		}
		c.blob.readID, c.blob.readSize, c.blob.readExpires, c.blob.readFile = b.ID, b.Size, b.ExpiresAt, file
		c.blob.readRaw = c.sendfileOf(file)
	}
	chunks := relay.BlobChunks(c.blob.readSize)
	if f.Index >= chunks {
		c.replyError(f.ID, relay.CodeBadField, fmt.Sprintf("chunk %d of a blob of %d chunks", f.Index, chunks), "")
		return
	}
	off := f.Index * relay.BlobChunkSize
	if f.Count > 0 {
		// A binary blob chunk message of up to Count chunks, read straight behind its
		// header into a buffer the writer hands back once written.
		n := min(f.Count*relay.BlobChunkSize, c.blob.readSize-off)
		if c.blob.readRaw != nil {
			c.sendRunFromFile(f, off, n)
			return
		}
		msg := relay.AppendBlobChunkHeader(getBlobBuf(), f.ID)
		msg = msg[:relay.BlobChunkHeaderSize+n]
		// A short read (io.EOF) is an error too: a blob file shorter than its size
		// must never send the reused buffer's older bytes.
		if _, err := c.blob.readFile.ReadAt(msg[relay.BlobChunkHeaderSize:], off); err != nil {
			putBlobBuf(msg)
			c.closeBlobs()
			c.blob.readID = ""
			c.internal(f.ID, "reading a blob chunk", err)
			return
		}
		if !c.takeBlobSlot() {
			putBlobBuf(msg)
			return
		}
		c.s.m.frameOut(relay.TypeBlobChunk)
		c.s.m.blob.bytesOut.Add(uint64(n))
		if !c.out.tryPush(outItem{opcode: opBinary, raw: msg}) {
			c.blobSent()
			putBlobBuf(msg)
			c.slow()
		}
		return
	}
	n := min(int64(relay.BlobChunkSize), c.blob.readSize-off)
	buf := make([]byte, n)
	if _, err := c.blob.readFile.ReadAt(buf, off); err != nil {
		c.closeBlobs()
		c.blob.readID = ""
		c.internal(f.ID, "reading a blob chunk", err)
		return
	}
	// Like the binary runs, JSON chunk answers hold a slot each until the writer has
	// them (maxBlobOut, about 700 KiB of them): a client asking faster than it reads
	// waits in TCP instead of filling the relay's memory.
	if !c.takeBlobSlot() {
		return
	}
	c.s.m.frameOut(relay.TypeBlobChunk)
	c.s.m.blob.bytesOut.Add(uint64(n))
	if !c.out.tryPush(outItem{raw: relay.AppendBlobChunk(make([]byte, 0, 64+base64.StdEncoding.EncodedLen(len(buf))), f.ID, buf), kind: itemBlobJSON}) {
		c.blobSent()
		c.slow()
	}
}

// fileRun is a binary blob chunk message whose bytes the writer sends from the blob's
// file with sendfile(2) (sendfile_linux.go): n bytes at off of f, a descriptor of the
// run's own, closed once the run is written or dropped.
type fileRun struct {
	f      *os.File
	off, n int64
}

func (r *fileRun) close() { r.f.Close() }

// errShortBlobFile: a blob's file ended before a run it was to send.
var errShortBlobFile = errors.New("relay: blob file shorter than its size")

// sendfileOf is file's descriptor if the writer can send its runs with sendfile: on
// Linux, to a plain socket (not TLS), from a file (the SQLite store's blobs, not an
// object store's). Else nil: runs are read into buffers. (A file shorter than its blob
// is found run by run, before each is written: sendRun.)
func (c *conn) sendfileOf(file BlobReader) syscall.RawConn {
	f, ok := file.(syscall.Conn)
	if !sendfileWorks || !ok || !c.inlineWrites() {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sendRunFromFile queues a binary blob chunk message of n bytes at off of the blob
// being read, sent by the writer from a duplicate of its descriptor.
func (c *conn) sendRunFromFile(f *relay.Frame, off, n int64) {
	run, err := openRun(c.blob.readRaw, off, n)
	if err != nil {
		c.closeBlobs()
		c.blob.readID = ""
		c.internal(f.ID, "reading a blob chunk", err)
		return
	}
	if !c.takeBlobSlot() {
		run.close()
		return
	}
	c.s.m.frameOut(relay.TypeBlobChunk)
	c.s.m.blob.bytesOut.Add(uint64(n))
	if !c.out.tryPush(outItem{opcode: opBinary, reqID: f.ID, run: run}) {
		c.blobSent()
		run.close()
		c.slow()
	}
}

// blobBufs is a free list of binary message buffers (MaxBlobMessageSize bytes, +1 so
// that reading a message of exactly that size does not grow one): uploads read their
// messages into them and downloads send theirs from them, a few buffers instead of a
// new 256 KiB each, and none kept by an idle connection.
var blobBufs = make(chan []byte, 32)

func getBlobBuf() []byte {
	select {
	case b := <-blobBufs:
		return b[:0]
	default:
		return make([]byte, 0, relay.MaxBlobMessageSize+1)
	}
}

func putBlobBuf(b []byte) {
	if cap(b) != relay.MaxBlobMessageSize+1 {
		return
	}
	select {
	case blobBufs <- b[:0]:
	default:
	}
}

// chunkBufs is a free list of buffers of one chunk's blob put message (+1, as
// blobBufs): readBinary's middle step.
var chunkBufs = make(chan []byte, 64)

const chunkBufSize = relay.BlobPutHeaderSize + relay.BlobChunkSize + 1

// readBinary reads a blob put message as readFrame would with
// relay.MaxBlobMessageSize, into buffers taken as its bytes arrive: the first 4 KiB
// into a text frame's buffer, up to one chunk into one of chunkBufs, the rest into one
// of blobBufs, each step copying what the last holds. A message begun and held (for
// up to message_deadline) makes the relay hold at most 8 times the bytes it sent
// past the first 4 KiB, not 256 KiB for its first bytes. held.release hands the
// buffer data is in back once data is no longer used.
func readBinary(r io.Reader) (data []byte, tooBig bool, held binaryBuf, err error) {
	held.text = readBufPool.Get().(*[]byte)
	first := *held.text
	data, done, err := fill(r, first[:0:min(cap(first), 4096)])
	if done || err != nil {
		return data, false, held, err
	}
	select {
	case held.chunk = <-chunkBufs:
	default:
		held.chunk = make([]byte, 0, chunkBufSize)
	}
	data, done, err = fill(r, append(held.chunk[:0], data...))
	readBufPool.Put(held.text)
	held.text = nil
	if done || err != nil {
		return data, false, held, err
	}
	held.blob = append(getBlobBuf(), data...)
	putChunkBuf(held.chunk)
	held.chunk = nil
	data, tooBig, err = readFrame(r, held.blob, relay.MaxBlobMessageSize)
	return data, tooBig, held, err
}

// binaryBuf is the buffer readBinary read a message into, one of three kinds.
type binaryBuf struct {
	text  *[]byte
	chunk []byte
	blob  []byte
}

func (b binaryBuf) release() {
	switch {
	case b.text != nil:
		readBufPool.Put(b.text)
	case b.chunk != nil:
		putChunkBuf(b.chunk)
	case b.blob != nil:
		putBlobBuf(b.blob)
	}
}

func putChunkBuf(b []byte) {
	if cap(b) != chunkBufSize {
		return
	}
	select {
	case chunkBufs <- b[:0]:
	default:
	}
}

// fill reads r into buf up to its capacity; done says the message ended in it.
func fill(r io.Reader, buf []byte) (_ []byte, done bool, err error) {
	for len(buf) < cap(buf) {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// onBinary reads and handles a binary message: a blob put message (PROTOCOL.md
// "Binary chunk messages"), read into a buffer of the free list (the store has copied
// the data when onBlobPut returns). It returns false to close.
func (c *conn) onBinary(r io.Reader) bool {
	var data []byte
	var tooBig bool
	var err error
	if c.acct == nil || c.s.blobs == nil {
		// Refused whatever it holds: read past it without a 256 KiB buffer, which a
		// client not logged in would otherwise make the relay hold for a byte sent.
		data, tooBig, err = discardBinary(r)
	} else {
		var held binaryBuf
		data, tooBig, held, err = readBinary(r)
		defer held.release()
	}
	if err != nil {
		switch {
		case tooBig:
			c.s.m.limited(LimitMaxFrameBytes)
			c.kill(relay.CodeFrameTooLarge, LimitMaxFrameBytes, "binary message over "+strconv.Itoa(relay.MaxBlobMessageSize+discardLimit)+" bytes")
		case c.messageExpired(err):
			c.killExpiredMessage()
		}
		return false
	}
	var reqID uint64
	if len(data) >= 9 {
		reqID = binary.BigEndian.Uint64(data[1:9])
	}
	if ok, retry := c.bucket.allow(c.s.now()); !ok {
		c.s.m.frameIn("")
		c.rateStrikes++
		c.s.m.limited(LimitFramesPerSecond)
		if c.rateStrikes > 4*c.s.limits.FrameBurst {
			c.kill(relay.CodeRateLimited, LimitFramesPerSecond, "persistently over the frame rate")
			return false
		}
		c.send(&relay.Frame{Type: relay.TypeError, ID: reqID, Code: relay.CodeRateLimited, Limit: LimitFramesPerSecond,
			Message: "over " + strconv.Itoa(c.s.limits.FramesPerSecond) + " frames/s; slow down", RetryAfterMS: retry.Milliseconds() + 1})
		return true
	}
	c.rateStrikes = max(0, c.rateStrikes-1) // a frame within the rate takes one strike back
	c.s.m.frameIn(relay.TypeBlobPut)
	if tooBig {
		c.s.m.limited(LimitMaxFrameBytes)
		c.send(&relay.Frame{Type: relay.TypeError, ID: reqID, Code: relay.CodeFrameTooLarge, Limit: LimitMaxFrameBytes,
			Message: "binary message over " + strconv.Itoa(relay.MaxBlobMessageSize) + " bytes"})
		return true
	}
	if c.acct == nil || c.s.blobs == nil {
		c.send(&relay.Frame{Type: relay.TypeError, ID: reqID, Code: relay.CodeBadFrame,
			Message: "binary messages are blob put messages, on a logged-in connection to a relay that stores blobs"})
		return true
	}
	m, err := relay.DecodeBlobPutMsg(data)
	if err != nil {
		var fe *relay.FrameError
		errors.As(err, &fe)
		if fe.Limit != "" {
			c.s.m.limited(fe.Limit)
		}
		// A message of the wrong kind or cut short has no decoded id: answer by its
		// bytes 1-8 as every other error about a binary message does.
		c.send(&relay.Frame{Type: relay.TypeError, ID: cmp.Or(m.ID, reqID), Code: fe.Code, Limit: fe.Limit, Message: fe.Error()})
		return true
	}
	f := relay.Frame{Type: relay.TypeBlobPut, ID: m.ID, BlobID: m.BlobID, Index: m.Index, Data: m.Data}
	c.onBlobPut(&f)
	return true
}

// discardBinary reads a binary message the relay refuses, keeping only its first
// bytes (the kind and request id, which the error frame answers), and reports it as
// readFrame would with relay.MaxBlobMessageSize.
func discardBinary(r io.Reader) (head []byte, tooBig bool, err error) {
	var b [9]byte
	n, err := io.ReadFull(r, b[:])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return b[:n], false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rest, err := io.Copy(io.Discard, io.LimitReader(r, relay.MaxBlobMessageSize+discardLimit))
	if err != nil {
		return nil, false, err
	}
	switch size := int64(n) + rest; {
	case size > relay.MaxBlobMessageSize+discardLimit:
		return b[:n], true, errors.New("binary message far over the limit")
	case size > relay.MaxBlobMessageSize:
		return b[:n], true, nil
	}
	return b[:n], false, nil
}

func (c *conn) onBlobDone(f *relay.Frame) {
	if c.noBlobs(f) || !c.capable(f) {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	deleted, err := c.s.blobs.BlobFetched(ctx, f.BlobID, c.acct.name, c.s.now())
	if err != nil {
		c.blobError(f, "recording a blob fetch", err)
		return
	}
	c.s.m.blob.fetched.Add(1)
	if deleted {
		c.s.m.blob.deletedFetched.Add(1)
		c.s.blobGen.Add(1)
	}
	c.replyOK(f.ID)
	if deleted && c.blob.readID == f.BlobID {
		// After the answer: closing the blob's last handle frees its blocks, which
		// the fetcher need not wait for (nor, on its goroutine, this connection).
		c.closeBlobs()
		c.blob.readID = ""
	}
}
