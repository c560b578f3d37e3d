package cli

import (
	"bytes"
	"strings"
	"testing"
)

// mainOut runs pfschat with args and returns its exit code, stdout and stderr.
func mainOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(t.Context(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// The UI's own flag mistakes say what is wrong, as a subcommand's do (it printed the
// usage line alone), and the top-level help lists the UI's flags and where --relay's
// default comes from.
func TestUIFlagMistakesAndHelp(t *testing.T) {
	for args, want := range map[string]string{
		"--bogus": "pfschat: flag provided but not defined: -bogus",
		"--open":  "pfschat: flag needs an argument: -open",
	} {
		code, _, errs := mainOut(t, args)
		if code != exitUsage || !strings.Contains(errs, want) {
			t.Errorf("pfschat %s: exit %d, stderr %q; want 2 and %q", args, code, errs, want)
		}
	}
	code, out, _ := mainOut(t, "--help")
	for _, want := range []string{"--open NAME", "--no-bell", "--auto-download-mib N", "$PFSCHAT_RELAY, else the one the\n              profile remembers"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("pfschat --help: exit %d, want it to list %q:\n%s", code, want, out)
		}
	}
}
