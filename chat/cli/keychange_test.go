package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// keyChangeWalk is the identity walk from the command line up to accept-key: bob
// resets his identity; alice sends him two texts before she learns of it (he shows
// placeholders, which it returns); the recv that learns of the change from his retry
// requests says so on stderr, though it prints no message.
type keyChangeWalk struct {
	t            *testing.T
	r            *relaytest.Relay
	alice, bob   string
	placeholders []recvLine
}

type recvLine struct {
	ID     int64  `json:"id"`
	From   string `json:"from"`
	Text   string `json:"text"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

func (w *keyChangeWalk) run(home string, args ...string) (int, string, string) {
	w.t.Helper()
	var out, errOut bytes.Buffer
	rc := cli.Main(w.t.Context(), append([]string{"--home", home, "--relay", w.r.URL}, args...), strings.NewReader(""), &out, &errOut)
	return rc, out.String(), errOut.String()
}

func (w *keyChangeWalk) must(home string, args ...string) string {
	w.t.Helper()
	rc, out, msg := w.run(home, args...)
	if rc != 0 {
		w.t.Fatalf("%v: exit %d, out %q, err %q", args, rc, out, msg)
	}
	return out
}

func (w *keyChangeWalk) recv(home string) []recvLine {
	w.t.Helper()
	var got []recvLine
	for _, l := range strings.Split(strings.TrimSpace(w.must(home, "recv", "--json")), "\n") {
		if l == "" {
			continue
		}
		var m recvLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			w.t.Fatalf("recv --json printed %q: %v", l, err)
		}
		got = append(got, m)
	}
	return got
}

func startKeyChangeWalk(t *testing.T) *keyChangeWalk {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	w := &keyChangeWalk{t: t, r: relaytest.Start(t), alice: t.TempDir(), bob: t.TempDir()}
	w.must(w.alice, "init", "--name", "alice")
	w.must(w.bob, "init", "--name", "bob")
	w.must(w.alice, "add", "bob")
	w.must(w.bob, "add", "alice")
	w.must(w.alice, "send", "bob", "hello")
	if got := w.recv(w.bob); len(got) != 1 || got[0].Text != "hello" {
		t.Fatalf("bob's first recv: %+v", got)
	}
	// alice takes bob's delivery receipt: her session with him is answered, so her next
	// messages no longer carry its first header (which names bob's card, and would
	// make them count as sent to his previous key instead of two placeholders).
	w.must(w.alice, "recv")
	w.must(w.bob, "reset-identity", "--yes")
	w.must(w.alice, "send", "bob", "while you were away")
	w.must(w.alice, "send", "bob", "and this too")
	w.placeholders = w.recv(w.bob)
	if len(w.placeholders) != 2 || w.placeholders[0].State != "undecryptable" || w.placeholders[1].State != "undecryptable" {
		t.Fatalf("bob's recv after the reset: %+v", w.placeholders)
	}
	// The placeholders say the message was asked for again, and give no advice
	// against it ("they may need to reset the session": seen in the walk).
	for _, p := range w.placeholders {
		if !strings.HasSuffix(p.Reason, "; asked for it again") || strings.Contains(p.Reason, "reset") {
			t.Fatalf("bob's placeholder: %+v", p)
		}
	}
	rc, out, msg := w.run(w.alice, "recv")
	if rc != 0 || out != "" || !strings.Contains(msg, "bob's identity key changed") || !strings.Contains(msg, "pfschat accept-key bob") {
		t.Fatalf("alice's recv that learns of bob's new key: exit %d, out %q, err %q", rc, out, msg)
	}
	return w
}

// bobGetsBothAgain: bob's recv prints each of the two texts once, with its
// placeholder's id, and nothing else; alice is no longer warned.
func (w *keyChangeWalk) bobGetsBothAgain() {
	w.t.Helper()
	got := w.recv(w.bob)
	ph := w.placeholders
	if len(got) != 2 || got[0].ID != ph[0].ID || got[0].Text != "while you were away" || got[0].State != "" ||
		got[1].ID != ph[1].ID || got[1].Text != "and this too" || got[1].State != "" {
		w.t.Fatalf("bob's recv after alice accepted his key: %+v, placeholders %+v", got, ph)
	}
	if got := w.recv(w.bob); len(got) != 0 {
		w.t.Fatalf("bob's next recv printed again: %+v", got)
	}
	if rc, _, msg := w.run(w.alice, "recv"); rc != 0 || strings.Contains(msg, "identity key changed") {
		w.t.Fatalf("alice's recv after accepting: exit %d, err %q", rc, msg)
	}
}

// accept-key sends the two texts again before it exits: nothing else of alice's runs
// before bob's recv.
func TestAcceptKeyFromTheCommandLine(t *testing.T) {
	w := startKeyChangeWalk(t)
	if out := w.must(w.alice, "accept-key", "bob"); !strings.Contains(out, "accepted bob's new key") {
		t.Fatalf("accept-key: %q", out)
	}
	w.bobGetsBothAgain()
}

// With the relay down, accept-key accepts the key and says that the texts wait for
// the next connection, which sends them.
func TestAcceptKeyWithTheRelayDown(t *testing.T) {
	w := startKeyChangeWalk(t)
	w.r.Close()
	rc, out, msg := w.run(w.alice, "accept-key", "bob")
	if rc != 0 || !strings.Contains(out, "accepted bob's new key") || !strings.Contains(msg, "the relay cannot be reached") ||
		!strings.Contains(msg, "goes out the next time pfschat connects") {
		t.Fatalf("accept-key with the relay down: exit %d, out %q, err %q", rc, out, msg)
	}
	w.r.StartAgain(t)
	if rc, _, msg := w.run(w.alice, "recv"); rc != 0 || strings.Contains(msg, "identity key changed") {
		t.Fatalf("alice's next recv: exit %d, err %q", rc, msg)
	}
	w.bobGetsBothAgain()
}

// reject-key keeps the key alice trusted: her next recv no longer warns, and sending to
// bob works again (to his old key); a second reject-key has nothing to reject.
func TestRejectKeyFromTheCommandLine(t *testing.T) {
	w := startKeyChangeWalk(t)
	if out := w.must(w.alice, "reject-key", "bob"); !strings.Contains(out, "kept the key you trusted for bob") {
		t.Fatalf("reject-key: %q", out)
	}
	if out := w.must(w.alice, "reject-key", "bob"); !strings.Contains(out, "nothing to reject") {
		t.Fatalf("a second reject-key: %q", out)
	}
	if out := w.must(w.alice, "contacts"); !strings.Contains(out, "a new key you rejected") || strings.Contains(out, "KEY CHANGED") {
		t.Fatalf("contacts after reject-key: %q", out)
	}
	if out := w.must(w.alice, "contacts", "--json"); !strings.Contains(out, `"key_rejected":true`) || !strings.Contains(out, `"key_changed":false`) {
		t.Fatalf("contacts --json after reject-key: %q", out)
	}
	if rc, _, msg := w.run(w.alice, "send", "bob", "to the key I trust"); rc != 0 || strings.Contains(msg, "identity key changed") {
		t.Fatalf("send after reject-key: exit %d, err %q", rc, msg)
	}
	if rc, _, msg := w.run(w.alice, "recv"); rc != 0 || strings.Contains(msg, "identity key changed") {
		t.Fatalf("alice's recv after reject-key: exit %d, err %q", rc, msg)
	}
}

// reject-key with no session left with the key alice trusted (an earlier
// reset-session): the relay holds prekeys only for bob's new key, which she rejected,
// so nothing can go to him; send says so and what would change it, and sends nothing.
func TestSendAfterRejectKeyWithoutASession(t *testing.T) {
	w := startKeyChangeWalk(t)
	w.must(w.alice, "reset-session", "bob")
	out := w.must(w.alice, "reject-key", "bob")
	if !strings.Contains(out, "kept the key you trusted for bob") || !strings.Contains(out, "while a session with it lasts") {
		t.Fatalf("reject-key: %q", out)
	}
	rc, out, msg := w.run(w.alice, "send", "bob", "to the key I trust")
	if rc != 1 || out != "" ||
		!strings.Contains(msg, "pfschat send: the relay holds prekeys only for bob's new key, which you rejected, and there is no session with the key you trusted: nothing can be sent to bob") ||
		!strings.Contains(msg, "pfschat accept-key bob") || strings.Contains(msg, "failed verification") || strings.Contains(msg, "belongs to another card") {
		t.Fatalf("send after reject-key without a session: exit %d, out %q, err %q", rc, out, msg)
	}
	if got := w.recv(w.bob); len(got) != 0 {
		t.Fatalf("bob received %+v", got)
	}

	// The same through a daemon that owns alice's profile: the daemon answers
	// only_rejected_key (not internal_error), and send says the same sentence.
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var derr bytes.Buffer
	go func() {
		done <- cli.Main(ctx, []string{"--home", w.alice, "--relay", w.r.URL, "daemon"}, strings.NewReader(""), pw, &derr)
		pw.Close()
	}()
	if line, err := bufio.NewReader(pr).ReadString('\n'); !strings.HasPrefix(line, "pfschat daemon: serving alice on ") {
		t.Fatalf("daemon: %q, %v; %s", line, err, derr.String())
	}
	go io.Copy(io.Discard, pr)
	rc, out, viaOwner := w.run(w.alice, "send", "bob", "to the key I trust")
	if rc != 1 || out != "" || viaOwner != msg {
		t.Fatalf("send through the daemon: exit %d, out %q, err %q\nwant as without it: %q", rc, out, viaOwner, msg)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("daemon exit %d: %s", code, derr.String())
	}
}
