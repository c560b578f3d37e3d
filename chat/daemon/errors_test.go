package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// The owner's contact has a new key the user rejected, and there is no session with the
// key the user trusted (reset before): the relay has prekeys only for the rejected key,
// so nothing can go to them. send and sendFile say so with their own code, naming the
// contact and what to do, and send nothing; the CLI, through the owner, reads it as
// package chat's error. Doing what the message says (fingerprint, acceptKey) sends.
func TestSocketSendWithOnlyTheRejectedKeyOnTheRelay(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	if _, err := bob.ResetIdentity(t.Context()); err != nil {
		t.Fatal(err)
	}
	o := startOwner(t, r, alice)
	cl := dial(t, o.sock)
	ctx := t.Context()
	name := daemon.NameParams{Name: "bob"}
	var added daemon.AddContactResult
	chattest.Must(t, cl.Call(ctx, "addContact", name, &added))
	if !added.Contact.KeyChanged {
		t.Fatalf("addContact after bob's reset: %+v, want his key changed", added.Contact)
	}
	chattest.Must(t, cl.Call(ctx, "resetSession", name, nil))
	chattest.Must(t, cl.Call(ctx, "rejectKey", name, nil))

	src := filepath.Join(t.TempDir(), "notes.txt")
	chattest.Must(t, os.WriteFile(src, []byte("notes\n"), 0o600))
	for _, call := range []struct {
		method string
		params any
	}{
		{"send", daemon.SendParams{To: "bob", Text: "to the key I trust"}},
		{"sendFile", daemon.SendFileParams{To: "bob", Path: src}},
	} {
		err := cl.Call(ctx, call.method, call.params, nil)
		var re *daemon.Error
		if !errors.As(err, &re) || re.Code != daemon.CodeOnlyRejectedKey || re.Data == nil ||
			re.Data.Name != "only_rejected_key" || re.Data.Contact != "bob" {
			t.Fatalf("%s with only the rejected key on the relay: %v (%+v), want only_rejected_key naming bob", call.method, err, re)
		}
		if !strings.Contains(re.Message, "nothing can be sent to bob") || !strings.Contains(re.Message, "call fingerprint") ||
			!strings.Contains(re.Message, "then acceptKey") {
			t.Fatalf("%s: message %q does not say what to do", call.method, re.Message)
		}
		var rk *chat.RejectedKeyOnlyError
		if ce := daemon.ChatError(err); !errors.As(ce, &rk) || rk.Contact != "bob" || ce.Error() != rk.Error() {
			t.Fatalf("%s: ChatError gives %v, want chat's RejectedKeyOnlyError for bob with its own words", call.method, ce)
		}
	}

	var fp daemon.FingerprintResult
	chattest.Must(t, cl.Call(ctx, "fingerprint", name, &fp))
	chattest.Must(t, cl.Call(ctx, "acceptKey", name, nil))
	// Nothing sent means nothing sent later either: the refused file is not among
	// what the next run finishes (the owner's start resumes uploads).
	if resumed, err := alice.ResumeUploads(ctx, nil); err != nil || len(resumed) != 0 {
		t.Fatalf("after acceptKey, the next run's ResumeUploads: %d messages (%v), want none: the refused file", len(resumed), err)
	}
	var sr daemon.SendResult
	chattest.Must(t, cl.Call(ctx, "send", daemon.SendParams{To: "bob", Text: "to your new key", WaitMs: 30000}, &sr))
	chattest.WaitReceived(t, bob, "alice", "to your new key")
	for _, m := range chattest.FullHistory(t, bob, "alice") {
		if m.Text == "to the key I trust" || m.Attachment != nil {
			t.Fatalf("bob got what was refused: %+v", m)
		}
	}
}

