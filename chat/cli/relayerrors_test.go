package cli_test

import (
	"strings"
	"testing"

	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// "is it running? start one with 'pfschat relay'" is asked only of a relay that could
// not be reached at all; a relay that answered and refused, a URL refused before any
// dial and a TLS mismatch each say what they are.
func TestRelayErrorsSayWhatHappened(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	r := relaytest.Start(t)
	home := t.TempDir()
	initIn(t, r, home, "carol")
	if code, out, errb := runIn(t, r, home, "delete-account", "--yes"); code != 0 {
		t.Fatalf("delete-account: exit %d, %q %q", code, out, errb)
	}
	// The relay runs, and no longer knows carol's card.
	code, _, errb := runIn(t, r, home, "recv")
	if code != 1 || !strings.Contains(errb, "the relay does not know this profile's card") ||
		!strings.Contains(errb, "the account was deleted") || !strings.Contains(errb, "pfschat --home NEW_DIR init --name NAME") ||
		strings.Contains(errb, "is it running") || strings.Contains(errb, "cannot reach") {
		t.Errorf("recv after delete-account: exit %d, %q", code, errb)
	}

	cases := []struct {
		name, relay string
		want        []string
	}{
		{"ws:// to a host not on loopback", "ws://192.0.2.1:7878",
			[]string{"pfschat init: not connecting to the relay: ws://192.0.2.1:7878/v2/ws: plain ws:// is only allowed to loopback"}},
		{"wss:// to a relay without TLS", "wss://" + strings.TrimPrefix(r.URL, "ws://"),
			[]string{"the relay does not speak TLS on that port", "try " + r.URL + " "}},
	}
	// The opposite mistake: ws:// to a relay serving TLS on that port.
	rt := relaytest.StartWith(t, relaytest.Options{TLS: true})
	hostPort := strings.TrimSuffix(strings.TrimPrefix(rt.URL, "wss://"), "/v2/ws")
	cases = append(cases, struct {
		name, relay string
		want        []string
	}{"ws:// to a relay with TLS", "ws://" + hostPort,
		[]string{"400 Bad Request", "the relay speaks TLS on that port: try wss://" + hostPort + "\n"}})
	for _, tc := range cases {
		var dir = t.TempDir()
		code, _, errb := runInRelay(t, tc.relay, dir, "init", "--name", "dave")
		if code != 1 || strings.Contains(errb, "is it running") || strings.Contains(errb, "start one with") {
			t.Errorf("%s: exit %d, %q", tc.name, code, errb)
		}
		for _, w := range tc.want {
			if !strings.Contains(errb, w) {
				t.Errorf("%s: %q does not say %q", tc.name, errb, w)
			}
		}
	}

	// Nothing listens: now it is the question to ask.
	r.Close()
	code, _, errb = runInRelay(t, r.URL, t.TempDir(), "init", "--name", "dave")
	if code != 1 || !strings.Contains(errb, "connection refused") || !strings.Contains(errb, "is it running? start one with 'pfschat relay'") {
		t.Errorf("init with no relay listening: exit %d, %q", code, errb)
	}
}
