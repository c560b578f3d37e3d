package cli_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// send-file, then recv --json --download-dir, through the commands a user runs.
func TestSendFileAndRecv(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	homes := map[string]string{"alice": t.TempDir(), "bob": t.TempDir(), "carol": t.TempDir()}
	run := func(who string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		all := append([]string{"--home", homes[who], "--relay", r.URL}, args...)
		code := cli.Main(t.Context(), all, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, who := range []string{"alice", "bob", "carol"} {
		if code, _, errs := run(who, "init", "--name", who); code != 0 {
			t.Fatalf("init %s: %d %s", who, code, errs)
		}
	}
	if code, _, errs := run("bob", "add", "alice"); code != 0 {
		t.Fatalf("add: %s", errs)
	}
	data := make([]byte, 100<<10)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run("alice", "send-file", "bob", src, "--caption", "the report")
	if code != 0 || !strings.Contains(out, "sent report.pdf (100.0 KiB) to bob") {
		t.Fatalf("send-file: exit %d, %q, %q", code, out, errs)
	}
	if !strings.Contains(errs, "uploading report.pdf: 100%") { // not a terminal: plain lines
		t.Fatalf("no progress lines: %q", errs)
	}
	down := t.TempDir()
	code, out, errs = run("bob", "recv", "--json", "--download-dir", down)
	if code != 0 {
		t.Fatalf("recv: exit %d, %q", code, errs)
	}
	var line struct {
		From, Text string
		File       struct {
			Name, State, Path, MediaType string
			Size                         int64
		}
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil {
		t.Fatalf("recv --json: %q: %v", out, err)
	}
	if line.From != "alice" || line.Text != "the report" || line.File.Name != "report.pdf" || line.File.State != "downloaded" ||
		line.File.Size != int64(len(data)) || filepath.Dir(line.File.Path) != down {
		t.Fatalf("recv --json: %+v", line)
	}
	got, err := os.ReadFile(line.File.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("saved file: %v", err)
	}
	// A stranger's file is not fetched by itself: it waits until bob adds carol.
	if code, _, errs := run("carol", "send-file", "bob", src); code != 0 {
		t.Fatalf("carol's send-file: %s", errs)
	}
	code, out, errs = run("bob", "recv", "--download-dir", down)
	if code != 0 || !strings.Contains(out, "not downloaded") || !strings.Contains(errs, "carol is a message request") || !strings.Contains(errs, "'pfschat accept-request carol'") {
		t.Fatalf("a stranger's file: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := run("bob", "add", "carol"); code != 0 {
		t.Fatalf("add carol: %s", errs)
	}
	code, _, errs = run("bob", "recv", "--download-dir", down)
	if code != 0 || !strings.Contains(errs, "downloaded report.pdf from carol") || !strings.Contains(errs, filepath.Join(down, "report (2).pdf")) {
		t.Fatalf("after adding carol: exit %d, %q", code, errs)
	}
	// Usage errors change nothing.
	if code, _, _ := run("alice", "send-file", "bob", filepath.Join(t.TempDir(), "missing")); code != 2 {
		t.Fatalf("a missing file: exit %d, want 2", code)
	}
}
