package cli_test

import (
	"strings"
	"testing"

	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// A stranger's message is marked as a request in recv (text and --json); accept-request
// makes them a contact, and a second accept-request is no failure (exit 0, saying so),
// as a second block or an accept-key of an unchanged key are none.
func TestAcceptRequestFromTheCommandLine(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	w := &keyChangeWalk{t: t, r: relaytest.Start(t), alice: t.TempDir(), bob: t.TempDir()}
	w.must(w.alice, "init", "--name", "alice")
	w.must(w.bob, "init", "--name", "bob")
	w.must(w.alice, "add", "bob")
	w.must(w.alice, "send", "bob", "hello stranger")
	if out := w.must(w.bob, "recv"); !strings.Contains(out, "alice [message request:") || !strings.Contains(out, "hello stranger") {
		t.Fatalf("bob's recv of a stranger's message: %q", out)
	}
	if out := w.must(w.bob, "accept-request", "alice"); !strings.Contains(out, "accepted alice") {
		t.Fatalf("accept-request: %q", out)
	}
	if out := w.must(w.bob, "accept-request", "alice"); !strings.Contains(out, "alice is a contact already") {
		t.Fatalf("a second accept-request: %q", out)
	}
	w.must(w.alice, "send", "bob", "now we know each other")
	got := w.must(w.bob, "recv", "--json")
	if !strings.Contains(got, "now we know each other") || strings.Contains(got, `"request"`) {
		t.Fatalf("bob's recv --json of a contact's message: %q", got)
	}
	if code, _, _ := w.run(w.bob, "accept-request", "carol"); code == 0 {
		t.Fatal("accept-request of someone who never wrote: exit 0")
	}
}
