package cli

import (
	"errors"
	"io"
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

// FuzzReadLine: recover reads the recovery code from stdin's first line a byte at a
// time: it takes the line (at most 1 KiB of it) and its line break, and leaves what
// follows (a passphrase on the next line) unread.
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{"", "\n", "ABCD-EFGH\npassphrase\n", "no break", strings.Repeat("x", 1024) + "\nrest", strings.Repeat("y", 1030), "\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := strings.NewReader(in)
		got, err := readLine(r)
		used := len(in) - r.Len()
		line, _, broken := strings.Cut(in, "\n")
		switch {
		case len(line) >= 1024:
			if got != in[:1024] || err != nil || used != 1024 {
				t.Fatalf("%q: %q, %v, read %d bytes", in, got, err, used)
			}
		case broken:
			if got != line || err != nil || used != len(line)+1 {
				t.Fatalf("%q: %q, %v, read %d bytes", in, got, err, used)
			}
		case in == "":
			if got != "" || !errors.Is(err, io.EOF) {
				t.Fatalf("%q: %q, %v", in, got, err)
			}
		default:
			if got != in || err != nil || used != len(in) {
				t.Fatalf("%q: %q, %v, read %d bytes", in, got, err, used)
			}
		}
	})
}
