package ui

// Attachments in the UI (issue 15): /file PATH sends a file to the open contact, an
// attachment shows as one line (name · size · type · state, with the live percentage of
// an upload or download from the controller's TransferProgress events), a file from a
// contact up to the auto-download limit (10 MiB by default) downloads as it arrives and
// a bigger one on ctrl+o or /download — never at once from a stranger or a message
// request —, /open downloads the newest file of the conversation on demand and hands a
// downloaded one to xdg-open/open after asking, refusing executables and .desktop files.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
	"pfschat/chat/profile"
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
			rest := strings.TrimPrefix(p, "~")
			out := filepath.Join(home, rest)
			if strings.HasSuffix(rest, "/") && !strings.HasSuffix(out, "/") {
				out += "/" // a folder being completed stays one (Tab added "/" again and again)
			}
			return out
		}
	}
	return p
}

// unquotePath is a path as a terminal pastes a dropped file or a shell user types it:
// in single or double quotes, or with backslash-escaped spaces and quotes. It is tried
// when the path as typed names nothing.
func unquotePath(p string) string {
	if len(p) >= 2 && (p[0] == '\'' || p[0] == '"') && p[len(p)-1] == p[0] {
		return p[1 : len(p)-1]
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// DefaultAutoDownloadMax is the size up to which a contact's file downloads as it
// arrives (Options.AutoDownloadMax).
const DefaultAutoDownloadMax = 10 << 20

// AutoDownloadPolicy is implemented by backends that know whether a message's file may
// be fetched without the user asking (*chat.Controller: only from a contact the user
// wrote to or accepted, and not behind an unaccepted key change). Without it nothing
// downloads by itself.
type AutoDownloadPolicy interface {
	MayAutoDownload(ctx context.Context, m chat.Message) bool
}

// UploadResumer is implemented by backends that finish the uploads an earlier run left
// (*chat.Controller): the UI starts it once, its progress arrives as events.
type UploadResumer interface {
	ResumeUploads(ctx context.Context, progress chat.Progress) ([]chat.Message, error)
}

type downloadedMsg struct {
	contact string
	id      int64
	path    string
	err     error
	open    bool // open it (after the confirmation) once downloaded
	auto    bool // started by the auto-download policy, not by the user
	skipped bool // the policy refused it (a stranger, a request): nothing was fetched
}

// resumedMsg reports the uploads an earlier run left, finished at start.
type resumedMsg struct {
	msgs []chat.Message
	err  error
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
	if errors.Is(err, fs.ErrNotExist) {
		if alt := expandPath(unquotePath(strings.Join(args, " "))); alt != path {
			if ast, aerr := os.Stat(alt); aerr == nil {
				path, st, err = alt, ast, nil
			}
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.setNotice("no such file: "+path, true)
		return nil
	case errors.Is(err, fs.ErrPermission):
		m.setNotice("cannot read "+path+": permission denied", true)
		return nil
	case err != nil:
		m.setNotice("cannot read "+path+": "+errText(err), true)
		return nil
	case st.IsDir():
		m.setNotice(path+" is a folder; /file sends one file (Tab completes the path)", true)
		return nil
	case !st.Mode().IsRegular():
		m.setNotice("not a regular file: "+path, true)
		return nil
	}
	contact := m.open
	if m.conn.Status == chat.Reconnecting || m.conn.Status == chat.Offline {
		// Nothing shows the file until its upload starts: say that it waits, and for
		// what (the notice goes after a few seconds; the message line comes once sent).
		m.setNotice(fmt.Sprintf("%s (%s) waits for the relay: it is uploaded and sent once connected", filepath.Base(path), chat.FormatSize(st.Size())), false)
	} else {
		m.setNotice(fmt.Sprintf("uploading %s (%s)…", filepath.Base(path), chat.FormatSize(st.Size())), false)
	}
	m.uploadNotice = m.noticeSeq
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
		if msg.KeyPending {
			m.setNotice("that file came from "+m.open+"'s new, not yet accepted key: /accept first", true)
			return nil
		}
		return m.startDownload(ab, msg, true)
	}
	return m.confirmOpen(a.Path)
}

// startDownload fetches msg's file into the downloads directory (the user asked).
func (m *mainScreen) startDownload(ab AttachmentBackend, msg chat.Message, open bool) tea.Cmd {
	a := msg.Attachment
	if m.fetching[msg.ID] {
		m.setNotice(chat.SafeFileName(a.FileName)+" is downloading already", false)
		return nil
	}
	m.fetching[msg.ID] = true
	contact, id, dir := msg.Contact, msg.ID, m.c.downloadDir
	m.setNotice(fmt.Sprintf("downloading %s (%s)…", chat.SafeFileName(a.FileName), chat.FormatSize(a.Size)), false)
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.c.ctx, transferTimeout)
		defer cancel()
		p, err := ab.Download(ctx, id, dir, nil)
		return downloadedMsg{contact: contact, id: id, path: p, err: err, open: open}
	}
}

