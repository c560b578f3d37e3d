package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/ui"
)

// bobOwnedByTheUI starts a relay with alice and bob, who have talked, and opens bob's
// profile as the terminal UI does, the owner serving its socket (closed with the
// test); the passphrase variable is emptied: commands routed through the owner must
// not need it.
func bobOwnedByTheUI(t *testing.T) (*relaytest.Relay, *chattest.User, chat.Profile, ui.Backend) {
	t.Helper()
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	bob.Close()
	p := bob.Profile
	p.Owner = profile.OwnerUI
	prof := uiOwnerProfile{ui.NewChatProfile(p), p.Dir, slog.New(slog.DiscardHandler)}
	b, err := prof.Open(t.Context(), chattest.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	t.Setenv(profile.EnvPassphrase, "")
	return r, alice, p, b
}

// While the UI has the profile open it is the owner: it serves the socket, the
// headless commands go through it (the profile is locked, so they could not open it
// themselves — and they ask for no passphrase), the UI and an API subscriber both get
// each incoming message; once the UI closes, the socket is gone.
func TestUIServesTheSocketWhileOpen(t *testing.T) {
	r, alice, p, b := bobOwnedByTheUI(t)
	var out, errb bytes.Buffer
	if code := Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "contacts"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "alice") {
		t.Fatalf("contacts while the UI owns the profile: exit %d, %q %q", code, out.String(), errb.String())
	}
	sock, _ := daemon.SocketPath(p.Dir)
	cl, err := daemon.Dial(t.Context(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var v daemon.VersionResult
	if err := cl.Call(t.Context(), "version", nil, &v); err != nil || v.Owner != "ui" || v.Me != "bob" {
		t.Fatalf("version: %+v, %v", v, err)
	}
	if err := cl.Call(t.Context(), "subscribe", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(t.Context(), "bob", "seen by both"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitReceived(t, b, "alice", "seen by both")
	for {
		n, err := cl.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n.Method == daemon.NotifyMessage && strings.Contains(string(n.Params), "seen by both") {
			break
		}
	}
	cl.Close()
	b.Close()
	if _, err := daemon.Dial(t.Context(), sock); err == nil {
		t.Fatal("the socket still answers after the UI closed")
	}
}

// lineSignal is a writer that reports when a line containing want was written.
type lineSignal struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineSignal) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(b), nil
}

// A UI started while `pfschat daemon` owns the profile says so and exits; so does a
// second daemon; the daemon stops cleanly on its context.
func TestUIExitsWhileDaemonOwns(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	bob.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb bytes.Buffer
	if code := Main(t.Context(), []string{"--home", bob.Profile.Dir, "daemon", "--http", "0.0.0.0:0"}, strings.NewReader(""), io.Discard, &errb); code != exitUsage ||
		!strings.Contains(errb.String(), "not a loopback address") {
		t.Fatalf("--http on a public address: exit %d, %q", code, errb.String())
	}
	stdout := &lineSignal{want: "bearer secret in", seen: make(chan struct{})}
	var derr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--home", bob.Profile.Dir, "--relay", r.URL, "daemon", "--http", "127.0.0.1:0"}, strings.NewReader(""), stdout, &derr)
	}()
	select {
	case <-stdout.seen:
	case code := <-done:
		t.Fatalf("daemon exited %d: %s", code, derr.String())
	}
	sock, _ := daemon.SocketPath(bob.Profile.Dir)
	secret := daemon.SecretPath(sock)
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 40 {
		t.Fatalf("secret file: %v, %v", fi, err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v", fi, err)
	}
	errb.Reset()
	var out bytes.Buffer
	if code := runUI(t.Context(), []string{"--home", bob.Profile.Dir}, strings.NewReader(""), &out, &errb); code != exitFail ||
		!strings.Contains(errb.String(), "is open in pfschat daemon (serving bob on") {
		t.Fatalf("UI while the daemon owns the profile: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := Main(t.Context(), []string{"--home", bob.Profile.Dir, "daemon"}, strings.NewReader(""), io.Discard, &errb); code != exitFail ||
		!strings.Contains(errb.String(), "(pid ") || !strings.Contains(errb.String(), "pfschat daemon); stop the daemon to run this (the commands it can serve go through it)") {
		t.Fatalf("second daemon: exit %d, %q", code, errb.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("daemon exit %d: %s", code, derr.String())
	}
	if _, err := os.Stat(secret); !os.IsNotExist(err) {
		t.Fatalf("the secret file outlived the daemon: %v", err)
	}
	// the profile is free again
	c, err := bob.Profile.NewController(t.Context(), chattest.Passphrase)
	if err != nil {
		t.Fatalf("after the daemon stopped: %v", err)
	}
	c.Close()
}

// send-file while the UI owns the profile goes through it (the profile is locked: it
// could not open it, and asks for no passphrase); the file arrives whole.
func TestSendFileThroughTheOwner(t *testing.T) {
	r, alice, p, b := bobOwnedByTheUI(t)
	data := bytes.Repeat([]byte("pfschat attachment "), 20000) // 380 KB: a dozen chunks
	src := filepath.Join(t.TempDir(), "notes.txt")
	chattest.Must(t, os.WriteFile(src, data, 0o600))
	var out, errb bytes.Buffer
	code := Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "send-file", "alice", src, "--caption", "via the UI"}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "sent notes.txt (371.1 KiB) to alice") || !strings.Contains(errb.String(), "uploading notes.txt: 100%") {
		t.Fatalf("send-file through the owner: exit %d, %q %q", code, out.String(), errb.String())
	}
	ev := chattest.WaitEvent(t, alice, "bob's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	if ev.Message.Text != "via the UI" {
		t.Fatalf("caption %q", ev.Message.Text)
	}
	saved, err := alice.Download(t.Context(), ev.Message.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("alice saved %d bytes, %v", len(got), err)
	}
	// A relative path is resolved here, not by the owner; a missing file is a usage error.
	code = Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "send-file", "alice", "no-such-file"}, strings.NewReader(""), &out, &errb)
	if code != exitUsage {
		t.Fatalf("a missing file: exit %d", code)
	}

	// recv through the owner downloads a contact's file and prints where it is, as recv
	// does on its own.
	back := filepath.Join(t.TempDir(), "back.txt")
	chattest.Must(t, os.WriteFile(back, []byte("right back"), 0o600))
	if _, err := alice.SendFile(t.Context(), "bob", back, "", nil); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, b, "alice's file at bob's owner", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	down := t.TempDir()
	out.Reset()
	errb.Reset()
	code = Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "recv", "--download-dir", down}, strings.NewReader(""), &out, &errb)
	savedBack := filepath.Join(down, "back.txt")
	if code != 0 || !strings.Contains(out.String(), "[file back.txt, 10 B, text/plain; charset=utf-8] saved to "+savedBack) {
		t.Fatalf("recv through the owner: exit %d, %q %q", code, out.String(), errb.String())
	}
	if got, err := os.ReadFile(savedBack); err != nil || string(got) != "right back" {
		t.Fatalf("saved %q, %v", got, err)
	}
}

