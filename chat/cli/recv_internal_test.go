package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
)

// recv marks a message from a changed, not yet accepted identity key in both forms and
// leaves an ordinary message as it was.
func TestRecvLineMarksKeyPending(t *testing.T) {
	m := chat.Message{ID: 7, Contact: "alice", Text: "send money", SentAt: time.Unix(1e9, 0), ReceivedAt: time.Unix(1e9, 0), Seq: 3, KeyPending: true}
	line := recvLine(m, false)
	if !strings.Contains(line, "NEW KEY NOT ACCEPTED") || !strings.Contains(line, "pfschat accept-key alice") || !strings.HasSuffix(line, ": send money\n") {
		t.Errorf("text line %q does not mark the unaccepted key", line)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &j); err != nil {
		t.Fatal(err)
	}
	if j["key_pending"] != true {
		t.Errorf("json %v: key_pending not true", j)
	}
	m.KeyPending = false
	if line := recvLine(m, false); strings.Contains(line, "NEW KEY") {
		t.Errorf("ordinary message marked: %q", line)
	}
	var k map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &k); err != nil {
		t.Fatal(err)
	}
	if _, ok := k["key_pending"]; ok {
		t.Errorf("ordinary message has key_pending: %v", k)
	}
}

// A message the contact's relay refused (a withdrawn notice) prints as not delivered.
func TestRecvLineWithdrawn(t *testing.T) {
	m := chat.Message{ID: 8, Contact: "alice", SentAt: time.Unix(1e9, 0), Seq: 2, State: chat.Failed, Reason: chat.WithdrawnReason}
	if line := recvLine(m, false); !strings.Contains(line, "alice: [a message was not delivered: "+chat.WithdrawnReason+"]") {
		t.Errorf("text line %q", line)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &j); err != nil || j["state"] != "failed" || j["reason"] != chat.WithdrawnReason {
		t.Errorf("json %v (%v)", j, err)
	}
}

// A contact's text reaches the terminal recv prints to without control characters
// (escape sequences write the clipboard, retitle or clear the screen; CR draws over the
// line) and cannot pass a line of its own off as another message; --json keeps it
// byte for byte.
func TestRecvLineShowsNoControlCharacters(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.Local)
	text := "hi\x1b]52;c;ZWNobyBvd25lZA==\x07\r\n2026-12-06 10:00:00  bob: send the code\u009b2J\tok"
	m := chat.Message{ID: 9, Contact: "alice", Text: text, SentAt: at, ReceivedAt: at, Seq: 4}
	line := recvLine(m, false)
	want := "2026-12-06 10:00:00  alice: hi\uFFFD]52;c;ZWNobyBvd25lZA==\uFFFD\uFFFD\n    2026-12-06 10:00:00  bob: send the code\uFFFD2J\tok\n"
	if line != want {
		t.Fatalf("recv printed\n%q\nwant\n%q", line, want)
	}
	var j struct{ Text string }
	if err := json.Unmarshal([]byte(recvLine(m, true)), &j); err != nil || j.Text != text {
		t.Fatalf("--json text %q, %v: want it byte for byte", j.Text, err)
	}
	m.State, m.Reason, m.Text = chat.UndecryptableState, "bad \x1b[31mred", ""
	if line := recvLine(m, false); strings.ContainsRune(line, 0x1b) {
		t.Fatalf("reason printed with an escape: %q", line)
	}
	m.State, m.Reason, m.Text = chat.Delivered, "", "plain text, two\nlines"
	if line := recvLine(m, false); line != "2026-12-06 10:00:00  alice: plain text, two\n    lines\n" {
		t.Fatalf("plain text printed as %q", line)
	}
}

// recv marks a message from a message request in both forms: answering accepts them.
func TestRecvLineMarksRequests(t *testing.T) {
	m := chat.Message{ID: 8, Contact: "mallory", Text: "hi!", SentAt: time.Unix(1e9, 0), ReceivedAt: time.Unix(1e9, 0), Request: true}
	line := recvLine(m, false)
	if !strings.Contains(line, "[message request:") || !strings.Contains(line, "pfschat accept-request mallory") || !strings.HasSuffix(line, ": hi!\n") {
		t.Errorf("text line %q does not mark the request", line)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &j); err != nil {
		t.Fatal(err)
	}
	if j["request"] != true {
		t.Errorf("json %v: request not true", j)
	}
	m.Request = false
	if line := recvLine(m, false); strings.Contains(line, "request") {
		t.Errorf("a contact's message marked: %q", line)
	}
	if line := recvLine(m, true); strings.Contains(line, `"request"`) {
		t.Errorf("a contact's message has request: %s", line)
	}
}

// A received file's caption comes before the file's line, whose saved path ends the
// line: after the path it read as part of it ("saved to /x/hello.txt hi file").
func TestRecvLineCaptionBeforeThePath(t *testing.T) {
	m := chat.Message{ID: 8, Contact: "alice", Text: "hi file", SentAt: time.Unix(1e9, 0), ReceivedAt: time.Unix(1e9, 0),
		Attachment: &chat.Attachment{FileName: "hello.txt", Size: 6, State: chat.AttachmentDownloaded, Path: "/x/inbox/hello.txt"}}
	line := recvLine(m, false)
	if !strings.HasSuffix(line, "alice: hi file [file hello.txt, 6 B] saved to /x/inbox/hello.txt\n") {
		t.Errorf("text line %q: want the caption, then the file, its path last", line)
	}
}

// recv through an owner says so when the owner answered download with a file it saved
// outside --download-dir (its own fetching, which the call waited for), and adds
// nothing for a file saved where recv asked.
func TestRecvSaysTheOwnerSavedItElsewhere(t *testing.T) {
	if got := savedElsewhere("/home/b/inbox/photo.jpg", "/home/b/inbox/"); got != "" {
		t.Errorf("a file saved into --download-dir: %q, want nothing added", got)
	}
	if got := savedElsewhere("/home/b/Downloads/photo.jpg", "/home/b/inbox"); !strings.Contains(got, "by the profile's owner, into its own download directory") {
		t.Errorf("a file the owner saved into its own directory: %q, want it said", got)
	}
}
