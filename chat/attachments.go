package chat

// Attachments (issue 15): a file is sealed on the sender under a fresh key
// (ratchet/STREAM.md) into a staging file, uploaded to the relay as a blob
// (relay/PROTOCOL.md "Blobs") with resume, and announced by an attachment payload
// (chat/PAYLOAD.md §4.5) carrying the blob id, capability, key and digest. The
// receiver downloads the sealed stream, hashing it and opening each chunk as it arrives
// into a partial file inside the profile, checks its size and digest at the end, and
// only then moves the file into the downloads directory under a sanitised,
// non-colliding name. Memory is a few chunks
// whatever the size; state lives in the attachments table (client schema 11), so an
// upload or download killed half way resumes where the relay's acknowledgements left it.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/storage"
)

// Attachment errors.
var (
	// ErrFileTooLarge: the file is over the relay's blob size limit.
	ErrFileTooLarge = errors.New("chat: file too large for the relay")
	// ErrFileUnreadable: SendFile cannot read the file (no such file, permission
	// denied, not a regular file); nothing was sent. The error names the path and why.
	ErrFileUnreadable = errors.New("chat: cannot read the file to send")
	// ErrNoBlobs: the relay stores no blobs (an older relay, or not connected yet).
	ErrNoBlobs = errors.New("chat: the relay takes no attachments")
	// ErrAttachmentDigest: the downloaded blob is not the one the message names (its
	// size or SHA-256 differ); nothing was written to the downloads directory.
	ErrAttachmentDigest = errors.New("chat: attachment does not match its digest")
	// ErrAttachmentCorrupt: the blob matched its digest but did not decrypt (a wrong
	// key from the sender, or a tampered stream); the partial file was deleted.
	ErrAttachmentCorrupt = errors.New("chat: attachment does not decrypt")
	// ErrAttachmentGone: the relay no longer has the blob (expired, fetched by every
	// recipient, or the capability is not the blob's).
	ErrAttachmentGone = errors.New("chat: attachment no longer on the relay")
	// ErrNotAttachment: the message has no attachment.
	ErrNotAttachment = errors.New("chat: no such attachment")
	// ErrAttachmentStalled: the download made no progress over several connections
	// (maxFetchStalls); it stays to be resumed later.
	ErrAttachmentStalled = errors.New("chat: the relay stopped sending the attachment")
	// ErrAttachmentFailed: the download failed before (ErrAttachmentDigest,
	// ErrAttachmentCorrupt, ErrAttachmentGone …) and its file was deleted; the error
	// gives that reason. Only the sender can send it again.
	ErrAttachmentFailed = errors.New("chat: the attachment failed before")
	// ErrDownloadDir: Download cannot make or write to the directory it saves into
	// (under a regular file, permission denied, read-only); nothing was fetched. The
	// error names the directory and why.
	ErrDownloadDir = errors.New("chat: cannot save into the downloads directory")
)

// maxFetchStalls is how many connections in a row may drop before a download gets a
// byte further, before it stops.
const maxFetchStalls = 5

// fileSize is the size of the file at path, 0 when it cannot be read.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// AttachmentState is where an attachment stands.
type AttachmentState = storage.AttachmentState

const (
	AttachmentUploading  = storage.AttachmentUploading
	AttachmentUploaded   = storage.AttachmentUploaded
	AttachmentSent       = storage.AttachmentSent
	AttachmentAvailable  = storage.AttachmentAvailable
	AttachmentFetching   = storage.AttachmentFetching
	AttachmentDownloaded = storage.AttachmentDownloaded
	AttachmentFailed     = storage.AttachmentFailed
)

// Attachment is what a message carries when it is a file.
type Attachment struct {
	ClientID  string
	FileName  string // the sender's name for it, as sent (show it sanitised: SafeFileName)
	MediaType string
	Size      int64 // bytes of the file
	State     AttachmentState
	DoneBytes int64  // progress of the upload or download
	Path      string // outgoing: the file sent; incoming: where it was saved once downloaded
	Reason    string // AttachmentFailed: why
	// Width and Height of an image, from its header (ImageSize) once it is on disk.
	Width, Height int
}

// Progress reports a transfer: done of total bytes (of the file).
type Progress func(done, total int64)

// attachmentMeta is the sealed meta of an attachment row (storage.Attachment.Meta).
type attachmentMeta struct {
	Key        []byte `json:"key"`
	Digest     []byte `json:"digest"`
	BlobID     string `json:"blob_id,omitempty"`
	Capability []byte `json:"capability,omitempty"`
	Size       int64  `json:"size"`
	FileName   string `json:"file_name"`
	MediaType  string `json:"media_type"`
	Caption    string `json:"caption,omitempty"`
	Source     string `json:"source,omitempty"` // outgoing: the path sent
	Staged     string `json:"staged,omitempty"` // outgoing, from an earlier version: a sealed copy, removed once sent
	Saved      string `json:"saved,omitempty"`  // incoming: where it was saved
	// Placing is, while an incoming file is being saved, the absolute path it is going
	// to (recorded before it goes there): a run killed before Saved is recorded finds
	// the file there (placedBefore) instead of saving a second copy.
	Placing string `json:"placing,omitempty"`
	// Failure is why the attachment failed: its error names the file and paths, so it
	// is kept here, sealed, not in the row's clear reason column (failAttachment).
	Failure string `json:"failure,omitempty"`
}

// failureReason is why row failed: the sealed reason, else the clear column's (rows
// failed by an earlier version).
func failureReason(row storage.Attachment, meta attachmentMeta) string {
	if meta.Failure != "" {
		return meta.Failure
	}
	return row.Reason
}

// blobRelay is what attachments need from the relay connection (*client.Client).
type blobRelay interface {
	MaxBlobBytes() int64
	Online() <-chan struct{}
	BlobBegin(ctx context.Context, size int64, recipients int) (string, error)
	BlobResume(ctx context.Context, id string) (client.BlobState, error)
	BlobPut(ctx context.Context, id string, size, from int64, window int, read func(i int64, buf []byte) error, done func(i int64)) error
	BlobCommit(ctx context.Context, id string, digest []byte, crc uint32) ([]byte, error)
	BlobGetOwned(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error
	BlobDone(ctx context.Context, id string, capability []byte) error
}

func (c *Controller) blobs() (blobRelay, error) {
	rc, err := c.relayClient()
	if err != nil {
		return nil, err
	}
	br, ok := rc.(blobRelay)
	if !ok {
		return nil, ErrNoBlobs
	}
	return br, nil
}

// attachmentDirName is the attachment directory's name inside the profile.
const attachmentDirName = "attachments"

// attachmentDir is where sealed streams wait for upload and downloads are assembled:
// inside the profile, never in the downloads directory.
func (c *Controller) attachmentDir() (string, error) {
	dir := c.prefs.AttachmentDir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(c.store.Path()), attachmentDirName)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("chat: attachment directory: %w", err)
	}
	return dir, nil
}

// partialStem is where the download of the attachment with this client id keeps its
// bytes until they are verified and saved: stem.plain (stem.part: an earlier version's).
func partialStem(adir, clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return filepath.Join(adir, hex.EncodeToString(sum[:16]))
}

// errMessageDeleted stops the download of an attachment whose message was deleted.
var errMessageDeleted = errors.New("chat: the message was deleted")

// dropPartials stops the downloads of these attachments and removes what unfinished
// ones left (their records are gone with their messages): the decrypted beginning of
// a file the user deleted must not stay on disk.
func (c *Controller) dropPartials(clientIDs []string) {
	if len(clientIDs) == 0 {
		return
	}
	for _, id := range clientIDs {
		if r := c.runningDownload(id); r != nil {
			r.stop(errMessageDeleted) // it removes what it makes from now on
		}
	}
	adir, err := c.attachmentDir()
	if err != nil {
		c.log.Warn("partial downloads of deleted messages not removed", "err", err)
		return
	}
	for _, id := range clientIDs {
		stem := partialStem(adir, id)
		for _, p := range []string{stem + ".plain", stem + ".part"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("a partial download of a deleted message not removed", "err", err)
			}
		}
	}
}

// transient reports whether err is a lost connection worth waiting out.
func transient(err error) bool {
	return errors.Is(err, client.ErrConnectionLost) || errors.Is(err, client.ErrNotConnected)
}

