package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestCommandHelpSpellsFlagsAsTheREADME: per-command --help lists "--flag VALUE" as the
// README writes them, with the real default, for the headless commands, the demo and
// the relay.
func TestCommandHelpSpellsFlagsAsTheREADME(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"send", "--help"}, []string{"\n  --home DIR\n", "\n  --relay URL\n", "\n  --passphrase-file FILE\n", "\n  --wait DURATION\n      how long to wait for the relay to accept (default 15s)\n", "\n  -v\n"}},
		{[]string{"recv", "-h"}, []string{"\n  --follow\n", "\n  --count N\n", "\n  --json\n"}},
		{[]string{"init", "--help"}, []string{"\n  --name NAME\n", "\n  --device LABEL\n"}},
		{[]string{"demo", "--help"}, []string{"\n  --no-bell\n"}},
		{[]string{"relay", "--help"}, []string{"\n  --addr HOST:PORT\n      listen address (host:port) (default \"127.0.0.1:7878\")\n", "\n  --db FILE\n",
			"\n  --tls-cert FILE\n", "\n  --tls-key FILE\n", "\n  --acme-domain NAME\n", "\n  --admin-addr HOST:PORT\n", "\n  --relay-key-file FILE\n"}},
		// The README's spellings of the other commands' values.
		{[]string{"passphrase", "--help"}, []string{"\n  --new-passphrase-file FILE\n"}},
		{[]string{"recover", "--help"}, []string{"\n  --recovery-code-file FILE\n"}},
		{[]string{"send-file", "--help"}, []string{"\n  --caption TEXT\n"}},
		{[]string{"recv", "--help"}, []string{"\n  --download-dir DIR\n"}},
		{[]string{"init", "--help"}, []string{"\n  --invite CODE\n"}},
		{[]string{"daemon", "--help"}, []string{"\n  --http ADDR\n", "\n  --download-dir DIR\n"}},
		{[]string{"relay", "backup", "--help"}, []string{"\n  --db FILE\n"}},
		{[]string{"relay", "rotate-key", "--help"}, []string{"\n  --db FILE\n", "\n  --compromised\n", "\n  --relay-key-file FILE\n"}},
		{[]string{"relay", "invite", "--help"}, []string{"\n  --db FILE\n", "\n  --uses N\n", "\n  --relay-key-file FILE\n"}},
		{[]string{"relay", "new-key-file", "--help"}, []string{"usage: pfschat relay new-key-file FILE\n"}},
	} {
		var out, errb bytes.Buffer
		if code := Main(t.Context(), tc.args, strings.NewReader(""), &out, &errb); code != exitOK {
			t.Errorf("%q: exit %d, want 0", tc.args, code)
		}
		text := out.String()
		if errb.Len() > 0 { // --help is asked for: stdout, as every CLI's
			t.Errorf("%q: help on stderr:\n%s", tc.args, errb.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%q: help lacks %q:\n%s", tc.args, w, text)
			}
		}
		if m := regexp.MustCompile(`(?m)^  -[a-z][a-z-]+`).FindString(text); m != "" {
			t.Errorf("%q: a flag spelled with one dash, %q:\n%s", tc.args, m, text)
		}
		// A value named by its Go type says nothing; the README names what it is.
		if m := regexp.MustCompile(`(?m)^  --[a-z-]+ (STRING|string)$`).FindString(text); m != "" {
			t.Errorf("%q: a value named by its type, %q:\n%s", tc.args, m, text)
		}
	}
}

// `pfschat help` names every headless command.
func TestHelpNamesEveryCommand(t *testing.T) {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(usage, func(r rune) bool { return r == ' ' || r == '\n' || r == '|' || r == ';' }) {
		words[w] = true
	}
	for _, c := range commands {
		if !words[c.name] {
			t.Errorf("pfschat help does not name %q", c.name)
		}
	}
}

// A mistyped flag gets the usage line and the mistake with what it likely meant, not
// every flag the command has (the relay's 80 lines buried the "did you mean").
func TestFlagMistakeIsShort(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(t.Context(), []string{"relay", "--adr", "1.2.3.4"}, strings.NewReader(""), &out, &errb); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	want := "usage: pfschat relay [flags]   (--help lists the flags)\npfschat relay: flag provided but not defined: -adr (did you mean --addr?)\n"
	if errb.String() != want || out.Len() != 0 {
		t.Fatalf("stderr %q (stdout %q), want %q", errb.String(), out.String(), want)
	}
}
