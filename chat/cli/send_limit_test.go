package cli

import (
	"bytes"
	"errors"
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
	t.Setenv(profile.EnvPassphrase, "pw-secret")
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

// Through a running owner (pfschat daemon, the UI) send reads its text as it does
// without one (sendArgs): stdin loses only its one final newline, and a text over the
// limit is refused as a usage error (exit 2) before the owner is asked — never cut to
// fit, never a JSON-RPC error (exit 1).
func TestSendArgsAsWithoutOwner(t *testing.T) {
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
		usage       bool
	}{
		{"one final newline dropped", "hello\n\n", []string{"bob", "-"}, "hello\n", false},
		{"no newline", "hello", []string{"bob", "-"}, "hello", false},
		{"words joined", "", []string{"bob", "hello", "there"}, "hello there", false},
		{"stdin at the limit with its final newline", strings.Repeat("a", chat.MaxTextBytes) + "\n", []string{"bob", "-"}, strings.Repeat("a", chat.MaxTextBytes), false},
		{"stdin over the limit", strings.Repeat("a", chat.MaxTextBytes+1), []string{"bob", "-"}, "", true},
		{"stdin over the limit by a newline of its own", strings.Repeat("a", chat.MaxTextBytes) + "\n\n", []string{"bob", "-"}, "", true},
		{"argument over the limit", "", []string{"bob", strings.Repeat("a", chat.MaxTextBytes+1)}, "", true},
		{"no text", "", []string{"bob"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{stdin: strings.NewReader(tc.stdin)}
			name, text, err := sendArgs(e, tc.args)
			var ue usageErr
			if tc.usage {
				if !errors.As(err, &ue) {
					t.Fatalf("err %v (text of %d bytes), want a usage error", err, len(text))
				}
				return
			}
			if err != nil || name != "bob" || text != tc.want {
				t.Fatalf("sendArgs = %q, %d bytes %q, %v; want bob, %d bytes", name, len(text), trim(text), err, len(tc.want))
			}
		})
	}
}

func trim(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}