// downloadCommand (/download, ctrl+o) fetches the newest file of the open conversation
// that is not downloaded yet: the way to get a file over the auto-download limit, or
// one from a message request once the user wants it.
func (m *mainScreen) downloadCommand() tea.Cmd {
	ab, ok := m.b.(AttachmentBackend)
	if !ok {
		m.setNotice("this backend cannot fetch files", true)
		return nil
	}
	cv, ok := m.convs[m.open]
	if !ok {
		return nil
	}
	for i := len(cv.items) - 1; i >= 0; i-- {
		msg := cv.items[i].m
		a := msg.Attachment
		if a == nil || msg.Outgoing || (a.State != chat.AttachmentAvailable && a.State != chat.AttachmentFetching) {
			continue
		}
		if msg.KeyPending {
			m.setNotice("that file came from "+m.open+"'s new, not yet accepted key: /accept first", true)
			return nil
		}
		return m.startDownload(ab, msg, false)
	}
	m.setNotice("no file to download here", false)
	return nil
}

// maybeAutoDownload starts the download of a file that just arrived when the policy
// allows it: at most the auto-download limit, from a contact (the backend decides:
// never a stranger's or a message request's, never behind an unaccepted key change).
func (m *mainScreen) maybeAutoDownload(msg chat.Message) tea.Cmd {
	if msg.Attachment == nil || msg.Attachment.State != chat.AttachmentAvailable {
		return nil
	}
	if ct, ok := m.contact(msg.Contact); ok && (ct.Request || ct.Blocked) {
		return nil
	}
	return m.autoDownload(msg)
}

// autoDownload is maybeAutoDownload without the look at the contact list, which may not
// show yet a request the user just accepted: the backend's policy decides. A download
// stopped half way (AttachmentFetching) goes on.
func (m *mainScreen) autoDownload(msg chat.Message) tea.Cmd {
	a := msg.Attachment
	if a == nil || msg.Outgoing || msg.KeyPending || (a.State != chat.AttachmentAvailable && a.State != chat.AttachmentFetching) ||
		m.c.autoDownloadMax < 0 || a.Size > m.c.autoDownloadMax || m.fetching[msg.ID] {
		return nil
	}
	ab, ok := m.b.(AttachmentBackend)
	policy, ok2 := m.b.(AutoDownloadPolicy)
	if !ok || !ok2 {
		return nil
	}
	m.fetching[msg.ID] = true
	contact, id, dir := msg.Contact, msg.ID, m.c.downloadDir
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.c.ctx, transferTimeout)
		defer cancel()
		if !policy.MayAutoDownload(ctx, msg) {
			return downloadedMsg{contact: contact, id: id, auto: true, skipped: true}
		}
		p, err := ab.Download(ctx, id, dir, nil)
		return downloadedMsg{contact: contact, id: id, path: p, err: err, auto: true}
	}
}

// PendingDownloader is implemented by backends that list the received files not
// downloaded yet, oldest first (*chat.Controller): once the user accepts a message
// request or a contact's new key, here or through the owner socket, the files of that
// contact that waited are fetched under the auto-download rules, as the files that
// arrive (the daemon's owner does the same).
type PendingDownloader interface {
	PendingDownloads(ctx context.Context) ([]chat.Message, error)
}

// pendingMsg carries a contact's files not downloaded yet (fetchWaiting).
type pendingMsg struct {
	contact string
	msgs    []chat.Message
}

