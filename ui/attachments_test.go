package ui

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
	"pfschat/chat/profile"
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
	if !strings.Contains(m.notice, "uploading report.pdf") {
		t.Fatalf("while uploading, the notice says %q", m.notice)
	}
	m.Update(cmd())
	view := ansi.Strip(m.View())
	if !strings.Contains(view, "📎 report.pdf · 8 B") {
		t.Fatalf("the conversation does not show the file:\n%s", view)
	}
	if m.notice != "" {
		t.Errorf("once sent, the notice still says %q", m.notice)
	}
	// /open on an outgoing file asks first.
	oldFind := findOpener
	findOpener = func(string) error { return nil }
	t.Cleanup(func() { findOpener = oldFind })
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
		// Extensions in any case, and a double extension ending in one.
		{write("photo.jpg.Desktop", "x", 0o600), "run programs"},
		{write("Game.AppImage", "x", 0o600), "run programs"},
		{write("notes.txt.sh", "echo", 0o600), "run programs"},
		{write("report.pdf.txt", "plain text", 0o600), ""},
		// Content a desktop or a kernel runs, under an innocent name or none.
		{write("invite.txt", "[Desktop Entry]\nType=Application\nExec=sh -c evil\n", 0o600), "a launcher"},
		{write("invite", "# made by hand\n\n[Desktop Entry]\nExec=evil\n", 0o600), "a launcher"},
		{write("kde", "[KDE Desktop Entry]\nExec=evil\n", 0o600), "a launcher"},
		{write("macho.pdf", "\xcf\xfa\xed\xfe\x07\x00\x00\x01", 0o600), "a program"},
		{write("macho32", "\xce\xfa\xed\xfe", 0o600), "a program"},
		{write("machobe", "\xfe\xed\xfa\xcf", 0o600), "a program"},
		{write("universal.png", "\xca\xfe\xba\xbe\x00\x00\x00\x02", 0o600), "a program"},
		{write("pe.jpg", "MZ\x90\x00", 0o600), "a program"},
		{write("noext", "#!/usr/bin/env python3\n", 0o600), "a program"},
		{write("empty.pdf", "", 0o600), ""},
		// HTML and SVG open in a browser, whose scripts a local file's page keeps to
		// itself: opened like any document (after asking).
		{write("page.html", "<script>alert(1)</script>", 0o600), ""},
		{write("logo.svg", "<svg onload='alert(1)'/>", 0o600), ""},
	} {
		if got := refuseOpen(tc.path); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", filepath.Base(tc.path), got, tc.want)
		}
	}
	for _, ext := range strings.Fields(`.sh .py .pl .rb .jar .appimage .run .bin .exe .msi .bat .cmd .ps1 .vbs
		.lnk .command .app .scpt .deb .rpm .flatpakref .flatpakrepo .flatpak .snap .AppImage .desktop .kdelnk
		.csh .ksh .fish .php .pyw .jnlp .vbe .jse .wsf .hta .pif .cpl .msp .reg .terminal .tool .workflow
		.pkg .mpkg .fileloc .inetloc .webloc .applescript`) {
		for _, e := range []string{strings.ToLower(ext), strings.ToUpper(ext)} {
			if got := refuseOpen(write("file"+e, "text", 0o600)); !strings.Contains(got, "run programs") {
				t.Errorf("file%s: %q", e, got)
			}
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
		if got, _ := completePath(typed); got != want {
			t.Errorf("completePath(%q) = %q, want %q", typed, got, want)
		}
	}
	// Under ~/: a folder completed once completes into it, not with another "/" (Tab
	// gave ~/Downloads//, then ///).
	t.Setenv("HOME", dir)
	for typed, want := range map[string]string{"~/ph": "otos/", "~/photos/": "", "~/rep": "ort-202"} {
		if got, _ := completePath(typed); got != want {
			t.Errorf("completePath(%q) = %q, want %q", typed, got, want)
		}
	}
	os.WriteFile(filepath.Join(dir, "photos", "red square.png"), nil, 0o600)
	if got, _ := completePath("~/photos/"); got != "red square.png" {
		t.Errorf("completePath(~/photos/) = %q, want the one file in it", got)
	}
}