// send-file through an owner, stopped (Ctrl-C, SIGTERM) while the owner uploads: the
// owner goes on and sends the file, so the command exits 3 ("do not resend"), not 1,
// which a script's retry would have answered with a second copy.
func TestSendFileThroughTheOwnerInterruptedExits3(t *testing.T) {
	r, alice, p, _ := bobOwnedByTheUI(t)
	data := make([]byte, 16<<20)
	src := filepath.Join(t.TempDir(), "big.bin")
	chattest.Must(t, os.WriteFile(src, data, 0o600))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errb := &lineSignal{want: "uploading big.bin: 10%", seen: make(chan struct{})}
	go func() {
		<-errb.seen
		cancel()
	}()
	var out bytes.Buffer
	code := Main(ctx, []string{"--home", p.Dir, "--relay", r.URL, "send-file", "alice", src}, strings.NewReader(""), &out, errb)
	errb.mu.Lock()
	stderr := errb.buf.String()
	errb.mu.Unlock()
	if code != exitQueued || !strings.Contains(stderr, "keeps uploading the file and sends it") || !strings.Contains(stderr, "Do not send it again") {
		t.Fatalf("send-file through the owner, interrupted: exit %d, %q %q; want %d", code, out.String(), stderr, exitQueued)
	}
	ev := chattest.WaitEvent(t, alice, "bob's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	if ev.Message.Attachment.Size != int64(len(data)) {
		t.Fatalf("alice got %d bytes", ev.Message.Attachment.Size)
	}
}