// fetchWaiting reads, on a ContactChanged event, the contact's files not downloaded
// yet: a request just accepted, a new key just accepted made them a contact's.
func (m *mainScreen) fetchWaiting(contact string) tea.Cmd {
	p, ok := m.b.(PendingDownloader)
	if !ok || m.c.autoDownloadMax < 0 {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := m.c.opCtx()
		defer cancel()
		all, err := p.PendingDownloads(ctx)
		if err != nil {
			return nil
		}
		out := pendingMsg{contact: contact}
		for _, msg := range all {
			if msg.Contact == contact {
				out.msgs = append(out.msgs, msg)
			}
		}
		return out
	}
}

// onPending starts the auto-downloads of the files fetchWaiting found.
func (m *mainScreen) onPending(msg pendingMsg) tea.Cmd {
	var cmds []tea.Cmd
	for _, f := range msg.msgs {
		cmds = append(cmds, m.autoDownload(f))
	}
	return tea.Batch(cmds...)
}

// resumeUploads finishes, in the background, the uploads an earlier run left.
func (m *mainScreen) resumeUploads() tea.Cmd {
	r, ok := m.b.(UploadResumer)
	if !ok {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.c.ctx, transferTimeout)
		defer cancel()
		msgs, err := r.ResumeUploads(ctx, nil)
		return resumedMsg{msgs, err}
	}
}

func (m *mainScreen) onResumed(msg resumedMsg) tea.Cmd {
	for _, sent := range msg.msgs {
		if cv, ok := m.convs[sent.Contact]; ok {
			if a := sent.Attachment; a != nil {
				cv.dropUpload(a.ClientID)
			}
			cv.appendMsg(sent, m.c.loc)
		}
	}
	if msg.err != nil && m.c.ctx.Err() == nil {
		m.setNotice("an earlier upload could not be finished: "+errText(msg.err), true)
	}
	return nil
}

// onTransfer shows an upload's or a download's progress (chat.TransferProgress).
func (m *mainScreen) onTransfer(ev chat.Event) tea.Cmd {
	t := ev.Transfer
	if t == nil {
		return nil
	}
	cv, ok := m.convs[ev.Contact]
	if t.Outgoing && t.MessageID == 0 && !t.Ended {
		if ok {
			cv.setUpload(*t, m.c.now())
		}
		return nil
	}
	if t.Outgoing && t.Ended {
		if ok {
			cv.dropUpload(t.ClientID)
			if ev.Message != nil && cv.loaded {
				cv.appendMsg(*ev.Message, m.c.loc)
			}
		}
		var preview tea.Cmd
		if ev.Message != nil {
			// The file's message is committed: its contact's last activity moved (sent
			// here, or through the owner socket by 'pfschat send-file', whose message this
			// shows before its delivery event), so the list is read again, as for a text.
			preview = tea.Batch(m.wantPreview(*ev.Message), m.c.loadContacts(m.b))
		}
		switch t.State {
		case chat.AttachmentFailed:
			m.setNotice("could not send "+chat.SafeFileName(t.FileName)+": "+chat.Sentence(errors.New(t.Reason)), true)
		case chat.AttachmentUploading, chat.AttachmentUploaded:
			m.setNotice("the upload of "+chat.SafeFileName(t.FileName)+" stopped; it resumes the next time pfschat starts", true)
		}
		return preview
	}
	if !ok {
		return nil
	}
	if t.Ended && ev.Message != nil && ev.Message.Attachment != nil {
		if it := cv.updateFile(t.MessageID, ev.Message.Attachment); it != nil {
			return m.wantPreview(it.m)
		}
		return nil
	}
	it, ok := cv.byID[t.MessageID]
	if !ok || it.m.Attachment == nil {
		return nil
	}
	it.lines = nil
	a := *it.m.Attachment
	a.State, a.DoneBytes, a.Reason = t.State, t.Done, t.Reason
	it.m.Attachment = &a
	return nil
}