// /file takes a path as a terminal pastes a dropped file, or as a shell user types it:
// quoted, or with escaped spaces ("no such file" for each before).
func TestFileCommandTakesQuotedPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "red square.png")
	os.WriteFile(path, []byte("x"), 0o600)
	for _, typed := range []string{"'" + path + "'", `"` + path + `"`, strings.ReplaceAll(path, " ", `\ `)} {
		m := newTestMainScreen(t)
		m.noticeTTL = time.Millisecond
		drive(t, m, m.openContact("bob"), "")
		drive(t, m, m.command(append([]string{"/file"}, strings.Fields(typed)...)), "")
		if strings.Contains(m.notice, "no such file") {
			t.Errorf("/file %s: %q", typed, m.notice)
		}
	}
}

// TestTabListsWhatItCannotChoose: a Tab that can add nothing shows the candidates, as a
// shell's second Tab does (control characters in a name made harmless), and one that
// matches nothing says so; the input is left as typed.
func TestTabListsWhatItCannotChoose(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"report-2026.pdf", "report-2025.pdf", "evil-\x1b]0;owned\x07.txt", "evil-b.txt"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	m := newTestMainScreen(t)
	m.focus = focusInput
	tab := tea.KeyPressMsg{Code: tea.KeyTab}
	m.input.SetValue("/file " + dir + "/rep")
	m.Update(tab)
	if got := m.input.Value(); got != "/file "+dir+"/report-202" {
		t.Fatalf("first Tab: %q", got)
	}
	m.Update(tab)
	if m.input.Value() != "/file "+dir+"/report-202" || m.noticeErr ||
		m.notice != "report-2025.pdf  report-2026.pdf" {
		t.Errorf("second Tab: input %q, notice %q (error %v)", m.input.Value(), m.notice, m.noticeErr)
	}
	m.input.SetValue("/file " + dir + "/evil-")
	m.Update(tab)
	if strings.ContainsAny(m.notice, "\x1b\x07") || !strings.Contains(m.notice, "evil-b.txt") {
		t.Errorf("candidates with a control character: %q", m.notice)
	}
	m.input.SetValue("/file " + dir + "/zz")
	m.Update(tab)
	if m.input.Value() != "/file "+dir+"/zz" || !m.noticeErr || !strings.Contains(m.notice, "no file or folder starts with zz") {
		t.Errorf("no match: input %q, notice %q", m.input.Value(), m.notice)
	}
	if got := completionNotice(strings.Fields(strings.Repeat("a ", 15))); !strings.HasSuffix(got, "(+3 more)") {
		t.Errorf("15 names: %q", got)
	}
}

// TestTransferProgressOnTheLine: the controller's TransferProgress events move the
// attachment line — an upload shows below the messages as "uploading 42%" until its
// message exists, then "sent"; a download goes "downloading 42%" → "saved PATH".
func TestTransferProgressOnTheLine(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = "bob"
	cv := newConversation("bob")
	cv.loaded = true
	m.convs["bob"] = cv
	view := func() string { return ansi.Strip(m.View()) }
	up := chat.Transfer{ClientID: "c1", Outgoing: true, FileName: "big.iso", MediaType: "application/x-iso9660-image", Size: 100 << 20, State: chat.AttachmentUploading}
	for _, pct := range []int64{0, 42} {
		up.Done = up.Size * pct / 100
		tr := up
		m.Update(eventMsg{chat.Event{Kind: chat.TransferProgress, Contact: "bob", Transfer: &tr}})
	}
	if v := view(); !strings.Contains(v, "📎 big.iso · 100.0 MiB · application/x-iso9660-image · uploading 42%") || strings.Contains(v, "No messages yet") {
		t.Fatalf("the upload's line:\n%s", v)
	}
	sent := chat.Message{ID: 7, Contact: "bob", Outgoing: true, SentAt: fixedNow, State: chat.Pending,
		Attachment: &chat.Attachment{ClientID: "c1", FileName: "big.iso", Size: up.Size, State: chat.AttachmentSent}}
	end := up
	end.Done, end.State, end.MessageID, end.Ended = up.Size, chat.AttachmentSent, 7, true
	m.Update(eventMsg{chat.Event{Kind: chat.TransferProgress, Contact: "bob", Transfer: &end, Message: &sent}})
	if v := view(); strings.Contains(v, "uploading") || strings.Count(v, "📎 big.iso · 100.0 MiB · sent") != 1 {
		t.Fatalf("after the upload:\n%s", v)
	}

	in := chat.Message{ID: 8, Contact: "bob", SentAt: fixedNow, State: chat.Delivered,
		Attachment: &chat.Attachment{ClientID: "c2", FileName: "photo.png", MediaType: "image/png", Size: 2 << 20, State: chat.AttachmentAvailable}}
	cv.appendMsg(in, time.UTC)
	if v := view(); !strings.Contains(v, "📎 photo.png · 2.0 MiB · image/png · ctrl+o or /download to fetch") {
		t.Fatalf("a file waiting:\n%s", v)
	}
	down := chat.Transfer{ClientID: "c2", MessageID: 8, FileName: "photo.png", Size: 2 << 20, Done: 1 << 20, State: chat.AttachmentFetching}
	m.Update(eventMsg{chat.Event{Kind: chat.TransferProgress, Contact: "bob", Transfer: &down}})
	if v := view(); !strings.Contains(v, "photo.png · 2.0 MiB · image/png · downloading 50%") {
		t.Fatalf("the download's line:\n%s", v)
	}
	done := in
	done.Attachment = &chat.Attachment{ClientID: "c2", FileName: "photo.png", MediaType: "image/png", Size: 2 << 20,
		State: chat.AttachmentDownloaded, Path: "/dl/photo.png", Width: 640, Height: 480}
	end2 := down
	end2.Done, end2.State, end2.Ended = down.Size, chat.AttachmentDownloaded, true
	m.Update(eventMsg{chat.Event{Kind: chat.TransferProgress, Contact: "bob", Transfer: &end2, Message: &done}})
	if v := view(); !strings.Contains(v, "photo.png · 2.0 MiB · image/png · 640×480 · saved /dl/photo.png") {
		t.Fatalf("after the download:\n%s", v)
	}
}

