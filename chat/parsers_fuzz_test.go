package chat

import (
	"errors"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// windowsDeviceName matches a name Windows takes for a device, not a file.
var windowsDeviceName = regexp.MustCompile(`^(?i:con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³]|conin\$|conout\$) *([.:]|$)`)

// FuzzSafeFileName: a sender chooses an attachment's file name; what SafeFileName
// makes of it is one plain, visible name in the downloads directory, and stays so
// when cleaned again.
func FuzzSafeFileName(f *testing.F) {
	for _, s := range []string{
		"../../etc/passwd", ".bashrc", "..", "", "report\x1b[31m.pdf", "evil\u202egnp.exe",
		"a\\b", "-rf", "trailing. . ", "photo.jpg", "résumé 2026.odt", "\xff\xfe.txt",
		"new\nline.txt", "C:\\Windows\\system32.dll", "invoice\u3164.pdf", "a\u034fb", "x\ufe0f.png",
		strings.Repeat("x", 300) + ".pdf",
		strings.Repeat("x", 199) + " y.pdf",
		strings.Repeat("é", 150) + ".verylongextension1",
		strings.Repeat("a", 198) + ". .b",
		"con.txt", "nul .txt", "LPT1.log", "CONOUT$", "com\u00b2", "con" + strings.Repeat(" ", 300) + "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s := SafeFileName(name)
		switch {
		case s == "" || s == "." || s == "..":
			t.Fatalf("SafeFileName(%q) = %q", name, s)
		case !utf8.ValidString(s):
			t.Fatalf("SafeFileName(%q) = %q: not UTF-8", name, s)
		case len(s) > maxSavedName:
			t.Fatalf("SafeFileName(%q): %d bytes", name, len(s))
		case strings.ContainsAny(s, "/\\\x00"), filepath.Base(s) != s:
			t.Fatalf("SafeFileName(%q) = %q: a path", name, s)
		case strings.ContainsAny(s, `:*?"<>|`):
			t.Fatalf("SafeFileName(%q) = %q: a character Windows refuses in a name", name, s)
		case strings.ContainsFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
		}):
			t.Fatalf("SafeFileName(%q) = %q: control, format or other invisible characters", name, s)
		case strings.IndexAny(s[:1], ". -") == 0:
			t.Fatalf("SafeFileName(%q) = %q: leading dot, space or dash", name, s)
		case strings.IndexAny(s[len(s)-1:], ". ") == 0:
			t.Fatalf("SafeFileName(%q) = %q: trailing dot or space", name, s)
		case windowsDeviceName.MatchString(s):
			t.Fatalf("SafeFileName(%q) = %q: a Windows device name", name, s)
		}
		if again := SafeFileName(s); again != s {
			t.Fatalf("SafeFileName(%q) = %q, cleaned again %q", name, s, again)
		}
	})
}

// FuzzParseSafetyNumber: digits from a daemon client parse only as 60 ASCII digits,
// and a parsed number prints digits that parse to the same number.
func FuzzParseSafetyNumber(f *testing.F) {
	f.Add(strings.Repeat("0123456789", 6))
	f.Add("12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890")
	f.Add(strings.Repeat("1", 59))
	f.Add(strings.Repeat("١", 60)) // Arabic-Indic digits are not ASCII digits
	f.Add("")
	f.Fuzz(func(t *testing.T, digits string) {
		sn, err := ParseSafetyNumber("bob", "c1", false, digits)
		if err != nil {
			if !errors.Is(err, ErrBadSafetyNumber) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		d := strings.Join(sn.Groups(), "")
		if len(d) != 60 || strings.Trim(d, "0123456789") != "" {
			t.Fatalf("ParseSafetyNumber(%q) gives digits %q", digits, d)
		}
		again, err := ParseSafetyNumber("bob", "c1", false, sn.Digits())
		if err != nil || again.Digits() != sn.Digits() || !sn.Equal(digits) {
			t.Fatalf("round trip of %q: %q, %v", digits, again.Digits(), err)
		}
	})
}

// FuzzNormalizeRelayURL: the relay URL a user types at onboarding or passes as
// --relay (one URL, or several nodes' separated by commas) is refused, or becomes a
// list of distinct ws:// or wss:// URLs with a host that normalizes to itself (a
// profile stores it and normalizes it again on each open).
func FuzzNormalizeRelayURL(f *testing.F) {
	for _, s := range []string{
		"", "ws://127.0.0.1:7878", "wss://relay.example", "wss://a/v2/ws, wss://b", "wss://a,wss://a/v2/ws",
		"127.0.0.1:7878", "http://x", "wss://", "wss://a,,wss://b", "wss://[::1", "ws://u:p@h/p?q#f", " wss://h/ ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := NormalizeRelayURL(raw)
		if err != nil {
			return
		}
		parts := strings.Split(out, ",")
		seen := map[string]bool{}
		for _, p := range parts {
			u, err := url.Parse(p)
			if err != nil || u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "" || seen[p] {
				t.Fatalf("%q normalizes to %q, with %q (%v)", raw, out, p, err)
			}
			seen[p] = true
		}
		if again, err := NormalizeRelayURL(out); err != nil || again != out {
			t.Fatalf("%q normalizes to %q, then to %q, %v", raw, out, again, err)
		}
	})
}
