package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/ratchet"
	"pfschat/relay/relaytest"
)

// `pfschat relay-key` shows the relay and the fingerprint of the pinned key, offline.
func TestRelayKeyCommand(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	home := t.TempDir()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		rc := cli.Main(t.Context(), append([]string{"--home", home, "--relay", r.URL}, args...), strings.NewReader(""), &out, &errOut)
		return rc, out.String(), errOut.String()
	}
	if rc, _, msg := run("init", "--name", "alice"); rc != 0 {
		t.Fatalf("init: exit %d, %s", rc, msg)
	}
	r.Close() // offline: the pin is in the profile
	rc, out, msg := run("relay-key")
	if rc != 0 || !strings.Contains(out, ratchet.Fingerprint(r.Server.RelayKey())) || !strings.Contains(out, r.URL) {
		t.Fatalf("relay-key: exit %d, out %q, err %q; want the URL and %s", rc, out, msg, ratchet.Fingerprint(r.Server.RelayKey()))
	}
	if rc, _, _ := run("relay-key", "extra"); rc != 2 {
		t.Fatalf("relay-key with an argument: exit %d, want 2", rc)
	}
}