// policyBackend is the in-memory backend with an auto-download policy that records
// what it was asked.
type policyBackend struct {
	*memBackend
	asked chan int64
}

func (b policyBackend) MayAutoDownload(ctx context.Context, m chat.Message) bool {
	b.asked <- m.ID
	return true
}

// TestAutoDownloadLimit: a file up to the limit is fetched as it arrives (after the
// backend's policy agreed); a bigger one, one from a message request, a blocked
// contact's or one behind an unaccepted key is not; a negative limit turns it off.
func TestAutoDownloadLimit(t *testing.T) {
	m := newTestMainScreen(t)
	b := policyBackend{m.b.(*memBackend), make(chan int64, 1)}
	m.b = b
	m.c.autoDownloadMax = 1 << 20
	m.contacts = append(m.contacts, chat.Contact{Name: "carol", Request: true}, chat.Contact{Name: "dave", Blocked: true})
	file := func(id int64, from string, size int64) chat.Message {
		return chat.Message{ID: id, Contact: from, Attachment: &chat.Attachment{FileName: "f", Size: size, State: chat.AttachmentAvailable}}
	}
	cmd := m.maybeAutoDownload(file(1, "bob", 1<<20))
	if cmd == nil {
		t.Fatal("a contact's file at the limit is not fetched")
	}
	msg := cmd().(downloadedMsg)
	if got := <-b.asked; got != 1 || !msg.auto || msg.err == nil {
		t.Fatalf("asked about %d, then %+v", got, msg)
	}
	if m.maybeAutoDownload(file(1, "bob", 10)) != nil {
		t.Fatal("a file being fetched is fetched twice")
	}
	m.Update(msg)
	keyPending := file(5, "bob", 10)
	keyPending.KeyPending = true
	for what, f := range map[string]chat.Message{
		"over the limit":         file(2, "bob", 1<<20+1),
		"from a request":         file(3, "carol", 10),
		"from a blocked contact": file(4, "dave", 10),
		"behind a key change":    keyPending,
	} {
		if m.maybeAutoDownload(f) != nil {
			t.Errorf("a file %s is fetched by itself", what)
		}
	}
	m.c.autoDownloadMax = -1
	if m.maybeAutoDownload(file(6, "bob", 1)) != nil {
		t.Fatal("auto-download is off, yet a file is fetched")
	}
}

// Tab in "/file PATH" completes the path in the input (and does not move the focus);
// elsewhere it switches to the contact list.
func TestFileTabCompletes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "holiday photo.jpg"), nil, 0o600)
	m := newTestMainScreen(t)
	m.input.SetValue("/file " + dir + "/hol")
	m.handleKey(keyMsg("tab"))
	if got := m.input.Value(); got != "/file "+dir+"/holiday photo.jpg" || m.focus != focusInput {
		t.Fatalf("after tab: %q (focus %v)", got, m.focus)
	}
	m.input.SetValue("hello")
	m.handleKey(keyMsg("tab"))
	if m.focus != focusContacts {
		t.Fatal("tab outside /file does not switch to the contact list")
	}
}