// A real owner answers the files' codes: sendFile of a file over the relay's limit is
// file_too_large, download of a message that is no received file (an outgoing file's,
// a text's, one that is not there) is not_a_file — each with what to do.
func TestSocketFileErrorCodes(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{MaxBlobBytes: 64 << 10}})
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	cl := dial(t, o.sock)
	ctx := t.Context()
	code := func(err error) (int, string) {
		var re *daemon.Error
		if !errors.As(err, &re) || re.Data == nil {
			t.Fatalf("want a daemon error, got %v", err)
		}
		return re.Code, re.Message
	}
	big := filepath.Join(t.TempDir(), "big.bin")
	chattest.Must(t, os.WriteFile(big, make([]byte, 65<<10), 0o600))
	if c, msg := code(cl.Call(ctx, "sendFile", daemon.SendFileParams{To: "alice", Path: big}, nil)); c != daemon.CodeFileTooLarge ||
		!strings.Contains(msg, "send a smaller file") {
		t.Fatalf("sendFile over the relay's limit: %d %q, want file_too_large", c, msg)
	}
	small := filepath.Join(t.TempDir(), "small.txt")
	chattest.Must(t, os.WriteFile(small, []byte("small\n"), 0o600))
	var sent daemon.SendResult
	chattest.Must(t, cl.Call(ctx, "sendFile", daemon.SendFileParams{To: "alice", Path: small}, &sent))
	var text daemon.SendResult
	chattest.Must(t, cl.Call(ctx, "send", daemon.SendParams{To: "alice", Text: "no file"}, &text))
	for what, id := range map[string]int64{"an outgoing file": sent.ID, "a text": text.ID, "no message": text.ID + 1000} {
		if c, msg := code(cl.Call(ctx, "download", daemon.DownloadParams{ID: id, Dir: t.TempDir()}, nil)); c != daemon.CodeNotAFile ||
			!strings.Contains(msg, "give the id of a received message") {
			t.Errorf("download of %s: %d %q, want not_a_file", what, c, msg)
		}
	}
}

