package daemon

// Attachments over the API (API.md "Attachments"): sendFile uploads a file the owner can
// read and sends it; download fetches a received file into a directory.

import (
	"context"
	"path/filepath"

	"pfschat/chat"
)

// SendFileParams are sendFile's params.
type SendFileParams struct {
	To      string `json:"to"`
	Path    string `json:"path"` // absolute, readable by the owner
	Caption string `json:"caption,omitempty"`
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
	m, err := s.c.SendFile(ctx, p.To, p.Path, p.Caption, nil)
	if err != nil {
		return nil, errorFor(err)
	}
	return SendResult{ID: m.ID, State: "queued"}, nil
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
