package ui

// Attachments in the UI (issue 15): /file PATH sends a file to the open contact, an
// attachment shows as one line (name · size · type · state), /open downloads the newest
// file of the conversation on demand and hands a downloaded one to xdg-open/open after
// asking, refusing executables and .desktop files.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// AttachmentBackend is implemented by backends that send and fetch files
// (*chat.Controller); without it /file and /open say so.
type AttachmentBackend interface {
	SendFile(ctx context.Context, contact, path, caption string, progress chat.Progress) (chat.Message, error)
	Download(ctx context.Context, messageID int64, dir string, progress chat.Progress) (string, error)
}

// transferTimeout bounds one upload or download started from the UI.
const transferTimeout = time.Hour

// downloadDir is where the UI saves files: $XDG_DOWNLOAD_DIR when absolute, else
// ~/Downloads.
func downloadDir() string {
	if v := os.Getenv("XDG_DOWNLOAD_DIR"); v != "" && filepath.IsAbs(v) {
		return v
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "Downloads")
	}
	return ""
}

// expandPath resolves a leading ~ to the home directory.
func expandPath(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

type downloadedMsg struct {
	contact string
	id      int64
	path    string
	err     error
	open    bool // open it (after the confirmation) once downloaded
}

func (m *mainScreen) fileCommand(args []string) tea.Cmd {
	ab, ok := m.b.(AttachmentBackend)
	if !ok {
		m.setNotice("this backend cannot send files", true)
		return nil
	}
	if len(args) == 0 {
		m.setNotice("usage: /file PATH (Tab completes the path)", true)
		return nil
	}
	path := expandPath(strings.Join(args, " "))
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		m.setNotice("not a file: "+path, true)
		return nil
	}
	contact := m.open
	m.setNotice(fmt.Sprintf("uploading %s (%s)…", filepath.Base(path), chat.FormatSize(st.Size())), false)
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.c.ctx, transferTimeout)
		defer cancel()
		msg, err := ab.SendFile(ctx, contact, path, "", nil)
		return sentMsg{contact: contact, msg: msg, err: err}
	}
}

// newestAttachment is the newest message with a file in the open conversation.
func (m *mainScreen) newestAttachment() (chat.Message, bool) {
	cv, ok := m.convs[m.open]
	if !ok {
		return chat.Message{}, false
	}
	for i := len(cv.items) - 1; i >= 0; i-- {
		if cv.items[i].m.Attachment != nil {
			return cv.items[i].m, true
		}
	}
	return chat.Message{}, false
}

func (m *mainScreen) openCommand() tea.Cmd {
	ab, ok := m.b.(AttachmentBackend)
	if !ok {
		m.setNotice("this backend cannot fetch files", true)
		return nil
	}
	msg, ok := m.newestAttachment()
	if !ok {
		m.setNotice("no file in this conversation; /file PATH sends one", false)
		return nil
	}
	a := msg.Attachment
	switch {
	case a.State == chat.AttachmentFailed:
		m.setNotice("that file failed: "+a.Reason, true)
		return nil
	case !msg.Outgoing && a.State != chat.AttachmentDownloaded:
		contact, id, dir := m.open, msg.ID, downloadDir()
		m.setNotice(fmt.Sprintf("downloading %s (%s)…", chat.SafeFileName(a.FileName), chat.FormatSize(a.Size)), false)
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(m.c.ctx, transferTimeout)
			defer cancel()
			p, err := ab.Download(ctx, id, dir, nil)
			return downloadedMsg{contact: contact, id: id, path: p, err: err, open: true}
		}
	}
	return m.confirmOpen(a.Path)
}

// confirmOpen asks before handing path to the desktop's opener.
func (m *mainScreen) confirmOpen(path string) tea.Cmd {
	if why := refuseOpen(path); why != "" {
		m.setNotice("will not open "+filepath.Base(path)+": "+why+" (it is saved at "+path+")", true)
		return nil
	}
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	return pushDialog(newConfirmDialog(m.c, "Open file",
		fmt.Sprintf("Open %s with %s?\nIt came over the network: open only what you expect.", path, opener),
		func() tea.Msg {
			cmd := exec.Command(opener, path)
			err := cmd.Start()
			if err == nil {
				go cmd.Wait()
			}
			return opDoneMsg{"open", "", err}
		}))
}