// waitOnline waits for the relay connection after a transient error.
func waitOnline(ctx context.Context, br blobRelay) error {
	select {
	case <-br.Online():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendFile sends the file at path to contact as an attachment with an optional caption:
// it seals it, uploads it (progress is called as the relay acknowledges chunks), then
// commits the attachment message to the outbox like Send. Killed half way, the next
// ResumeUploads finishes it without sending the acknowledged chunks again.
func (c *Controller) SendFile(ctx context.Context, contact, path, caption string, progress Progress) (Message, error) {
	if len(caption) > MaxTextBytes {
		return Message{}, fmt.Errorf("%w: the caption is %d bytes, at most %d", ErrTextTooLong, len(caption), MaxTextBytes)
	}
	r, _, err := c.sendableContact(ctx, contact)
	if err != nil {
		return Message{}, err
	}
	wasRequest := !r.Consented
	br, err := c.blobs()
	if err != nil {
		return Message{}, err
	}
	// Not a regular file (a FIFO's open would wait for a writer): refused before the open.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return Message{}, fmt.Errorf("%w: %s is not a regular file", ErrFileUnreadable, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrFileUnreadable, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrFileUnreadable, err)
	}
	if !st.Mode().IsRegular() {
		return Message{}, fmt.Errorf("%w: %s is not a regular file", ErrFileUnreadable, path)
	}
	sealedSize, err := ratchet.StreamSealedSize(st.Size())
	if err != nil {
		return Message{}, err
	}
	max := br.MaxBlobBytes()
	if max == 0 {
		select {
		case <-br.Online():
			// Its hello named no limit: a relay that stores no files.
			if max = br.MaxBlobBytes(); max == 0 {
				return Message{}, fmt.Errorf("%w (use a relay that stores them)", ErrNoBlobs)
			}
		default:
			// Not reached yet, so its limit is unknown: the file is recorded below and
			// its upload waits for the relay, which refuses one too large
			// (blob_too_large, the attachment then fails). Waiting here first, the file
			// lived only in this call: an owner stopped before the relay came back
			// forgot a file it had said it would send.
		}
	}
	if max > 0 && (st.Size() > max || !relay.BlobSizeAllowed(sealedSize, max)) {
		if st.Size() <= max { // the encryption's 16 bytes per 64 KiB tipped it over
			return Message{}, fmt.Errorf("%w: %s is %s, %d bytes once encrypted, and the relay takes up to %d", ErrFileTooLarge, filepath.Base(path), FormatSize(st.Size()), sealedSize, max)
		}
		size, limit := FormatSize(st.Size()), FormatSize(max)
		if size == limit { // "1.0 MiB, the relay takes files up to 1.0 MiB" said nothing
			size, limit = strconv.FormatInt(st.Size(), 10)+" bytes", strconv.FormatInt(max, 10)
		} else {
			limit += " (" + strconv.FormatInt(max, 10) + " bytes)"
		}
		return Message{}, fmt.Errorf("%w: %s is %s, the relay takes files up to %s", ErrFileTooLarge, filepath.Base(path), size, limit)
	}
	// The upload reads the file again when it resumes, perhaps from another directory.
	abs, err := filepath.Abs(path)
	if err != nil {
		return Message{}, fmt.Errorf("chat: %w", err)
	}
	clientID := newClientID()
	meta := attachmentMeta{Size: st.Size(), FileName: SafeFileName(filepath.Base(path)), Caption: caption, Source: abs}
	meta.MediaType = sniffMediaType(f, meta.FileName)
	if err := attachmentFits(clientID, meta); err != nil {
		return Message{}, err
	}
	// The key is recorded before anything is sealed: the upload seals the file as it
	// goes, and a killed send resumes by sealing it again under the same key (sealing
	// is deterministic, so the chunks the relay has stay valid).
	meta.Key = make([]byte, ratchet.StreamKeySize)
	if _, err := rand.Read(meta.Key); err != nil {
		return Message{}, err
	}
	now := c.now()
	row := storage.Attachment{ClientID: clientID, Contact: contact, Direction: storage.Outgoing, State: AttachmentUploading,
		CreatedAt: now, UpdatedAt: now}
	if err := c.putMeta(ctx, &row, meta); err != nil {
		return Message{}, err
	}
	progress, ended := c.watchTransfer(ctx, row, 0, progress)
	defer ended()
	// Shown at once, at 0%: while the relay is unreachable the upload waits for it, and
	// the conversation showed nothing of the file until then (found by a tester).
	progress(0, meta.Size)
	m, err := c.finishUpload(ctx, br, row, progress)
	if err == nil && wasRequest {
		c.contactChanged(contact)
		c.sendWithheldReceipts(ctx, contact, "") // writing to them accepted them
	}
	return m, err
}

func (c *Controller) putMeta(ctx context.Context, row *storage.Attachment, meta attachmentMeta) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	row.Meta = b
	row.UpdatedAt = c.now()
	if err := c.store.PutAttachment(ctx, *row); err != nil {
		return fmt.Errorf("chat: recording an attachment: %w", err)
	}
	return nil
}

func readMeta(row storage.Attachment) (attachmentMeta, error) {
	var m attachmentMeta
	if err := json.Unmarshal(row.Meta, &m); err != nil {
		return m, fmt.Errorf("chat: attachment %s: unreadable state: %w", row.ClientID, err)
	}
	return m, nil
}

// sealStream seals a file for the upload as it goes: one goroutine reads and seals the
// file a few chunks ahead of the upload, a second hashes the sealed pieces behind it,
// and the upload takes them from memory. Nothing is staged on disk: a resumed upload
// seals the file again under the recorded key (sealing is deterministic, so the chunks
// the relay holds stay valid; a file changed since fails the relay's check).
type sealStream struct {
	out    chan []byte // sealed and hashed pieces, in order; closed at the end
	free   chan []byte // pieces the upload is done with
	cur    []byte      // the rest of the piece being read
	piece  []byte      // the piece cur is part of
	done   chan struct{}
	err    error  // after done
	digest []byte // after done, without err: SHA-256 of the whole sealed stream
	crc    uint32 // after done, without err: its CRC-32C, which the relay checks
}

// sealRun is how many chunks the sealer seals per piece: 256 KiB of plaintext;
// sealPieces are in flight between the sealer, the hasher and the upload (1.5 MiB).
const (
	sealRun    = 4
	sealPieces = 6
)

// startSealStream seals the file src (size bytes) under key, handing out the sealed
// stream from byte from on (the bytes before it are sealed only to be hashed).
func startSealStream(ctx context.Context, src string, key []byte, size, from int64) (*sealStream, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("chat: the file to send: %w", err)
	}
	s := &sealStream{out: make(chan []byte, sealPieces), free: make(chan []byte, sealPieces), done: make(chan struct{})}
	for range sealPieces {
		s.free <- make([]byte, 0, sealRun*ratchet.StreamSealedChunkSize)
	}
	sealed, sealErr := make(chan []byte, sealPieces), make(chan error, 1)
	go func() {
		defer close(sealed)
		sealErr <- s.seal(ctx, in, key, size, sealed)
		in.Close()
	}()
	go func() {
		defer close(s.done)
		defer close(s.out)
		digest, crc, err := s.hash(ctx, sealed, from)
		if serr := <-sealErr; serr != nil {
			err = serr
		}
		s.digest, s.crc, s.err = digest, crc, err
	}()
	return s, nil
}

