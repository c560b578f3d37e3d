package cli

// pfschat send-file NAME PATH [--caption TEXT]: send a file as an attachment (issue 15),
// with a progress bar on a terminal or plain lines otherwise; and what recv does with
// the attachments it prints (download, --download-dir, the "file" object of --json).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"charm.land/bubbles/v2/progress"
	"github.com/charmbracelet/x/term"

	"pfschat/chat"
	"pfschat/chat/daemon"
)

func sendFileFlags(fs *flag.FlagSet) {
	fs.String("caption", "", "text shown with the file")
	fs.Duration("wait", 15*time.Second, "how long to wait for the relay to accept the message once the file is uploaded")
}

// sendFileArgs checks send-file's NAME, PATH and flags.
func sendFileArgs(fs *flag.FlagSet, args []string) (name, path, caption string, wait time.Duration, err error) {
	if len(args) != 2 {
		return "", "", "", 0, usagef("want NAME and PATH")
	}
	if name, err = userName(args[0]); err != nil {
		return "", "", "", 0, err
	}
	path = args[1]
	caption = fs.Lookup("caption").Value.String()
	if wait, err = waitFlag(fs); err != nil {
		return "", "", "", 0, err
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", "", "", 0, usagef("no such file: %s", path)
	case errors.Is(err, os.ErrPermission):
		return "", "", "", 0, usagef("cannot read %s: permission denied", path)
	case err != nil:
		return "", "", "", 0, usagef("%v", err)
	}
	if !st.Mode().IsRegular() {
		return "", "", "", 0, usagef("%s is not a regular file", path)
	}
	if len(caption) > chat.MaxTextBytes {
		return "", "", "", 0, usagef("the caption is %d bytes; at most %d", len(caption), chat.MaxTextBytes)
	}
	return name, path, caption, wait, nil
}

func cmdSendFile(e *env, fs *flag.FlagSet, args []string) error {
	name, path, caption, wait, err := sendFileArgs(fs, args)
	if err != nil {
		return err
	}
	c, err := e.online() // the upload needs the relay
	if err != nil {
		return err
	}
	defer e.finish(c)
	if _, err := c.Contact(e.ctx, name); errors.Is(err, chat.ErrUnknownContact) {
		if _, err := c.AddContact(e.ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "added %s (trusted on first use; 'pfschat fingerprint %s' shows the safety number)\n", name, name)
	} else if err != nil {
		return err
	}
	events := c.Events()
	// Files an earlier run left half uploaded go first (their done chunks are not sent again).
	resumed, rerr := c.ResumeUploads(e.ctx, newProgressLine(e.stderr, "resuming an earlier upload").update)
	// The same send-file run again after it was interrupted (a script's retry) is that
	// earlier send, finished now, not a second copy of the file.
	abs, _ := filepath.Abs(path)
	var m chat.Message
	for _, r := range resumed {
		if r.Contact == name && r.Attachment.Path == abs && r.Text == caption && m.ID == 0 {
			m = r
			continue
		}
		fmt.Fprintf(e.stderr, "finished an earlier upload to %s: %s\n", r.Contact, r.Attachment.FileName)
	}
	if rerr != nil {
		fmt.Fprintf(e.stderr, "warning: an earlier upload could not be finished: %v\n", rerr)
	}
	if m.ID == 0 {
		bar := newProgressLine(e.stderr, "uploading "+filepath.Base(path))
		m, err = c.SendFile(e.ctx, name, path, caption, bar.update)
		bar.end()
		if err != nil {
			if errors.Is(err, e.ctx.Err()) {
				return fmt.Errorf("interrupted; run the same 'pfschat send-file' again to finish it where it stopped (the file is not sent twice): %w", err)
			}
			return err
		}
	}
	e.flushBy = time.Now().Add(wait)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	queued := queuedErr{fmt.Sprintf("the file is uploaded; its message waits in the outbox (message %d) and goes out the next time a pfschat command connects. Do not send it again.", m.ID)}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return queued
			}
			if ev.Kind != chat.DeliveryChanged || ev.Message == nil || ev.Message.ID != m.ID || ev.Message.State == chat.Pending {
				continue
			}
			if ev.Message.State == chat.Failed {
				return fmt.Errorf("the relay refused the message: %s", ev.Message.Reason)
			}
			fmt.Fprintf(e.stdout, "sent %s (%s) to %s (message %d)\n", m.Attachment.FileName, chat.FormatSize(m.Attachment.Size), name, m.ID)
			return nil
		case <-timeout.C:
			return queued
		case <-e.ctx.Done():
			return queued
		}
	}
}

// progressLine shows a transfer: a bar redrawn in place on a terminal (at most 10 times
// a second), else a plain line at every 10 %.
type progressLine struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	tty      bool
	bar      progress.Model
	last     time.Time
	lastStep int64
	drawn    bool
}