// Each of package chat's errors a method can return that means something to the user
// has a code of its own (not internal_error), a message that says what to do, and
// ChatError turns it back into chat's error, as a command that went through the owner
// needs it.
func TestErrorCodesOfChatErrors(t *testing.T) {
	for _, tc := range []struct {
		err     error
		code    int
		says    string // in the message
		chatErr error  // what ChatError gives back (nil: the *Error alone)
	}{
		{&chat.RejectedKeyOnlyError{Contact: "bob"}, daemon.CodeOnlyRejectedKey, "then acceptKey", chat.ErrOnlyRejectedKey},
		{fmt.Errorf("chat: sending: %w", &chat.KeyChangedError{Contact: "bob"}), daemon.CodeKeyChanged, "accept the key", chat.ErrKeyChanged},
		{fmt.Errorf("%w: bob's signed prekey was made 20 days ago (more than 14): ask them to open pfschat, then try again", chat.ErrStalePreKey),
			daemon.CodeStalePreKey, "ask them to open pfschat", chat.ErrStalePreKey},
		{fmt.Errorf("chat: saving the message: %w: the disk holding /p is full (1.0 MiB free); nothing was written — free some space on it and try again", chat.ErrDiskFull),
			daemon.CodeDiskFull, "free some space on it and try again", chat.ErrDiskFull},
		{fmt.Errorf("%w: big.iso is 9 bytes, the relay takes files up to 8 (0 MiB)", chat.ErrFileTooLarge), daemon.CodeFileTooLarge, "send a smaller file", chat.ErrFileTooLarge},
		{fmt.Errorf("%w (use a relay that stores them)", chat.ErrNoBlobs), daemon.CodeNoFiles, "use a relay that stores", chat.ErrNoBlobs},
		{fmt.Errorf("%w: message 7", chat.ErrNotAttachment), daemon.CodeNotAFile, "give the id of a received message", chat.ErrNotAttachment},
		{fmt.Errorf("%w: the message of a.txt was deleted while its file downloaded; nothing was saved", chat.ErrUnknownMessage), daemon.CodeNotAFile, "was deleted", chat.ErrNotAttachment},
		{fmt.Errorf("%w: a.txt", chat.ErrAttachmentGone), daemon.CodeFileGone, "ask the sender to send the file again", chat.ErrAttachmentGone},
		{fmt.Errorf("%w: wrong size", chat.ErrAttachmentDigest), daemon.CodeFileRejected, "ask the sender to send the file again", nil},
		{fmt.Errorf("%w: a.txt: bad tag", chat.ErrAttachmentCorrupt), daemon.CodeFileRejected, "it was deleted", nil},
		{fmt.Errorf("%w: a.txt: the relay's connection dropped 5 times", chat.ErrAttachmentStalled), daemon.CodeFileStalled, "call download again later", chat.ErrAttachmentStalled},
		{fmt.Errorf("%w: a.txt: chat: attachment does not match its digest", chat.ErrAttachmentFailed), daemon.CodeFileFailed, "ask the sender to send the file again", chat.ErrAttachmentFailed},
		{fmt.Errorf("%w: open /home/a/notes.txt: permission denied", chat.ErrFileUnreadable), daemon.CodeFileUnreadable,
			"the owner's user may read the file", chat.ErrFileUnreadable},
		{fmt.Errorf("chat: fetching dave's card: %w", &relay.ProtocolError{Code: relay.CodeRateLimited, Limit: "lookup_per_requester",
			Message: "too many lookups", RetryAfter: 1500 * time.Millisecond}), daemon.CodeRateLimited, "; try again in 2 seconds",
			&relay.ProtocolError{Code: relay.CodeRateLimited}},
		{&relay.ProtocolError{Code: relay.CodeRateLimited, Message: "slow down"}, daemon.CodeRateLimited, "slow down; try again later",
			&relay.ProtocolError{Code: relay.CodeRateLimited}},
		// The relay's other limits: named, with what to do, not internal_error.
		{fmt.Errorf("chat: sending: %w", &relay.ProtocolError{Code: relay.CodeQueueFull, Limit: "count", Message: "the recipient's queue is full; try again later"}),
			daemon.CodeQueueFull, "the recipient's queue on the relay is full (its count limit)", nil},
		{&relay.ProtocolError{Code: relay.CodeQueueFull, Limit: "sender_quota", Message: "full"}, daemon.CodeQueueFull, "your share of the recipient's queue", nil},
		{&relay.ProtocolError{Code: relay.CodeBlobQuota, Limit: "blob_quota_bytes", Message: "your blobs would pass this relay's quota"},
			daemon.CodeFileQuota, "would pass its quota (blob_quota_bytes); nothing was sent: wait until they fetch them", nil},
		{&relay.ProtocolError{Code: relay.CodeStorageFull, Limit: "min_free", Message: "disk full"}, daemon.CodeRelayFull, "its disk is nearly full", nil},
		{&relay.ProtocolError{Code: relay.CodeBlobTooLarge, Limit: "max_blob_bytes", Message: "too big"}, daemon.CodeFileTooLarge, "send a smaller file", chat.ErrFileTooLarge},
		// The codes there were already.
		{fmt.Errorf("%w: %q", chat.ErrUnknownContact, "bob"), daemon.CodeUnknownContact, "unknown contact", chat.ErrUnknownContact},
		{fmt.Errorf("%w: %q", chat.ErrUnknownUser, "bob"), daemon.CodeUnknownUser, "no such user", chat.ErrUnknownUser},
		{fmt.Errorf("%w: x", chat.ErrOffline), daemon.CodeOffline, "unreachable", chat.ErrOffline},
		{fmt.Errorf("%w: x", chat.ErrCardRejected), daemon.CodeCardRejected, "verification", chat.ErrCardRejected},
		{chat.ErrNoPendingKey, daemon.CodeNoPendingKey, "no new key", chat.ErrNoPendingKey},
		{chat.ErrEmptyMessage, daemon.CodeBadMessage, "empty", nil},
		{fmt.Errorf("%w: the caption", chat.ErrTextTooLong), daemon.CodeBadMessage, "too long", nil},
		{chat.ErrClosed, daemon.CodeClosing, "closed", nil},
		{chat.ErrIsYou, daemon.CodeInvalidParams, "yours", nil},
		{fmt.Errorf("%w: bob", chat.ErrBlocked), daemon.CodeBlocked, "blocked", chat.ErrBlocked},
		{fmt.Errorf("%w: bob", chat.ErrNotARequest), daemon.CodeNotARequest, "no message request", chat.ErrNotARequest},
		// A failure of the owner stays internal_error.
		{errors.New("storage: something broke"), daemon.CodeInternalError, "something broke", nil},
	} {
		e := daemon.ErrorFor(tc.err)
		if e.Code != tc.code || e.Data == nil || e.Data.Name != daemon.CodeNames[tc.code] || !strings.Contains(e.Message, tc.says) {
			t.Errorf("%v: %d %+v %q, want %d (%s) saying %q", tc.err, e.Code, e.Data, e.Message, tc.code, daemon.CodeNames[tc.code], tc.says)
			continue
		}
		var pe *relay.ProtocolError
		if errors.As(tc.err, &pe) && pe.Code != relay.CodeRateLimited && e.Data.Limit != pe.Limit {
			t.Errorf("%v: data.limit %q, want the relay's %q", tc.err, e.Data.Limit, pe.Limit)
		}
		if n := strings.Count(e.Message, "try again"); n > 1 {
			t.Errorf("%v: the advice twice in %q", tc.err, e.Message)
		}
		ce := daemon.ChatError(e)
		if tc.chatErr != nil && !errors.Is(ce, tc.chatErr) {
			t.Errorf("%v: ChatError gives %v, not %v", tc.err, ce, tc.chatErr)
		}
		if !errors.Is(ce, &daemon.Error{Code: tc.code}) {
			t.Errorf("%v: ChatError lost the *Error", tc.err)
		}
	}
}