// Text typed while the contact list has the focus goes to the input, and the focus with
// it (it vanished, and its Enter opened a conversation); j and k still move in the list.
func TestTypingInTheListGoesToTheInput(t *testing.T) {
	m := newTestMainScreen(t)
	m.input.SetValue("")
	m.handleKey(keyMsg("tab"))
	if m.focus != focusContacts {
		t.Fatal("tab did not switch to the contact list")
	}
	m.handleKey(keyMsg("j"))
	if m.focus != focusContacts || m.input.Value() != "" {
		t.Fatalf("j in the list: focus %v, input %q", m.focus, m.input.Value())
	}
	for _, k := range []string{"/", "h", "e", "l", "p"} {
		m.handleKey(keyMsg(k))
	}
	if m.focus != focusInput || m.input.Value() != "/help" {
		t.Fatalf("typed in the list: focus %v, input %q", m.focus, m.input.Value())
	}
	// With another contact highlighted, what is typed is for that one: it opens.
	m = newTestMainScreen(t)
	m.contacts = append(m.contacts, chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	drive(t, m, m.openContact("bob"), "")
	m.handleKey(keyMsg("tab"))
	m.handleKey(keyMsg("down"))
	m.handleKey(keyMsg("h"))
	m.handleKey(keyMsg("i"))
	if m.open != "carol" || m.input.Value() != "hi" {
		t.Fatalf("typed with carol highlighted: open %q, input %q", m.open, m.input.Value())
	}
}

// TestOpenChecksTheFileItHandsOver: what /open hands to the opener is checked when the
// user says yes, not only when the question was asked: a file replaced in between (by a
// script, by a symlink to a program, by another file) is not opened; the opener gets
// the file as an absolute path, so a name cannot read as an option or a URL.
func TestOpenChecksTheFileItHandsOver(t *testing.T) {
	var opened []string
	old, oldFind := startOpener, findOpener
	startOpener = func(opener, path string) error { opened = append(opened, path); return nil }
	findOpener = func(string) error { return nil }
	t.Cleanup(func() { startOpener, findOpener = old, oldFind })

	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("\x7fELF"), 0o700); err != nil {
		t.Fatal(err)
	}
	m := newTestMainScreen(t)
	ask := func(path string) tea.Cmd {
		t.Helper()
		cmd := m.confirmOpen(path)
		if cmd == nil {
			t.Fatalf("%s refused at once: %q", path, m.notice)
		}
		d, ok := cmd().(pushDialogMsg).d.(*confirmDialog)
		if !ok {
			t.Fatal("/open does not ask first")
		}
		return d.action
	}
	for what, swap := range map[string]func(p string){
		"rewritten as a script":       func(p string) { os.WriteFile(p, []byte("#!/bin/sh\nevil\n"), 0o600) },
		"made a symlink to a program": func(p string) { os.Remove(p); os.Symlink(prog, p) },
		"replaced by another file": func(p string) {
			q := p + ".new"
			os.WriteFile(q, []byte("%PDF-1.7"), 0o600)
			os.Rename(q, p)
		},
		"made executable": func(p string) { os.Chmod(p, 0o700) },
		"removed":         func(p string) { os.Remove(p) },
	} {
		p := filepath.Join(dir, strings.ReplaceAll(what, " ", "-")+".pdf")
		if err := os.WriteFile(p, []byte("%PDF-1.7"), 0o600); err != nil {
			t.Fatal(err)
		}
		action := ask(p)
		swap(p)
		done, ok := action().(opDoneMsg)
		if !ok || done.err == nil || len(opened) != 0 {
			t.Errorf("%s after the question: opened %q (%v)", what, opened, done.err)
		}
		opened = nil
	}

	// Untouched, it is opened, by its absolute path even when it was given relative.
	t.Chdir(dir)
	if err := os.WriteFile("-n.pdf", []byte("%PDF-1.7"), 0o600); err != nil {
		t.Fatal(err)
	}
	if done := ask("-n.pdf")().(opDoneMsg); done.err != nil || len(opened) != 1 || opened[0] != filepath.Join(dir, "-n.pdf") {
		t.Fatalf("opened %q (%v), want [%s]", opened, done.err, filepath.Join(dir, "-n.pdf"))
	}
}

