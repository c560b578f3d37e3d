package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestVersionFlag: `pfschat --version` (and -version) prints the version like `pfschat
// version`, exit 0, without opening a profile or starting the UI.
func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--home", t.TempDir(), "--version"}} {
		var out, errb bytes.Buffer
		if code := Main(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitOK {
			t.Errorf("%q: exit %d, want 0; stderr %q", args, code, errb.String())
		}
		if !strings.HasPrefix(out.String(), "pfschat ") || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("%q: stdout %q, want one line \"pfschat VERSION\"", args, out.String())
		}
	}
}
