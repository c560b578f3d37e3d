package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/chattest"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// Without an owner, every command that needs a relay it cannot reach names the relay's
// address once, the dial's reason in words, and what to do: recv, add, send-file and
// rotate-keys said the address twice ("ws://h:p/v2/ws: dial tcp h:p: connect: …"),
// send and recv --follow not at all.
func TestRelayDownSaysTheAddressOnce(t *testing.T) {
	r, alice, _ := conversedThenDown(t)
	home := alice.Profile.Dir
	host, _, _ := strings.Cut(strings.TrimPrefix(r.URL, "ws://"), "/")
	note := filepath.Join(t.TempDir(), "note.txt")
	chattest.Must(t, os.WriteFile(note, []byte("hello world"), 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"send", "bob", "hi"}, exitQueued, "pfschat send: the relay at " + r.URL + " is unreachable (connection refused); the message is kept in the outbox"},
		{[]string{"recv"}, exitFail, "pfschat recv: cannot reach the relay at " + r.URL + " (connection refused)\nis it running? start one with 'pfschat relay', or pass --relay URL\n"},
		{[]string{"send", "zed", "hi"}, exitFail, "pfschat send: cannot reach the relay at " + r.URL + " (connection refused): zed is not a contact yet, and adding one needs the relay\nis it running?"},
		{[]string{"add", "zed"}, exitFail, "pfschat add: cannot reach the relay at " + r.URL + " (connection refused)\nis it running?"},
		{[]string{"send-file", "bob", note}, exitFail, "pfschat send-file: cannot reach the relay at " + r.URL + " (connection refused)\nis it running?"},
		{[]string{"rotate-keys"}, exitFail, "pfschat rotate-keys: cannot reach the relay at " + r.URL + " (connection refused)\nis it running?"},
	} {
		var out, errb bytes.Buffer
		code := Main(t.Context(), append([]string{"--home", home}, tc.args...), strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) || strings.Count(errb.String(), host) != 1 {
			t.Errorf("%s with the relay down: exit %d, %q; want exit %d, %q, the address once", tc.args[0], code, errb.String(), tc.code, tc.want)
		}
	}

	// recv --follow waits for the relay, and says which.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errb := &lineSignal{want: "waiting for it", seen: make(chan struct{})}
	go func() {
		<-errb.seen
		cancel()
	}()
	Main(ctx, []string{"--home", home, "recv", "--follow"}, strings.NewReader(""), &bytes.Buffer{}, errb)
	errb.mu.Lock()
	said := errb.buf.String()
	errb.mu.Unlock()
	if !strings.Contains(said, "the relay at "+r.URL+" cannot be reached yet (connection refused); waiting for it") || strings.Count(said, host) != 1 {
		t.Errorf("recv --follow with the relay down said %q; want the relay's address once", said)
	}
}

// conversedThenDown is alice and bob after a conversation, both closed, and their
// relay stopped; their profiles' passphrase is in the environment.
func conversedThenDown(t *testing.T) (r *relaytest.Relay, alice, bob *chattest.User) {
	t.Helper()
	r = relaytest.Start(t)
	alice, bob = chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	alice.Close()
	bob.Close()
	r.Close()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	return r, alice, bob
}
