package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// sendFile through the owner reaches alice as a file; bob's owner downloads alice's file.
func TestSocketSendFileAndDownload(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	cl := dial(t, o.sock)
	data := bytes.Repeat([]byte("pfschat "), 9000)
	src := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var sr daemon.SendResult
	if err := cl.Call(t.Context(), "sendFile", daemon.SendFileParams{To: "alice", Path: src, Caption: "notes"}, &sr); err != nil || sr.ID == 0 {
		t.Fatalf("sendFile: %+v %v", sr, err)
	}
	if err := cl.Call(t.Context(), "sendFile", daemon.SendFileParams{To: "alice", Path: "relative.txt"}, nil); err == nil {
		t.Fatal("a relative path was accepted")
	}
	// alice sends one back; bob's owner downloads it.
	back := filepath.Join(t.TempDir(), "back.bin")
	os.WriteFile(back, data[:1000], 0o600)
	if err := cl.Call(t.Context(), "subscribe", nil, new(daemon.SubscribeResult)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendFile(t.Context(), "bob", back, "", nil); err != nil {
		t.Fatal(err)
	}
	var m daemon.Message
	for m.File == nil {
		m = nextMessage(t, cl)
	}
	if m.File.Name != "back.bin" || m.File.State != "available" || m.File.Size != 1000 {
		t.Fatalf("file message %+v", m.File)
	}
	var dr daemon.DownloadResult
	dir := t.TempDir()
	if err := cl.Call(t.Context(), "download", daemon.DownloadParams{ID: m.ID, Dir: dir}, &dr); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(dr.Path); err != nil || !bytes.Equal(got, data[:1000]) || filepath.Dir(dr.Path) != dir {
		t.Fatalf("downloaded %s: %v", dr.Path, err)
	}
}

// sendFile with waitMs answers "accepted" once the relay holds the message, and a
// subscriber sees the upload's "transfer" notifications: growing, then the end.
func TestSocketSendFileProgress(t *testing.T) {
	_, _, _, _, cl, watcher := watchedOwner(t)
	src := filepath.Join(t.TempDir(), "log.txt")
	chattest.Must(t, os.WriteFile(src, bytes.Repeat([]byte("line\n"), 40000), 0o600))
	var sr daemon.SendResult
	if err := cl.Call(t.Context(), "sendFile", daemon.SendFileParams{To: "alice", Path: src, WaitMs: 30000}, &sr); err != nil || sr.State != "accepted" {
		t.Fatalf("sendFile: %+v %v", sr, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var seen []daemon.Transfer
	for {
		n, err := watcher.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for transfer notifications (seen %+v): %v", seen, err)
		}
		if n.Method != daemon.NotifyTransfer {
			continue
		}
		var ev daemon.Event
		chattest.Must(t, json.Unmarshal(n.Params, &ev))
		tr := *ev.Transfer
		if ev.Contact != "alice" || tr.Name != "log.txt" || !tr.Outgoing || tr.Size != 200000 {
			t.Fatalf("transfer notification %+v for %q", tr, ev.Contact)
		}
		if k := len(seen); k > 0 && tr.Done < seen[k-1].Done {
			t.Fatalf("progress went back: %+v after %+v", tr, seen[k-1])
		}
		seen = append(seen, tr)
		if tr.Ended {
			break
		}
	}
	if last := seen[len(seen)-1]; len(seen) < 3 || last.State != "sent" || last.ID != sr.ID || last.Done != last.Size {
		t.Fatalf("transfer notifications %+v, want progress then sent as message %d", seen, sr.ID)
	}
}

// An owner with a download directory (a device: pfschat daemon) fetches a contact's
// file by itself, the one that waited while it was down and the ones that arrive, and
// says where in the transfer's last notification; a stranger's file waits until the
// user accepts the request.
func TestOwnerDownloadsByItself(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob, carol := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob"), chattest.NewUser(t, r, "carol")
	chattest.Converse(t, alice, bob)
	chattest.AddContact(t, carol, "bob")
	src := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(src, name)
		chattest.Must(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	// Waiting before the owner starts.
	if _, err := alice.SendFile(t.Context(), "bob", write("early.txt", "sent before"), "", nil); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, bob, "the early file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	dir := t.TempDir()
	hub := daemon.NewHub(bob.Controller.Events())
	watch := hub.Subscribe()
	defer watch.Close()
	srv := daemon.New(daemon.Config{Controller: bob.Controller, Hub: hub, Owner: profile.OwnerDaemon, Version: "test", DownloadDir: dir})
	t.Cleanup(func() { srv.Close() })
	if _, err := carol.SendFile(t.Context(), "bob", write("stranger.txt", "from a stranger"), "", nil); err != nil {
		t.Fatal(err)
	}
	saved := map[string]string{} // file name → where the owner says it saved it
	carolsIn := false
	timeout := time.After(30 * time.Second)
	next := func() {
		select {
		case ev := <-watch.C():
			switch {
			case ev.Kind == chat.MessageReceived && ev.Contact == "carol":
				carolsIn = true
			case ev.Kind == chat.TransferProgress && ev.Transfer.Ended && ev.Transfer.State == chat.AttachmentDownloaded:
				saved[ev.Transfer.FileName] = ev.Message.Attachment.Path
			}
		case <-timeout:
			t.Fatalf("carol's file in: %v; downloads seen: %v", carolsIn, saved)
		}
	}
	for !carolsIn {
		next()
	}
	if _, err := alice.SendFile(t.Context(), "bob", write("late.txt", "sent after"), "", nil); err != nil {
		t.Fatal(err)
	}
	for len(saved) < 2 {
		next()
	}
	for name, body := range map[string]string{"early.txt": "sent before", "late.txt": "sent after"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != body || saved[name] != filepath.Join(dir, name) {
			t.Fatalf("%s: %q %v (saved at %q)", name, got, err, saved[name])
		}
	}
	// carol's file arrived before alice's late one, and the owner takes them in order:
	// it was passed over, not fetched.
	if _, err := os.Stat(filepath.Join(dir, "stranger.txt")); !os.IsNotExist(err) {
		t.Fatalf("a stranger's file was downloaded: %v", err)
	}
	// Once bob accepts carol's request, her file is a contact's: the owner fetches it.
	chattest.Must(t, bob.AcceptRequest(t.Context(), "carol"))
	for saved["stranger.txt"] == "" {
		next()
	}
	if got, err := os.ReadFile(filepath.Join(dir, "stranger.txt")); err != nil || string(got) != "from a stranger" {
		t.Fatalf("carol's file after her request was accepted: %q %v", got, err)
	}
}

// The daemon finishes at start an upload its earlier run left (killed after 4 of 10
// chunks): the message goes out and alice gets the whole file.
func TestOwnerResumesUploads(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	data := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB: 10 chunks
	src := filepath.Join(t.TempDir(), "resume.bin")
	chattest.Must(t, os.WriteFile(src, data, 0o600))
	kctx, kill := context.WithCancel(t.Context())
	if _, err := bob.SendFile(kctx, "alice", src, "", func(done, total int64) {
		if done >= total*4/10 {
			kill()
		}
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed upload: %v", err)
	}
	hub := daemon.NewHub(bob.Controller.Events())
	srv := daemon.New(daemon.Config{Controller: bob.Controller, Hub: hub, Owner: profile.OwnerDaemon, Version: "test", ResumeUploads: true})
	t.Cleanup(func() { srv.Close() })
	ev := chattest.WaitEvent(t, alice, "bob's resumed file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	p, err := alice.Download(t.Context(), ev.Message.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatalf("alice got %d bytes", len(got))
	}
}

// sendFile over HTTP whose caller goes away mid-upload (a client's timeout) is
// finished by the owner and sent, as over the socket, where the CLI tells its user so:
// it stopped half way and waited for the owner's next start, and a script that retried
// sent the file twice once the owner restarted.
func TestHTTPSendFileOutlivesItsCaller(t *testing.T) {
	_, alice, _, o, _, watcher := watchedOwner(t)
	addr, secret := serveHTTP(t, o)
	src := filepath.Join(t.TempDir(), "big.bin")
	chattest.Must(t, os.WriteFile(src, make([]byte, 16<<20), 0o600))
	reqCtx, cancelReq := context.WithCancel(t.Context())
	defer cancelReq()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","method":"sendFile","params":{"to":"alice","path":%q},"id":1}`, src)
	req, _ := http.NewRequestWithContext(reqCtx, "POST", "http://"+addr+"/api/v1/rpc", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	called := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		called <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		n, err := watcher.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for the upload's transfer notifications: %v", err)
		}
		var ev daemon.Event
		if n.Method != daemon.NotifyTransfer || json.Unmarshal(n.Params, &ev) != nil || !ev.Transfer.Outgoing {
			continue
		}
		if tr := ev.Transfer; tr.Ended {
			if tr.State != "sent" {
				t.Fatalf("the upload ended %q after its caller went away; want it sent", tr.State)
			}
			break
		} else if tr.Done > 0 {
			cancelReq() // the caller gives up mid-upload
		}
	}
	if err := <-called; err == nil {
		t.Fatal("the request was answered: the upload ended before its caller went away")
	}
	ev := chattest.WaitEvent(t, alice, "bob's file", func(e chat.Event) bool {
		return e.Kind == chat.MessageReceived && e.Message.Attachment != nil
	})
	if ev.Message.Attachment.Size != 16<<20 {
		t.Fatalf("alice got %d bytes", ev.Message.Attachment.Size)
	}
}

// download into a dir the owner cannot make or write to — a regular file, a path under
// one (both hold as root), a directory without write permission (not as root) — answers
// dir_unwritable naming the dir and what to do, not internal_error, and fetches
// nothing: the file stays available, and a download into a good dir saves it.
func TestSocketDownloadIntoADirItCannotWrite(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	cl := dial(t, o.sock)
	if err := cl.Call(t.Context(), "subscribe", nil, new(daemon.SubscribeResult)); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "back.bin")
	chattest.Must(t, os.WriteFile(src, []byte("a file for bob"), 0o600))
	if _, err := alice.SendFile(t.Context(), "bob", src, "", nil); err != nil {
		t.Fatal(err)
	}
	var m daemon.Message
	for m.File == nil {
		m = nextMessage(t, cl)
	}
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	chattest.Must(t, os.WriteFile(file, nil, 0o600))
	dirs := map[string]string{"a regular file": file, "a path under a regular file": filepath.Join(file, "downloads")}
	if os.Geteuid() != 0 {
		ro := filepath.Join(base, "read-only")
		chattest.Must(t, os.Mkdir(ro, 0o500))
		dirs["a directory without write permission"] = ro
	}
	for what, dir := range dirs {
		err := cl.Call(t.Context(), "download", daemon.DownloadParams{ID: m.ID, Dir: dir}, nil)
		var re *daemon.Error
		if !errors.As(err, &re) || re.Code != daemon.CodeDirUnwritable || re.Data == nil || re.Data.Name != "dir_unwritable" ||
			!strings.Contains(re.Message, dir+":") || !strings.Contains(re.Message, `give a "dir" the owner's user may create and write to`) {
			t.Errorf("download into %s: %v, want dir_unwritable naming %s and what to do", what, err, dir)
		}
		if !errors.Is(daemon.ChatError(err), chat.ErrDownloadDir) {
			t.Errorf("download into %s: ChatError gives %v, want chat.ErrDownloadDir", what, daemon.ChatError(err))
		}
	}
	var dr daemon.DownloadResult
	good := t.TempDir()
	if err := cl.Call(t.Context(), "download", daemon.DownloadParams{ID: m.ID, Dir: good}, &dr); err != nil || filepath.Dir(dr.Path) != good {
		t.Fatalf("download into a good dir after the refusals: %+v %v", dr, err)
	}
	if got, err := os.ReadFile(dr.Path); err != nil || string(got) != "a file for bob" {
		t.Fatalf("saved %q, %v", got, err)
	}
}
