package server

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Real headers as HAProxy ("send-proxy-v2") writes them.
func TestParseProxyHeader(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		src, dst  string
		local     bool
	}{
		{"ipv4", "0d0a0d0a000d0a515549540a 21 11 000c c0000201 c6336402 d431 01bb", "192.0.2.1:54321", "198.51.100.2:443", false},
		{"ipv6", "0d0a0d0a000d0a515549540a 21 21 0024 20010db8000100020000000000000007 20010db80000000000000000000000fe c350 1ed6",
			"[2001:db8:1:2::7]:50000", "[2001:db8::fe]:7894", false},
		{"ipv4 with TLVs (ALPN, unique id)", "0d0a0d0a000d0a515549540a 21 11 0018 c0000201 c6336402 d431 01bb 01 0002 6832 05 0004 01020304",
			"192.0.2.1:54321", "198.51.100.2:443", false},
		{"local health check", "0d0a0d0a000d0a515549540a 20 00 0000", "", "", true},
		{"unspec family", "0d0a0d0a000d0a515549540a 21 00 0000", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mustHex(t, tc.hex)
			r := bytes.NewReader(append(raw, "GET / HTTP/1.1\r\n"...))
			h, err := ParseProxyHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			if h.Local != tc.local {
				t.Fatalf("local %v", h.Local)
			}
			if tc.src == "" {
				if h.Source.IsValid() {
					t.Fatalf("source %v, want none", h.Source)
				}
			} else if h.Source != netip.MustParseAddrPort(tc.src) || h.Destination != netip.MustParseAddrPort(tc.dst) {
				t.Fatalf("got %v -> %v", h.Source, h.Destination)
			}
			if r.Len() != len("GET / HTTP/1.1\r\n") {
				t.Fatalf("parser read %d bytes past the header", len("GET / HTTP/1.1\r\n")-r.Len())
			}
		})
	}
}

func TestParseProxyHeaderRefuses(t *testing.T) {
	for name, h := range map[string]string{
		"empty":            "",
		"v1 text":          hex.EncodeToString([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 54321 443\r\n")),
		"version 1":        "0d0a0d0a000d0a515549540a 11 11 000c c0000201 c6336402 d431 01bb",
		"unknown command":  "0d0a0d0a000d0a515549540a 22 11 000c c0000201 c6336402 d431 01bb",
		"short block":      "0d0a0d0a000d0a515549540a 21 11 000c c0000201",
		"block too small":  "0d0a0d0a000d0a515549540a 21 21 000c c0000201 c6336402 d431 01bb",
		"udp":              "0d0a0d0a000d0a515549540a 21 12 000c c0000201 c6336402 d431 01bb",
		"unknown family":   "0d0a0d0a000d0a515549540a 21 41 000c c0000201 c6336402 d431 01bb",
		"huge block":       "0d0a0d0a000d0a515549540a 21 11 ffff",
		"truncated header": "0d0a0d0a000d0a5155",
	} {
		_, err := ParseProxyHeader(bytes.NewReader(mustHex(t, h)))
		var pe *ProxyHeaderError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProxyHeader) {
			t.Errorf("%s: %v, want a *ProxyHeaderError", name, err)
		}
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	f.Add(mustHex(f, "0d0a0d0a000d0a515549540a 21 11 000c c0000201 c6336402 d431 01bb"))
	f.Add(mustHex(f, "0d0a0d0a000d0a515549540a 21 21 0024 20010db8000100020000000000000007 20010db80000000000000000000000fe c350 1ed6"))
	f.Add(mustHex(f, "0d0a0d0a000d0a515549540a 20 00 0000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ParseProxyHeader(r)
		if err != nil {
			var pe *ProxyHeaderError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// A header is 16 bytes plus its block, never more.
		if used := len(b) - r.Len(); used < 16 || used > 16+maxProxyBlock {
			t.Fatalf("consumed %d bytes", used)
		}
		if h.Local && h.Source.IsValid() {
			t.Fatal("LOCAL header with a source")
		}
	})
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v", got)
		}
	}
	if _, err := ParseTrustedProxies("10.0.0.0/33"); err == nil {
		t.Fatal("bad prefix accepted")
	}
}
