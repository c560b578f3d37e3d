package profile

import (
	"cmp"
	"flag"
	"os"
	"strings"
	"sync"
)

// Command is a part of the binary that takes global flags; a flag is defined for some
// of them.
type Command uint8

const (
	UI       Command = 1 << iota // `pfschat` without a command word: the chat UI
	Demo                         // `pfschat demo`
	Headless                     // init, add, send, recv and the other headless commands
)

// Flags are the global flags: they may stand before the command word or after it.
type Flags struct {
	Home           string // --home DIR (UI, headless)
	Relay          string // --relay URL (UI, headless)
	PassphraseFile string // --passphrase-file FILE (UI, headless)
	Open           string // --open NAME (UI)
	NoBell         bool   // --no-bell (UI, demo)
	Verbose        bool   // -v (headless)
	InsecureWS     bool   // --insecure-ws (UI, headless)
	// AutoDownloadMiB: --auto-download-mib N (UI): files from contacts up to N MiB
	// download as they arrive; "0": none ("": the default, 10).
	AutoDownloadMiB string
}

// definitions is the one list of global flags: which commands take each, its help, and
// where it is stored. Register and TakesValue both read it.
var definitions = []struct {
	name     string
	commands Command
	usage    string
	define   func(f *Flags, fs *flag.FlagSet, name, usage string)
}{
	{"home", UI | Headless, "profile directory (default $" + EnvHome + ", else $XDG_DATA_HOME/pfschat)",
		func(f *Flags, fs *flag.FlagSet, name, usage string) { fs.StringVar(&f.Home, name, f.Home, usage) }},
	{"relay", UI | Headless, "relay URL, ws://host:port or wss://host; a relay cluster's nodes as URL,URL,… tried in order (default $" + EnvRelay + ", else the one the profile remembers, else " + DefaultRelayURL + ")",
		func(f *Flags, fs *flag.FlagSet, name, usage string) { fs.StringVar(&f.Relay, name, f.Relay, usage) }},
	{"passphrase-file", UI | Headless, "read the passphrase from this file, the owner's alone: chmod 600 (or set " + EnvPassphrase + "; else it is asked for)",
		func(f *Flags, fs *flag.FlagSet, name, usage string) {
			fs.StringVar(&f.PassphraseFile, name, f.PassphraseFile, usage)
		}},
	{"open", UI, "open the conversation with this contact",
		func(f *Flags, fs *flag.FlagSet, name, usage string) { fs.StringVar(&f.Open, name, f.Open, usage) }},
	{"no-bell", UI | Demo, "no terminal bell for messages in other conversations",
		func(f *Flags, fs *flag.FlagSet, name, usage string) { fs.BoolVar(&f.NoBell, name, f.NoBell, usage) }},
	{"v", Headless, "log diagnostics to stderr",
		func(f *Flags, fs *flag.FlagSet, name, usage string) { fs.BoolVar(&f.Verbose, name, f.Verbose, usage) }},
	{"auto-download-mib", UI, "files from contacts up to `N` MiB download as they arrive; bigger ones on ctrl+o or /download (0: none by itself; never from strangers)",
		func(f *Flags, fs *flag.FlagSet, name, usage string) {
			fs.StringVar(&f.AutoDownloadMiB, name, cmp.Or(f.AutoDownloadMiB, "10"), usage)
		}},
	{"insecure-ws", UI | Headless, "allow plain ws:// to a relay that is not on loopback (a private network): " + InsecureWSWarning,
		func(f *Flags, fs *flag.FlagSet, name, usage string) {
			fs.BoolVar(&f.InsecureWS, name, f.InsecureWS, usage)
		}},
}

// Register defines on fs the global flags cmd takes, stored in f. Values already in f
// (flags given before the command word and parsed into the same Flags) are kept as
// the defaults, so they survive the command's own parse.
func (f *Flags) Register(fs *flag.FlagSet, cmd Command) {
	for _, d := range definitions {
		if d.commands&cmd != 0 {
			d.define(f, fs, d.name, d.usage)
		}
	}
}

// allFlags is every global flag, for the questions about flags rather than values.
var allFlags = sync.OnceValue(func() *flag.FlagSet {
	fs := flag.NewFlagSet("pfschat", flag.ContinueOnError)
	new(Flags).Register(fs, UI|Demo|Headless)
	return fs
})

// VisitAll calls fn for every global flag, in lexical order.
func VisitAll(fn func(*flag.Flag)) { allFlags().VisitAll(fn) }

// TakesValue reports whether the global flag name (without dashes) takes a value, so
// that the next argument is its value when it is not written --name=value. It is false
// for a bool flag and for a name that is not a global flag.
func TakesValue(name string) bool {
	fl := allFlags().Lookup(name)
	if fl == nil {
		return false
	}
	b, isBool := fl.Value.(interface{ IsBoolFlag() bool })
	return !isBool || !b.IsBoolFlag()
}

// CommandIndex returns the index of the command word in args: the first argument that
// is neither a global flag nor a global flag's value, or -1 when there is none (the chat
// UI). -h and --help count as command words.
func CommandIndex(args []string) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" || a == "--help" || !strings.HasPrefix(a, "-") {
			return i
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if TakesValue(name) {
			i++
		}
	}
	return -1
}

// InsecureWSWarning is what --insecure-ws means, printed each time it is used.
const InsecureWSWarning = "without TLS a man in the middle can read and relay your logins, contacts and metadata (message bodies stay end-to-end encrypted); use wss:// on any network you do not control"

// HomeDir is the profile directory these flags choose (see Home).
func (f *Flags) HomeDir() (string, error) { return Home(f.Home) }

// RelayURL is the relay these flags choose: --relay, else $PFSCHAT_RELAY, else "" (the
// one the profile remembers, else DefaultRelayURL; package chat decides those).
func (f *Flags) RelayURL() string {
	if f.Relay != "" {
		return f.Relay
	}
	return os.Getenv(EnvRelay)
}