// A real owner answers a sendFile of a path it cannot read — none there, a directory, a
// file without read permission (not checked as root, who reads it all the same) — with
// file_unreadable saying why and what to do, not internal_error; the CLI, through the
// owner, reads it as chat's ErrFileUnreadable.
func TestSocketSendFileOfAnUnreadablePath(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	cl := dial(t, o.sock)
	dir := t.TempDir()
	paths := map[string]string{"a missing file": filepath.Join(dir, "missing.txt"), "a directory": dir}
	secret := filepath.Join(dir, "secret.txt")
	chattest.Must(t, os.WriteFile(secret, []byte("secret\n"), 0o000))
	if os.Geteuid() != 0 {
		paths["a file without read permission"] = secret
	}
	// A FIFO no one writes to: its open would wait for a writer, and the call with it
	// (an API tester's finding: no answer until something opened it for writing).
	if fifo := filepath.Join(dir, "fifo"); exec.Command("mkfifo", fifo).Run() == nil {
		paths["a FIFO"] = fifo
		t.Cleanup(func() { // before the owner stops: a call stuck in the open would hold it
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		})
	}
	for what, path := range paths {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := cl.Call(ctx, "sendFile", daemon.SendFileParams{To: "alice", Path: path}, nil)
		cancel()
		var re *daemon.Error
		if !errors.As(err, &re) || re.Code != daemon.CodeFileUnreadable || re.Data == nil || re.Data.Name != "file_unreadable" ||
			!strings.Contains(re.Message, path) || !strings.Contains(re.Message, "may read the file") {
			t.Errorf("sendFile of %s: %v, want file_unreadable naming %s and what to do", what, err, path)
			continue
		}
		if !errors.Is(daemon.ChatError(err), chat.ErrFileUnreadable) {
			t.Errorf("sendFile of %s: ChatError gives %v, want chat.ErrFileUnreadable", what, daemon.ChatError(err))
		}
	}
}

// A real owner whose relay refuses a request over a rate limit answers rate_limited,
// with the relay's wait in data.retryAfterMs and the limit named, not internal_error:
// addContact looks names up, and a relay whose clock stands still lets a requester only
// its burst of lookups.
func TestSocketRateLimitedCarriesTheWait(t *testing.T) {
	start := time.Now()
	r := relaytest.StartWith(t, relaytest.Options{Clock: func() time.Time { return start }})
	o := startOwner(t, r, chattest.NewUser(t, r, "bob"))
	cl := dial(t, o.sock)
	var re *daemon.Error
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("lookups never limited")
		}
		err := cl.Call(t.Context(), "addContact", daemon.NameParams{Name: fmt.Sprint("nobody", i)}, nil)
		if !errors.As(err, &re) {
			t.Fatalf("addContact %d: %v", i, err)
		}
		if re.Code != daemon.CodeUnknownUser {
			break
		}
	}
	if re.Code != daemon.CodeRateLimited || re.Data == nil || re.Data.Name != "rate_limited" || re.Data.RetryAfterMs <= 0 ||
		!strings.Contains(re.Message, "lookup_per_requester") || !strings.Contains(re.Message, "; try again in ") {
		t.Fatalf("addContact over the lookup limit: %+v %+v, want rate_limited with retryAfterMs, naming the limit", re, re.Data)
	}
	var pe *relay.ProtocolError
	if ce := daemon.ChatError(re); !errors.As(ce, &pe) || pe.Code != relay.CodeRateLimited ||
		pe.RetryAfter != time.Duration(re.Data.RetryAfterMs)*time.Millisecond || ce.Error() != re.Message {
		t.Fatalf("ChatError gives %v (%+v), want the relay's rate_limited with the wait, in the owner's words", ce, pe)
	}
}

// A real owner whose relay refuses a file over the sender's quota of files answers
// sendFile with file_quota, naming the limit in data.limit and saying what to do, not
// internal_error.
func TestSocketSendFileOverTheRelaysQuota(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{BlobQuotaBytes: 1000}}) // each file counts 32768 bytes at least
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	cl := dial(t, o.sock)
	path := filepath.Join(t.TempDir(), "notes.txt")
	chattest.Must(t, os.WriteFile(path, []byte("notes\n"), 0o600))
	err := cl.Call(t.Context(), "sendFile", daemon.SendFileParams{To: "alice", Path: path}, nil)
	var re *daemon.Error
	if !errors.As(err, &re) || re.Code != daemon.CodeFileQuota || re.Data == nil || re.Data.Name != "file_quota" ||
		re.Data.Limit != "blob_quota_bytes" || !strings.Contains(re.Message, "wait until they fetch them") {
		t.Fatalf("sendFile over the relay's file quota: %v (%+v), want file_quota with data.limit blob_quota_bytes", err, re)
	}
}
