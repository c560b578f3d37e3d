package ui

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// The in-memory backend sends files as attachment messages and "downloads" by marking them.
func (b *memBackend) SendFile(ctx context.Context, contact, path, caption string, progress chat.Progress) (chat.Message, error) {
	st, err := os.Stat(path)
	if err != nil {
		return chat.Message{}, err
	}
	m := b.addMessage(chat.Message{Contact: contact, Outgoing: true, Text: caption, SentAt: b.now(), State: chat.Pending,
		Attachment: &chat.Attachment{FileName: filepath.Base(path), Size: st.Size(), State: chat.AttachmentSent, Path: path}})
	return m, nil
}

func (b *memBackend) Download(ctx context.Context, id int64, dir string, progress chat.Progress) (string, error) {
	return "", errors.New("the in-memory backend stores no files")
}

func TestAttachmentLine(t *testing.T) {
	m := chat.Message{Attachment: &chat.Attachment{FileName: "../evil\x1b[2J.png", Size: 1536, MediaType: "image/png",
		State: chat.AttachmentDownloaded, Path: "/home/u/Downloads/evil_[2J.png", Width: 640, Height: 480}}
	got := attachmentLine(m)
	want := "📎 _evil_[2J.png · 1.5 KiB · image/png · 640×480 · saved /home/u/Downloads/evil_[2J.png"
	if got != want {
		t.Fatalf("attachment line\n%q\nwant\n%q", got, want)
	}
	if strings.ContainsRune(got, 0x1b) {
		t.Fatal("an escape sequence reached the screen")
	}
	m.Attachment.State, m.Attachment.DoneBytes, m.Attachment.Width = chat.AttachmentUploading, 768, 0
	if got := attachmentLine(m); !strings.HasSuffix(got, "uploading 50%") {
		t.Fatalf("uploading: %q", got)
	}
}

func TestFileCommandShowsTheAttachment(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = "bob"
	m.convs["bob"] = newConversation("bob")
	m.convs["bob"].loaded = true
	p := filepath.Join(t.TempDir(), "report.pdf")
	os.WriteFile(p, []byte("%PDF-1.7"), 0o600)
	cmd := m.command([]string{"/file", p})
	if cmd == nil || m.noticeErr {
		t.Fatalf("/file: %q", m.notice)
	}
	m.Update(cmd())
	view := ansi.Strip(m.View())
	if !strings.Contains(view, "📎 report.pdf · 8 B") {
		t.Fatalf("the conversation does not show the file:\n%s", view)
	}
	// /open on an outgoing file asks first.
	if cmd := m.openCommand(); cmd == nil || m.noticeErr {
		t.Fatalf("/open: %q", m.notice)
	}
}

func TestRefuseOpen(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{write("photo.jpg", "\xff\xd8\xff", 0o600), ""},
		{write("run.desktop", "[Desktop Entry]", 0o600), "run programs"},
		{write("tool", "data", 0o700), "executable"},
		{write("script.txt", "#!/bin/sh\n", 0o600), "a program"},
		{write("app.elf.pdf", "\x7fELF", 0o600), "a program"},
		{write("setup.EXE", "MZ", 0o600), "run programs"},
		{filepath.Join(dir, "missing"), "not there"},
	} {
		if got := refuseOpen(tc.path); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", filepath.Base(tc.path), got, tc.want)
		}
	}
}

func TestCompletePath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "report-2026.pdf"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "report-2025.pdf"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "photos"), 0o700)
	for typed, want := range map[string]string{
		dir + "/rep": "ort-202",
		dir + "/ph":  "otos/",
		dir + "/x":   "",
	} {
		if got := completePath(typed); got != want {
			t.Errorf("completePath(%q) = %q, want %q", typed, got, want)
		}
	}
}
