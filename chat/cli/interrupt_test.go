package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// cancelOn is a command's stderr that cancels its context (as Ctrl-C or SIGTERM
// does) once the command has written want: a transfer's progress line.
type cancelOn struct {
	syncBuffer
	want   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.syncBuffer.Write(p)
	if strings.Contains(c.String(), c.want) {
		c.cancel()
	}
	return n, err
}

// transferPeople is alice and bob on one relay, bob with alice as a contact, and a
// file of 16 MiB (many of the relay's chunks) to send; run runs a command of one of
// them, argsOf is the flags that pick that one's profile.
func transferPeople(t *testing.T) (run func(ctx context.Context, stderr *cancelOn, who string, args ...string) (int, string, string), argsOf func(who string) []string, src string, data []byte) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	homes := map[string]string{"alice": t.TempDir(), "bob": t.TempDir()}
	argsOf = func(who string) []string { return []string{"--home", homes[who], "--relay", r.URL} }
	run = func(ctx context.Context, stderr *cancelOn, who string, args ...string) (int, string, string) {
		var out syncBuffer
		if stderr == nil {
			stderr = &cancelOn{cancel: func() {}}
		}
		code := cli.Main(ctx, append(argsOf(who), args...), strings.NewReader(""), &out, stderr)
		return code, out.String(), stderr.String()
	}
	for _, who := range []string{"alice", "bob"} {
		if code, _, errs := run(t.Context(), nil, who, "init", "--name", who); code != 0 {
			t.Fatalf("init %s: %d %s", who, code, errs)
		}
	}
	if code, _, errs := run(t.Context(), nil, "bob", "add", "alice"); code != 0 {
		t.Fatalf("add: %s", errs)
	}
	data = make([]byte, 16<<20)
	rand.Read(data)
	src = filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return run, argsOf, src, data
}

// recvOnce is bob's recv --json: exactly one line, a file saved with data.
func recvOnce(t *testing.T, run func(ctx context.Context, stderr *cancelOn, who string, args ...string) (int, string, string), data []byte, caption string) {
	t.Helper()
	code, out, errs := run(t.Context(), nil, "bob", "recv", "--json", "--download-dir", t.TempDir())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 1 {
		t.Fatalf("recv --json: exit %d, %d lines %q, %q; want the file once", code, len(lines), out, errs)
	}
	var m struct {
		Text string
		File struct{ State, Path string }
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m.Text != caption || m.File.State != "downloaded" {
		t.Fatalf("recv --json: %q (%v)", lines[0], err)
	}
	if got, err := os.ReadFile(m.File.Path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the saved file differs (%v)", err)
	}
}

// A send-file stopped mid-upload (Ctrl-C, SIGTERM) and run again, as a script retries
// a command that failed, finishes that upload: the file is sent once, not twice.
func TestSendFileRerunAfterInterruptSendsOnce(t *testing.T) {
	run, _, src, data := transferPeople(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	code, _, errs := run(ctx, &cancelOn{want: "uploading big.bin: 10%", cancel: cancel}, "alice", "send-file", "bob", src, "--caption", "c")
	if code != 1 || !strings.Contains(errs, "run the same 'pfschat send-file' again") {
		t.Fatalf("interrupted send-file: exit %d, %q; want 1 and what to do", code, errs)
	}
	code, out, errs := run(t.Context(), nil, "alice", "send-file", "bob", src, "--caption", "c")
	if code != 0 || !strings.Contains(out, "sent big.bin (16.0 MiB) to bob") || !strings.Contains(errs, "resuming an earlier upload") ||
		strings.Contains(errs, "uploading big.bin") || strings.Contains(errs, "finished an earlier upload") {
		t.Fatalf("send-file again: exit %d, %q, %q; want the earlier upload finished as this send", code, out, errs)
	}
	recvOnce(t, run, data, "c")
}

// recv --follow stopped while it downloads a file does not print the message (its
// file would read "available" while it is half downloaded) nor mark it read; the next
// recv resumes the download and prints it, once, downloaded. It exits 0, as a
// follower stopped while it waits does.
func TestRecvStoppedMidDownloadPrintsOnce(t *testing.T) {
	run, argsOf, src, data := transferPeople(t)
	if code, _, errs := run(t.Context(), nil, "alice", "send", "bob", "ready"); code != 0 {
		t.Fatalf("send: %s", errs)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &cancelOn{want: "downloading big.bin: 10%", cancel: cancel}
	outR, outW := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		args := append(argsOf("bob"), "recv", "--follow", "--json", "--download-dir", t.TempDir())
		exit <- cli.Main(ctx, args, strings.NewReader(""), outW, stderr)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"text":"ready"`) {
		t.Fatalf("recv --follow printed %q (%v), want the text first", lines.Text(), lines.Err())
	}
	// The follower is past its backlog: the file comes to it as news.
	if code, _, errs := run(t.Context(), nil, "alice", "send-file", "bob", src); code != 0 {
		t.Fatalf("send-file: %s", errs)
	}
	var rest []string
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	if code := <-exit; code != 0 || len(rest) != 0 {
		t.Fatalf("recv --follow stopped mid-download: exit %d, printed %q, %q; want 0 and nothing", code, rest, stderr.String())
	}
	recvOnce(t, run, data, "")
}