// confirmOpen asks before handing path to the desktop's opener. The file is checked
// when the question is asked and again, with the bytes then on disk, when the user says
// yes: it must still be the same file (not replaced, not made a symlink); the opener
// gets it as an absolute path (never read as an option or a URL).
func (m *mainScreen) confirmOpen(path string) tea.Cmd {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	asked, why := checkOpen(path)
	if why != "" {
		m.setNotice("will not open "+filepath.Base(path)+": "+why+" (it is saved at "+path+")", true)
		return nil
	}
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	if err := findOpener(opener); err != nil {
		// Said before asking: a tester answered y and only then heard there was none.
		m.setNotice(fmt.Sprintf("there is no %s here to open files with; the file is saved at %s", opener, path), true)
		return nil
	}
	m.setNotice("", false) // an older notice (about another file) is not this question's
	return pushDialog(newConfirmDialog(m.c, "Open file",
		fmt.Sprintf("Open %s with %s?\nIt came over the network: open only what you expect.", path, opener),
		func() tea.Msg {
			now, why := checkOpen(path)
			if why == "" && (!os.SameFile(asked, now) || now.Size() != asked.Size() || !now.ModTime().Equal(asked.ModTime())) {
				why = "it changed since you were asked"
			}
			if why != "" {
				return opDoneMsg{"open", "", fmt.Errorf("will not open %s: %s (it is saved at %s)", filepath.Base(path), why, path)}
			}
			err := startOpener(opener, path)
			if errors.Is(err, exec.ErrNotFound) {
				err = fmt.Errorf("there is no %s here to open files with; the file is saved at %s", opener, path)
			}
			return opDoneMsg{"open", "", err}
		}))
}

// findOpener reports whether the desktop's opener is installed (a variable: tests
// choose).
var findOpener = func(opener string) error {
	_, err := exec.LookPath(opener)
	return err
}

// startOpener runs the desktop's opener on one file, without a shell, and does not
// wait for it (a variable: tests see what would be opened).
var startOpener = func(opener, path string) error {
	cmd := exec.Command(opener, path)
	cmd.Env = profile.EnvWithoutSecrets(os.Environ())
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

// refusedExtensions are file types a desktop opener would run, install or launch
// rather than show: programs, scripts, installers and launchers of Linux, macOS and
// Windows (wine opens the latter). HTML and SVG are not among them: a browser keeps a
// local page's scripts to that page.
var refusedExtensions = map[string]bool{
	".desktop": true, ".kdelnk": true, ".exe": true, ".msi": true, ".msp": true, ".bat": true, ".cmd": true,
	".com": true, ".scr": true, ".pif": true, ".cpl": true, ".reg": true, ".hta": true, ".ps1": true, ".vbs": true,
	".vbe": true, ".js": true, ".jse": true, ".wsf": true, ".jar": true, ".jnlp": true, ".sh": true, ".bash": true,
	".zsh": true, ".csh": true, ".ksh": true, ".fish": true, ".run": true, ".bin": true, ".appimage": true,
	".flatpak": true, ".flatpakref": true, ".flatpakrepo": true, ".snap": true, ".deb": true, ".rpm": true,
	".app": true, ".command": true, ".tool": true, ".terminal": true, ".workflow": true, ".scpt": true,
	".applescript": true, ".pkg": true, ".mpkg": true, ".fileloc": true, ".inetloc": true, ".webloc": true,
	".py": true, ".pyw": true, ".pl": true, ".rb": true, ".php": true, ".lnk": true, ".url": true,
}

// sniffLen is how much of a file refuseContent sees.
const sniffLen = 1024

// refuseContent says why a file starting with head must not be opened ("" when it
// may), whatever its name: a script (#!), an ELF, Mach-O or PE program, or a desktop
// launcher (a [Desktop Entry] group near the start, which shared-mime-info recognises
// as application/x-desktop under any name).
func refuseContent(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("#!")), bytes.HasPrefix(head, []byte("\x7fELF")), bytes.HasPrefix(head, []byte("MZ")):
		return "it is a program"
	case len(head) >= 4:
		switch binary.BigEndian.Uint32(head) {
		case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe, 0xcafebabf: // Mach-O, universal (and Java classes)
			return "it is a program"
		}
	}
	if bytes.Contains(head, []byte("[Desktop Entry]")) || bytes.Contains(head, []byte("[KDE Desktop Entry]")) ||
		bytes.HasPrefix(head, []byte("[Desktop Action")) {
		return "it is a launcher (.desktop)"
	}
	return ""
}

// refuseOpen says why a file must not be handed to the opener ("" when it may).
func refuseOpen(path string) string {
	_, why := checkOpen(path)
	return why
}

