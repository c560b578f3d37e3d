package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
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
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	cl, watcher := dial(t, o.sock), dial(t, o.sock)
	if err := watcher.Call(t.Context(), "subscribe", nil, new(daemon.SubscribeResult)); err != nil {
		t.Fatal(err)
	}
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
