package daemon_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

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