// recv --follow through a daemon that stops ends with exit 1 (a service manager
// restarts it) and says what to do: run it again, through the next owner or on its own.
func TestRecvFollowThroughAStoppedOwnerSaysRunAgain(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	bob.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &lineSignal{want: "serving", seen: make(chan struct{})}
	var derr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--home", bob.Profile.Dir, "--relay", r.URL, "daemon"}, strings.NewReader(""), stdout, &derr)
	}()
	select {
	case <-stdout.seen:
	case code := <-done:
		t.Fatalf("daemon exited %d: %s", code, derr.String())
	}
	if _, err := alice.Send(t.Context(), "bob", "ready"); err != nil {
		t.Fatal(err)
	}
	outR, outW := io.Pipe()
	var errb syncBuf
	exit := make(chan int, 1)
	go func() {
		exit <- Main(t.Context(), []string{"--home", bob.Profile.Dir, "--relay", r.URL, "recv", "--follow"}, strings.NewReader(""), outW, &errb)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	for !strings.Contains(lines.Text(), "alice: ready") { // after what Converse left unread
		if !lines.Scan() {
			t.Fatalf("recv --follow through the daemon ended before alice's message (%v)", lines.Err())
		}
	}
	go io.Copy(io.Discard, outR)
	cancel() // the daemon stops
	if code := <-exit; code != exitFail || !strings.Contains(errb.String(), "went away") || !strings.Contains(errb.String(), "run 'pfschat recv' again") {
		t.Fatalf("recv --follow after its owner stopped: exit %d, %q; want %d and what to do", code, errb.String(), exitFail)
	}
	if code := <-done; code != 0 {
		t.Fatalf("daemon exit %d: %s", code, derr.String())
	}
}

