package chat

// Attachments (issue 15): a file is sealed on the sender under a fresh key
// (ratchet/STREAM.md) into a staging file, uploaded to the relay as a blob
// (relay/PROTOCOL.md "Blobs") with resume, and announced by an attachment payload
// (chat/PAYLOAD.md §4.5) carrying the blob id, capability, key and digest. The
// receiver downloads the sealed stream, checks its size and digest, then opens it into
// the downloads directory under a sanitised, non-colliding name. Memory is a few chunks
// whatever the size; state lives in the attachments table (client schema 11), so an
// upload or download killed half way resumes where the relay's acknowledgements left it.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
)

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
	Staged     string `json:"staged,omitempty"` // outgoing: the sealed stream waiting for upload
	Saved      string `json:"saved,omitempty"`  // incoming: where it was saved
}

// blobRelay is what attachments need from the relay connection (*client.Client).
type blobRelay interface {
	MaxBlobBytes() int64
	Online() <-chan struct{}
	BlobBegin(ctx context.Context, size int64, recipients int) (string, error)
	BlobResume(ctx context.Context, id string) (client.BlobState, error)
	BlobPut(ctx context.Context, id string, size, from int64, window int, read func(i int64, buf []byte) error, done func(i int64)) error
	BlobCommit(ctx context.Context, id string, digest []byte) ([]byte, error)
	BlobGet(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error
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

// attachmentDir is where sealed streams wait for upload and downloads are assembled:
// inside the profile, never in the downloads directory.
func (c *Controller) attachmentDir() (string, error) {
	dir := c.prefs.AttachmentDir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(c.store.Path()), "attachments")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("chat: attachment directory: %w", err)
	}
	return dir, nil
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
	if _, _, err := c.sendableContact(ctx, contact); err != nil {
		return Message{}, err
	}
	br, err := c.blobs()
	if err != nil {
		return Message{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Message{}, fmt.Errorf("chat: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Message{}, fmt.Errorf("chat: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Message{}, fmt.Errorf("chat: %s is not a regular file", path)
	}
	sealedSize, err := ratchet.StreamSealedSize(st.Size())
	if err != nil {
		return Message{}, err
	}
	if max := br.MaxBlobBytes(); max == 0 {
		return Message{}, fmt.Errorf("%w (connect first, or use a relay that stores blobs)", ErrNoBlobs)
	} else if st.Size() > max || !relay.BlobSizeAllowed(sealedSize, max) {
		return Message{}, fmt.Errorf("%w: %s is %d bytes, the relay takes files up to %d (%d MiB)", ErrFileTooLarge, filepath.Base(path), st.Size(), max, max>>20)
	}
	dir, err := c.attachmentDir()
	if err != nil {
		return Message{}, err
	}
	clientID := newClientID()
	meta := attachmentMeta{Size: st.Size(), FileName: SafeFileName(filepath.Base(path)), Caption: caption,
		Source: path, Staged: filepath.Join(dir, clientID+".sealed")}
	meta.MediaType = sniffMediaType(f, meta.FileName)
	if meta.Key, meta.Digest, err = sealToFile(f, meta.Staged, st.Size()); err != nil {
		os.Remove(meta.Staged)
		return Message{}, err
	}
	now := c.now()
	row := storage.Attachment{ClientID: clientID, Contact: contact, Direction: storage.Outgoing, State: AttachmentUploading,
		CreatedAt: now, UpdatedAt: now}
	if err := c.putMeta(ctx, &row, meta); err != nil {
		os.Remove(meta.Staged)
		return Message{}, err
	}
	progress, ended := c.watchTransfer(ctx, row, 0, progress)
	defer ended()
	return c.finishUpload(ctx, br, row, progress)
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

// sealToFile seals src (size bytes) under a fresh key into the file at dst
// and returns the key and the SHA-256 of the sealed stream.
func sealToFile(src io.Reader, dst string, size int64) (key, digest []byte, err error) {
	var k [ratchet.StreamKeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, nil, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("chat: staging an attachment: %w", err)
	}
	defer out.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(out, h), ratchet.StreamSealedChunkSize)
	sw := ratchet.NewStreamWriter(bw, &k)
	n, err := io.Copy(sw, src)
	if err == nil && n != size {
		err = fmt.Errorf("chat: the file changed while it was read (%d bytes, then %d)", size, n)
	}
	if err == nil {
		err = sw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	// Not synced: the user still has the file, and a staged stream a crash damaged is
	// caught (its size here, its digest at the relay's commit) and reported as failed.
	if err != nil {
		return nil, nil, fmt.Errorf("chat: staging an attachment: %w", err)
	}
	return k[:], h.Sum(nil), nil
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

func (c *Controller) failAttachment(ctx context.Context, row storage.Attachment, cause error) error {
	row.State, row.Reason = AttachmentFailed, cause.Error()
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
		return Message{}, err
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
	f, err := os.Open(meta.Staged)
	if err != nil {
		return fmt.Errorf("chat: the staged attachment is gone: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != sealedSize {
		return fmt.Errorf("chat: the staged attachment %s is damaged", meta.Staged)
	}
	var lastSaved time.Time
	for {
		err := c.uploadOnce(ctx, br, row, meta, f, sealedSize, report, &lastSaved)
		if err == nil || !transient(err) {
			return err
		}
		c.log.Info("attachment upload interrupted; resuming when the relay is back", "err", err)
		if err := waitOnline(ctx, br); err != nil {
			return err
		}
	}
}

func (c *Controller) uploadOnce(ctx context.Context, br blobRelay, row *storage.Attachment, meta *attachmentMeta, f *os.File, sealedSize int64, report func(int64), lastSaved *time.Time) error {
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
			return c.uploadOnce(ctx, br, row, meta, f, sealedSize, report, lastSaved)
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
	err := br.BlobPut(ctx, meta.BlobID, sealedSize, next, 0, func(i int64, buf []byte) error {
		_, err := f.ReadAt(buf, i*relay.BlobChunkSize)
		if err == io.EOF {
			err = nil
		}
		return err
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
	capab, err := br.BlobCommit(ctx, meta.BlobID, meta.Digest)
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
	meta, err := readMeta(row)
	if err != nil {
		return
	}
	a := &Attachment{ClientID: row.ClientID, FileName: meta.FileName, MediaType: meta.MediaType, Size: meta.Size,
		State: row.State, DoneBytes: row.DoneBytes, Reason: row.Reason, Path: meta.Saved}
	if row.Direction == storage.Outgoing {
		a.Path = meta.Source
	}
	if strings.HasPrefix(a.MediaType, "image/") && a.Path != "" && (row.Direction == storage.Outgoing || row.State == AttachmentDownloaded) {
		if w, h, _, err := ImageFileSize(a.Path); err == nil {
			a.Width, a.Height = w, h
		}
	}
	m.Attachment = a
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
// path. The sealed stream is assembled inside the profile (resumable by chunk), its
// size and digest are checked before anything is decrypted, and the file is written
// under a sanitised name that collides with nothing in dir (never overwriting). A file
// that fails verification is deleted and the attachment marked failed with the reason.
// An attachment downloaded before returns its path again.
func (c *Controller) Download(ctx context.Context, messageID int64, dir string, progress Progress) (string, error) {
	r, err := c.store.Message(ctx, messageID)
	if err != nil || r.Direction != storage.Incoming {
		return "", fmt.Errorf("%w: message %d", ErrNotAttachment, messageID)
	}
	row, err := c.store.Attachment(ctx, r.ClientID)
	if err != nil {
		return "", fmt.Errorf("%w: message %d", ErrNotAttachment, messageID)
	}
	if row.State == AttachmentAvailable || row.State == AttachmentFetching {
		var ended func()
		progress, ended = c.watchTransfer(ctx, row, messageID, progress)
		defer ended()
	}
	return c.download(ctx, row, dir, progress)
}

// PendingDownloads lists the messages whose attachments are not downloaded yet.
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
	return out, nil
}

func (c *Controller) download(ctx context.Context, row storage.Attachment, dir string, progress Progress) (string, error) {
	if _, busy := c.attachBusy.LoadOrStore(row.ClientID, struct{}{}); busy {
		return "", fmt.Errorf("chat: attachment %s is being downloaded already", row.ClientID)
	}
	defer c.attachBusy.Delete(row.ClientID)
	meta, err := readMeta(row)
	if err != nil {
		return "", err
	}
	switch row.State {
	case AttachmentDownloaded:
		return meta.Saved, nil
	case AttachmentFailed:
		return "", fmt.Errorf("chat: %s failed before: %s", meta.FileName, row.Reason)
	case AttachmentAvailable, AttachmentFetching:
	default:
		return "", fmt.Errorf("%w: %s is outgoing", ErrNotAttachment, meta.FileName)
	}
	if dir == "" {
		return "", errors.New("chat: no downloads directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("chat: downloads directory: %w", err)
	}
	sealedSize, err := ratchet.StreamSealedSize(meta.Size)
	if err != nil {
		return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %v", ErrAttachmentDigest, err))
	}
	br, err := c.blobs()
	if err != nil {
		return "", err
	}
	adir, err := c.attachmentDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(row.ClientID))
	part := filepath.Join(adir, hex.EncodeToString(sum[:16])+".part")
	if row.State != AttachmentFetching {
		row.State = AttachmentFetching
		row.UpdatedAt = c.now()
		if err := c.store.PutAttachment(ctx, row); err != nil {
			return "", err
		}
	}
	if err := c.fetchBlob(ctx, br, row, meta, part, sealedSize, progress); err != nil {
		var pe *relay.ProtocolError
		if errors.As(err, &pe) && pe.Code == relay.CodeBlobNotFound {
			os.Remove(part)
			return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %s", ErrAttachmentGone, meta.FileName))
		}
		if errors.Is(err, client.ErrBlobChunk) {
			os.Remove(part)
			return "", c.failAttachment(ctx, row, fmt.Errorf("%w: %v", ErrAttachmentDigest, err))
		}
		return "", err // local trouble or the context: stays fetching, resumes next time
	}
	saved, err := openToDir(part, meta, sealedSize, dir)
	os.Remove(part)
	if err != nil {
		return "", c.failAttachment(ctx, row, err)
	}
	meta.Saved = saved
	row.State, row.DoneBytes, row.Reason = AttachmentDownloaded, meta.Size, ""
	if err := c.putMeta(ctx, &row, meta); err != nil {
		return "", err
	}
	if err := br.BlobDone(ctx, meta.BlobID, meta.Capability); err != nil {
		c.log.Info("telling the relay an attachment was fetched", "err", err)
	}
	return saved, nil
}

// fetchBlob downloads the sealed stream into part, resuming from the chunks part holds.
func (c *Controller) fetchBlob(ctx context.Context, br blobRelay, row storage.Attachment, meta attachmentMeta, part string, sealedSize int64, progress Progress) error {
	for {
		err := c.fetchOnce(ctx, br, row, meta, part, sealedSize, progress)
		if err == nil || !transient(err) {
			return err
		}
		c.log.Info("attachment download interrupted; resuming when the relay is back", "err", err)
		if err := waitOnline(ctx, br); err != nil {
			return err
		}
	}
}

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
	have := min(st.Size(), sealedSize)
	have -= have % relay.BlobChunkSize
	if err := f.Truncate(have); err != nil {
		return err
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	report := func(done int64) {
		if progress != nil {
			progress(min(meta.Size, done*meta.Size/max(sealedSize, 1)), meta.Size)
		}
	}
	report(have)
	bw := bufio.NewWriterSize(f, 4*relay.BlobChunkSize)
	var lastSaved time.Time
	err = br.BlobGet(ctx, meta.BlobID, meta.Capability, sealedSize, have/relay.BlobChunkSize, 0, func(i int64, data []byte) error {
		if _, err := bw.Write(data); err != nil {
			return err
		}
		done := i*relay.BlobChunkSize + int64(len(data))
		report(done)
		if now := time.Now(); now.Sub(lastSaved) > time.Second {
			lastSaved = now
			_ = c.store.SetAttachmentProgress(ctx, row.ClientID, done, c.now())
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// openToDir checks the sealed stream in part (size, then digest) and opens it into a
// new file in dir, deleting that file if any chunk fails.
func openToDir(part string, meta attachmentMeta, sealedSize int64, dir string) (string, error) {
	f, err := os.Open(part)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	if n != sealedSize || subtle.ConstantTimeCompare(h.Sum(nil), meta.Digest) != 1 {
		return "", fmt.Errorf("%w: %s (%d bytes downloaded, %d expected)", ErrAttachmentDigest, SafeFileName(meta.FileName), n, sealedSize)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	out, path, err := createUnique(dir, SafeFileName(meta.FileName))
	if err != nil {
		return "", err
	}
	var key [ratchet.StreamKeySize]byte
	copy(key[:], meta.Key)
	bw := bufio.NewWriterSize(out, ratchet.StreamChunkSize)
	w, err := io.Copy(bw, ratchet.NewStreamReader(bufio.NewReaderSize(f, ratchet.StreamSealedChunkSize+1), &key))
	if err == nil && w != meta.Size {
		err = fmt.Errorf("%d bytes, the message says %d", w, meta.Size)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		if errors.Is(err, ratchet.ErrDecrypt) || errors.Is(err, ratchet.ErrMalformed) || strings.Contains(err.Error(), "the message says") {
			return "", fmt.Errorf("%w: %s: %v", ErrAttachmentCorrupt, SafeFileName(meta.FileName), err)
		}
		return "", fmt.Errorf("chat: saving %s: %w", SafeFileName(meta.FileName), err)
	}
	return path, nil
}

// createUnique creates name in dir, or "name (2).ext", "name (3).ext", … when taken:
// never an existing file.
func createUnique(dir, name string) (*os.File, string, error) {
	ext := filepath.Ext(name)
	if len(ext) > 16 || ext == name {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	for i := 1; i < 10000; i++ {
		cand := name
		if i > 1 {
			suffix := " (" + strconv.Itoa(i) + ")"
			cand = truncateUTF8(stem, maxSavedName-len(suffix)-len(ext)) + suffix + ext
		}
		p := filepath.Join(dir, cand)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, p, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, "", fmt.Errorf("chat: saving an attachment: %w", err)
		}
	}
	return nil, "", fmt.Errorf("chat: no free file name for %s in %s", name, dir)
}

// maxSavedName bounds a saved file name, bytes (most file systems allow 255).
const maxSavedName = 200

// SafeFileName turns a sender's file name into one safe to create and to show: no path
// separators, no control or format characters (escape sequences, bidi overrides), no
// leading dots or dashes, no trailing dots or spaces, valid UTF-8, at most 200 bytes
// (the extension kept); "attachment" when nothing is left.
func SafeFileName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '/' || r == '\\' || r == 0:
			b.WriteRune('_')
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError:
			b.WriteRune('_')
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimLeft(b.String(), ". -")
	s = strings.TrimRight(s, ". ")
	if len(s) > maxSavedName {
		ext := filepath.Ext(s)
		if len(ext) > 16 {
			ext = ""
		}
		s = truncateUTF8(strings.TrimSuffix(s, ext), maxSavedName-len(ext)) + ext
	}
	if s == "" {
		return "attachment"
	}
	return s
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
// only from a contact the user wrote to or accepted, and not behind an unaccepted key
// change (a stranger's file, or a message request's, waits for the user).
func (c *Controller) MayAutoDownload(ctx context.Context, m Message) bool {
	if m.Attachment == nil || m.Outgoing || m.KeyPending {
		return false
	}
	ct, err := c.store.Contact(ctx, m.Contact)
	return err == nil && ct.Consented && ct.PendingCardID == ""
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