func newProgressLine(w io.Writer, label string) *progressLine {
	p := &progressLine{w: w, label: label, lastStep: -1}
	if f, ok := w.(*os.File); ok && term.IsTerminal(f.Fd()) {
		p.tty = true
		p.bar = progress.New(progress.WithWidth(30), progress.WithoutPercentage())
	}
	return p
}

func (p *progressLine) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	if p.tty {
		if now := time.Now(); now.Sub(p.last) < 100*time.Millisecond && done < total {
			return
		} else {
			p.last = now
		}
		fmt.Fprintf(p.w, "\r%s %s %3.0f%% %s of %s\x1b[K", p.label, p.bar.ViewAs(frac), frac*100, chat.FormatSize(done), chat.FormatSize(total))
		p.drawn = true
		return
	}
	if step := int64(frac * 10); step != p.lastStep {
		p.lastStep = step
		fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.label, step*10, chat.FormatSize(done), chat.FormatSize(total))
	}
}

func (p *progressLine) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\n")
	}
}

// defaultDownloadDir is $XDG_DOWNLOAD_DIR when absolute, else ~/Downloads.
func defaultDownloadDir() string {
	if v := os.Getenv("XDG_DOWNLOAD_DIR"); v != "" && filepath.IsAbs(v) {
		return v
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "Downloads")
	}
	return ""
}

