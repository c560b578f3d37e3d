package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// logFile stands in for the owner's log file: it keeps every record written and wakes
// a test waiting for one.
type logFile struct {
	mu     sync.Mutex
	text   bytes.Buffer
	signal chan struct{} // one pending wake-up at most
}

func newLogFile() *logFile { return &logFile{signal: make(chan struct{}, 1)} }

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.text.Write(p)
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logFile) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text.String()
}

// waitLine waits for a record that contains every one of texts and returns it.
func (l *logFile) waitLine(t *testing.T, texts ...string) string {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
	lines:
		for line := range strings.Lines(l.String()) {
			for _, x := range texts {
				if !strings.Contains(line, x) {
					continue lines
				}
			}
			return line
		}
		select {
		case <-l.signal:
		case <-deadline.C:
			t.Fatalf("no log record with %q; the log:\n%s", texts, l.String())
		}
	}
}

// The owner's log (a file on disk, in the clear) names files by their message, never by
// what the user wrote or was sent: a contact's file that cannot be downloaded (its
// blob went with the sender's account) and an upload that cannot be finished (its file
// deleted meanwhile) are logged without the files' names, their folders or the caption.
func TestOwnerLogCarriesNoContent(t *testing.T) {
	r := relaytest.Start(t)
	log := newLogFile()
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	alice := chattest.NewUser(t, r, "alice")
	bob := chattest.NewUser(t, r, "bob", func(p *chat.Profile) { p.Prefs.Logger = logger })
	chattest.Converse(t, alice, bob)
	const incomingName, outgoingName, caption = "tax-return-2024-confidential.pdf", "payroll-march.xlsx", "the numbers we talked about"
	incomingDir, outgoingDir := t.TempDir(), t.TempDir()

	// bob's upload, killed half way; then its file is deleted.
	outgoing := filepath.Join(outgoingDir, outgoingName)
	chattest.Must(t, os.WriteFile(outgoing, bytes.Repeat([]byte("0123456789abcdef"), 20<<10), 0o600)) // 10 chunks
	kctx, kill := context.WithCancel(t.Context())
	if _, err := bob.SendFile(kctx, "alice", outgoing, caption, func(done, total int64) {
		if done >= total*4/10 {
			kill()
		}
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed upload: %v", err)
	}
	chattest.Must(t, os.Remove(outgoing))

	// alice's file reaches bob; its blob goes with her account before bob fetches it.
	incoming := filepath.Join(incomingDir, incomingName)
	chattest.Must(t, os.WriteFile(incoming, []byte("private figures"), 0o600))
	if _, err := alice.SendFile(t.Context(), "bob", incoming, caption, nil); err != nil {
		t.Fatal(err)
	}
	ev := chattest.WaitEvent(t, bob, "alice's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	chattest.Must(t, alice.DeleteAccount(t.Context()))

	srv := daemon.New(daemon.Config{Controller: bob.Controller, Hub: daemon.NewHub(bob.Controller.Events()), Owner: profile.OwnerDaemon,
		Version: "test", Logger: logger, DownloadDir: t.TempDir(), ResumeUploads: true})
	t.Cleanup(func() { srv.Close() })
	download := log.waitLine(t, "daemon: downloading a file", fmt.Sprintf("message=%d", ev.Message.ID))
	upload := log.waitLine(t, "daemon: an earlier upload could not be finished")
	if !strings.Contains(download, chat.ErrAttachmentGone.Error()) || !strings.Contains(upload, "open: no such file or directory") {
		t.Errorf("the records do not say what failed:\n%s%s", download, upload)
	}
	// Everything bob's controller and owner had to say, then the whole log.
	srv.Close()
	chattest.Must(t, bob.Close())
	all := log.String()
	for _, content := range []string{incomingName, outgoingName, caption, incomingDir, outgoingDir, "tax-return", "payroll"} {
		if strings.Contains(all, content) {
			t.Errorf("the log carries %q:\n%s", content, all)
		}
	}
}
