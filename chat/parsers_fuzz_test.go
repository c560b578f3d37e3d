package chat

import (
	"errors"
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
