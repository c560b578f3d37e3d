package cli

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/profile"
)

// send refuses a text over the one limit (chat.MaxTextBytes) as a usage error (exit 2),
// before anything is opened, and never cuts it; exactly the limit passes that check.
func TestSendRefusesTextOverTheLimit(t *testing.T) {
	t.Setenv(profile.EnvPassphrase, "pw")
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        int
		stderr      string
	}{
		{"argument", "", []string{"bob", strings.Repeat("a", chat.MaxTextBytes+1)}, exitUsage, "at most " + strconv.Itoa(chat.MaxTextBytes) + " bytes"},
		{"stdin", strings.Repeat("a", chat.MaxTextBytes+1), []string{"bob", "-"}, exitUsage, "at most"},
		{"stdin, newline inside the limit's end", strings.Repeat("a", chat.MaxTextBytes) + "\nmore", []string{"bob", "-"}, exitUsage, "at most"},
		{"stdin at the limit with its final newline", strings.Repeat("a", chat.MaxTextBytes) + "\n", []string{"bob", "-"}, exitFail, "no identity yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			var out, errb bytes.Buffer
			args := append([]string{"send", "--home", home}, tc.args...)
			if code := Main(t.Context(), args, strings.NewReader(tc.stdin), &out, &errb); code != tc.want {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.want, errb.String())
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("stderr %q does not say %q", errb.String(), tc.stderr)
			}
			if ents, _ := os.ReadDir(home); len(ents) != 0 {
				t.Fatalf("the home directory was touched: %v", ents)
			}
		})
	}
}