// syncBuf is a bytes.Buffer written by a command's goroutine and read by the test's.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon --http on a port another program holds fails at once, exit 1, saying what to
// do — before it unlocks the profile or prints that it serves (a script waiting for
// "serving" took it for started, and it printed that before the failure).
func TestDaemonHTTPPortInUseFailsFirst(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	bob.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var out, errb bytes.Buffer
	code := Main(t.Context(), []string{"--home", bob.Profile.Dir, "--relay", r.URL, "daemon", "--http", taken.Addr().String()}, strings.NewReader(""), &out, &errb)
	if code != exitFail || out.String() != "" || !strings.Contains(errb.String(), "address already in use") || !strings.Contains(errb.String(), "pick another address") {
		t.Fatalf("daemon --http on a port in use: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// Commands through a daemon that cannot reach its relay say so: the owner is not
// connected to its relay (named), it keeps trying — not "is it running? … or pass --relay
// URL", advice for a relay dialed here — and a --relay given here, which the owner does
// not use, is said to be ignored. add and rotate-keys exit 1 ("cannot reach the relay:
// fetching dave's card: looking up dave: not connected"), send and send-file exit 3
// (send-file waited for ever at "uploading note.txt: 0%"; now up to --wait), recv 1.
func TestOwnerOfflineCallsSayTheRelayIsUnreachable(t *testing.T) {
	r, _, bob := conversedThenDown(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &lineSignal{want: "serving", seen: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--home", bob.Profile.Dir, "--relay", r.URL, "daemon", "--no-auto-download"}, strings.NewReader(""), stdout, io.Discard)
	}()
	select {
	case <-stdout.seen:
	case code := <-done:
		t.Fatalf("daemon exited %d", code)
	}
	note := filepath.Join(t.TempDir(), "note.txt")
	chattest.Must(t, os.WriteFile(note, []byte("hello world"), 0o600))
	owner := "the profile's owner (pfschat daemon) is not connected to its relay at " + r.URL
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"add", "dave"}, exitFail, []string{"pfschat add: " + owner + ": fetching dave's card", "it keeps trying"}},
		{[]string{"rotate-keys"}, exitFail, []string{"pfschat rotate-keys: " + owner, "it keeps trying"}},
		{[]string{"recv"}, exitFail, []string{"pfschat recv: " + owner, "it keeps trying"}},
		{[]string{"send", "alice", "hi"}, exitQueued, []string{"pfschat send: " + owner + "; the message is kept in the outbox", "Do not send it again"}},
		{[]string{"send-file", "--wait", "50ms", "alice", note}, exitQueued, []string{"uploading note.txt: waiting for the relay: " + owner,
			"pfschat send-file: " + owner + ", and --wait 50ms passed; it has the file", "Do not send it again"}},
		{[]string{"--relay", "ws://127.0.0.1:1", "add", "dave"}, exitFail, []string{"pfschat add: " + owner,
			"--relay ws://127.0.0.1:1 is ignored: this command goes through the profile's owner, which uses its own relay (" + r.URL + ")"}},
	} {
		var out, errb bytes.Buffer
		// A bound for a failure's sake only (send-file waited for ever): never reached.
		cctx, ccancel := context.WithTimeout(t.Context(), time.Minute)
		code := Main(cctx, append([]string{"--home", bob.Profile.Dir, "--relay", r.URL}, tc.args...), strings.NewReader(""), &out, &errb)
		ccancel()
		said := errb.String()
		ignored := tc.args[0] == "--relay" // the other calls pass the owner's own relay: nothing is ignored
		if code != tc.code || strings.Contains(said, "is it running") || strings.Contains(said, "pass --relay URL") || strings.Contains(said, "cannot reach") ||
			strings.Contains(said, "is ignored") != ignored {
			t.Errorf("%s through an offline daemon: exit %d, %q; want %d, that the owner is not connected to its relay", tc.args, code, said, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(said, w) {
				t.Errorf("%s through an offline daemon: %q does not say %q", tc.args, said, w)
			}
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
}

// A daemon whose identity is replaced on another device (here reset-identity on a copy
// of the profile) exits 1 saying so, as it would at its start: it served on, and every
// command through it heard that the relay was unreachable and a message would go out
// later, which it never could.
func TestDaemonExitsWhenItsIdentityIsReplaced(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	bob.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	other := copyProfile(t, bob.Profile.Dir) // the other device
	stdout := &lineSignal{want: "serving", seen: make(chan struct{})}
	var derr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- Main(t.Context(), []string{"--home", bob.Profile.Dir, "--relay", r.URL, "daemon", "--no-auto-download"}, strings.NewReader(""), stdout, &derr)
	}()
	select {
	case <-stdout.seen:
	case code := <-done:
		t.Fatalf("daemon exited %d: %s", code, derr.String())
	}
	var errb bytes.Buffer
	if code := Main(t.Context(), []string{"--home", other, "--relay", r.URL, "reset-identity", "--yes"}, strings.NewReader(""), io.Discard, &errb); code != 0 {
		t.Fatalf("reset-identity on the other device: exit %d, %s", code, errb.String())
	}
	select {
	case code := <-done:
		if code != exitFail || !strings.Contains(derr.String(), "identity was replaced") || !strings.Contains(derr.String(), "use that one") {
			t.Fatalf("daemon after its identity was replaced: exit %d, %q; want %d and why", code, derr.String(), exitFail)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon still serves 30 s after its identity was replaced: %s", derr.String())
	}
}

// copyProfile is a copy of the closed profile in dir: another device with the same
// identity.
func copyProfile(t *testing.T, dir string) string {
	t.Helper()
	other := t.TempDir()
	entries, err := os.ReadDir(dir)
	chattest.Must(t, err)
	for _, de := range entries {
		if de.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, de.Name()))
			chattest.Must(t, err)
			chattest.Must(t, os.WriteFile(filepath.Join(other, de.Name()), b, 0o600))
		}
	}
	return other
}

// recv --follow whose identity is replaced on another device ends, exit 1, saying so
// (it went on waiting for good, silent, as if nothing came).
func TestRecvFollowEndsWhenItsIdentityIsReplaced(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	bob.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	other := copyProfile(t, bob.Profile.Dir)
	if _, err := alice.Send(t.Context(), "bob", "ready"); err != nil {
		t.Fatal(err)
	}
	outR, outW := io.Pipe()
	var errb syncBuf
	exit := make(chan int, 1)
	go func() {
		exit <- Main(t.Context(), []string{"--home", bob.Profile.Dir, "--relay", r.URL, "recv", "--follow"}, strings.NewReader(""), outW, &errb)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	for !strings.Contains(lines.Text(), "alice: ready") { // online, past its backlog
		if !lines.Scan() {
			t.Fatalf("recv --follow ended before alice's message (%v): %s", lines.Err(), errb.String())
		}
	}
	go io.Copy(io.Discard, outR)
	var rerr bytes.Buffer
	if code := Main(t.Context(), []string{"--home", other, "--relay", r.URL, "reset-identity", "--yes"}, strings.NewReader(""), io.Discard, &rerr); code != 0 {
		t.Fatalf("reset-identity on the other device: exit %d, %s", code, rerr.String())
	}
	select {
	case code := <-exit:
		if code != exitFail || !strings.Contains(errb.String(), "identity was replaced") {
			t.Fatalf("recv --follow after its identity was replaced: exit %d, %q; want %d and why", code, errb.String(), exitFail)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("recv --follow still waits 30 s after its identity was replaced: %s", errb.String())
	}
}

// send through an owner, stopped (Ctrl-C, SIGTERM) while the owner has its request
// (waiting for the relay to accept it): exit 3, "do not resend", as send without an
// owner stopped then — it exited 1, "context canceled", and a script's retry sent the
// message twice. The owner here takes the request and never answers.
func TestSendThroughTheOwnerInterruptedExits3(t *testing.T) {
	home := t.TempDir()
	sock, err := daemon.SocketPath(home)
	chattest.Must(t, err)
	ln, err := daemon.Listen(sock)
	chattest.Must(t, err)
	defer ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var request string
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		request, _ = bufio.NewReader(nc).ReadString('\n')
		cancel() // the signal comes while the owner holds the request
		io.Copy(io.Discard, nc)
	}()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"--home", home, "send", "alice", "hi"}, strings.NewReader(""), &out, &errb)
	if !strings.Contains(request, `"method":"send"`) {
		t.Fatalf("the owner got %q, want the send", request)
	}
	if code != exitQueued || !strings.Contains(errb.String(), "the owner of this profile has the message and sends it") || !strings.Contains(errb.String(), "Do not send it again") {
		t.Fatalf("send through the owner, interrupted: exit %d, %q %q; want %d", code, out.String(), errb.String(), exitQueued)
	}
}

