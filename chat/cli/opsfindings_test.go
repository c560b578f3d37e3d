package cli

import (
	"bytes"
	"net"
	"os"
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

// A bad flag value is a usage mistake (exit 2) everywhere, --log-level's too (it
// exited 1); a duration without its unit says one is needed, naming the flag as the
// README does (flag's own words were "-login-timeout: parse error").
func TestBadFlagValuesSayWhatIsWanted(t *testing.T) {
	db := t.TempDir() + "/relay.db"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "--log-level", "verbose"}, `--log-level "verbose": want debug, info, warn or error`},
		{[]string{"relay", "--login-timeout", "10"}, `invalid value "10" for flag --login-timeout: want a duration with its unit, such as 10s`},
		{[]string{"relay", "invite", "--db", db, "--ttl", "5"}, `invalid value "5" for flag --ttl: want a duration with its unit, such as 10s`},
	} {
		code, _, errs := mainOut(t, tc.args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("pfschat %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

// A bad relay key points to 'pfschat relay new-key-file' as the README does (not to
// xxd), and a missing key file is said once, with the command that makes one (it was
// "reading the relay key: relay key: stat …: no such file or directory").
func TestRelayKeyErrorsPointToNewKeyFile(t *testing.T) {
	db := t.TempDir() + "/relay.db"
	t.Setenv("PFSCHAT_RELAY_KEY", "abc")
	code, _, errs := mainOut(t, "relay", "--db", db, "--addr", "127.0.0.1:0")
	if code != exitFail || !strings.Contains(errs, "$PFSCHAT_RELAY_KEY: want 64 hex digits") || !strings.Contains(errs, "pfschat relay new-key-file FILE") ||
		strings.Contains(errs, "xxd") {
		t.Errorf("PFSCHAT_RELAY_KEY=abc: exit %d, %q", code, errs)
	}
	t.Setenv("PFSCHAT_RELAY_KEY", "")
	code, _, errs = mainOut(t, "relay", "--db", db, "--addr", "127.0.0.1:0", "--relay-key-file", "/nonexistent.key")
	if code != exitFail || strings.Count(errs, "relay key") != 1 || !strings.Contains(errs, "--relay-key-file /nonexistent.key does not exist") ||
		!strings.Contains(errs, "pfschat relay new-key-file /nonexistent.key") {
		t.Errorf("--relay-key-file /nonexistent.key: exit %d, %q", code, errs)
	}
}

// relay backup DEST --db X: the flag after DEST is said to go before it (it said
// "needs one argument, the file to write" though one was given).
func TestRelayBackupFlagsAfterDest(t *testing.T) {
	dest := t.TempDir() + "/copy.db"
	code, _, errs := mainOut(t, "relay", "backup", dest, "--db", "x.db")
	if code != exitUsage || !strings.Contains(errs, "flags go before DEST: pfschat relay backup --db x.db "+dest) {
		t.Errorf("relay backup DEST --db X: exit %d, %q", code, errs)
	}
}

// relay --log DIR/FILE makes a missing DIR, owner-only, as --db does (it failed with
// "no such file or directory" and no advice).
func TestRelayLogMakesItsDirectory(t *testing.T) {
	dir := t.TempDir()
	logDir := dir + "/logs/relay"
	// A bad relay key stops the start after the log is opened, before anything listens.
	t.Setenv("PFSCHAT_RELAY_KEY", "abc")
	_, _, errs := mainOut(t, "relay", "--db", dir+"/relay.db", "--addr", "127.0.0.1:0", "--log", logDir+"/relay.log")
	if strings.Contains(errs, "log") {
		t.Errorf("relay --log into a missing directory: %q", errs)
	}
	fi, err := os.Stat(logDir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("the log's directory: %v, %v; want it made, mode 0700", fi, err)
	}
}

// --admin-addr equal to --addr says the two flags name the same address (it said only
// "bind: address already in use").
func TestRelayAdminAddrSameAsAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // free for the relay's --addr; its --admin-addr then finds it taken by --addr
	code, _, errs := mainOut(t, "relay", "--db", t.TempDir()+"/relay.db", "--addr", addr, "--admin-addr", addr)
	if code != exitFail || !strings.Contains(errs, "--admin-addr "+addr+" and --addr "+addr+" name the same address") {
		t.Errorf("--admin-addr = --addr: exit %d, %q", code, errs)
	}
}

// Typos get the suggestion 'pfschat sned' gets: relay subcommands, relay flags, global
// flags before the command, and a command's other spelling.
func TestTypoSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "bakup"}, `unknown relay command "bakup"; did you mean "backup"?`},
		{[]string{"relay", "rotate-keys"}, `did you mean "rotate-key"?`},
		{[]string{"relay", "--adress", "x"}, `flag provided but not defined: -adress (did you mean --addr?)`},
		{[]string{"--hom", "x"}, `flag provided but not defined: -hom (did you mean --home?)`},
		{[]string{"recieve"}, `unknown command "recieve"; did you mean "recv"?`},
		{[]string{"sned"}, `did you mean "send"?`},
	} {
		code, _, errs := mainOut(t, tc.args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("pfschat %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

// 'pfschat help relay' is the relay's help, as 'pfschat relay --help' (it printed the
// general help), and relay invite's --nats says what it does for an invite (not "run a
// relay cluster node").
func TestHelpOfACommand(t *testing.T) {
	for _, args := range [][]string{{"help", "relay"}, {"help", "send"}, {"help", "relay", "backup"}} {
		code, out, _ := mainOut(t, args...)
		if want := "usage: pfschat " + strings.Join(args[1:], " "); code != exitOK || !strings.HasPrefix(out, want) {
			t.Errorf("pfschat %q: exit %d, stdout starts %.60q; want %q", args, code, out, want)
		}
	}
	_, out, _ := mainOut(t, "relay", "invite", "--help")
	if strings.Contains(out, "run a relay cluster node") || !strings.Contains(out, "make the invite for a relay cluster") {
		t.Errorf("relay invite --help describes --nats as:\n%s", out)
	}
}

// A refused start prints its error alone: the descriptor and connection limits are
// logged once the relay starts (they came before every refusal).
func TestRefusedRelayStartLogsNoLimits(t *testing.T) {
	t.Setenv("PFSCHAT_RELAY_KEY", "abc")
	code, _, errs := mainOut(t, "relay", "--db", t.TempDir()+"/relay.db", "--addr", "127.0.0.1:0")
	if code != exitFail || strings.Contains(errs, "descriptor limit") || strings.Contains(errs, "connection limit") {
		t.Errorf("refused start: exit %d, stderr %q; want the error alone", code, errs)
	}
}