// TestOpenerGetsNoSecret: the program /open starts (and whatever it starts) does not
// inherit the passphrase or an invite code from pfschat's environment; the rest of the
// environment it does.
func TestOpenerGetsNoSecret(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(profile.EnvPassphrase, "hunter2-passphrase")
	t.Setenv(profile.EnvInvite, "invite-code-secret")
	fifo := filepath.Join(dir, "env")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no fifo here:", err)
	}
	opener := filepath.Join(dir, "opener")
	if err := os.WriteFile(opener, []byte("#!/bin/sh\nenv > \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := startOpener(opener, fifo); err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(fifo) // blocks until the opener has written its environment
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env), "hunter2-passphrase") || strings.Contains(string(env), "invite-code-secret") {
		t.Errorf("the opener inherited a secret:\n%s", env)
	}
	if !strings.Contains(string(env), "PATH=") {
		t.Errorf("the opener lost the rest of the environment:\n%s", env)
	}
}

// TestFileCommandOfflineSaysItWaits: /file while the relay is not connected says the
// file waits for it (it said "uploading…", then nothing showed the file until the
// relay came back).
func TestFileCommandOfflineSaysItWaits(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = "bob"
	m.convs["bob"] = newConversation("bob")
	m.convs["bob"].loaded = true
	m.conn.Status = chat.Reconnecting
	p := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(p, []byte("%PDF-1.7"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cmd := m.command([]string{"/file", p}); cmd == nil || m.noticeErr {
		t.Fatalf("/file offline: no upload started (notice %q)", m.notice)
	}
	if !strings.Contains(m.notice, "report.pdf") || !strings.Contains(m.notice, "waits for the relay") {
		t.Fatalf("/file offline: notice %q, want it to say the file waits for the relay", m.notice)
	}
}

// TestOpenSaysFirstThatThereIsNoOpener: with no xdg-open installed, /open asked "Open
// … with xdg-open? y/n" and only after y said there was none (a tester): it says so
// instead of asking. And an error notice left from an earlier /open does not stay in
// the status bar while the next question asks about another file.
func TestOpenSaysFirstThatThereIsNoOpener(t *testing.T) {
	oldFind := findOpener
	t.Cleanup(func() { findOpener = oldFind })
	p := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(p, []byte("notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newTestMainScreen(t)

	findOpener = func(string) error { return exec.ErrNotFound }
	if cmd := m.confirmOpen(p); cmd != nil {
		t.Fatalf("no opener installed: /open still asks (%T)", cmd())
	}
	if !m.noticeErr || !strings.Contains(m.notice, "here to open files with") || !strings.Contains(m.notice, p) {
		t.Fatalf("no opener installed: the notice says %q", m.notice)
	}

	findOpener = func(string) error { return nil }
	m.setNotice("will not open setup.exe: it is a program (it is saved at /tmp/setup.exe)", true)
	if cmd := m.confirmOpen(p); cmd == nil {
		t.Fatalf("an opener installed: /open does not ask (%q)", m.notice)
	}
	if m.notice != "" {
		t.Fatalf("the question asked, the status bar still says %q", m.notice)
	}
}

// A download that ends while the conversation's page is on its way (read again after
// /accept, or an older page) shows "saved" once the page arrives, though the page was
// read before the download ended; the page read after shows the store's state anyway.
func TestDownloadEndedWhileThePageLoads(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = "bob"
	cv := newConversation("bob")
	cv.loading = true
	m.convs["bob"] = cv
	waiting := chat.Message{ID: 8, Contact: "bob", SentAt: fixedNow, State: chat.Delivered,
		Attachment: &chat.Attachment{ClientID: "c2", FileName: "note.txt", Size: 10, State: chat.AttachmentAvailable}}
	saved := waiting
	saved.Attachment = &chat.Attachment{ClientID: "c2", FileName: "note.txt", Size: 10, State: chat.AttachmentDownloaded, Path: "/dl/note.txt"}
	end := chat.Transfer{ClientID: "c2", MessageID: 8, FileName: "note.txt", Size: 10, Done: 10, State: chat.AttachmentDownloaded, Ended: true}
	m.Update(eventMsg{chat.Event{Kind: chat.TransferProgress, Contact: "bob", Transfer: &end, Message: &saved}})
	m.Update(historyMsg{contact: "bob", msgs: []chat.Message{waiting}}) // read before the download ended
	if v := ansi.Strip(m.View()); !strings.Contains(v, "📎 note.txt · 10 B · saved /dl/note.txt") {
		t.Fatalf("the file after its page arrived:\n%s", v)
	}
}