// The daemon is a service: it logs what goes wrong to stderr (the journal under
// systemd) without -v, here the relay it cannot reach at start.
func TestDaemonLogsToStderr(t *testing.T) {
	stderr := &lineSignal{want: "relay unreachable at start", seen: make(chan struct{})}
	_, stop := startOfflineDaemon(t, io.Discard, stderr, stderr.seen)
	stop()
}

// recv through an owner that cannot reach its relay prints what the owner holds and
// exits 1 saying so, as recv without an owner does (it exited 0).
func TestRecvThroughAnOfflineOwnerExitsAsWithout(t *testing.T) {
	stdout := &lineSignal{want: "serving", seen: make(chan struct{})}
	home, stop := startOfflineDaemon(t, stdout, io.Discard, stdout.seen)
	var out, errb bytes.Buffer
	code := Main(t.Context(), []string{"--home", home, "recv"}, strings.NewReader(""), &out, &errb)
	if code != exitFail || !strings.Contains(errb.String(), "the profile's owner (pfschat daemon) is not connected to its relay at ws://127.0.0.1:1/v2/ws: what it holds was printed") {
		t.Fatalf("recv through an offline owner: exit %d, stderr %q; want exit %d, the relay cannot be reached", code, errb.String(), exitFail)
	}
	stop()
}