// jsonFile is the "file" object of a 'recv --json' line for an attachment.
type jsonFile struct {
	Name      string `json:"name"` // as the sender named it, sanitised
	Size      int64  `json:"size"`
	MediaType string `json:"media_type,omitempty"`
	State     string `json:"state"` // downloaded, failed, available (not fetched)
	Path      string `json:"path,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func fileJSON(a *chat.Attachment) *jsonFile {
	if a == nil {
		return nil
	}
	return &jsonFile{Name: chat.SafeFileName(a.FileName), Size: a.Size, MediaType: a.MediaType, State: a.State.String(), Path: a.Path, Reason: a.Reason}
}

// fileText is how a text recv line shows an attachment.
func fileText(a *chat.Attachment) string {
	s := fmt.Sprintf("[file %s, %s", chat.SafeFileName(a.FileName), chat.FormatSize(a.Size))
	if a.MediaType != "" {
		s += ", " + a.MediaType
	}
	switch a.State {
	case chat.AttachmentDownloaded:
		s += "] saved to " + a.Path
	case chat.AttachmentFailed:
		s += "] FAILED: " + a.Reason
	default:
		s += "] not downloaded"
	}
	return s
}

// notDownloadedAdvice says why recv left a contact's file on the relay, and what
// makes the next recv fetch it.
func notDownloadedAdvice(contact string, keyPending bool) string {
	if keyPending {
		return fmt.Sprintf("%s's identity key changed and the new one is not accepted yet; compare safety numbers ('pfschat fingerprint %s'), then 'pfschat accept-key %s', and 'pfschat recv' downloads it", contact, contact, contact)
	}
	return fmt.Sprintf("%s is a message request (not a contact you wrote to or accepted); 'pfschat accept-request %s', then 'pfschat recv' downloads it", contact, contact)
}

// fetchAttachment downloads m's attachment for recv (unless it is ours or offline) and
// refreshes m.Attachment; a failure is reported on the attachment, not as an error.
func fetchAttachment(e *env, c *chat.Controller, m *chat.Message, dir string, offline bool) {
	a := m.Attachment
	if a == nil || m.Outgoing || offline || (a.State != chat.AttachmentAvailable && a.State != chat.AttachmentFetching) {
		return
	}
	if !c.MayAutoDownload(e.ctx, *m) {
		// A file from a key the user has not accepted waits; one from the trusted key
		// comes even while a new key waits (MayAutoDownload).
		fmt.Fprintf(e.stderr, "%s from %s was not downloaded: %s\n", chat.SafeFileName(a.FileName), m.Contact, notDownloadedAdvice(m.Contact, m.KeyPending))
		return
	}
	bar := newProgressLine(e.stderr, "downloading "+chat.SafeFileName(a.FileName))
	_, err := c.Download(e.ctx, m.ID, dir, bar.update)
	bar.end()
	if err != nil && errors.Is(err, e.ctx.Err()) {
		return
	}
	if got, aerr := c.AttachmentOf(e.ctx, m.ID); aerr == nil {
		m.Attachment = got
	}
	if err != nil && m.Attachment.State != chat.AttachmentFailed {
		fmt.Fprintf(e.stderr, "warning: %s was not downloaded: %v\n", chat.SafeFileName(a.FileName), err)
	}
}

// fetchEarlier downloads the files of read messages that were not downloaded yet.
func fetchEarlier(e *env, c *chat.Controller, dir string) {
	pending, err := c.PendingDownloads(e.ctx)
	if err != nil {
		return
	}
	for _, m := range pending {
		if e.ctx.Err() != nil {
			return // stopped: the next recv resumes the download
		}
		if !c.MayAutoDownload(e.ctx, m) {
			continue
		}
		fetchAttachment(e, c, &m, dir, false)
		if a := m.Attachment; a != nil && a.State == chat.AttachmentDownloaded {
			fmt.Fprintf(e.stderr, "downloaded %s from %s (message %d): %s\n", chat.SafeFileName(a.FileName), m.Contact, m.ID, a.Path)
		}
	}
}

// sendFileViaOwner is send-file while pfschat daemon or the UI holds the profile: the
// owner reads the file, uploads and sends it (one relay connection, one outbox), and
// its "transfer" notifications, on a second connection, draw the progress here.
func sendFileViaOwner(e *env, cl *daemon.Client, fs *flag.FlagSet, args []string) error {
	name, path, caption, wait, err := sendFileArgs(fs, args)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return usagef("%v", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return usagef("%v", err)
	}
	// The upload needs the relay, and the owner's sendFile waits for it however long
	// (API.md): an owner not connected to its relay is said, and waited for up to --wait
	// (relayWait), then the command exits 3 as send does: the owner has the file and
	// uploads it, resumably, once it reconnects.
	var v daemon.VersionResult
	if err := cl.Call(e.ctx, "version", nil, &v); err == nil && !v.Online {
		fmt.Fprintf(e.stderr, "uploading %s: waiting for the relay: %s; it keeps trying (up to --wait %v here)\n",
			filepath.Base(abs), ownerRelay(v, true), wait)
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	defer cancel(nil)
	stopWait := relayWait(ctx, e.ownerVersion, wait, cancel)
	bar := newProgressLine(e.stderr, "uploading "+filepath.Base(abs))
	stop := watchUpload(e, name, chat.SafeFileName(filepath.Base(abs)), bar)
	p := daemon.SendFileParams{To: name, Path: abs, Caption: caption, WaitMs: max(wait.Milliseconds(), 1)}
	var r daemon.SendResult
	err = cl.Call(ctx, "sendFile", p, &r)
	if errors.Is(err, &daemon.Error{Code: daemon.CodeUnknownContact}) {
		if err := cl.Call(ctx, "addContact", daemon.NameParams{Name: name}, nil); err != nil {
			stopWait()
			stop()
			return daemon.ChatError(err)
		}
		fmt.Fprintf(e.stderr, "added %s (trusted on first use; 'pfschat fingerprint %s' shows the safety number)\n", name, name)
		err = cl.Call(ctx, "sendFile", p, &r)
	}
	stopWait()
	stop()
	if err != nil && errors.Is(context.Cause(ctx), errRelayWait) && e.ctx.Err() == nil {
		bar.end()
		now, ok := e.ownerVersion() // on a connection of its own: this one's sendFile goes on
		return queuedErr{fmt.Sprintf("%s, and --wait %v passed; it has the file and uploads and sends it as soon as it reconnects "+
			"(the upload resumes where it stopped). Do not send it again.%s", ownerRelay(now, ok), wait, e.relayIgnored(now.Relay))}
	}
	if err == nil {
		bar.update(st.Size(), st.Size())
	}
	bar.end()
	var re *daemon.Error
	if errors.As(err, &re) && re.Code == daemon.CodeSendRefused && re.Data != nil {
		return fmt.Errorf("the relay refused the message: %s", re.Data.Reason)
	}
	if err != nil {
		if errors.Is(err, e.ctx.Err()) { // the owner's upload goes on: exit 3, as a kept message
			return queuedErr{"interrupted; the owner of this profile keeps uploading the file and sends it. Do not send it again."}
		}
		return daemon.ChatError(err)
	}
	if r.State != "accepted" {
		return queuedErr{fmt.Sprintf("the file is uploaded; its message waits in the outbox (message %d) and goes out as soon as the pfschat owner of this profile reconnects. Do not send it again.", r.ID)}
	}
	fmt.Fprintf(e.stdout, "sent %s (%s) to %s (message %d)\n", filepath.Base(abs), chat.FormatSize(st.Size()), name, r.ID)
	return nil
}

// errRelayWait: send-file through an owner gave up waiting for the owner's relay.
var errRelayWait = errors.New("the owner is not connected to its relay")

// relayWait cancels ctx with errRelayWait when the owner (its version answer, asked on
// a connection of its own: a connection's calls are answered in order) is found not
// connected to its relay each time wait passes while the call runs (a relay that came
// back lets an upload under way go on); stop ends the watch.
func relayWait(ctx context.Context, version func() (daemon.VersionResult, bool), wait time.Duration, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(wait)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if v, ok := version(); ok && !v.Online {
				cancel(errRelayWait)
				return
			}
			t.Reset(wait)
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// watchUpload draws the owner's progress of the upload of file to contact on bar, from
// a subscription on a second connection, until stop is called. Without one (an owner
// that refuses it) the bar stays empty: the upload is not affected.
func watchUpload(e *env, contact, file string, bar *progressLine) (stop func()) {
	cl, err := e.dialOwner()
	if err != nil || cl == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(e.ctx)
	if err := cl.Call(ctx, "subscribe", nil, new(daemon.SubscribeResult)); err != nil {
		cancel()
		cl.Close()
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := cl.Next(ctx)
			if err != nil {
				return
			}
			if n.Method != daemon.NotifyTransfer {
				continue
			}
			ev, err := n.Event()
			if err != nil {
				continue
			}
			if t := ev.Transfer; t.Outgoing && t.ID == 0 && !t.Ended && ev.Contact == contact && t.Name == file {
				bar.update(t.Done, t.Size)
			}
		}
	}()
	return func() {
		cancel()
		cl.Close()
		<-done
	}
}

// fetchViaOwner is fetchAttachment for recv through the profile's owner: the owner
// downloads a received file into dir (made absolute here) when it comes from a contact
// (not a message request, not from a key the user has not accepted); m.File then says where
// it is, and a failure is a warning (the owner's message shows why it failed).
// A message request's file waits: once accepted, fetchEarlierViaOwner fetches it.
func fetchViaOwner(e *env, cl *daemon.Client, m *daemon.Message, dir string) {
	f := m.File
	if f == nil || m.Outgoing || (f.State != "available" && f.State != "downloading") {
		return
	}
	var contacts []daemon.Contact
	if err := cl.Call(e.ctx, "contacts", nil, &contacts); err != nil {
		return
	}
	stranger := true
	for _, ct := range contacts {
		if ct.Name == m.Contact {
			stranger = ct.Request || ct.Blocked
		}
	}
	if stranger || m.KeyPending {
		fmt.Fprintf(e.stderr, "%s from %s was not downloaded: %s\n", f.Name, m.Contact, notDownloadedAdvice(m.Contact, m.KeyPending))
		return
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	var r daemon.DownloadResult
	if err := cl.Call(e.ctx, "download", daemon.DownloadParams{ID: m.ID, Dir: abs}, &r); err != nil {
		if e.ctx.Err() == nil {
			fmt.Fprintf(e.stderr, "warning: %s was not downloaded: %s\n", f.Name, chat.Sentence(daemon.ChatError(err)))
		}
		return
	}
	if why := savedElsewhere(r.Path, abs); why != "" {
		fmt.Fprintf(e.stderr, "%s from %s (message %d) was downloaded%s: %s\n", f.Name, m.Contact, m.ID, why, r.Path)
	}
	f.State, f.Path = "downloaded", r.Path
}

// fetchEarlierViaOwner is fetchEarlier through the profile's owner: the files it lists
// as pendingDownloads (contacts' files of messages printed before, such as a message
// request's accepted since) are downloaded into dir. An owner without the method (an
// older one) downloads nothing here.
func fetchEarlierViaOwner(e *env, cl *daemon.Client, dir string) {
	var r daemon.ReceiveResult
	if err := cl.Call(e.ctx, "pendingDownloads", nil, &r); err != nil {
		return
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	for _, m := range r.Messages {
		if e.ctx.Err() != nil {
			return // stopped: the next recv resumes the download
		}
		if m.File == nil || m.Outgoing {
			continue
		}
		var d daemon.DownloadResult
		if err := cl.Call(e.ctx, "download", daemon.DownloadParams{ID: m.ID, Dir: abs}, &d); err != nil {
			if e.ctx.Err() == nil {
				fmt.Fprintf(e.stderr, "warning: %s was not downloaded: %s\n", m.File.Name, chat.Sentence(daemon.ChatError(err)))
			}
			continue
		}
		fmt.Fprintf(e.stderr, "downloaded %s from %s (message %d)%s: %s\n", m.File.Name, m.Contact, m.ID, savedElsewhere(d.Path, abs), d.Path)
	}
}

// savedElsewhere is what recv adds when the owner answered download with a file it
// saved outside recv's --download-dir dir: it fetched the file by itself (a daemon's own
// downloads, which the download call waited for), into its own download directory.
func savedElsewhere(path, dir string) string {
	if filepath.Dir(path) == filepath.Clean(dir) {
		return ""
	}
	return " by the profile's owner, into its own download directory, not --download-dir"
}
