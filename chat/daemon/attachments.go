package daemon

// Attachments over the API (API.md "Attachments"): sendFile uploads a file the owner can
// read and sends it; download fetches a received file into a directory; with
// Config.DownloadDir the owner fetches contacts' files by itself (autoDownload).

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"pfschat/chat"
)

// SendFileParams are sendFile's params.
type SendFileParams struct {
	To      string `json:"to"`
	Path    string `json:"path"` // absolute, readable by the owner
	Caption string `json:"caption,omitempty"`
	WaitMs  int64  `json:"waitMs,omitempty"` // as send's: wait up to this long for the relay to accept the message
}

// DownloadParams are download's params.
type DownloadParams struct {
	ID  int64  `json:"id"`  // the message's id
	Dir string `json:"dir"` // absolute; created if missing
}

// DownloadResult is download's result.
type DownloadResult struct {
	Path string `json:"path"`
}

// File is a message's attachment as the API shows it.
type File struct {
	Name      string `json:"name"` // sanitised
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType,omitempty"`
	State     string `json:"state"` // uploading, sent, available, downloading, downloaded, failed
	Path      string `json:"path,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Chat is the attachment f shows (nil for nil), for clients that print it as pfschat does.
func (f *File) Chat() *chat.Attachment {
	if f == nil {
		return nil
	}
	a := &chat.Attachment{FileName: f.Name, Size: f.Size, MediaType: f.MediaType, Path: f.Path, Reason: f.Reason}
	for s := range chat.AttachmentState(255) {
		if s.String() == f.State {
			a.State = s
			break
		}
	}
	return a
}

func fromAttachment(a *chat.Attachment) *File {
	if a == nil {
		return nil
	}
	return &File{Name: chat.SafeFileName(a.FileName), Size: a.Size, MediaType: a.MediaType, State: a.State.String(), Path: a.Path, Reason: a.Reason}
}

func (s *Server) sendFile(ctx context.Context, p SendFileParams) (any, *Error) {
	if p.To == "" || !filepath.IsAbs(p.Path) {
		return nil, NewError(CodeInvalidParams, `"to" and an absolute "path" are required`)
	}
	if p.WaitMs < 0 || p.WaitMs > int64(10*time.Minute/time.Millisecond) {
		return nil, NewError(CodeInvalidParams, `"waitMs" must be between 0 and 600000`)
	}
	var sub *Sub
	if p.WaitMs > 0 { // listen before sending, so the "sent" event cannot be missed
		sub = s.cfg.Hub.Subscribe()
		defer sub.Close()
	}
	// The upload is the owner's once asked for: a caller that goes away (an HTTP
	// client's timeout) does not stop it half way, as a socket client's does not; the
	// owner's stop does (and its next start finishes it).
	m, err := s.c.SendFile(s.ctx, p.To, p.Path, p.Caption, nil)
	if err != nil {
		return nil, errorFor(err)
	}
	return s.awaitAccepted(ctx, sub, m.ID, p.To, p.WaitMs)
}

// Transfer is a file's upload or download as the "transfer" notification shows it.
type Transfer struct {
	ID       int64  `json:"id,omitempty"` // the message; absent while a file uploads (its message comes once the relay has it)
	Outgoing bool   `json:"outgoing,omitempty"`
	Name     string `json:"name"` // sanitised
	Size     int64  `json:"size"`
	Done     int64  `json:"done"`
	State    string `json:"state"` // uploading, uploaded, sent, downloading, downloaded, failed
	Reason   string `json:"reason,omitempty"`
	Ended    bool   `json:"ended,omitempty"` // the last notification of this transfer's run
	Path     string `json:"path,omitempty"`  // with "ended": the file sent, or where the download was saved
}

func fromTransfer(t chat.Transfer) *Transfer {
	return &Transfer{ID: t.MessageID, Outgoing: t.Outgoing, Name: chat.SafeFileName(t.FileName), Size: t.Size, Done: t.Done,
		State: t.State.String(), Reason: t.Reason, Ended: t.Ended}
}

func (s *Server) download(ctx context.Context, p DownloadParams) (any, *Error) {
	if p.ID <= 0 || !filepath.IsAbs(p.Dir) {
		return nil, NewError(CodeInvalidParams, `"id" and an absolute "dir" are required`)
	}
	path, err := s.c.Download(ctx, p.ID, p.Dir, nil)
	if err != nil {
		return nil, errorFor(err)
	}
	return DownloadResult{Path: path}, nil
}

// pendingDownloads lists the received files not downloaded yet that may be fetched
// without asking again (chat.MayAutoDownload), oldest first (as chat.PendingDownloads
// lists them): those of contacts, read or not, such as a
// message request's once accepted. 'pfschat recv' downloads them, as it does without an
// owner.
func (s *Server) pendingDownloads(ctx context.Context) (any, *Error) {
	pending, err := s.c.PendingDownloads(ctx)
	if err != nil {
		return nil, errorFor(err)
	}
	out := ReceiveResult{Messages: make([]Message, 0, len(pending))}
	for _, m := range pending {
		if s.c.MayAutoDownload(ctx, m) {
			out.Messages = append(out.Messages, FromMessage(m))
		}
	}
	return out, nil
}

// autoDownload downloads, one at a time, the files of contacts that wait (received while
// the owner was down) and those that arrive, into Config.DownloadDir: what a device
// wants. Strangers' and message requests' files wait for the download method, or for
// the request's acceptance.
func (s *Server) autoDownload(sub *Sub) {
	defer s.wg.Done()
	defer sub.Close()
	fetch := func(m chat.Message) {
		a := m.Attachment
		if a == nil || m.Outgoing || (a.State != chat.AttachmentAvailable && a.State != chat.AttachmentFetching) ||
			!s.c.MayAutoDownload(s.ctx, m) {
			return
		}
		if _, err := s.c.Download(s.ctx, m.ID, s.cfg.DownloadDir, nil); err != nil && s.ctx.Err() == nil {
			s.log.Info("daemon: downloading a file", "message", m.ID, "err", chat.ErrorKind(err))
		}
	}
	if pending, err := s.c.PendingDownloads(s.ctx); err == nil {
		for _, m := range pending {
			fetch(m)
		}
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			switch {
			case ev.Kind == chat.MessageReceived && ev.Message != nil:
				fetch(*ev.Message)
			case ev.Kind == chat.ContactChanged:
				// A message request accepted, a new key accepted: the contact's files
				// that waited may be fetched now.
				if pending, err := s.c.PendingDownloads(s.ctx); err == nil {
					for _, m := range pending {
						if m.Contact == ev.Contact {
							fetch(m)
						}
					}
				}
			}
		}
	}
}

// resumeUploads finishes the uploads an earlier run of the owner left (killed half way):
// the relay's acknowledged chunks are not sent again; each waits for the relay.
func (s *Server) resumeUploads() {
	defer s.wg.Done()
	sent, err := s.c.ResumeUploads(s.ctx, nil)
	if len(sent) > 0 {
		s.log.Info("daemon: finished uploads an earlier run left", "files", len(sent))
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn("daemon: an earlier upload could not be finished", "err", chat.ErrorKind(err))
	}
}

// fileErrorCode maps the errors of sendFile and download to their codes (errorFor). A
// message deleted while its file downloaded has no file to give any more either.
func fileErrorCode(err error) (int, bool) {
	switch {
	case errors.Is(err, chat.ErrFileTooLarge):
		return CodeFileTooLarge, true
	case errors.Is(err, chat.ErrFileUnreadable):
		return CodeFileUnreadable, true
	case errors.Is(err, chat.ErrNoBlobs):
		return CodeNoFiles, true
	case errors.Is(err, chat.ErrNotAttachment), errors.Is(err, chat.ErrUnknownMessage):
		return CodeNotAFile, true
	case errors.Is(err, chat.ErrAttachmentGone):
		return CodeFileGone, true
	case errors.Is(err, chat.ErrAttachmentDigest), errors.Is(err, chat.ErrAttachmentCorrupt):
		return CodeFileRejected, true
	case errors.Is(err, chat.ErrAttachmentStalled):
		return CodeFileStalled, true
	case errors.Is(err, chat.ErrAttachmentFailed):
		return CodeFileFailed, true
	case errors.Is(err, chat.ErrDownloadDir):
		return CodeDirUnwritable, true
	}
	return 0, false
}