// refusedExtensions are file types a desktop opener would run rather than show.
var refusedExtensions = map[string]bool{
	".desktop": true, ".exe": true, ".msi": true, ".bat": true, ".cmd": true, ".com": true, ".scr": true,
	".ps1": true, ".vbs": true, ".js": true, ".jar": true, ".sh": true, ".bash": true, ".zsh": true,
	".run": true, ".bin": true, ".appimage": true, ".app": true, ".command": true, ".deb": true, ".rpm": true,
	".py": true, ".pl": true, ".rb": true, ".lnk": true, ".url": true,
}

// refuseOpen says why a file must not be handed to the opener ("" when it may).
func refuseOpen(path string) string {
	st, err := os.Lstat(path)
	if err != nil {
		return "it is not there any more"
	}
	if !st.Mode().IsRegular() {
		return "it is not a regular file"
	}
	if st.Mode().Perm()&0o111 != 0 {
		return "it is executable"
	}
	if refusedExtensions[strings.ToLower(filepath.Ext(path))] {
		return "files of type " + filepath.Ext(path) + " run programs"
	}
	f, err := os.Open(path)
	if err == nil {
		var head [4]byte
		n, _ := f.Read(head[:])
		f.Close()
		if n >= 2 && string(head[:2]) == "#!" || n == 4 && string(head[:]) == "\x7fELF" || n >= 2 && string(head[:2]) == "MZ" {
			return "it is a program"
		}
	}
	return ""
}

func (m *mainScreen) onDownloaded(msg downloadedMsg) tea.Cmd {
	if msg.err != nil {
		m.setNotice("download failed: "+errText(msg.err), true)
	} else {
		m.setNotice("saved "+msg.path, false)
	}
	var cmds []tea.Cmd
	if r, ok := m.b.(interface {
		AttachmentOf(ctx context.Context, id int64) (*chat.Attachment, error)
	}); ok {
		if cv, ok := m.convs[msg.contact]; ok {
			if it, ok := cv.byID[msg.id]; ok {
				ctx, cancel := m.c.opCtx()
				if a, err := r.AttachmentOf(ctx, msg.id); err == nil {
					it.m.Attachment = a
					it.lines = nil
				}
				cancel()
			}
		}
	}
	if msg.err == nil && msg.open && msg.contact == m.open {
		cmds = append(cmds, m.confirmOpen(msg.path))
	}
	return tea.Batch(cmds...)
}

// attachmentLine is how a file shows in the conversation: 📎 name · size · type · state.
func attachmentLine(m chat.Message) string {
	a := m.Attachment
	parts := []string{"📎 " + chat.SafeFileName(a.FileName), chat.FormatSize(a.Size)}
	if a.MediaType != "" {
		parts = append(parts, a.MediaType)
	}
	if a.Width > 0 {
		parts = append(parts, fmt.Sprintf("%d×%d", a.Width, a.Height))
	}
	switch a.State {
	case chat.AttachmentUploading:
		if a.Size > 0 {
			parts = append(parts, fmt.Sprintf("uploading %d%%", a.DoneBytes*100/a.Size))
		} else {
			parts = append(parts, "uploading")
		}
	case chat.AttachmentUploaded:
		parts = append(parts, "uploaded")
	case chat.AttachmentSent:
		parts = append(parts, "sent")
	case chat.AttachmentAvailable:
		parts = append(parts, "/open to download")
	case chat.AttachmentFetching:
		parts = append(parts, "downloading")
	case chat.AttachmentDownloaded:
		parts = append(parts, "saved "+a.Path)
	case chat.AttachmentFailed:
		parts = append(parts, "failed: "+a.Reason)
	}
	return strings.Join(parts, " · ")
}

// completePath completes the last path of a "/file " input: the longest common
// extension of the names that start with what was typed ("" when none).
func completePath(typed string) string {
	p := expandPath(typed)
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var match []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), base) && (strings.HasPrefix(base, ".") || !strings.HasPrefix(e.Name(), ".")) {
			name := e.Name()
			if e.IsDir() {
				name += "/"
			}
			match = append(match, name)
		}
	}
	if len(match) == 0 {
		return ""
	}
	common := match[0]
	for _, s := range match[1:] {
		for !strings.HasPrefix(s, common) {
			common = common[:len(common)-1]
		}
	}
	return strings.TrimPrefix(common, base)
}
