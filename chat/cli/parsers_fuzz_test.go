package cli

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseNATSURLs: --nats never panics; a refusal is a usage error, and every URL it
// accepts has a NATS scheme, a host and no user information.
func FuzzParseNATSURLs(f *testing.F) {
	for _, s := range []string{
		"nats://a:4222", "nats://a:4222,tls://b:4222 , wss://c/ws", "nats://u:p@a:4222", "http://a",
		"nats://a,,nats://b", "", "nats://", "nats://[::1]:4222", "%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		urls, err := parseNATSURLs(raw)
		if err != nil {
			var ue usageErr
			if !errors.As(err, &ue) {
				t.Fatalf("not a usage error: %T %v", err, err)
			}
			return
		}
		if len(urls) == 0 {
			t.Fatalf("%q: no URLs and no error", raw)
		}
		for _, s := range urls {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" || u.User != nil || s != strings.TrimSpace(s) {
				t.Fatalf("%q: accepted %q", raw, s)
			}
			switch u.Scheme {
			case "nats", "tls", "ws", "wss":
			default:
				t.Fatalf("%q: accepted scheme %q", raw, u.Scheme)
			}
		}
	})
}

// FuzzAutoDownloadMax: --auto-download-mib gives -1 (off) or 1 MiB to 1 TiB.
func FuzzAutoDownloadMax(f *testing.F) {
	for _, s := range []string{"", "0", "10", "1048576", "1048577", "-1", "9223372036854775807", "1e3", " 5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, mib string) {
		n, err := autoDownloadMax(mib)
		if err == nil && n != -1 && (n < 1<<20 || n > 1<<40 || n%(1<<20) != 0) {
			t.Fatalf("%q gives %d", mib, n)
		}
	})
}

// FuzzParseRelayLockRecord: the relay's lock file names only what a relay writes.
func FuzzParseRelayLockRecord(f *testing.F) {
	f.Add(relayLockRecord(42, "pfschat relay"))
	f.Add(relayLockRecord(7, "pfschat relay rotate-key"))
	f.Add([]byte("pid x\nwhat something else\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, what := parseRelayLockRecord(b)
		if pid < 0 || what != "" && what != "pfschat relay" && what != "pfschat relay rotate-key" {
			t.Fatalf("%q gives pid %d, %q", b, pid, what)
		}
	})
}
