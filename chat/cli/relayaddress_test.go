package cli_test

import (
	"strings"
	"testing"

	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// TestUnreachableRelaySaysItsAddressOnce: a command that cannot reach its relay named
// the relay's address twice ("cannot reach the relay: ws://…/v2/ws: dialing
// ws://…/v2/ws: dial tcp …"); chat.Sentence says an address once, as the UI did.
func TestUnreachableRelaySaysItsAddressOnce(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	gone := relaytest.Start(t)
	gone.Close()
	code, _, errb := runInRelay(t, gone.URL, t.TempDir(), "init", "--name", "ann")
	first, _, _ := strings.Cut(errb, "\n")
	host := strings.TrimPrefix(strings.TrimPrefix(gone.URL, "ws://"), "wss://")
	if code != 1 || !strings.Contains(first, "cannot reach the relay") || strings.Count(first, "://"+host) != 1 {
		t.Fatalf("init against a relay that is gone: exit %d, %q; want exit 1 and the relay's address once", code, first)
	}
}