// seal reads and seals the file into pieces from s.free, handing them to sealed: each
// piece is one read of sealRun chunks, sealed straight from the read buffer.
func (s *sealStream) seal(ctx context.Context, in io.Reader, key []byte, size int64, sealed chan<- []byte) error {
	var k [ratchet.StreamKeySize]byte
	copy(k[:], key)
	block := make([]byte, sealRun*ratchet.StreamChunkSize)
	var i uint64
	var read int64
	for first := true; first || read < size; first = false {
		var piece []byte
		select {
		case piece = <-s.free:
			piece = piece[:0]
		case <-ctx.Done():
			return ctx.Err()
		}
		n, err := io.ReadFull(in, block[:min(int64(len(block)), size-read)])
		if err != nil {
			return fmt.Errorf("chat: the file changed while it was read (%d bytes, then %d): %w", size, read+int64(n), err)
		}
		read += int64(n)
		plain := block[:n]
		for one := true; one || len(plain) > 0; one = false { // an empty file is one empty chunk
			c := min(len(plain), ratchet.StreamChunkSize)
			if piece, err = ratchet.SealStreamChunk(piece, &k, i, read == size && c == len(plain), plain[:c]); err != nil {
				return err
			}
			i++
			plain = plain[c:]
		}
		select {
		case sealed <- piece:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var b [1]byte
	if n, _ := in.Read(b[:]); n > 0 {
		return fmt.Errorf("chat: the file changed while it was read (%d bytes, then more)", size)
	}
	return nil
}

// hash hashes the sealed pieces in order and hands them to s.out, but for their
// bytes before from (sealed again only to be hashed), and returns the digest and the
// CRC-32C.
func (s *sealStream) hash(ctx context.Context, sealed <-chan []byte, from int64) ([]byte, uint32, error) {
	h := sha256.New()
	var crc uint32
	skip := from
	for piece := range sealed {
		h.Write(piece)
		crc = storage.UpdateBlobCRC32C(crc, piece)
		if d := min(skip, int64(len(piece))); d > 0 { // kept at the start of its buffer
			piece, skip = piece[:copy(piece, piece[d:])], skip-d
		}
		if len(piece) == 0 {
			s.free <- piece // never blocks: as many pieces as room
			continue
		}
		select {
		case s.out <- piece:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return h.Sum(nil), crc, nil
}

// read fills p with the next sealed bytes.
func (s *sealStream) read(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		if len(s.cur) == 0 {
			if s.piece != nil {
				s.free <- s.piece // never blocks: as many pieces as room
				s.piece = nil
			}
			var ok bool
			select {
			case s.piece, ok = <-s.out:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !ok {
				<-s.done
				if s.err != nil {
					return s.err
				}
				return fmt.Errorf("chat: the sealed file ended early")
			}
			s.cur = s.piece
		}
		n := copy(p, s.cur)
		p, s.cur = p[n:], s.cur[n:]
	}
	return nil
}

// result waits for the end and returns the sealed stream's digest and CRC-32C.
func (s *sealStream) result(ctx context.Context) ([]byte, uint32, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	if s.err != nil {
		return nil, 0, s.err
	}
	return s.digest, s.crc, nil
}

// ResumeUploads finishes every attachment an earlier run left uploading or uploaded
// (a killed `pfschat send-file`, a closed UI): chunks the relay acknowledged are not
// sent again. It returns the messages it queued.
func (c *Controller) ResumeUploads(ctx context.Context, progress Progress) ([]Message, error) {
	rows, err := c.store.AttachmentsIn(ctx, AttachmentUploading, AttachmentUploaded)
	if err != nil {
		return nil, err
	}
	var out []Message
	var errs []error
	for _, row := range rows {
		br, err := c.blobs()
		if err != nil {
			return out, err
		}
		watched, ended := c.watchTransfer(ctx, row, 0, progress)
		m, err := c.finishUpload(ctx, br, row, watched)
		ended()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

// failAttachment marks row failed. The reason goes into the sealed meta: it names the
// file (and its path), which the clear columns never hold; the clear reason column,
// which the store does not seal, is left empty.
func (c *Controller) failAttachment(ctx context.Context, row storage.Attachment, cause error) error {
	// A meta that cannot be read keeps a reason that names nothing, so the failure
	// still says it failed.
	row.State, row.Reason = AttachmentFailed, "the attachment failed (its sealed record could not be read)"
	if meta, err := readMeta(row); err == nil {
		meta.Failure = cause.Error()
		if b, err := json.Marshal(meta); err == nil {
			row.Meta, row.Reason = b, ""
		}
	}
	row.UpdatedAt = c.now()
	if err := c.store.PutAttachment(ctx, row); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// finishUpload takes an attachment from wherever it stands to sent.
func (c *Controller) finishUpload(ctx context.Context, br blobRelay, row storage.Attachment, progress Progress) (Message, error) {
	if _, busy := c.attachBusy.LoadOrStore(row.ClientID, struct{}{}); busy {
		return Message{}, fmt.Errorf("chat: attachment %s is being sent already", row.ClientID)
	}
	defer c.attachBusy.Delete(row.ClientID)
	meta, err := readMeta(row)
	if err != nil {
		return Message{}, err
	}
	sealedSize, err := ratchet.StreamSealedSize(meta.Size)
	if err != nil {
		return Message{}, err
	}
	report := func(sealedDone int64) {
		done := min(meta.Size, sealedDone*meta.Size/max(sealedSize, 1))
		if progress != nil {
			progress(done, meta.Size)
		}
	}
	if row.State == AttachmentUploading {
		if err := c.upload(ctx, br, &row, &meta, sealedSize, report); err != nil {
			if errors.Is(err, ctx.Err()) || transient(err) {
				return Message{}, err // stays uploading: resumed next time
			}
			return Message{}, c.failAttachment(ctx, row, err)
		}
	}
	// Uploaded: queue the message, unless a crash came after it was queued.
	if m, err := c.store.MessageByClientID(ctx, row.ClientID); err == nil {
		return c.markSent(ctx, row, meta, m)
	}
	msg, err := c.sendAttachmentMessage(ctx, row, meta)
	if err != nil {
		if errors.Is(err, ctx.Err()) || transient(err) {
			return Message{}, err // stays uploaded: the message is queued next time
		}
		// Refused (only a rejected key on the relay, a key change to accept first):
		// the caller is told nothing was sent, so a later run must not send it.
		return Message{}, c.failAttachment(ctx, row, err)
	}
	if _, err := c.markSent(ctx, row, meta, storage.Message{}); err != nil {
		return Message{}, err
	}
	return msg, nil
}

func (c *Controller) markSent(ctx context.Context, row storage.Attachment, meta attachmentMeta, m storage.Message) (Message, error) {
	staged := meta.Staged
	meta.Staged = ""
	row.State, row.DoneBytes = AttachmentSent, meta.Size
	if err := c.putMeta(ctx, &row, meta); err != nil {
		return Message{}, err
	}
	if staged != "" {
		os.Remove(staged)
	}
	out := toMessage(m)
	c.fillAttachment(ctx, &out)
	return out, nil
}

// upload sends the staged sealed stream, resuming at the relay's next chunk after a
// dropped connection, and commits it.
func (c *Controller) upload(ctx context.Context, br blobRelay, row *storage.Attachment, meta *attachmentMeta, sealedSize int64, report func(int64)) error {
	var lastSaved time.Time
	for {
		err := c.uploadOnce(ctx, br, row, meta, sealedSize, report, &lastSaved)
		if err == nil || !transient(err) {
			return err
		}
		c.log.Info("attachment upload interrupted; resuming when the relay is back", "err", err)
		if err := waitOnline(ctx, br); err != nil {
			return err
		}
	}
}

func (c *Controller) uploadOnce(ctx context.Context, br blobRelay, row *storage.Attachment, meta *attachmentMeta, sealedSize int64, report func(int64), lastSaved *time.Time) error {
	var next int64
	if meta.BlobID == "" {
		id, err := br.BlobBegin(ctx, sealedSize, 1)
		if err != nil {
			return err
		}
		meta.BlobID = id
		if err := c.putMeta(ctx, row, *meta); err != nil {
			return err
		}
	} else {
		st, err := br.BlobResume(ctx, meta.BlobID)
		var pe *relay.ProtocolError
		if errors.As(err, &pe) && pe.Code == relay.CodeBlobNotFound {
			// The upload expired on the relay: start again.
			meta.BlobID = ""
			return c.uploadOnce(ctx, br, row, meta, sealedSize, report, lastSaved)
		}
		if err != nil {
			return err
		}
		if st.Capability != nil {
			return c.committed(ctx, row, meta, st.Capability)
		}
		next = st.Next
	}
	report(next * relay.BlobChunkSize)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sl, err := startSealStream(sctx, meta.Source, meta.Key, meta.Size, next*relay.BlobChunkSize)
	if err != nil {
		return err
	}
	err = br.BlobPut(ctx, meta.BlobID, sealedSize, next, 0, func(i int64, buf []byte) error {
		return sl.read(ctx, buf)
	}, func(i int64) {
		done := min(sealedSize, (i+1)*relay.BlobChunkSize)
		report(done)
		if now := time.Now(); now.Sub(*lastSaved) > time.Second {
			*lastSaved = now
			_ = c.store.SetAttachmentProgress(ctx, row.ClientID, done, c.now())
		}
	})
	if err != nil {
		return err
	}
	digest, crc, err := sl.result(ctx)
	if err != nil {
		return err
	}
	meta.Digest = digest
	if err := c.putMeta(ctx, row, *meta); err != nil {
		return err
	}
	capab, err := br.BlobCommit(ctx, meta.BlobID, meta.Digest, crc)
	if err != nil {
		return err
	}
	return c.committed(ctx, row, meta, capab)
}

func (c *Controller) committed(ctx context.Context, row *storage.Attachment, meta *attachmentMeta, capab []byte) error {
	meta.Capability = capab
	row.State = AttachmentUploaded
	return c.putMeta(ctx, row, *meta)
}

// attachmentFits refuses, before anything is uploaded, an attachment whose message
// would not fit one payload: the caption shares MaxPayload with the file's name and
// type, so one under MaxText alone could still be too long, and it failed only once
// the file was uploaded, at every resume after. The trial encodes the message as
// sendAttachmentMessage will, with placeholders of the same sizes (every other field
// is of fixed size).
func attachmentFits(clientID string, meta attachmentMeta) error {
	ref := payload.AttachmentRef{BlobID: strings.Repeat("0", relay.BlobIDLen), Size: uint64(meta.Size), FileName: meta.FileName, MediaType: meta.MediaType}
	p := payload.Payload{Type: payload.Attachment, At: time.Unix(0, 0), ID: clientID, Seq: 1, Text: meta.Caption, Attachment: ref}
	if _, err := payload.AppendUnpadded(nil, &p); err != nil {
		p.Text = ""
		b, eerr := payload.AppendUnpadded(nil, &p)
		if eerr != nil {
			return fmt.Errorf("chat: %s cannot be sent: %w", meta.FileName, eerr)
		}
		return fmt.Errorf("%w: the caption is %d bytes; beside this file's name and type at most %d fit in one message", ErrTextTooLong, len(meta.Caption), payload.MaxPayload-len(b))
	}
	return nil
}

// sendAttachmentMessage commits the attachment payload to the outbox as Send does a text.
func (c *Controller) sendAttachmentMessage(ctx context.Context, row storage.Attachment, meta attachmentMeta) (Message, error) {
	if !relay.ValidBlobID(meta.BlobID) || len(meta.Capability) != 32 || len(meta.Key) != 32 || len(meta.Digest) != 32 {
		return Message{}, fmt.Errorf("chat: attachment %s: incomplete upload state", row.ClientID)
	}
	now := c.now()
	contact := row.Contact
	msg := &storage.Message{Contact: contact, Direction: storage.Outgoing, Body: []byte(meta.Caption),
		SentAt: now, State: storage.Pending, ClientID: row.ClientID}
	ref := payload.AttachmentRef{BlobID: meta.BlobID, Size: uint64(meta.Size), FileName: meta.FileName, MediaType: meta.MediaType}
	copy(ref.Capability[:], meta.Capability)
	copy(ref.Key[:], meta.Key)
	copy(ref.Digest[:], meta.Digest)
	encode := func() ([]byte, error) {
		seq, err := c.store.NextSendSeq(ctx, contact)
		if err != nil {
			return nil, fmt.Errorf("chat: numbering a message to %s: %w", contact, err)
		}
		msg.Seq = seq
		return payload.Encode(&payload.Payload{Type: payload.Attachment, At: now, ID: row.ClientID, Seq: seq, Text: meta.Caption, Attachment: ref})
	}
	var id int64
	err := c.onSession(ctx, contact, true, func(s *Session) error {
		plain, err := encode()
		if err != nil {
			return err
		}
		id, err = c.commitEncrypted(ctx, s, contact, plain, row.ClientID, msg)
		return err
	})
	if errors.Is(err, errAwaitSession) {
		id, err = c.queueAwaiting(ctx, contact, encode, row.ClientID, msg)
	}
	if err != nil {
		return Message{}, err
	}
	c.kickSender()
	m := Message{ID: id, Contact: contact, Outgoing: true, Text: meta.Caption, SentAt: now, State: Pending, Seq: msg.Seq, Order: msg.Order}
	m.Attachment = &Attachment{ClientID: row.ClientID, FileName: meta.FileName, MediaType: meta.MediaType, Size: meta.Size,
		State: AttachmentSent, DoneBytes: meta.Size, Path: meta.Source}
	return m, nil
}

// incomingAttachment is the attachment row of a received attachment payload.
func (c *Controller) incomingAttachment(from string, pl *payload.Payload, now time.Time) (*storage.Attachment, error) {
	a := pl.Attachment
	if a.Size > uint64(1<<62) {
		return nil, fmt.Errorf("attachment of %d bytes", a.Size)
	}
	meta := attachmentMeta{Key: a.Key[:], Digest: a.Digest[:], BlobID: a.BlobID, Capability: a.Capability[:],
		Size: int64(a.Size), FileName: a.FileName, MediaType: a.MediaType, Caption: pl.Text}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	return &storage.Attachment{ClientID: incomingClientID(from, pl.ID), Contact: from, Direction: storage.Incoming,
		State: AttachmentAvailable, Meta: b, CreatedAt: now, UpdatedAt: now}, nil
}

// fillAttachment sets m.Attachment when m's message is an attachment.
func (c *Controller) fillAttachment(ctx context.Context, m *Message) {
	if m.clientID == "" {
		return
	}
	row, err := c.store.Attachment(ctx, m.clientID)
	if err != nil {
		return
	}
	m.Attachment = attachmentFrom(row)
}

// fillAttachments is fillAttachment for many messages (a page of a conversation) in one
// read of the store per storage.AttachmentsChunk messages, not one per message. When
// that read fails each message is looked up alone, so that one unreadable row costs
// only its own message its file, as with fillAttachment.
func (c *Controller) fillAttachments(ctx context.Context, msgs []Message) {
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.clientID != "" {
			ids = append(ids, m.clientID)
		}
	}
	if len(ids) == 0 {
		return
	}
	rows, err := c.store.AttachmentsOf(ctx, ids)
	if err != nil {
		for i := range msgs {
			c.fillAttachment(ctx, &msgs[i])
		}
		return
	}
	for i := range msgs {
		if row, ok := rows[msgs[i].clientID]; ok && msgs[i].clientID != "" {
			msgs[i].Attachment = attachmentFrom(row)
		}
	}
}

// attachmentFrom is the Attachment an attachment row describes (nil when its meta
// cannot be read).
func attachmentFrom(row storage.Attachment) *Attachment {
	meta, err := readMeta(row)
	if err != nil {
		return nil
	}
	a := &Attachment{ClientID: row.ClientID, FileName: meta.FileName, MediaType: meta.MediaType, Size: meta.Size,
		State: row.State, DoneBytes: row.DoneBytes, Reason: failureReason(row, meta), Path: meta.Saved}
	if row.Direction == storage.Outgoing {
		a.Path = meta.Source
	}
	if strings.HasPrefix(a.MediaType, "image/") && a.Path != "" && (row.Direction == storage.Outgoing || row.State == AttachmentDownloaded) {
		if w, h, _, err := ImageFileSize(a.Path); err == nil {
			a.Width, a.Height = w, h
		}
	}
	return a
}

// AttachmentOf returns the attachment of the message with this id (ErrNotAttachment).
func (c *Controller) AttachmentOf(ctx context.Context, messageID int64) (*Attachment, error) {
	r, err := c.store.Message(ctx, messageID)
	if err != nil {
		return nil, fmt.Errorf("%w: message %d", ErrNotAttachment, messageID)
	}
	m := toMessage(r)
	c.fillAttachment(ctx, &m)
	if m.Attachment == nil {
		return nil, fmt.Errorf("%w: message %d", ErrNotAttachment, messageID)
	}
	return m.Attachment, nil
}

// Download fetches the attachment of message messageID into dir and returns the saved
// path. The stream is opened chunk by chunk inside the profile (resumable by chunk:
// only authenticated plaintext is kept), its size and digest are checked before
// anything reaches dir, and the file is moved there under a sanitised name that
// collides with nothing in dir (never overwriting). A file
// that fails verification is deleted and the attachment marked failed with the reason.
// An attachment downloaded before returns its path again; so does one whose earlier
// download was killed while saving it, once the file found there is checked to be it.
// The path is absolute (the record outlives the working directory of the process that
// saved it: a later /open, another recv).
//
// A file another call is downloading already (the owner's own fetching, a second
// client) is waited for, and its end is this call's: the path it saved the file to,
// whatever dir says (as for a file downloaded before), or its failure; one that
// stopped without either (its caller went away) is fetched by this call.
func (c *Controller) Download(ctx context.Context, messageID int64, dir string, progress Progress) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("downloads directory: %w", err)
	}
	for {
		r, err := c.store.Message(ctx, messageID)
		if err != nil || r.Direction != storage.Incoming {
			return "", fmt.Errorf("%w: message %d", ErrNotAttachment, messageID)
		}
		row, err := c.store.Attachment(ctx, r.ClientID)
		if err != nil {
			return "", fmt.Errorf("%w: message %d", ErrNotAttachment, messageID)
		}
		if other := c.runningDownload(row.ClientID); other != nil {
			if err := other.wait(ctx); err != nil {
				return "", err
			}
			continue // as the other left it
		}
		var ended func()
		watched := progress
		if row.State == AttachmentAvailable || row.State == AttachmentFetching {
			watched, ended = c.watchTransfer(ctx, row, messageID, progress)
		}
		path, err := c.download(ctx, row, dir, watched)
		if ended != nil {
			ended()
		}
		var busy *downloadBusyError
		if errors.As(err, &busy) { // started since runningDownload looked
			if err := busy.run.wait(ctx); err != nil {
				return "", err
			}
			continue
		}
		return path, err
	}
}

// downloadRun is a download under way, as attachBusy holds it: stop ends it
// (dropPartials), done is closed once it returned and left attachBusy.
type downloadRun struct {
	stop context.CancelCauseFunc
	done chan struct{}
}

// wait waits for the download to end, or for ctx.
func (r *downloadRun) wait(ctx context.Context) error {
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chat: waiting for the download of the file under way: %w", ctx.Err())
	}
}

// downloadBusyError: download found the attachment being downloaded by another call.
type downloadBusyError struct{ run *downloadRun }

func (e *downloadBusyError) Error() string { return "chat: the attachment is being downloaded already" }

// runningDownload is the download of the attachment clientID under way, nil for none.
func (c *Controller) runningDownload(clientID string) *downloadRun {
	if v, ok := c.attachBusy.Load(clientID); ok {
		if r, ok := v.(*downloadRun); ok {
			return r
		}
	}
	return nil
}

// PendingDownloads lists the messages whose attachments are not downloaded yet, oldest
// first: in the order they arrived (their ids), whether their download never started or
// stopped half way.
func (c *Controller) PendingDownloads(ctx context.Context) ([]Message, error) {
	rows, err := c.store.AttachmentsIn(ctx, AttachmentAvailable, AttachmentFetching)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, row := range rows {
		r, err := c.store.MessageByClientID(ctx, row.ClientID)
		if err != nil {
			continue
		}
		m := toMessage(r)
		c.fillAttachment(ctx, &m)
		out = append(out, m)
	}
	// The store lists them by state, then by when each was recorded.
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (c *Controller) download(ctx context.Context, row storage.Attachment, dir string, progress Progress) (_ string, err error) {
	// Deleting the message stops the download (dropPartials cancels it), instead of
	// letting it fetch the rest of a file nobody will keep.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	run := &downloadRun{stop: stop, done: make(chan struct{})}
	if v, busy := c.attachBusy.LoadOrStore(row.ClientID, run); busy {
		if other, ok := v.(*downloadRun); ok {
			return "", &downloadBusyError{other}
		}
		return "", fmt.Errorf("chat: attachment %s is being sent", row.ClientID)
	}
	defer func() {
		c.attachBusy.Delete(row.ClientID) // before done: a waiter that looks again finds it gone
		close(run.done)
	}()
	meta, err := readMeta(row)
	if err != nil {
		return "", err
	}
	switch row.State {
	case AttachmentDownloaded:
		return meta.Saved, nil
	case AttachmentFailed:
		return "", fmt.Errorf("%w: %s: %s", ErrAttachmentFailed, SafeFileName(meta.FileName), failureReason(row, meta))
	case AttachmentAvailable, AttachmentFetching:
	default:
		return "", fmt.Errorf("%w: %s is outgoing", ErrNotAttachment, meta.FileName)
	}
	if dir == "" {
		return "", errors.New("chat: no downloads directory")
	}
	if err := writableDir(dir); err != nil {
		return "", err
	}
	sealedSize, err := ratchet.StreamSealedSize(meta.Size)
	if err != nil {
		return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %v", ErrAttachmentDigest, err))
	}
	if !relay.ValidBlobID(meta.BlobID) {
		// The payload allows any printable ASCII (PAYLOAD.md §4.5); a relay names its
		// blobs otherwise, so no relay has this one and every try would fail alike.
		return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %s names no blob a relay gives (blob id %q)", ErrAttachmentGone, SafeFileName(meta.FileName), meta.BlobID))
	}
	br, err := c.blobs()
	if err != nil {
		return "", err
	}
	adir, err := c.attachmentDir()
	if err != nil {
		return "", err
	}
	stem := partialStem(adir, row.ClientID)
	os.Remove(stem + ".part") // an earlier version's download, sealed: started again
	part := stem + ".plain"
	defer func() {
		// The message deleted while its file downloaded: dropPartials ran, but this
		// download may have made the partial again since (a fetch resumed). Nothing
		// of the file stays, and the error says why.
		if err != nil && c.attachmentDeleted(context.WithoutCancel(ctx), row.ClientID) {
			os.Remove(part)
			err = fmt.Errorf("%w: the message of %s was deleted while its file downloaded; nothing was saved", ErrUnknownMessage, SafeFileName(meta.FileName))
		}
	}()
	if meta.Placing != "" {
		// A run killed while it saved the file: it may be in place already.
		placed := placedBefore(ctx, meta, part, func(path string) bool {
			return c.pathNamedByAnother(ctx, row.ClientID, path)
		})
		if err := ctx.Err(); err != nil {
			return "", err // stays fetching: checked again next time
		}
		if placed {
			os.Remove(part)
			return c.downloaded(ctx, br, row, meta, meta.Placing)
		}
		meta.Placing = ""
		if err := c.putMeta(ctx, &row, meta); err != nil {
			return "", err
		}
	}
	if row.State != AttachmentFetching {
		row.State = AttachmentFetching
		row.UpdatedAt = c.now()
		if err := c.store.PutAttachment(ctx, row); err != nil {
			return "", err
		}
	}
	err = c.fetchBlob(ctx, br, row, meta, part, sealedSize, progress)
	var pe *relay.ProtocolError
	switch {
	case errors.As(err, &pe) && pe.Code == relay.CodeBlobNotFound:
		os.Remove(part)
		return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %s", ErrAttachmentGone, SafeFileName(meta.FileName)))
	case errors.Is(err, client.ErrBlobChunk) || errors.As(err, &pe) && pe.Code == relay.CodeBadField:
		// A chunk shorter than the message's size makes it, or (bad_field) a chunk
		// past the blob's end asked for: the blob is not the size the message says.
		os.Remove(part)
		return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %v", ErrAttachmentDigest, err))
	case errors.Is(err, ErrAttachmentDigest) || errors.Is(err, ErrAttachmentCorrupt):
		os.Remove(part)
		return "", c.failAttachment(ctx, row, err)
	case err != nil:
		return "", err // local trouble or the context: stays fetching, resumes next time
	}
	// From here the record follows the file even if ctx ends: a file saved under a
	// record still "fetching" would be fetched and saved a second time.
	rctx := context.WithoutCancel(ctx)
	var recordErr error
	saved, err := placeFile(part, dir, SafeFileName(meta.FileName), func(p string) error {
		abs, err := filepath.Abs(p)
		if err == nil {
			meta.Placing = abs
			err = c.putMeta(rctx, &row, meta)
		}
		recordErr = err
		return err
	})
	if recordErr != nil {
		return "", err // the file is not placed: stays fetching, tried again next time
	}
	if err != nil {
		os.Remove(part)
		return "", c.failAttachment(rctx, row, err)
	}
	if c.beforeSavedRecord != nil {
		c.beforeSavedRecord()
	}
	return c.downloaded(ctx, br, row, meta, saved)
}

// downloaded records that row's file is saved at saved, and tells the relay it was
// fetched.
func (c *Controller) downloaded(ctx context.Context, br blobRelay, row storage.Attachment, meta attachmentMeta, saved string) (string, error) {
	meta.Saved, meta.Placing = saved, ""
	row.State, row.DoneBytes, row.Reason = AttachmentDownloaded, meta.Size, ""
	if err := c.putMeta(context.WithoutCancel(ctx), &row, meta); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			// The message was deleted while the file was saved: the file goes with it,
			// and its name is synced away, or a power cut could bring it back unrecorded.
			if os.Remove(saved) == nil {
				_ = storage.SyncDir(filepath.Dir(saved))
			}
		}
		return "", err
	}
	if err := br.BlobDone(ctx, meta.BlobID, meta.Capability); err != nil {
		c.log.Info("telling the relay an attachment was fetched", "err", err)
	}
	return saved, nil
}

// writableDir makes dir when it is missing and checks that a file can be made in it,
// before anything is fetched: a download that could not be saved at its end would
// have fetched the file for nothing, and failed it. The error is ErrDownloadDir naming
// dir and why.
func writableDir(dir string) error {
	why := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is dir's, or a file in it: dir is named below
		}
		return fmt.Errorf("%w %s: %w", ErrDownloadDir, dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return why(err)
	}
	f, err := os.CreateTemp(dir, ".pfschat-check-*")
	if err != nil {
		return why(err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// placedBefore reports whether a run killed while it saved the file of meta left it
// at meta.Placing, where that run recorded it would go. The name alone proves
// nothing (the user may have put a file of theirs there since), so the file there is
// taken only when it is the download's: the partial file itself (linked, killed
// before the partial's name was removed), or a whole copy of it, or — the partial
// gone — the attachment's exact bytes (its size, and the digest of its sealed form:
// sealed again under its key). A copy cut short by the kill (the beginning of the
// whole partial) is removed, to be saved again. A file that cannot be read is not
// the download's: it is saved again rather than waiting on a directory it cannot
// check. Bytes cannot tell this download's copy from another's of the same file
// (the same message sent twice, its second download saved to the name this one had
// recorded and not yet taken), so a file there that is not the partial itself is
// neither taken nor removed while another record names its path (namedByAnother).
func placedBefore(ctx context.Context, meta attachmentMeta, part string, namedByAnother func(path string) bool) bool {
	pi, err := os.Lstat(meta.Placing)
	if err != nil || !pi.Mode().IsRegular() || pi.Size() > meta.Size {
		return false
	}
	fi, err := os.Lstat(part)
	if err == nil && os.SameFile(pi, fi) {
		return true
	}
	if namedByAnother(meta.Placing) {
		return false
	}
	if err == nil {
		// Placing was recorded only once the partial was whole and checked, and the
		// partial is not touched again before this check.
		if fi.Size() != meta.Size || !samePrefix(meta.Placing, part, pi.Size()) {
			return false
		}
		if pi.Size() == meta.Size {
			return true
		}
		os.Remove(meta.Placing) // cut short: failing that, the file is saved beside it
		return false
	} else if !errors.Is(err, fs.ErrNotExist) || pi.Size() != meta.Size {
		return false
	}
	sealedSize, err := ratchet.StreamSealedSize(meta.Size)
	if err != nil {
		return false
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	// Sealed only to be hashed: from the end, no sealed byte is handed out.
	s, err := startSealStream(sctx, meta.Placing, meta.Key, meta.Size, sealedSize)
	if err != nil {
		return false
	}
	digest, _, err := s.result(sctx)
	return err == nil && subtle.ConstantTimeCompare(digest, meta.Digest) == 1
}

// attachmentDeleted reports whether the attachment's record is gone: its message was
// deleted (or its conversation cleared, or its sender removed).
func (c *Controller) attachmentDeleted(ctx context.Context, clientID string) bool {
	_, err := c.store.Attachment(ctx, clientID)
	return errors.Is(err, storage.ErrNotFound)
}

// pathNamedByAnother reports whether an incoming attachment's record other than
// clientID's names path: saved there, or being saved there. A store that cannot be
// read counts as naming it (the file there is then saved beside, never taken).
func (c *Controller) pathNamedByAnother(ctx context.Context, clientID, path string) bool {
	rows, err := c.store.AttachmentsIn(ctx, AttachmentFetching, AttachmentDownloaded)
	if err != nil {
		return true
	}
	for _, r := range rows {
		if r.ClientID == clientID || r.Direction != storage.Incoming {
			continue
		}
		if meta, err := readMeta(r); err == nil && (meta.Saved == path || meta.Placing == path) {
			return true
		}
	}
	return false
}

// samePrefix reports whether the files a and b both begin with the same n bytes.
func samePrefix(a, b string, n int64) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for n > 0 {
		k := int(min(n, int64(len(bufA))))
		if _, err := io.ReadFull(fa, bufA[:k]); err != nil {
			return false
		}
		if _, err := io.ReadFull(fb, bufB[:k]); err != nil {
			return false
		}
		if !bytes.Equal(bufA[:k], bufB[:k]) {
			return false
		}
		n -= int64(k)
	}
	return true
}

// fetchBlob downloads the sealed stream, checking and opening it as it arrives into
// part (the plaintext, inside the profile), resuming from the chunks part holds.
func (c *Controller) fetchBlob(ctx context.Context, br blobRelay, row storage.Attachment, meta attachmentMeta, part string, sealedSize int64, progress Progress) error {
	stalls := 0
	for {
		before := fileSize(part)
		err := c.fetchOnce(ctx, br, row, meta, part, sealedSize, progress)
		if errors.Is(err, client.ErrBlobStalled) {
			// Connected, but the relay answered nothing in time: stalled, as when its
			// connection keeps dropping (it stays to be resumed).
			return fmt.Errorf("%w: %s: %w", ErrAttachmentStalled, SafeFileName(meta.FileName), err)
		}
		if err == nil || !transient(err) {
			return err
		}
		// A connection that drops each time before a byte more arrives (a relay that
		// answers with what the client cannot read, say) is not waited out for ever:
		// the download stops, to be resumed by the next recv or Download.
		if fileSize(part) > before {
			stalls = 0
		} else if stalls++; stalls >= maxFetchStalls {
			return fmt.Errorf("%w: %s: the relay's connection dropped %d times in a row before more of it arrived (last: %v)",
				ErrAttachmentStalled, SafeFileName(meta.FileName), stalls, err)
		}
		c.log.Info("attachment download interrupted; resuming when the relay is back", "err", err)
		if err := waitOnline(ctx, br); err != nil {
			return err
		}
	}
}

// fetchOnce fetches the rest of the sealed stream into part: each byte is hashed and
// each sealed chunk opened as soon as it is whole, its plaintext appended to part. The
// whole stream's size and digest are checked at the end (ErrAttachmentDigest: a
// tampered or another blob, a wrong size; ErrAttachmentCorrupt: it matched the digest
// but did not open), and part synced. The plaintext part holds only authenticated
// chunks; a resumed download keeps its whole chunks (but the last) and rebuilds the
// digest of their sealed form by sealing them again (sealing is deterministic).
func (c *Controller) fetchOnce(ctx context.Context, br blobRelay, row storage.Attachment, meta attachmentMeta, part string, sealedSize int64, progress Progress) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	chunks := (sealedSize + ratchet.StreamSealedChunkSize - 1) / ratchet.StreamSealedChunkSize
	k := min(st.Size()/ratchet.StreamChunkSize, max(chunks-1, 0)) // whole chunks kept; the last is fetched again
	if err := f.Truncate(k * ratchet.StreamChunkSize); err != nil {
		return err
	}
	o := newBlobOpener(meta.Key, sealedSize, f)
	if err := o.resume(f, k); err != nil {
		o.flush()
		return err
	}
	report := func(done int64) {
		if progress != nil {
			progress(min(meta.Size, done*meta.Size/max(sealedSize, 1)), meta.Size)
		}
	}
	report(o.hashed)
	from := o.hashed / relay.BlobChunkSize
	o.skip = o.hashed % relay.BlobChunkSize // hashed and opened already
	o.openBehind()
	var lastSaved time.Time
	err = br.BlobGetOwned(ctx, meta.BlobID, meta.Capability, sealedSize, from, 0, func(i int64, data []byte) error {
		if err := context.Cause(ctx); err != nil {
			client.ReleaseBlobChunk(data)
			return err // pieces already in flight are not opened once it is stopped
		}
		if err := o.writeOwned(data, func() { client.ReleaseBlobChunk(data) }); err != nil {
			return err
		}
		report(o.hashed)
		if now := time.Now(); now.Sub(lastSaved) > time.Second {
			lastSaved = now
			_ = c.store.SetAttachmentProgress(ctx, row.ClientID, o.hashed, c.now())
		}
		return nil
	})
	if ferr := o.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	name := SafeFileName(meta.FileName)
	if o.pos != sealedSize || subtle.ConstantTimeCompare(o.h.Sum(nil), meta.Digest) != 1 {
		return fmt.Errorf("%w: %s (%d bytes downloaded, %d expected)", ErrAttachmentDigest, name, o.pos, sealedSize)
	}
	if o.openErr != nil {
		return fmt.Errorf("%w: %s: %v", ErrAttachmentCorrupt, name, o.openErr)
	}
	if o.written != meta.Size {
		return fmt.Errorf("%w: %s: %d bytes, the message says %d", ErrAttachmentCorrupt, name, o.written, meta.Size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("chat: saving %s: %w", name, err)
	}
	return nil
}

// fileWriter appends a download's plaintext to its file on a goroutine of its own
// (the file system's copy into the page cache costs about as much per byte as the
// SHA-256 pass: beside it, not after it), in buffers of writeBufSize, at most
// writeBufs of them (1 MiB), and starts the disk's write-out a step behind
// (storage.WriteBehind), so that the fsync at the end waits for the last step only.
// The opener opens each chunk straight into the buffer being filled.
type fileWriter struct {
	f    *os.File
	buf  []byte      // being filled (the opener's)
	full chan []byte // to the goroutine
	free chan []byte // back from it
	done chan struct{}
	// The goroutine's; set before the first buffer is handed over.
	n  int64 // the file's length
	wb *storage.WriteBehind

	mu  sync.Mutex
	err error // the first write error
}

const (
	writeBufSize = 4 * ratchet.StreamChunkSize
	writeBufs    = 4
)

func newFileWriter(f *os.File, n int64) *fileWriter {
	w := &fileWriter{f: f, n: n, wb: storage.NewWriteBehind(f, n),
		full: make(chan []byte, writeBufs), free: make(chan []byte, writeBufs), done: make(chan struct{})}
	for range writeBufs {
		w.free <- make([]byte, 0, writeBufSize)
	}
	go w.run()
	return w
}

func (w *fileWriter) run() {
	defer close(w.done)
	for b := range w.full {
		if w.failed() == nil {
			n, err := w.f.Write(b)
			w.n += int64(n)
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			} else {
				w.wb.Written(w.n)
			}
		}
		w.free <- b[:0]
	}
}

func (w *fileWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// room returns the buffer being filled with room for n more bytes; filled takes it
// back with them.
func (w *fileWriter) room(n int) []byte {
	if w.buf != nil && cap(w.buf)-len(w.buf) < n {
		w.full <- w.buf
		w.buf = nil
	}
	if w.buf == nil {
		w.buf = <-w.free
	}
	return w.buf
}

func (w *fileWriter) filled(b []byte) {
	w.buf = b
	if len(b) == cap(b) {
		w.full <- b
		w.buf = nil
	}
}

// close writes what is buffered, ends the goroutine and returns the first write error.
func (w *fileWriter) close() error {
	if len(w.buf) > 0 {
		w.full <- w.buf
	}
	w.buf = nil
	close(w.full)
	<-w.done
	return w.failed()
}

// blobOpener takes a sealed stream (ratchet/STREAM.md) in order, in pieces of any
// size: it hashes every byte, opens each sealed chunk once it is whole and writes the
// plaintext. After a chunk fails to open it goes on hashing, so that the digest can
// tell a tampered blob from a wrong key, but writes nothing more.
type blobOpener struct {
	key        [ratchet.StreamKeySize]byte
	h          hash.Hash
	w          *fileWriter
	sealedSize int64
	hashed     int64 // sealed bytes hashed (Write's)
	skip       int64 // bytes to drop before taking any (already taken on a resume)

	// Once openBehind started it, the opening goroutine alone has these until flush.
	pos     int64 // sealed bytes taken
	i       uint64
	pending []byte // the start of sealed chunk i
	plain   []byte
	written int64
	openErr error

	pieces  chan ownedPiece // hashed bytes for the opening goroutine (nil: Write opens)
	opened  chan struct{}   // closed when it has opened every piece
	stopMu  sync.Mutex
	stopErr error // the opening goroutine's write error: the download stops
}

// openAhead is how many hashed pieces (up to a binary run each, 256 KiB) may wait for
// the opening goroutine.
const openAhead = 4

// ownedPiece is hashed bytes handed to the opening goroutine, and what gives their
// buffer back once they are opened.
type ownedPiece struct {
	data    []byte
	release func()
}

// newBlobOpener opens a stream into f; flush ends it (once, whatever happened).
func newBlobOpener(key []byte, sealedSize int64, f *os.File) *blobOpener {
	o := &blobOpener{h: sha256.New(), w: newFileWriter(f, 0), sealedSize: sealedSize,
		pending: make([]byte, 0, ratchet.StreamSealedChunkSize), plain: make([]byte, 0, ratchet.StreamChunkSize)}
	copy(o.key[:], key)
	return o
}

// resume takes the k whole plaintext chunks at the start of f as already opened: it
// seals them again to hash their sealed form, and leaves f's offset after them.
func (o *blobOpener) resume(f *os.File, k int64) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, ratchet.StreamChunkSize)
	var sealed []byte
	for j := range k {
		if _, err := io.ReadFull(r, o.plain[:ratchet.StreamChunkSize]); err != nil {
			return fmt.Errorf("chat: resuming a download: %w", err)
		}
		var err error
		if sealed, err = ratchet.SealStreamChunk(sealed[:0], &o.key, uint64(j), false, o.plain[:ratchet.StreamChunkSize]); err != nil {
			return err
		}
		o.h.Write(sealed)
	}
	o.i, o.pos, o.written = uint64(k), k*ratchet.StreamSealedChunkSize, k*ratchet.StreamChunkSize
	o.hashed = o.pos
	o.w.n, o.w.wb = o.written, storage.NewWriteBehind(f, o.written) // before any buffer goes to the writer
	_, err := f.Seek(o.written, io.SeekStart)
	return err
}

// openBehind opens on a goroutine of its own what Write and writeOwned hashed, so that
// the hashing and the opening — each about as costly per byte — run side by side (a
// download hands over the client's run buffers, so nothing is copied). Call it after
// resume, before the first write. What was written is opened even when the download
// stops meanwhile (flush waits for it: at most openAhead runs), as it was when Write
// opened it itself.
func (o *blobOpener) openBehind() {
	o.pieces, o.opened = make(chan ownedPiece, openAhead), make(chan struct{})
	go func() {
		defer close(o.opened)
		for p := range o.pieces {
			if o.stopped() == nil {
				if err := o.take(p.data); err != nil {
					o.stopMu.Lock()
					o.stopErr = err
					o.stopMu.Unlock()
				}
			}
			p.release()
		}
	}()
}

func (o *blobOpener) stopped() error {
	o.stopMu.Lock()
	defer o.stopMu.Unlock()
	return o.stopErr
}

// Write takes p, which is the caller's only until Write returns (opened behind, it is
// copied).
func (o *blobOpener) Write(p []byte) (int, error) {
	q := p
	if o.pieces != nil {
		q = bytes.Clone(p)
	}
	if err := o.writeOwned(q, nil); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeOwned takes p for good: release (when not nil) is called once nothing reads p
// any more, whatever happens.
func (o *blobOpener) writeOwned(p []byte, release func()) error {
	if release == nil {
		release = func() {}
	}
	if o.skip > 0 {
		d := min(o.skip, int64(len(p)))
		p, o.skip = p[d:], o.skip-d
	}
	if int64(len(p)) > o.sealedSize-o.hashed {
		release()
		return fmt.Errorf("%w: more bytes than the stream's %d", ErrAttachmentDigest, o.sealedSize)
	}
	o.h.Write(p)
	o.hashed += int64(len(p))
	if o.pieces == nil {
		defer release()
		return o.take(p)
	}
	if err := o.stopped(); err != nil {
		release()
		return err
	}
	o.pieces <- ownedPiece{p, release}
	return nil
}

// take opens the sealed chunks p completes and holds the start of the next.
func (o *blobOpener) take(p []byte) error {
	for len(p) > 0 {
		chunkEnd := min(int64(o.i+1)*ratchet.StreamSealedChunkSize, o.sealedSize)
		need := int(chunkEnd - o.pos - int64(len(o.pending)))
		if len(o.pending) == 0 && len(p) >= need+len(o.pending) {
			o.open(p[:need], chunkEnd == o.sealedSize) // whole in p: no copy
		} else {
			take := min(need, len(p))
			o.pending = append(o.pending, p[:take]...)
			if take < need {
				return nil
			}
			o.open(o.pending, chunkEnd == o.sealedSize)
			o.pending = o.pending[:0]
		}
		p = p[need:]
		o.pos = chunkEnd
		o.i++
		if err := o.werr(); err != nil {
			return err
		}
	}
	return nil
}

func (o *blobOpener) open(sealed []byte, last bool) {
	if o.openErr != nil {
		return
	}
	if err := o.w.failed(); err != nil {
		o.openErr = err
		return
	}
	buf := o.w.room(len(sealed))
	plain, err := ratchet.OpenStreamChunk(buf, &o.key, o.i, last, sealed)
	if err != nil {
		o.openErr = err
		return
	}
	o.w.filled(plain)
	o.written += int64(len(plain) - len(buf))
}

// werr is a write error (not an opening one): the download stops.
func (o *blobOpener) werr() error {
	if o.openErr != nil && !errors.Is(o.openErr, ratchet.ErrDecrypt) && !errors.Is(o.openErr, ratchet.ErrMalformed) {
		return o.openErr
	}
	return nil
}

func (o *blobOpener) flush() error {
	if o.pieces != nil {
		close(o.pieces)
		<-o.opened
		o.pieces = nil
	}
	err := o.w.close()
	if o.openErr != nil {
		return o.werr()
	}
	return err
}

// placeFile moves the checked file at part into dir under name, or "name (2).ext", …
// when taken: never over an existing file (a hard link, which fails on an existing
// name, then part's name removed; a copy when dir is on another file system). Each
// free path is given to record before the file goes there, to be kept durably: a run
// killed after the file is there but before it is recorded as saved finds it there
// (placedBefore), and does not save a second copy. The directory is synced before the
// path is returned to be recorded as saved: the record is durable once committed, and
// without the sync a power cut could keep it while losing the file's name.
func placeFile(part, dir, name string, record func(path string) error) (string, error) {
	var linkErr error
	p, err := uniqueName(dir, name, func(p string) error {
		if err := claim(p, record); err != nil {
			return err
		}
		err := os.Link(part, p)
		if err != nil && !errors.Is(err, os.ErrExist) {
			linkErr = err
			return nil // stop: copy instead
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if linkErr == nil {
		if err := storage.SyncDir(dir); err != nil {
			os.Remove(p)
			return "", fmt.Errorf("chat: saving %s: %w", name, err)
		}
		os.Remove(part)
		return p, nil
	}
	in, err := os.Open(part)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, p, err := createUnique(dir, name, record)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = storage.SyncDir(dir)
	}
	if err != nil {
		os.Remove(p)
		return "", fmt.Errorf("chat: saving %s: %w", name, err)
	}
	os.Remove(part)
	return p, nil
}

// createUnique creates name in dir, or "name (2).ext", "name (3).ext", … when taken:
// never an existing file; record is given each free path before it is created.
func createUnique(dir, name string, record func(path string) error) (*os.File, string, error) {
	var f *os.File
	p, err := uniqueName(dir, name, func(p string) error {
		if err := claim(p, record); err != nil {
			return err
		}
		var err error
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return f, p, nil
}

// claim gives p to record unless a file is there already (os.ErrExist): only a path
// the file may go to is recorded.
func claim(p string, record func(path string) error) error {
	if _, err := os.Lstat(p); err == nil {
		return os.ErrExist
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return record(p)
}

// uniqueName calls make with dir/name, then "name (2).ext", "name (3).ext", … while
// it fails with os.ErrExist, and returns the path it took.
func uniqueName(dir, name string, make func(p string) error) (string, error) {
	ext := filepath.Ext(name)
	if len(ext) > 16 || ext == name {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	budget := max(maxSavedName, len(name)) // a candidate's bytes; fewer if the file system says so
	for i := 1; i < 10000; {
		suffix := ""
		if i > 1 {
			suffix = " (" + strconv.Itoa(i) + ")"
		}
		cand := truncateUTF8(stem, budget-len(suffix)-len(ext)) + suffix + ext
		p := filepath.Join(dir, cand)
		err := make(p)
		switch {
		case err == nil:
			return p, nil
		case errors.Is(err, os.ErrExist):
			i++
		case errors.Is(err, syscall.ENAMETOOLONG) && budget > minSavedName:
			// Some file systems take fewer than 255 bytes (eCryptfs about 143): a
			// shorter name saves the file where failing would lose it for good.
			budget = max(minSavedName, budget/2)
		default:
			return "", fmt.Errorf("chat: saving an attachment: %w", err)
		}
	}
	return "", fmt.Errorf("chat: no free file name for %s in %s", name, dir)
}

// maxSavedName bounds a saved file name, bytes (most file systems allow 255);
// minSavedName is as short as uniqueName cuts one for a file system that refuses it
// as too long (room for a 16-byte extension and a " (9999)").
const (
	maxSavedName = 200
	minSavedName = 40
)

// SafeFileName turns a sender's file name into one safe to create and to show: no path
// separators, none of :*?"<>| (which Windows and FAT file systems refuse), no control,
// format or other invisible characters (escape sequences, bidi
// overrides, Unicode's default ignorable code points and variation selectors), no
// leading dots or dashes, no trailing dots or spaces, valid UTF-8, at most 200 bytes
// (the extension kept), no name that Windows reserves for a device (CON, PRN, AUX,
// NUL, COM1–COM9, LPT1–LPT9, as Signal Desktop does: "_CON.txt"); "attachment" when
// nothing is left.
func SafeFileName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '/' || r == '\\' || r == 0:
			b.WriteRune('_')
		case strings.ContainsRune(`:*?"<>|`, r):
			// Not in a file name on Windows, exFAT or FAT (a USB stick the downloads
			// are copied to), and ':' shows as '/' in macOS's Finder: as Signal Desktop,
			// the same saved name everywhere.
			b.WriteRune('_')
		case unicode.IsControl(r) || r == utf8.RuneError ||
			unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector):
			// Invisible: format characters (bidi overrides, joiners) and the other
			// default ignorable code points (Hangul fillers, the combining grapheme
			// joiner, variation selectors) would let a name hide characters or look
			// like another.
			b.WriteRune('_')
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimLeft(b.String(), ". -")
	s = cutName(strings.TrimRight(s, ". "))
	if s == "" {
		return "attachment"
	}
	if windowsDevice(s) { // checked once cut: a cut can leave "con" of "con   …x"
		s = cutName("_" + s)
	}
	return s
}

// cutName cuts s to maxSavedName bytes, keeping its extension, with no trailing dots
// or spaces.
func cutName(s string) string {
	if len(s) <= maxSavedName {
		return s
	}
	ext := filepath.Ext(s)
	if len(ext) > 16 {
		ext = ""
	}
	// Cut without an extension, the name may now end in a dot or a space.
	return strings.TrimRight(truncateUTF8(strings.TrimSuffix(s, ext), maxSavedName-len(ext))+ext, ". ")
}

// windowsDevice reports whether Windows takes name for a device, not a file: CON,
// PRN, AUX, NUL, COM1–COM9 or LPT1–LPT9 (also with ¹, ² or ³), CONIN$ or CONOUT$, in
// any case, alone or before a dot or a colon, with spaces before it ("nul .txt"). A
// file saved so cannot be opened there, or opens the device (the set and the rule are
// Go's, internal/filepathlite; Windows 11 frees some with an extension, older ones not).
func windowsDevice(name string) bool {
	base := name
	if i := strings.IndexAny(base, ".:"); i >= 0 {
		base = base[:i]
	}
	// Windows ignores the case of ASCII letters only (strings.ToUpper would also make
	// "conın$", with a dotless ı, CONIN$).
	base = strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) > 3 && (base[:3] == "COM" || base[:3] == "LPT") {
		switch base[3:] {
		case "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
			return true
		}
	}
	return false
}

func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sniffMediaType names a file's type from its first bytes, or its extension when they
// say nothing; it rewinds f.
func sniffMediaType(f *os.File, name string) string {
	var head [512]byte
	n, _ := io.ReadFull(f, head[:])
	f.Seek(0, io.SeekStart)
	t := http.DetectContentType(head[:n])
	if t == "application/octet-stream" {
		if e := mime.TypeByExtension(filepath.Ext(name)); e != "" {
			t = e
		}
	}
	if len(t) > payload.MaxMediaType || strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "application/octet-stream"
	}
	return t
}

// MayAutoDownload reports whether m's file may be fetched without the user asking:
// only from a contact the user wrote to or accepted and has not blocked, and not from
// a key the user has not accepted (a stranger's file, or a message request's, waits for
// the user). A file the trusted key sent comes even while a new key waits for the
// user: a key change someone else presents must not hold back the contact's own files.
func (c *Controller) MayAutoDownload(ctx context.Context, m Message) bool {
	if m.Attachment == nil || m.Outgoing || m.KeyPending {
		return false
	}
	ct, err := c.store.Contact(ctx, m.Contact)
	return err == nil && ct.Consented && !ct.Blocked
}

// FormatSize writes a byte count for people: "512 B", "1.5 KiB", "42.0 MiB", "1.25 GiB".
func FormatSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}
