package profile

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// Command detection agrees with the flag definitions: for every global flag, in every
// spelling, the word after the flag (and after its value, when it takes one) is found as
// the command.
func TestCommandIndexAgreesWithFlagDefinitions(t *testing.T) {
	n := 0
	VisitAll(func(fl *flag.Flag) {
		n++
		var spellings [][]string
		if TakesValue(fl.Name) {
			spellings = [][]string{{"--" + fl.Name, "VALUE"}, {"-" + fl.Name, "VALUE"}, {"--" + fl.Name + "=VALUE"}}
		} else {
			spellings = [][]string{{"--" + fl.Name}, {"-" + fl.Name}, {"--" + fl.Name + "=true"}}
		}
		for _, before := range spellings {
			args := append(slices.Clone(before), "send", "bob", "hi")
			if got := CommandIndex(args); got != len(before) {
				t.Errorf("CommandIndex(%q) = %d, want %d", args, got, len(before))
			}
			// Without a command word: the UI.
			if got := CommandIndex(before); got != -1 {
				t.Errorf("CommandIndex(%q) = %d, want -1", before, got)
			}
		}
		// What TakesValue says is what the flag package does with the next argument.
		fs := flag.NewFlagSet("check", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		new(Flags).Register(fs, UI|Demo|Headless)
		if err := fs.Parse([]string{"-" + fl.Name, "true", "rest"}); err != nil {
			t.Fatalf("parse -%s: %v", fl.Name, err)
		}
		if consumed := fs.NArg() == 1; consumed != TakesValue(fl.Name) {
			t.Errorf("flag %s: TakesValue %v, but the flag package consumed its next argument: %v", fl.Name, TakesValue(fl.Name), consumed)
		}
	})
	if n == 0 {
		t.Fatal("no global flags defined")
	}
	for _, name := range []string{"home", "relay", "passphrase-file", "open"} {
		if !TakesValue(name) {
			t.Errorf("--%s should take a value", name)
		}
	}
	for _, name := range []string{"no-bell", "v", "not-a-flag"} {
		if TakesValue(name) {
			t.Errorf("--%s should not take a value", name)
		}
	}
	if got := CommandIndex([]string{"--home", "x", "-h"}); got != 2 {
		t.Errorf("-h is a command word: got %d", got)
	}
}

// Each command gets its own global flags, and a value parsed before the command word
// survives the command's own parse.
func TestRegisterPerCommand(t *testing.T) {
	want := map[Command][]string{
		UI:       {"auto-download-mib", "home", "insecure-ws", "no-bell", "open", "passphrase-file", "relay"},
		Demo:     {"no-bell"},
		Headless: {"home", "insecure-ws", "passphrase-file", "relay", "v"},
	}
	for cmd, names := range want {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		new(Flags).Register(fs, cmd)
		var got []string
		fs.VisitAll(func(fl *flag.Flag) { got = append(got, fl.Name) })
		if !slices.Equal(got, names) {
			t.Errorf("command %d: flags %q, want %q", cmd, got, names)
		}
	}
	var f Flags
	before := flag.NewFlagSet("before", flag.ContinueOnError)
	f.Register(before, Headless)
	if err := before.Parse([]string{"--home", "/h", "--relay", "ws://r"}); err != nil {
		t.Fatal(err)
	}
	after := flag.NewFlagSet("after", flag.ContinueOnError)
	f.Register(after, Headless)
	if err := after.Parse([]string{"--passphrase-file", "p"}); err != nil {
		t.Fatal(err)
	}
	if f.Home != "/h" || f.Relay != "ws://r" || f.PassphraseFile != "p" {
		t.Fatalf("flags %+v", f)
	}
}

func TestRelayURLFallsBackToEnvironment(t *testing.T) {
	t.Setenv(EnvRelay, "ws://from-env:1")
	if got := (&Flags{}).RelayURL(); got != "ws://from-env:1" {
		t.Fatalf("RelayURL = %q", got)
	}
	if got := (&Flags{Relay: "ws://flag:2"}).RelayURL(); got != "ws://flag:2" {
		t.Fatalf("RelayURL = %q", got)
	}
}