// recv --follow through an owner not connected to its relay says so, naming the relay
// and that the owner keeps trying, as recv --follow without an owner says it waits (it
// said nothing).
func TestRecvFollowThroughAnOfflineOwnerSaysItWaits(t *testing.T) {
	stdout := &lineSignal{want: "serving", seen: make(chan struct{})}
	home, stop := startOfflineDaemon(t, stdout, io.Discard, stdout.seen)
	// A bound for a failure's sake only: recv --follow said nothing and ran on.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	errb := &lineSignal{want: "waiting for it", seen: make(chan struct{})}
	go func() {
		<-errb.seen
		cancel()
	}()
	Main(ctx, []string{"--home", home, "recv", "--follow"}, strings.NewReader(""), io.Discard, errb)
	errb.mu.Lock()
	said := errb.buf.String()
	errb.mu.Unlock()
	if !strings.Contains(said, "the profile's owner (pfschat daemon) is not connected to its relay at ws://127.0.0.1:1/v2/ws; waiting for it (it keeps trying") {
		t.Errorf("recv --follow through an offline owner said %q; want that it waits for the owner's relay", said)
	}
	stop()
}

// startOfflineDaemon runs `pfschat daemon` for a new user, bob, on a relay address
// nobody listens on, and returns once ready is closed (a line on its stdout or
// stderr); stop ends the daemon and checks it exits 0. It returns bob's home.
func startOfflineDaemon(t *testing.T, stdout, stderr io.Writer, ready <-chan struct{}) (home string, stop func()) {
	t.Helper()
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	bob.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--home", bob.Profile.Dir, "--relay", "ws://127.0.0.1:1", "daemon", "--no-auto-download"}, strings.NewReader(""), stdout, stderr)
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("daemon exited %d before it was ready", code)
	case <-time.After(30 * time.Second):
		t.Fatal("30 s and the daemon is not ready")
	}
	return bob.Profile.Dir, func() {
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("daemon exit %d", code)
		}
	}
}

// TestUIOwnerRecovers: the UI's profile passes onboarding's recovery (ctrl+r on a taken
// name) through, as its creation, and serves the socket for the recovered identity. It
// did not implement ui.Recoverer, so the real UI never offered ctrl+r.
func TestUIOwnerRecovers(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice")
	code := alice.TakeRecoveryCode()
	alice.Close()
	p := chattest.NewProfile(t, "alice-new")
	p.Owner = profile.OwnerUI
	var prof ui.Profile = uiOwnerProfile{ui.NewChatProfile(p), p.Dir, slog.New(slog.DiscardHandler)}
	rec, ok := prof.(ui.Recoverer)
	if !ok {
		t.Fatal("the UI's profile offers no recovery (ui.Recoverer)")
	}
	ob := prof.(ui.Onboarder)
	if _, err := ob.ProbeRelay(t.Context(), r.URL); err != nil {
		t.Fatal(err)
	}
	b, err := rec.RecoverWith(t.Context(), ui.RecoverRequest{Name: "alice", Code: code, Passphrase: chattest.Passphrase, RelayURL: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sock, _ := daemon.SocketPath(p.Dir)
	cl, err := daemon.Dial(t.Context(), sock)
	if err != nil {
		t.Fatalf("the recovered profile serves no socket: %v", err)
	}
	defer cl.Close()
	var v daemon.VersionResult
	if err := cl.Call(t.Context(), "version", nil, &v); err != nil || v.Owner != "ui" || v.Me != "alice" {
		t.Fatalf("version: %+v, %v", v, err)
	}
}

// A command run while the owner is starting — it holds the profile but does not serve
// its socket yet (the daemon or the UI unlocking) — says so and waits for it, then goes
// through it, rather than refusing with "stop the daemon". Here the test holds the lock
// as a starting daemon would, and hands the profile to a real owner once the command
// says it waits.
func TestCommandWaitsForAStartingOwner(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	bob.Close()
	p := bob.Profile
	starting, err := profile.AcquireLock(p.Dir, profile.OwnerDaemon)
	if err != nil {
		t.Fatal(err)
	}
	defer starting.Release()
	t.Setenv(profile.EnvPassphrase, "") // through the owner: no passphrase needed

	errR, errW := io.Pipe()
	var out bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		defer errW.Close()
		exit <- Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "contacts"}, strings.NewReader(""), &out, errW)
	}()
	lines := bufio.NewScanner(errR)
	var said []string
	for lines.Scan() {
		said = append(said, lines.Text())
		if strings.Contains(lines.Text(), "is starting; waiting") {
			break
		}
	}
	if len(said) == 0 || !strings.Contains(said[len(said)-1], "(pid "+strconv.Itoa(os.Getpid())+", pfschat daemon) is starting") {
		t.Fatalf("the command said %q, want that it waits for the starting owner", said)
	}
	go io.Copy(io.Discard, errR)

	// The owner comes up: the lock passes to it, then its socket.
	starting.Release()
	p.Owner = profile.OwnerUI
	prof := uiOwnerProfile{ui.NewChatProfile(p), p.Dir, slog.New(slog.DiscardHandler)}
	b, err := prof.Open(t.Context(), chattest.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if code := <-exit; code != 0 || !strings.Contains(out.String(), "alice") {
		t.Fatalf("contacts through the owner that started: exit %d, %q", code, out.String())
	}
}

