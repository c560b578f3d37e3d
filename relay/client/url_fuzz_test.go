package client

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzRelayURL: a relay URL as the user gives it (a flag, a profile, a node list)
// normalizes to one that normalizes to itself, and CheckURL lets plain ws:// through
// only to loopback; a refusal of ws:// elsewhere is ErrInsecureTransport.
func FuzzRelayURL(f *testing.F) {
	for _, s := range []string{
		"relay.example:7878", "ws://127.0.0.1:7878", "wss://relay.example/v2/ws", "http://localhost", "https://h/",
		"ws://[::1]:1/x", "ws://127.0.0.1.evil.example", "ws://localhost@evil.example/", "a,b , ,wss://c", "",
		"ws://%31%32%37.0.0.1/", "WS://LOCALHOST", "ws://[::ffff:127.0.0.1]/", " wss://x ", "://x", "ws:///path",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, u := range normalizeURLs(raw) {
			if again := NormalizeURL(u); again != u {
				t.Fatalf("%q normalizes to %q, then to %q", raw, u, again)
			}
			err := CheckURL(u, false)
			pu, perr := url.Parse(u)
			if err == nil {
				if perr != nil || pu.Scheme != "wss" && (pu.Scheme != "ws" || !IsLoopback(pu.Hostname())) {
					t.Fatalf("%q: CheckURL passed %q (%v)", raw, u, perr)
				}
				if pu.Scheme == "ws" && strings.Contains(pu.Host, "@") {
					t.Fatalf("%q: CheckURL passed %q", raw, u)
				}
			} else if perr == nil && pu.Scheme == "ws" && !errors.Is(err, ErrInsecureTransport) {
				t.Fatalf("%q: ws:// refused with %v", raw, err)
			}
			if err := CheckURL(u, true); err != nil && perr == nil && (pu.Scheme == "ws" || pu.Scheme == "wss") {
				t.Fatalf("%q: %q refused with --insecure-ws: %v", raw, u, err)
			}
		}
	})
}
