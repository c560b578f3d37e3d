package cli_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// The identity walk from the command line: bob resets his identity; alice sends him
// two texts before she learns of it (he shows placeholders); the recv that learns of
// the change from his retry requests says so on stderr, though it prints no message;
// accept-key sends the two texts again before it exits, and bob's next recv prints
// each once, with its placeholder's id, and nothing else.
func TestAcceptKeyFromTheCommandLine(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	alice, bob := t.TempDir(), t.TempDir()
	run := func(home string, args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		rc := cli.Main(t.Context(), append([]string{"--home", home, "--relay", r.URL}, args...), strings.NewReader(""), &out, &errOut)
		return rc, out.String(), errOut.String()
	}
	must := func(home string, args ...string) string {
		t.Helper()
		rc, out, msg := run(home, args...)
		if rc != 0 {
			t.Fatalf("%v: exit %d, out %q, err %q", args, rc, out, msg)
		}
		return out
	}
	type line struct {
		ID     int64  `json:"id"`
		From   string `json:"from"`
		Text   string `json:"text"`
		State  string `json:"state"`
		Reason string `json:"reason"`
	}
	recv := func(home string) []line {
		t.Helper()
		var got []line
		for _, l := range strings.Split(strings.TrimSpace(must(home, "recv", "--json")), "\n") {
			if l == "" {
				continue
			}
			var m line
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("recv --json printed %q: %v", l, err)
			}
			got = append(got, m)
		}
		return got
	}
	must(alice, "init", "--name", "alice")
	must(bob, "init", "--name", "bob")
	must(alice, "add", "bob")
	must(bob, "add", "alice")
	must(alice, "send", "bob", "hello")
	if got := recv(bob); len(got) != 1 || got[0].Text != "hello" {
		t.Fatalf("bob's first recv: %+v", got)
	}
	must(bob, "reset-identity", "--yes")
	must(alice, "send", "bob", "while you were away")
	must(alice, "send", "bob", "and this too")
	placeholders := recv(bob)
	if len(placeholders) != 2 || placeholders[0].State != "undecryptable" || placeholders[1].State != "undecryptable" {
		t.Fatalf("bob's recv after the reset: %+v", placeholders)
	}

	rc, out, msg := run(alice, "recv")
	if rc != 0 || out != "" || !strings.Contains(msg, "bob's identity key changed") || !strings.Contains(msg, "pfschat accept-key bob") {
		t.Fatalf("alice's recv that learns of bob's new key: exit %d, out %q, err %q", rc, out, msg)
	}
	out = must(alice, "accept-key", "bob")
	if !strings.Contains(out, "accepted bob's new key") {
		t.Fatalf("accept-key: %q", out)
	}

	got := recv(bob)
	if len(got) != 2 || got[0].ID != placeholders[0].ID || got[0].Text != "while you were away" || got[0].State != "" ||
		got[1].ID != placeholders[1].ID || got[1].Text != "and this too" || got[1].State != "" {
		t.Fatalf("bob's recv after alice accepted his key: %+v, placeholders %+v", got, placeholders)
	}
	if got := recv(bob); len(got) != 0 {
		t.Fatalf("bob's next recv printed again: %+v", got)
	}
	if rc, _, msg := run(alice, "recv"); rc != 0 || strings.Contains(msg, "identity key changed") {
		t.Fatalf("alice's recv after accepting: exit %d, err %q", rc, msg)
	}
}