// A message request's file is left on the relay by recv through the owner, with the
// hint that accept-request, then recv, downloads it; after accept-request, recv through
// the owner downloads it (the message was printed and read already), as recv does on
// its own (fetchEarlier). It downloaded nothing before.
func TestRecvThroughTheOwnerDownloadsAnAcceptedRequestsFile(t *testing.T) {
	r, _, p, b := bobOwnedByTheUI(t)
	erin := chattest.NewUser(t, r, "erin")
	if _, err := erin.AddContact(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "photo.txt")
	chattest.Must(t, os.WriteFile(src, []byte("a stranger's file"), 0o600))
	if _, err := erin.SendFile(t.Context(), "bob", src, "", nil); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, b, "erin's file at bob's owner", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	down := t.TempDir()
	run := func(args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(t.Context(), append([]string{"--home", p.Dir, "--relay", r.URL}, args...), strings.NewReader(""), &out, &errb)
		if code != 0 {
			t.Fatalf("%q: exit %d, %q %q", args, code, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	out, errs := run("recv", "--download-dir", down)
	if !strings.Contains(out, "[file photo.txt") || !strings.Contains(out, "not downloaded") ||
		!strings.Contains(errs, "'pfschat accept-request erin', then 'pfschat recv' downloads it") {
		t.Fatalf("recv of a request's file: %q %q", out, errs)
	}
	if _, err := os.Stat(filepath.Join(down, "photo.txt")); err == nil {
		t.Fatal("a message request's file was downloaded")
	}
	run("accept-request", "erin")
	saved := filepath.Join(down, "photo.txt")
	if out, errs := run("recv", "--download-dir", down); !strings.Contains(errs, "downloaded photo.txt from erin") || !strings.Contains(errs, saved) {
		t.Fatalf("recv after accept-request: %q %q", out, errs)
	}
	if got, err := os.ReadFile(saved); err != nil || string(got) != "a stranger's file" {
		t.Fatalf("saved %q, %v", got, err)
	}
	// Downloaded: the next recv has nothing more to say about it.
	if out, errs := run("recv", "--download-dir", down); strings.Contains(errs, "photo.txt") {
		t.Fatalf("a second recv: %q %q", out, errs)
	}
}

// An owner's refusal reads as a sentence: a nickname over 64 bytes through the UI
// owner is the owner's own words without "(JSON-RPC error -32602)", which only -v
// adds, on a line of its own.
func TestOwnerRefusalHasNoJSONRPCCode(t *testing.T) {
	r, _, p, _ := bobOwnedByTheUI(t)
	long := strings.Repeat("n", 65)
	for _, verbose := range []bool{false, true} {
		args := []string{"--home", p.Dir, "--relay", r.URL, "nickname", "alice", long}
		if verbose {
			args = []string{"--home", p.Dir, "--relay", r.URL, "nickname", "-v", "alice", long}
		}
		var out, errb bytes.Buffer
		code := Main(t.Context(), args, strings.NewReader(""), &out, &errb)
		first, rest, _ := strings.Cut(errb.String(), "\n")
		if code != exitFail || !strings.Contains(first, "at most 64 bytes") || strings.Contains(first, "JSON-RPC") {
			t.Fatalf("-v %v: exit %d, %q", verbose, code, errb.String())
		}
		if verbose != strings.Contains(rest, "JSON-RPC error -32602, invalid_params") {
			t.Fatalf("-v %v: the code line: %q", verbose, errb.String())
		}
	}
}

// recv through the owner marks what it printed read in one markRead per contact, as
// recv without an owner does: a subscriber is told once per contact (markedRead), not
// once per message printed.
func TestRecvThroughTheOwnerMarksReadOncePerContact(t *testing.T) {
	r, alice, p, b := bobOwnedByTheUI(t)
	for _, text := range []string{"one", "two", "three"} {
		if _, err := alice.Send(t.Context(), "bob", text); err != nil {
			t.Fatal(err)
		}
		chattest.WaitEvent(t, b, text+" at bob's owner", func(e chat.Event) bool {
			return e.Kind == chat.MessageReceived && e.Message != nil && e.Message.Text == text
		})
	}
	sock, err := daemon.SocketPath(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := daemon.Dial(t.Context(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Call(t.Context(), "subscribe", nil, new(daemon.SubscribeResult)); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "recv"}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "one") || !strings.Contains(out.String(), "three") {
		t.Fatalf("recv: exit %d, %q %q", code, out.String(), errb.String())
	}
	// A call whose notification comes after recv's: what came before it is all of them.
	other, err := daemon.Dial(t.Context(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Call(t.Context(), "setMuted", map[string]any{"name": "alice", "muted": true}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	marked := 0
	for {
		n, err := cl.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.Method == daemon.NotifyContact {
			break
		}
		if n.Method == daemon.NotifyMarkedRead {
			marked++
		}
	}
	if marked != 1 {
		t.Fatalf("recv of alice's 3 messages through the owner: %d markedRead notifications, want 1", marked)
	}
}

// send through the owner to a contact whose queue on the relay is full: the relay
// answers but refuses the message for now, so send says it has not accepted it and why
// that may be (exit 3, kept in the outbox), not that the relay is unreachable.
func TestSendThroughTheOwnerToAFullQueue(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{MaxQueueCount: 1}})
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	alice.Close() // offline: her queue holds one message at most
	bob.Close()
	p := bob.Profile
	p.Owner = profile.OwnerUI
	prof := uiOwnerProfile{ui.NewChatProfile(p), p.Dir, slog.New(slog.DiscardHandler)}
	b, err := prof.Open(t.Context(), chattest.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Setenv(profile.EnvPassphrase, "")
	var errb bytes.Buffer
	code := 0
	for i := 0; code == 0 && i < 3; i++ { // the first may still fit
		errb.Reset()
		code = Main(t.Context(), []string{"--home", p.Dir, "--relay", r.URL, "send", "--wait", "1s", "alice", fmt.Sprint("message ", i)},
			strings.NewReader(""), io.Discard, &errb)
	}
	if code != exitQueued || !strings.Contains(errb.String(), "has not accepted the message within 1s") ||
		!strings.Contains(errb.String(), "queue on the relay may be full") || strings.Contains(errb.String(), "unreachable") {
		t.Fatalf("send to a full queue through the owner: exit %d, %q", code, errb.String())
	}
}