// checkOpen is refuseOpen, with the file it checked: the name's own file (not a
// symlink's target), its content read from the file the name held when it was
// stat'ed.
func checkOpen(path string) (os.FileInfo, string) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, "it is not there any more"
	}
	if !st.Mode().IsRegular() {
		return nil, "it is not a regular file"
	}
	if st.Mode().Perm()&0o111 != 0 {
		return nil, "it is executable"
	}
	if refusedExtensions[strings.ToLower(filepath.Ext(path))] {
		return nil, "files of type " + filepath.Ext(path) + " run programs"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "it cannot be read"
	}
	defer f.Close()
	if fst, err := f.Stat(); err != nil || !os.SameFile(st, fst) {
		return nil, "it changed while it was checked"
	}
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, "it cannot be read"
	}
	if why := refuseContent(head[:n]); why != "" {
		return nil, why
	}
	return st, ""
}

func (m *mainScreen) onDownloaded(msg downloadedMsg) tea.Cmd {
	delete(m.fetching, msg.id)
	switch {
	case msg.skipped:
		return nil
	case msg.err != nil && msg.auto && m.c.ctx.Err() != nil:
		// Quitting: the download resumes from its chunks on disk next time.
	case msg.err != nil:
		m.setNotice("download failed: "+errText(msg.err), true)
	case !msg.auto:
		m.setNotice("saved "+msg.path, false)
	}
	var cmds []tea.Cmd
	if r, ok := m.b.(interface {
		AttachmentOf(ctx context.Context, id int64) (*chat.Attachment, error)
	}); ok {
		if cv, ok := m.convs[msg.contact]; ok && (cv.byID[msg.id] != nil || cv.loading || !cv.loaded) {
			ctx, cancel := m.c.opCtx()
			if a, err := r.AttachmentOf(ctx, msg.id); err == nil {
				if it := cv.updateFile(msg.id, a); it != nil {
					cmds = append(cmds, m.wantPreview(it.m))
				}
			}
			cancel()
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
			parts = append(parts, fmt.Sprintf("uploading %d%%", min(a.DoneBytes, a.Size)*100/a.Size))
		} else {
			parts = append(parts, "uploading")
		}
	case chat.AttachmentUploaded:
		parts = append(parts, "uploaded")
	case chat.AttachmentSent:
		parts = append(parts, "sent")
	case chat.AttachmentAvailable:
		parts = append(parts, "ctrl+o or /download to fetch")
	case chat.AttachmentFetching:
		if a.Size > 0 {
			parts = append(parts, fmt.Sprintf("downloading %d%%", min(a.DoneBytes, a.Size)*100/a.Size))
		} else {
			parts = append(parts, "downloading")
		}
	case chat.AttachmentDownloaded:
		parts = append(parts, "saved "+a.Path)
	case chat.AttachmentFailed:
		parts = append(parts, "failed: "+chat.Sentence(errors.New(a.Reason)))
	}
	return strings.Join(parts, " · ")
}

// completePath completes the last path of a "/file " input: more is the longest common
// extension of the names that start with what was typed; names are those names (a
// directory's with its "/"), sorted, for a shell's second Tab when more is "".
func completePath(typed string) (more string, names []string) {
	p := expandPath(typed)
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return "", nil
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), base) && (strings.HasPrefix(base, ".") || !strings.HasPrefix(e.Name(), ".")) {
			name := e.Name()
			if e.IsDir() {
				name += "/"
			}
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	common := names[0]
	for _, s := range names[1:] {
		for !strings.HasPrefix(s, common) {
			common = common[:len(common)-1]
		}
	}
	return strings.TrimPrefix(common, base), names
}

// completionNotice lists the names a Tab could not choose between, as many as fit a
// notice line, and how many more there are.
func completionNotice(names []string) string {
	const most = 12
	shown := make([]string, 0, min(len(names), most))
	for _, n := range names[:min(len(names), most)] {
		shown = append(shown, sanitize(n))
	}
	s := strings.Join(shown, "  ")
	if len(names) > most {
		s += fmt.Sprintf("  (+%d more)", len(names)-most)
	}
	return s
}

// uploadItem is how an upload without a message yet is drawn: as the outgoing
// attachment message it will become.
func uploadItem(u *upload) *msgItem {
	t := u.t
	return &msgItem{m: chat.Message{Outgoing: true, SentAt: u.since, State: chat.Pending,
		Attachment: &chat.Attachment{ClientID: t.ClientID, FileName: t.FileName, MediaType: t.MediaType, Size: t.Size,
			State: chat.AttachmentUploading, DoneBytes: t.Done}}}
}
