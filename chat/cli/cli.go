// Package cli is the command layer of the pfschat binary: it parses the arguments and
// wires the packages together for every command — the chat UI (no command word), the
// demo, and the headless commands (init, add, send, recv, ...) for scripts and devices.
// It is the one package that imports the UI, the relay server and the stores together;
// main.go only hands it the arguments. The facts every command shares (directories,
// passphrase sources, global flags, the default relay) live in package
// pfschat/chat/profile.
//
// Every command takes the global flags --home DIR, --relay URL and --passphrase-file FILE
// (or the PFSCHAT_PASSPHRASE environment variable; on a terminal it prompts). Errors go
// to stderr, name what went wrong and what to do, and exit non-zero: 1 for a failure, 2
// for a usage mistake.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/chat"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
)

// exit codes
const (
	exitOK     = 0
	exitFail   = 1
	exitUsage  = 2
	exitQueued = 3 // send: committed to the outbox, not yet accepted by the relay
)

// env is one invocation of a headless command.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	flags          profile.Flags
	cmd            string
	noReadReceipts bool              // recv --no-read-receipts
	owner          profile.OwnerKind // recorded in the profile lock ("" = a command)
	// logger, when set, is the profile's logger without -v (the daemon's: a service
	// logs what it does to stderr, the journal under systemd).
	logger *slog.Logger
	// viaOwner: the command went through the profile's owner (ownerClient found one),
	// so a relay it cannot reach is the owner's, not one this process dialed.
	viaOwner bool
	// flushBy, when set, bounds finish's last flush of the outbox: send's and
	// send-file's --wait bounds the whole command, so a relay refusing for now does not
	// keep it retrying past the wait.
	flushBy time.Time
}

type command struct {
	name, args, help string
	run              func(e *env, fs *flag.FlagSet, args []string) error
	flags            func(fs *flag.FlagSet)
}

var commands []command

func init() {
	commands = []command{
		{name: "init", args: "--name NAME [--device LABEL] [--invite CODE]", help: "create an identity and register it with the relay", run: cmdInit,
			flags: func(fs *flag.FlagSet) {
				fs.String("name", "", "your user name")
				fs.String("device", "", "device label on your card")
				fs.String("invite", "", "invite code from the relay's operator (pfschat relay invite), for a relay that registers by invitation (or $"+profile.EnvInvite+", which other users cannot see in ps)")
			}},
		{name: "add", args: "NAME", help: "fetch and verify a contact's card (trust on first use)", run: cmdAdd},
		{name: "send", args: "NAME TEXT… (TEXT - reads stdin)", help: "send one message (adds the contact if needed)", run: cmdSend,
			flags: func(fs *flag.FlagSet) {
				fs.Duration("wait", 15*time.Second, "how long to wait for the relay to accept")
			}},
		{name: "send-file", args: "NAME PATH [--caption TEXT]", help: "send a file (encrypted end to end, resumable)", run: cmdSendFile, flags: sendFileFlags},
		{name: "recv", args: "[--follow [--count N]] [--json] [--no-read-receipts] [--download-dir DIR]", help: "print incoming messages; download their files", run: cmdRecv,
			flags: func(fs *flag.FlagSet) {
				fs.String("download-dir", defaultDownloadDir(), "where received files are saved")
				fs.Bool("follow", false, "keep running and print messages as they arrive")
				fs.Int("count", 0, "with --follow: exit after printing N messages")
				fs.Bool("json", false, "one JSON object per line")
				fs.Bool("no-read-receipts", false, "mark messages read without telling the sender")
			}},
		{name: "contacts", args: "[--json]", help: "list contacts", run: cmdContacts,
			flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "one JSON object per line") }},
		{name: "fingerprint", args: "NAME", help: "show the safety number to compare with NAME", run: cmdFingerprint},
		{name: "verify", args: "NAME", help: "mark NAME verified after comparing safety numbers", run: cmdVerify},
		{name: "accept-key", args: "NAME", help: "accept NAME's new identity key", run: cmdAcceptKey},
		{name: "reject-key", args: "NAME", help: "keep the key you trusted for NAME and reject the new one", run: cmdRejectKey},
		{name: "rotate-keys", args: "[--count N]", help: "top up one-time prekeys and rotate signed prekeys", run: cmdRotateKeys,
			flags: func(fs *flag.FlagSet) {
				fs.Int("count", chat.DefaultOneTimeKeys, "one-time prekeys of each kind to keep on the relay")
			}},
		{name: "reset-session", args: "NAME", help: "start afresh with NAME: the next message opens a new session (messages already on their way still decrypt)", run: cmdResetSession},
		{name: "version", help: "print the version", run: cmdVersion},
		// Your data (datacmd.go).
		{name: "backup", args: "FILE", help: "write a sealed copy of the profile to FILE (a new file), also while it is in use", run: cmdBackup},
		{name: "restore", args: "FILE", help: "make the profile from a backup, into an empty --home only", run: cmdRestore},
		{name: "passphrase", args: "[--new-passphrase-file FILE]", help: "change the profile's passphrase (re-wraps the storage key only)", run: cmdPassphrase, flags: passphraseFlags},
		// Requests and blocking (contactcmd.go).
		{name: "accept-request", args: "NAME", help: "accept a message request: NAME becomes a contact", run: cmdAcceptRequest},
		{name: "block", args: "NAME", help: "block NAME: drop their messages, and the relay refuses them", run: cmdBlock},
		{name: "unblock", args: "NAME", help: "unblock NAME", run: cmdUnblock},
		{name: "remove", args: "NAME", help: "remove a contact or decline a request, with the conversation", run: cmdRemove},
		{name: "nickname", args: "NAME [NICKNAME]", help: "set (or without NICKNAME remove) a local display name for NAME", run: cmdNickname},
		{name: "mute", args: "NAME", help: "no desktop notifications for NAME's messages", run: cmdMute},
		{name: "unmute", args: "NAME", help: "desktop notifications for NAME's messages again", run: cmdUnmute},
		{name: "delete-message", args: "NAME ID", help: "delete one message (its id from recv --json) from this profile only", run: cmdDeleteMessage},
		{name: "clear", args: "NAME", help: "delete every message of the conversation with NAME from this profile only", run: cmdClear},
		// Operations (opscmd.go).
		{name: "delete-account", args: "[--yes]", help: "delete your account on the relay and free your name", run: cmdDeleteAccount,
			flags: func(fs *flag.FlagSet) { fs.Bool("yes", false, "do not ask to type the name to confirm") }},
		{name: "repin", args: "[--yes]", help: "pin the relay's new key by hand after its operator announced a replaced key", run: cmdRepin,
			flags: func(fs *flag.FlagSet) { fs.Bool("yes", false, "do not ask to confirm (compare the fingerprint first)") }},
		{name: "relay-key", help: "show the relay's URL and the fingerprint of its pinned key", run: cmdRelayKey},
		// Identity recovery (recovercmd.go).
		{name: "recover", args: "NAME [--recovery-code-file FILE]", help: "get NAME back on a new machine with its recovery code (a new identity key)", run: cmdRecover,
			flags: func(fs *flag.FlagSet) {
				fs.String("recovery-code-file", "", "read the recovery code from this file's first line instead of asking (the owner's alone: chmod 600)")
			}},
		{name: "recovery-code", args: "[--rotate]", help: "make a new recovery code (the old one stops working)", run: cmdRecoveryCode,
			flags: func(fs *flag.FlagSet) { fs.Bool("rotate", false, "make and show a new recovery code") }},
		{name: "reset-identity", args: "[--yes]", help: "give this profile a new identity key (contacts confirm the change)", run: cmdResetIdentity,
			flags: func(fs *flag.FlagSet) { fs.Bool("yes", false, "do not ask to type the name to confirm") }},
	}
}

// Main runs pfschat with its arguments (without the program name) and returns the
// process exit code: the chat UI when there is no command word, else the command the
// first word that is not a global flag names.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	i := profile.CommandIndex(args)
	if v := slices.IndexFunc(args, func(a string) bool { return a == "--version" || a == "-version" }); v >= 0 && (i < 0 || v < i) {
		_ = cmdVersion(&env{stdout: stdout}, nil, nil) // `pfschat --version` is `pfschat version`
		return exitOK
	}
	if i < 0 {
		return runUI(ctx, args, stdin, stdout, stderr)
	}
	switch args[i] {
	case "demo":
		return runDemo(ctx, without(args, i), stdin, stdout, stderr)
	case "relay":
		if err := RunRelay(ctx, args[i+1:], stdout, stderr); err != nil {
			// The first line as a sentence, without the package prefixes ("pfschat relay:
			// storage: already exists: …"); the lines after it as they are.
			first, more, _ := strings.Cut(err.Error(), "\n")
			if more != "" {
				more = "\n" + more
			}
			fmt.Fprintf(stderr, "pfschat relay: %s%s\n", strings.TrimPrefix(chat.Sentence(errors.New(first)), "relay: "), more)
			if errors.As(err, new(usageErr)) {
				return exitUsage
			}
			return exitFail
		}
		return exitOK
	case "help", "-h", "--help":
		// 'pfschat help relay' is 'pfschat relay --help', as for every command.
		if rest := args[i+1:]; args[i] == "help" && len(rest) > 0 && !slices.Contains([]string{"help", "-h", "--help"}, rest[0]) {
			return Main(ctx, append(slices.Clone(rest), "--help"), stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	return runHeadless(ctx, args, stdin, stdout, stderr)
}

// nearestCommand is the command name word most likely meant (a typo of one or two
// letters, as git suggests), or "" when none is that close.
func nearestCommand(word string) string {
	names := []string{"demo", "relay", "help"}
	for _, c := range commands {
		names = append(names, c.name)
	}
	if n := nearest(word, names); n != "" {
		return n
	}
	// A word other programs use, or a typo of one ("recieve" is recv).
	return commandSynonyms[nearest(word, slices.Collect(maps.Keys(commandSynonyms)))]
}

// commandSynonyms are the words for a command that pfschat calls otherwise.
var commandSynonyms = map[string]string{"receive": "recv", "read": "recv", "message": "send", "msg": "send"}

// nearest is the name within two edits of word (a typo), the closest first, or "";
// the UI's slash commands use the same (chat.Nearest).
func nearest(word string, names []string) string { return chat.Nearest(word, names) }

func without(args []string, i int) []string {
	return append(append([]string(nil), args[:i]...), args[i+1:]...)
}

// usage is `pfschat help`.
const usage = `pfschat: end-to-end encrypted chat for the terminal

usage:
  pfschat                      the chat UI (profile in $XDG_DATA_HOME/pfschat)
  pfschat demo                 UI + embedded relay + an echo contact, throwaway profile
  pfschat relay                run a relay (--addr ` + profile.DefaultRelayAddr + `, --db FILE, --relay-key-file FILE)
  pfschat daemon [--http ADDR] hold the profile; JSON-RPC on its socket (chat/daemon/API.md)
  pfschat init --name NAME     create an identity and register it, no UI
  pfschat add NAME             fetch and verify a contact's card (trust on first use)
  pfschat send NAME TEXT       send one message, no UI (through the daemon when one runs)
  pfschat send-file NAME PATH  send a file, encrypted end to end ([--caption TEXT])
  pfschat recv [--follow] [--json]   print incoming messages
  pfschat contacts | fingerprint NAME | verify NAME | accept-key NAME | reject-key NAME
  pfschat rotate-keys [--count N] | reset-session NAME | version (or --version)
  pfschat delete-account | repin | relay-key   free your name | re-pin a replaced relay key | show the pinned one
  pfschat recover NAME | recovery-code --rotate | reset-identity   your name on a new machine | a new code | a new key
  pfschat backup FILE | restore FILE | passphrase   your profile, sealed | into an empty --home | change it
  pfschat delete-message NAME ID | clear NAME      delete messages on this device only
  pfschat accept-request | block | unblock | remove | mute | unmute NAME;  nickname NAME [NICK]

global flags: --home DIR, --relay URL[,URL…] (default $` + profile.EnvRelay + `, else the one the
              profile remembers, else ` + profile.DefaultRelayURL + `),
              --insecure-ws (ws:// to a relay not on loopback; warns each time),
              --passphrase-file FILE (or ` + profile.EnvPassphrase + `), -v (diagnostics on stderr)
UI flags:     --open NAME (start in that conversation), --no-bell (no bell for messages
              elsewhere), --auto-download-mib N (files up to N MiB download as they arrive)
exit codes:   0 ok, 1 failed, 2 usage, 3 send, send-file: the message is kept in the outbox
              and goes out on the next connection (do not resend)
`

// runHeadless runs one headless command; global flags may stand before it.
func runHeadless(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	global := flag.NewFlagSet("pfschat", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	e.flags.Register(global, profile.Headless)
	rest, err := parseInterleaved(global, args, true)
	if err != nil {
		return e.usageError(errors.New(flagMistake(global, err))) // "--hom": did you mean --home?
	}
	if len(rest) == 0 { // Main found a command word, so only a caller bypassing it gets here
		fmt.Fprint(stdout, usage)
		return exitUsage
	}
	e.cmd = rest[0]
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == e.cmd })
	if i < 0 {
		if near := nearestCommand(e.cmd); near != "" {
			fmt.Fprintf(stderr, "pfschat: unknown command %q; did you mean %q? ('pfschat help' lists them all)\n", e.cmd, near)
		} else {
			fmt.Fprintf(stderr, "pfschat: unknown command %q; run 'pfschat help' for the list\n", e.cmd)
		}
		return exitUsage
	}
	cmd := &commands[i]
	fs := flag.NewFlagSet("pfschat "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The same Flags: values given before the command word stay set.
	e.flags.Register(fs, profile.Headless)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseInterleaved(fs, rest[1:], false)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: pfschat %s %s\n  %s\n", cmd.name, cmd.args, cmd.help)
		printFlags(stdout, fs)
		return exitOK
	}
	if err != nil {
		return e.usageError(errors.New(flagMistake(fs, err)))
	}
	// With a running owner (pfschat daemon, the UI) send and recv go through it
	// (owner.go); the other commands find it in e.ops.
	err = checkRelayURL(e, cmd.name)
	if err == nil {
		var routed bool
		if routed, err = viaOwner(e, cmd.name, fs, pos); !routed {
			err = cmd.run(e, fs, pos)
		}
	}
	if err != nil {
		var qe queuedErr
		if errors.As(err, &qe) {
			fmt.Fprintf(stderr, "pfschat %s: %s\n", cmd.name, qe.msg)
			return exitQueued
		}
		var ue usageErr
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "pfschat %s: %s\nusage: pfschat %s %s\n", cmd.name, ue.msg, cmd.name, cmd.args)
			return exitUsage
		}
		msg := explain(e, err)
		if rest, ok := strings.CutPrefix(msg, err.Error()); ok { // the error's own words as a sentence
			msg = chat.Sentence(err) + rest
		}
		// "pfschat backup: backup: …": the command's name already leads the line.
		msg = strings.TrimPrefix(msg, cmd.name+": ")
		fmt.Fprintf(stderr, "pfschat %s: %s\n", cmd.name, msg)
		if de := (*daemon.Error)(nil); e.flags.Verbose && errors.As(err, &de) {
			// The owner's refusal as the API gave it, for a bug report: the sentence
			// above leaves its code out.
			fmt.Fprintf(stderr, "pfschat %s: (the profile's owner refused it: JSON-RPC error %d%s)\n", cmd.name, de.Code, apiErrorName(de))
		}
		return exitFail
	}
	return exitOK
}

// checkRelayURL refuses a relay URL (--relay, else $PFSCHAT_RELAY) that is none as a
// usage error, before a passphrase is read or anything is opened.
func checkRelayURL(e *env, cmd string) error {
	u := e.flags.RelayURL()
	if u == "" || cmd == "version" {
		return nil
	}
	if _, err := chat.NormalizeRelayURL(u); err != nil {
		return usageErr{chat.Sentence(err)}
	}
	return nil
}

func (e *env) usageError(err error) int {
	fmt.Fprintf(e.stderr, "pfschat: %v; run 'pfschat help' for usage\n", err)
	return exitUsage
}

// queuedErr: the message is safely in the outbox but has not reached the relay.
type queuedErr struct{ msg string }

func (q queuedErr) Error() string { return q.msg }

type usageErr struct{ msg string }

func (u usageErr) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageErr{fmt.Sprintf(format, a...)} }

// checkDownloadDir refuses a --download-dir given on the command line that cannot
// hold files, before anything is read or printed: otherwise every file would fail
// alike, one warning each. It changes nothing: a directory that does not exist yet is
// made only when a file is about to be saved there (chat's Download), so a recv that
// fails or has nothing to download leaves none behind. Not a usage error: the command
// was typed right, the directory is what is wrong (exit 1, no usage line).
func checkDownloadDir(fs *flag.FlagSet) error {
	if !flagSet(fs, "download-dir") {
		return nil
	}
	dir := fs.Lookup("download-dir").Value.String()
	if dir == "" {
		return usagef("--download-dir: want a directory")
	}
	if why := downloadDirProblem(dir); why != "" {
		return fmt.Errorf("--download-dir %s: %s; give a directory you can write to", dir, why)
	}
	return nil
}

// downloadDirProblem is why files cannot be saved into dir, or "" when they can (dir
// is a directory that takes a new file, or its nearest existing parent is one, so
// that dir can be made in it). It creates nothing that stays: only a probe file in an
// existing directory, removed at once.
func downloadDirProblem(dir string) string {
	missing := false
	for p := filepath.Clean(dir); ; {
		st, err := os.Stat(p)
		switch {
		case err == nil && !st.IsDir():
			return p + " is a file, not a directory"
		case err == nil:
			return probeDir(p, missing)
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR): // ENOTDIR: a file on the way, said above
			return "cannot look at " + p + ": " + errors.Unwrap(err).Error()
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "cannot look at " + p + ": " + errors.Unwrap(err).Error()
		}
		p, missing = parent, true
	}
}

// probeDir is why a file cannot be made in the existing directory p (for dir itself,
// or with missing for a directory to be made in it), or "".
func probeDir(p string, missing bool) string {
	f, err := os.CreateTemp(p, ".pfschat-probe-*")
	if err == nil {
		f.Close()
		os.Remove(f.Name())
		return ""
	}
	why := "" // not the probe's own words: procfs says "no such file or directory" of /proc/self
	if errors.Is(err, os.ErrPermission) {
		why = " (permission denied)"
	}
	if missing {
		return "it cannot be made in " + p + ", where files cannot be written" + why
	}
	return p + " is a directory files cannot be written to" + why
}

// parseInterleaved parses flags anywhere among the arguments (Go's flag package stops
// at the first positional one). "--" ends flag parsing. With stopAtFirst, it stops at
// the first positional argument (the command name) and returns it with the rest.
func parseInterleaved(fs *flag.FlagSet, args []string, stopAtFirst bool) ([]string, error) {
	var pos []string
	for {
		before := args
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if stopAtFirst {
			return append(pos, args...), nil
		}
		// flag.Parse consumes a "--" and stops: then everything after it is positional.
		if consumed := len(before) - len(args); consumed > 0 && before[consumed-1] == "--" {
			return append(pos, args...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (e *env) profile() (chat.Profile, error) {
	dir, err := e.flags.HomeDir()
	if err != nil {
		return chat.Profile{}, err
	}
	p := chat.Profile{Dir: dir, RelayURL: e.flags.RelayURL(), Owner: e.owner}
	p.Prefs.InsecureWS = e.flags.InsecureWS
	if e.flags.InsecureWS {
		fmt.Fprintln(e.stderr, "pfschat: warning: --insecure-ws:", profile.InsecureWSWarning)
	}
	if e.flags.Verbose {
		p.Prefs.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else if e.logger != nil {
		p.Prefs.Logger = e.logger
	}
	return p, nil
}

// passphrase finds an existing profile's passphrase by the rules of package profile:
// --passphrase-file, then $PFSCHAT_PASSPHRASE, then a terminal prompt.
func (e *env) passphrase(prompt string) ([]byte, error) {
	return e.flags.Passphrase(e.stdin, e.stderr, prompt)
}

// newPassphrase is the passphrase of a profile being made (init, recover), from the
// same sources (asked twice at a prompt), refused when shorter than onboarding allows.
func (e *env) newPassphrase() ([]byte, error) {
	return e.flags.CreatePassphrase(e.stdin, e.stderr)
}

// online opens the profile and connects to the relay.
func (e *env) online() (*chat.Controller, error) { return e.open(false) }

// open opens the profile and connects; with allowOffline an unreachable relay is not
// an error (the controller keeps trying in the background).
func (e *env) open(allowOffline bool) (*chat.Controller, error) {
	return e.openWith(allowOffline, false)
}

// openStayingUp opens the profile for a program that keeps running (the daemon): it
// also stays up through a relay presenting another key (chat.Preferences.StayUp).
func (e *env) openStayingUp() (*chat.Controller, error) { return e.openWith(true, true) }

func (e *env) openWith(allowOffline, stayUp bool) (*chat.Controller, error) {
	p, pass, err := e.existingProfile()
	if err != nil {
		return nil, err
	}
	defer clear(pass) // the store keeps only the key it unwraps
	p.Prefs.AllowOffline = allowOffline
	p.Prefs.StayUp = stayUp
	p.Prefs.NoReadReceipts = e.noReadReceipts
	return p.Open(e.ctx, pass)
}

// existingProfile is the profile, which must exist, locked (p.Held: its opener takes
// the lock over), and its passphrase, asked for once; the caller clears it. The lock
// comes first, so that a profile another process holds is refused before the prompt.
func (e *env) existingProfile() (chat.Profile, []byte, error) {
	p, err := e.profile()
	if err != nil {
		return p, nil, err
	}
	if !p.Exists() {
		return p, nil, fmt.Errorf("%w: %s", chat.ErrNoProfile, p.StorePath())
	}
	if p.Held, err = p.Lock(); err != nil {
		return p, nil, err
	}
	pass, err := e.passphrase(e.unlockPrompt(p))
	if err != nil {
		p.Held.Release()
		return p, nil, err
	}
	return p, pass, nil
}

// unlockPrompt is the prompt for an existing profile's passphrase: it names the
// profile (its identity, read without the passphrase, else its folder), as the UI's
// unlock screen does; `pfschat passphrase` asks for the current one.
func (e *env) unlockPrompt(p chat.Profile) string {
	what := "passphrase"
	if e.cmd == "passphrase" {
		what = "current passphrase"
	}
	if name := p.IdentityName(e.ctx); name != "" {
		return fmt.Sprintf("%s for %s (%s): ", what, name, p.Dir)
	}
	return fmt.Sprintf("%s for %s: ", what, p.Dir)
}

// openOrOffline opens the profile and connects; when the relay cannot be reached it
// returns the profile opened offline and, as offline, why: one passphrase prompt and
// one unlock either way.
func (e *env) openOrOffline() (c *chat.Controller, offline, err error) {
	p, pass, err := e.existingProfile()
	if err != nil {
		return nil, nil, err
	}
	defer clear(pass)
	p.Prefs.NoReadReceipts = e.noReadReceipts
	return p.OpenOrOffline(e.ctx, pass)
}

// finish lets queued receipts and messages reach the relay (briefly), then closes.
func (e *env) finish(c *chat.Controller) {
	if c.Online() {
		deadline := time.Now().Add(5 * time.Second)
		if !e.flushBy.IsZero() && e.flushBy.Before(deadline) {
			deadline = e.flushBy
		}
		ctx, cancel := context.WithDeadline(e.ctx, deadline)
		c.Flush(ctx)
		cancel()
	}
	c.Close()
}

// offline opens the profile without connecting.
func (e *env) offline() (*chat.Controller, error) {
	p, pass, err := e.existingProfile()
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	return p.NewController(e.ctx, pass) // takes p.Held over
}

// whyOffline says why c, opened allowing offline, is not connected: unreachable, or
// — when the relay answered and refused for now — what it answered (a relay node whose
// store lost its quorum answers unavailable: it runs, so "unreachable" would send its
// operator looking in the wrong place).
func whyOffline(c *chat.Controller) string {
	var pe *relay.ProtocolError
	if err := c.StartedOffline(); errors.As(err, &pe) {
		return fmt.Sprintf("the relay answers but refuses for now (%s: %s)", pe.Code, pe.Message) // sanitised when decoded
	}
	d := offlineRelay(c)
	return d.where() + " is unreachable" + d.because()
}

// offlineRelay is the relay c, opened allowing offline, could not reach: the address
// and reason its start's error names, else its relay URL.
func offlineRelay(c *chat.Controller) relayDown {
	var d relayDown
	if err := c.StartedOffline(); err != nil {
		d = relayDownOf(err)
	}
	if d.url == "" {
		d.url = c.RelayURL()
	}
	return d
}

// refusalForNow is the relay's answer to a send it refused for now, in parentheses:
// its code and limit, and what it said ("(storage_full (min_free): the relay's disk is
// nearly out of free space…)").
func refusalForNow(pe *relay.ProtocolError) string {
	code := pe.Code
	if pe.Limit != "" {
		code += " (" + pe.Limit + ")"
	}
	if pe.Message == "" {
		return "(" + code + ")"
	}
	return "(" + code + ": " + pe.Message + ")"
}

// explain turns an error into a sentence that says what to do.
func explain(e *env, err error) string {
	var rk *chat.RelayKeyChangedError
	var kc *chat.KeyChangedError
	switch {
	case errors.Is(err, chat.ErrWrongPassphrase):
		switch _, envSet := os.LookupEnv(profile.EnvPassphrase); {
		case e.flags.PassphraseFile != "":
			return "wrong passphrase for this profile in the passphrase file " + e.flags.PassphraseFile + "; check the file"
		case envSet:
			return "wrong passphrase for this profile in $" + profile.EnvPassphrase + "; check what it holds"
		}
		return "wrong passphrase for this profile; try again"
	case errors.Is(err, chat.ErrNoProfile):
		return fmt.Sprintf("%v\nno identity yet: create one with 'pfschat init --name NAME' (or pass --home DIR to use another profile)", err)
	case errors.Is(err, chat.ErrProfileDamaged):
		return fmt.Sprintf("%v\nthe profile's file is damaged; do not run 'pfschat init' here (that would give up your name): restore the file from a backup", err)
	case errors.Is(err, chat.ErrDiskFull):
		return fmt.Sprintf("%v", err)
	case errors.Is(err, errRestoreOverProfile):
		return fmt.Sprintf("%v\nrestore into a new profile: pass --home NEW_DIR", err)
	case errors.Is(err, chat.ErrProfileExists):
		return fmt.Sprintf("%v\nthis profile already has an identity; use another --home DIR to create a second one", err)
	case errors.Is(err, chat.ErrNameTaken):
		return fmt.Sprintf("%v\npick another name (or, if it is yours and you lost its device, get it back with 'pfschat recover NAME' and your recovery code)", err)
	case errors.As(err, &rk):
		msg := fmt.Sprintf("%v\nrefusing to talk to it. If the relay's operator announced a new key (an old one was compromised), compare the fingerprint with the announcement and run 'pfschat repin'.", err)
		switch e.cmd {
		case "send", "send-file":
			// Nothing was queued: a message kept for later would go to this relay.
			msg += "\nThe message was not sent, and nothing was kept to send later: after 'pfschat repin', run the same 'pfschat " + e.cmd + "' again."
		}
		return msg
	case errors.Is(err, client.ErrSpeaksTLS):
		// The opposite of a wss:// URL to a plain relay (below, with ErrOffline).
		detail := chat.Sentence(err)
		for _, s := range []string{client.ErrSpeaksTLS.Error(), strings.TrimPrefix(client.ErrSpeaksTLS.Error(), "relay: ")} {
			detail = strings.ReplaceAll(detail, " ("+s+")", "")
		}
		detail = strings.TrimPrefix(detail, strings.TrimPrefix(chat.ErrOffline.Error(), "chat: ")+": ")
		try := "wss:// instead of ws://"
		for _, part := range strings.Split(detail, ": ") {
			if rest, ok := strings.CutPrefix(part, "ws://"); ok {
				try = "wss://" + strings.TrimSuffix(rest, "/v2/ws")
				break
			}
		}
		return "cannot reach the relay: " + detail + "\nthe relay speaks TLS on that port: try " + try
	case errors.As(err, &kc):
		return fmt.Sprintf("%v\nrun 'pfschat fingerprint %s', compare it with %s in person or on another channel, then 'pfschat accept-key %s'", err, kc.Contact, kc.Contact, kc.Contact)
	case errors.Is(err, chat.ErrUnknownUser) && e.cmd == "recover":
		// Your own name: no one else is to make it.
		return fmt.Sprintf("%v\ncheck the spelling of your name, and that --relay is the relay you registered it on; a name freed on the relay (delete-account, or unused past its expiry) cannot be recovered: register it again with 'pfschat init'", err)
	case errors.Is(err, chat.ErrUnknownUser):
		return fmt.Sprintf("%v\ncheck the spelling, or ask them to run 'pfschat init' on this relay", err)
	case errors.Is(err, chat.ErrUnknownContact):
		return fmt.Sprintf("%v\nadd them first with 'pfschat add NAME'", err)
	case errors.As(err, new(*chat.RejectedKeyOnlyError)):
		var rk *chat.RejectedKeyOnlyError
		errors.As(err, &rk)
		return fmt.Sprintf("%v\nrun 'pfschat fingerprint %s', compare it with %s in person or on another channel, then 'pfschat accept-key %s'", err, rk.Contact, rk.Contact, rk.Contact)
	case errors.Is(err, chat.ErrCardRejected):
		return fmt.Sprintf("%v\nthe relay handed out a card or keys that do not verify; nothing was trusted or sent", err)
	case relayRefused(err, relay.CodeRegistrationClosed):
		return fmt.Sprintf("%v\nask the relay's operator whether it will take you, or register on another relay with --relay URL", err)
	case isLoginFailed(err):
		// The relay answered: it has no account with this profile's card.
		return "the relay does not know this profile's card (it refused the login): the account was deleted (pfschat delete-account, or freed after a time unused), " +
			"or its card was replaced from another device (recover, reset-identity)\n" +
			"if the account was deleted, its name is free: register again in a new profile with 'pfschat --home NEW_DIR init --name NAME'; " +
			"if it was replaced elsewhere, use that device, or get the name back with 'pfschat --home NEW_DIR recover NAME' and your recovery code"
	case errors.Is(err, client.ErrInsecureTransport):
		// Refused here, before any dial: the error says what to do.
		return "not connecting to the relay: " + strings.TrimPrefix(chat.Sentence(err), strings.TrimPrefix(chat.ErrOffline.Error(), "chat: ")+": ")
	case errors.Is(err, chat.ErrOffline) && e.viaOwner:
		return ownerOffline(e, err) // relaydown.go: the owner's relay, not one dialed here
	case errors.Is(err, chat.ErrOffline):
		// The error's own words as a sentence (no "chat: relay unreachable: … relay:"),
		// after the one lead every caller and script looks for.
		// An owner's "offline" refusal has words of its own (the call it could not make).
		s := chat.Sentence(err)
		detail, ok := strings.CutPrefix(s, strings.TrimPrefix(chat.ErrOffline.Error(), "chat: "))
		if !ok && s != "" {
			detail = ": " + s
		}
		if cv := (*tls.CertificateVerificationError)(nil); errors.As(err, &cv) {
			// It runs and answered: its certificate is what failed.
			return "cannot reach the relay" + detail + "\nthe relay's TLS certificate does not verify: check that the name in --relay is one of the certificate's; " +
				"a certificate not from a public authority (a self-signed one) is trusted with SSL_CERT_FILE=FILE or SSL_CERT_DIR=DIR"
		}
		if rh := (tls.RecordHeaderError{}); errors.As(err, &rh) {
			// Something answered on that port, in plain text.
			try := "ws:// instead of wss://"
			for _, part := range strings.Split(detail, ": ") {
				if rest, ok := strings.CutPrefix(part, "wss://"); ok {
					try = "ws://" + rest
					break
				}
			}
			return "the relay does not speak TLS on that port" + detail + "\ntry " + try + " (a relay started without --tls-* or --acme-* speaks plain ws://, on loopback or with --insecure-ws)"
		}
		if !unreachable(err) {
			return "cannot reach the relay" + detail
		}
		return unreachableRelay(err) // relaydown.go: the address once, the dial's reason, what to do
	case errors.Is(err, ratchet.ErrInvalidName):
		return fmt.Sprintf("%v", err)
	// Identity recovery (recovercmd.go).
	case errors.Is(err, relay.ErrRecoveryCodeChecksum), errors.Is(err, relay.ErrRecoveryCodeMalformed):
		return fmt.Sprintf("%v\ncheck the code as it was written down (32 letters and digits; nothing was sent)", err)
	case errors.Is(err, chat.ErrRecoveryFailed):
		return fmt.Sprintf("%v\nthe code is wrong or was replaced; attempts are limited, so check it before trying again", err)
	case errors.Is(err, chat.ErrRecoveryLimited):
		return fmt.Sprintf("%v\nwait an hour before trying again", err)
	case errors.Is(err, chat.ErrIdentityReplaced):
		return fmt.Sprintf("%v\n%s", err, chat.IdentityReplacedAdvice)
	}
	return err.Error()
}

// relayRefused reports whether the relay refused a request with code.
func relayRefused(err error, code string) bool {
	var pe *relay.ProtocolError
	return errors.As(err, &pe) && pe.Code == code
}

// isLoginFailed: the relay refused the login with this profile's card (an account it
// does not have: deleted, expired, or replaced elsewhere without a trace it keeps).
func isLoginFailed(err error) bool {
	var pe *relay.ProtocolError
	return errors.As(err, &pe) && pe.Code == relay.CodeLoginFailed
}

// unreachable reports whether an error of a failed connection says the relay could not
// be reached at all — the dial failed (refused, no route, a name that does not
// resolve) or timed out — or says nothing of the wire (an owner's "offline" answer):
// only then is "is it running?" the question. A relay that answered (a refusal, a TLS
// handshake that failed, an HTTP answer that is no relay's) was reached.
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &op) && op.Op == "dial", errors.As(err, &dns),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.As(err, new(*relay.ProtocolError)), errors.As(err, new(tls.RecordHeaderError)), errors.As(err, new(tls.AlertError)),
		errors.As(err, new(*tls.CertificateVerificationError)), errors.As(err, new(x509.HostnameError)), errors.As(err, new(x509.UnknownAuthorityError)),
		errors.As(err, new(x509.CertificateInvalidError)), errors.Is(err, websocket.ErrBadHandshake), errors.Is(err, client.ErrRelayProof),
		errors.Is(err, client.ErrInsecureTransport), errors.As(err, &op):
		return false
	}
	return true
}

func cmdVersion(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(e.stdout, "pfschat %s\n", v)
	return nil
}

// waitFlag is send's and send-file's --wait: a positive duration. A wait of zero or
// less would report every message as kept in the outbox for an unreachable relay (exit
// 3) while it goes out, so it is refused before anything is queued.
func waitFlag(fs *flag.FlagSet) (time.Duration, error) {
	wait := fs.Lookup("wait").Value.(flag.Getter).Get().(time.Duration)
	if wait <= 0 {
		return 0, usagef("--wait %v: want how long to wait for the relay to accept, more than 0 (e.g. --wait 30s)", wait)
	}
	return wait, nil
}

// plural is "1 argument", "2 arguments": n and the noun, plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func oneName(args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want exactly one NAME, got %s", plural(len(args), "argument"))
	}
	return userName(args[0])
}

// userName is a NAME argument: lower case ("Bob" is bob), and a name someone can have,
// else a usage error (exit 2) before the profile is opened.
func userName(arg string) (string, error) {
	name := strings.ToLower(arg)
	if err := ratchet.ValidateName(name); err != nil {
		return "", usagef("%q is not a valid name: use 1–32 of a-z 0-9 . _ -", arg)
	}
	return name, nil
}

// withContact runs fn on the local store for a command that takes exactly one NAME and
// needs no relay (fingerprint, verify, reject-key, reset-session).
func withContact(e *env, args []string, fn func(c profileOps, name string) error) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	c, done, err := e.ops(false)
	if err != nil {
		return err
	}
	defer done()
	return fn(c, name)
}

func cmdInit(e *env, fs *flag.FlagSet, args []string) error {
	name := fs.Lookup("name").Value.String()
	if name == "" && len(args) == 1 {
		name = args[0]
	} else if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if name == "" {
		return usagef("--name NAME is required")
	}
	name, err := userName(name) // "Hank" is hank, as every other NAME
	if err != nil {
		return err
	}
	p, err := e.profile()
	if err != nil {
		return err
	}
	p.Device = fs.Lookup("device").Value.String()
	p.Invite = fs.Lookup("invite").Value.String()
	if p.Invite == "" {
		p.Invite = os.Getenv(profile.EnvInvite)
	}
	if p.Exists() {
		return fmt.Errorf("%w: %s", chat.ErrProfileExists, p.StorePath())
	}
	pass, err := e.newPassphrase()
	if err != nil {
		return err
	}
	defer clear(pass)
	c, err := p.Create(e.ctx, name, pass, p.RelayURL)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stdout, "created %s (card %s) in %s\n", c.Me(), c.Card().ID()[:16], p.Dir)
	fmt.Fprintf(e.stdout, "your key fingerprint: %s\n", ratchet.Fingerprint(c.Card().SigningKey))
	fmt.Fprintf(e.stdout, "relay key pinned: %s (compare with the fingerprint the relay printed at start)\n", c.RelayFingerprint())
	printRecoveryCode(e.stdout, c.TakeRecoveryCode()) // recovercmd.go
	return nil
}

func cmdAdd(e *env, fs *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	c, done, err := e.ops(true)
	if err != nil {
		return err
	}
	defer done()
	ct, err := c.AddContact(e.ctx, name)
	if err != nil {
		return err
	}
	sn, err := c.SafetyNumber(e.ctx, name)
	if err != nil {
		return err
	}
	if ct.KeyChanged {
		fmt.Fprintf(e.stdout, "WARNING: %s's identity key has changed; sending is blocked.\n", name)
		printSafetyNumber(e.stdout, sn)
		fmt.Fprintf(e.stdout, "compare it with %s, then run: pfschat accept-key %s\n", name, name)
		return nil
	}
	if ct.Verified {
		fmt.Fprintf(e.stdout, "%s is already a verified contact; the key has not changed (card %s, key %s)\n", name, ct.CardID[:16], ct.Fingerprint)
		return nil
	}
	fmt.Fprintf(e.stdout, "added %s (card %s, key %s)\n", name, ct.CardID[:16], ct.Fingerprint)
	printSafetyNumber(e.stdout, sn)
	if !ct.Verified {
		fmt.Fprintf(e.stdout, "trusted on first use; compare the safety number with %s, then run: pfschat verify %s\n", name, name)
	}
	return nil
}

func printSafetyNumber(w io.Writer, sn chat.SafetyNumber) {
	label := "safety number"
	if sn.Pending {
		label = "NEW safety number"
	}
	fmt.Fprintf(w, "%s with %s:\n", label, sn.Contact)
	for _, r := range sn.Rows() {
		fmt.Fprintf(w, "    %s\n", r)
	}
}

func cmdSend(e *env, fs *flag.FlagSet, args []string) error {
	name, text, err := sendArgs(e, args) // owner.go: the same with an owner
	if err != nil {
		return err
	}
	wait, err := waitFlag(fs)
	if err != nil {
		return err
	}
	// Offline is fine when a session exists: the message waits in the outbox.
	c, err := e.open(true)
	if err != nil {
		return err
	}
	defer e.finish(c)
	if _, err := c.Contact(e.ctx, name); errors.Is(err, chat.ErrUnknownContact) {
		if !c.Online() {
			if why := c.StartedOffline(); why != nil { // the relay and the dial's reason, said once
				return fmt.Errorf("%w: %s is not a contact yet, and adding one needs the relay: %w", chat.ErrOffline, name, why)
			}
			return fmt.Errorf("%w: %s is not a contact yet, and adding one needs the relay at %s", chat.ErrOffline, name, c.RelayURL())
		}
		if _, err := c.AddContact(e.ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "added %s (trusted on first use; 'pfschat fingerprint %s' shows the safety number)\n", name, name)
	} else if err != nil {
		return err
	}
	// Listen before sending so the "sent" event cannot be missed.
	events := c.Events()
	m, err := c.Send(e.ctx, name, text)
	if err != nil {
		return err
	}
	queued := queuedErr{fmt.Sprintf("%s; the message is kept in the outbox (message %d) "+
		"and goes out the next time a pfschat command connects. Do not send it again.", whyOffline(c), m.ID)}
	if !c.Online() {
		return queued
	}
	// Connected, and not accepted in time: the relay answers but refuses for now (its
	// disk is full, its store cannot take the write); "unreachable" would send the
	// operator looking for a relay that runs.
	notAccepted := func() error {
		why := "('pfschat -v send' shows its answer, such as a full disk)"
		if pe := c.SendDeferral(m); pe != nil { // its answer, sanitised when decoded
			why = refusalForNow(pe)
		}
		return queuedErr{fmt.Sprintf("the relay has not accepted the message within %v: it answers, but refuses sends for now %s; "+
			"the message is kept in the outbox (message %d) and goes out the next time a pfschat command connects. Do not send it again.", wait, why, m.ID)}
	}
	e.flushBy = time.Now().Add(wait)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return queued
			}
			if ev.Kind != chat.DeliveryChanged || ev.Message == nil || ev.Message.ID != m.ID {
				continue
			}
			switch ev.Message.State {
			case chat.Failed:
				return fmt.Errorf("the relay refused the message: %s", ev.Message.Reason)
			case chat.Pending:
				continue
			}
			fmt.Fprintf(e.stdout, "sent to %s (message %d)\n", name, m.ID)
			return nil
		case <-timeout.C:
			if c.Online() {
				return notAccepted()
			}
			return queued
		case <-e.ctx.Done():
			return queued
		}
	}
}

// jsonMessage is one line of 'recv --json'.
type jsonMessage struct {
	ID         int64  `json:"id"`
	From       string `json:"from"`
	Text       string `json:"text"`
	SentAt     string `json:"sent_at"`     // jsonTime: UTC, always milliseconds
	ReceivedAt string `json:"received_at"` // the same precision
	State      string `json:"state,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Seq is the sender's per-conversation sequence number (chat/PAYLOAD.md §3):
	// messages from one sender, sorted by it, are in the order they were sent. Absent
	// (0) for an undecryptable message or one from a client before payload version 2.
	Seq uint64 `json:"seq,omitempty"`
	// KeyPending: the message came from the sender's changed identity key, which has not
	// been accepted (pfschat accept-key NAME after comparing safety numbers). Treat its
	// text as unconfirmed: it may not be from the contact.
	KeyPending bool `json:"key_pending,omitempty"`
	// Request: the sender is a message request, not a contact yet. Answering (send)
	// accepts them, as accept-request does; block refuses them.
	Request bool `json:"request,omitempty"`
	// File is set when the message is a file (Text is then its caption).
	File *jsonFile `json:"file,omitempty"`
}

// recvLine is how recv prints one message: a JSON object (jsonMessage) or a line of
// text; a message from a changed, not yet accepted identity key is marked as such.
func recvLine(m chat.Message, asJSON bool) string {
	if asJSON {
		j := jsonMessage{ID: m.ID, From: m.Contact, Text: m.Text, SentAt: jsonTime(m.SentAt), ReceivedAt: jsonTime(m.ReceivedAt), Seq: m.Seq, KeyPending: m.KeyPending,
			Request: m.Request, File: fileJSON(m.Attachment)}
		if m.State == chat.UndecryptableState || m.State == chat.Failed {
			j.State, j.Reason = m.State.String(), m.Reason
		}
		b, _ := json.Marshal(j)
		return string(b) + "\n"
	}
	if m.State == chat.UndecryptableState {
		return fmt.Sprintf("%s  %s: [could not decrypt: %s]\n", m.ReceivedAt.Local().Format(time.DateTime), m.Contact, shown(m.Reason))
	}
	if m.State == chat.Failed {
		return fmt.Sprintf("%s  %s: [a message was not delivered: %s]\n", m.SentAt.Local().Format(time.DateTime), m.Contact, shown(m.Reason))
	}
	text := shown(m.Text)
	if m.Attachment != nil {
		// The caption first, the file's line last: a path ends the line, so nothing runs
		// into it ("saved to /x/hello.txt hi file" read as one path).
		text = strings.TrimSpace(text + " " + shown(fileText(m.Attachment)))
	}
	if m.KeyPending {
		return fmt.Sprintf("%s  %s [NEW KEY NOT ACCEPTED — may not be %s; compare safety numbers, then pfschat accept-key %s]: %s\n",
			m.SentAt.Local().Format(time.DateTime), m.Contact, m.Contact, m.Contact, text)
	}
	if m.Request {
		return fmt.Sprintf("%s  %s [message request: not a contact; a reply or pfschat accept-request %s accepts, pfschat block %s refuses]: %s\n",
			m.SentAt.Local().Format(time.DateTime), m.Contact, m.Contact, m.Contact, text)
	}
	return fmt.Sprintf("%s  %s: %s\n", m.SentAt.Local().Format(time.DateTime), m.Contact, text)
}

// shown is a contact's text (or a reason) as recv prints it for a person: the
// terminal gets no control character but TAB and LF (PAYLOAD.md §4.1; the others,
// escape sequences and CR among them, as U+FFFD, as the UI shows them) and every line
// after the first is indented, so a message can neither drive the terminal nor pass a
// line of its own off as another message. recv --json has the text byte for byte.
func shown(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString("\n    ")
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// jsonTime is recv --json's one time precision: UTC RFC 3339 with exactly three
// fraction digits, the payload's millisecond (chat/PAYLOAD.md), for both timestamps.
func jsonTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func cmdRecv(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	follow := fs.Lookup("follow").Value.String() == "true"
	asJSON := fs.Lookup("json").Value.String() == "true"
	count := fs.Lookup("count").Value.(flag.Getter).Get().(int)
	downloadDir := fs.Lookup("download-dir").Value.String()
	e.noReadReceipts = fs.Lookup("no-read-receipts").Value.String() == "true"
	if count < 0 || (count > 0 && !follow) {
		return usagef("--count N needs --follow and N >= 1")
	}
	if err := checkDownloadDir(fs); err != nil {
		return err
	}
	// --follow outlives the relay's restarts, so it also waits for a relay that is down
	// when it starts (as a device's service starts before its relay); the controller
	// keeps trying in the background.
	var c *chat.Controller
	var down, err error // down: the relay is down: print what is stored, then say so (exit 1)
	if follow {
		c, err = e.open(true)
	} else {
		c, down, err = e.openOrOffline()
	}
	if err != nil {
		return err
	}
	defer e.finish(c)
	events := c.Events()
	done := false
	// Wait until the relay has delivered the backlog, then print what is unread.
	if down == nil {
		if !c.Online() {
			d := offlineRelay(c)
			fmt.Fprintf(e.stderr, "%s cannot be reached yet%s; waiting for it (pfschat keeps trying; ctrl+c to stop)\n", d.where(), d.because())
		}
		if err := c.WaitSynced(e.ctx); err != nil {
			if e.ctx.Err() != nil {
				return nil // stopped while waiting, as while following
			}
			return err
		}
	}
	// What was printed is marked read even when a signal stops recv right after it.
	markCtx := context.WithoutCancel(e.ctx)
	printed := make(chat.Shown)
	print := func(m chat.Message) error {
		if !printed.Fresh(m.ID, m.State == chat.UndecryptableState) {
			return nil
		}
		fetchAttachment(e, c, &m, downloadDir, down != nil)
		if e.ctx.Err() != nil {
			// Stopped while its file downloaded: not printed (its file's state would be
			// stale) nor marked read; the next recv resumes the download and prints it.
			return errRecvStopped
		}
		printed.Mark(m.ID, m.State == chat.UndecryptableState)
		defer func() {
			if count > 0 && len(printed) >= count {
				done = true
			}
		}()
		_, err := io.WriteString(e.stdout, recvLine(m, asJSON))
		return err
	}
	// Files of messages printed before but not downloaded then (the relay was down, or
	// the sender was not yet a contact) are fetched now, their paths on stderr.
	if down == nil {
		fetchEarlier(e, c, downloadDir)
	}
	unread, err := c.Unread(e.ctx)
	if err != nil {
		if e.ctx.Err() != nil {
			return nil // stopped, as while waiting
		}
		return err
	}
	if count > 0 && len(unread) > count {
		unread = unread[:count]
	}
	// Mark read only what was printed: a message that arrives meanwhile stays unread
	// until its event prints it, so a crash in between shows it next time.
	readThrough := make(map[string]int64)
	stopped := false
	for _, m := range unread {
		if err := print(m); errors.Is(err, errRecvStopped) {
			stopped = true
			break
		} else if err != nil {
			return err
		}
		readThrough[m.Contact] = max(readThrough[m.Contact], m.ID)
	}
	for name, id := range readThrough {
		if err := c.MarkReadThrough(markCtx, name, id); err != nil {
			return err
		}
	}
	if stopped {
		return nil
	}
	// A key change learned now (a message or a retry request from the new key, even
	// one that prints nothing) or before and not yet accepted is said once per run:
	// sending to them waits for it, and their messages may not be theirs.
	warned := make(map[string]bool)
	warnKeyChanged := func(name string) {
		if !warned[name] {
			warned[name] = true
			fmt.Fprintf(e.stderr, "warning: %s's identity key changed; run 'pfschat fingerprint %s', compare, then 'pfschat accept-key %s'\n", name, name, name)
		}
	}
	if list, err := c.Contacts(e.ctx); err == nil {
		for _, ct := range list {
			if ct.KeyChanged && !ct.Blocked {
				warnKeyChanged(ct.Name)
			}
		}
	}
	if !follow || done {
		return down
	}
	for {
		select {
		case <-e.ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			switch ev.Kind {
			case chat.MessageReceived, chat.Undecryptable:
				if ev.Message == nil { // unreadable, from a stranger: nothing stored to show
					fmt.Fprintf(e.stderr, "warning: an unreadable message from %s (not a contact) was dropped: %v\n", ev.Contact, ev.Err)
					continue
				}
				if err := print(*ev.Message); errors.Is(err, errRecvStopped) {
					return nil
				} else if err != nil {
					return err
				}
				if err := c.MarkReadThrough(markCtx, ev.Contact, ev.Message.ID); err != nil {
					return err
				}
				if done {
					return nil
				}
			case chat.ContactKeyChanged:
				warnKeyChanged(ev.Contact)
			case chat.ConnectionChanged:
				if err := connectionEnded(ev); err != nil { // daemoncmd.go: it would wait for good
					return err
				}
				if e.flags.Verbose {
					fmt.Fprintf(e.stderr, "relay: %s\n", ev.State.Status)
				}
			}
		}
	}
}

// errRecvStopped: a signal stopped recv while it downloaded a message's file; the
// message was not printed.
var errRecvStopped = errors.New("recv: stopped")

// jsonContact is one line of 'contacts --json'.
type jsonContact struct {
	Name        string `json:"name"`
	CardID      string `json:"card_id"`
	Fingerprint string `json:"fingerprint"`
	Verified    bool   `json:"verified"`
	KeyChanged  bool   `json:"key_changed"`
	KeyRejected bool   `json:"key_rejected,omitempty"`
	Unread      int    `json:"unread"`
	Request     bool   `json:"request,omitempty"`
	Blocked     bool   `json:"blocked,omitempty"`
	Nickname    string `json:"nickname,omitempty"`
	Muted       bool   `json:"muted,omitempty"`
}

func cmdContacts(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	c, done, err := e.ops(false)
	if err != nil {
		return err
	}
	defer done()
	list, err := c.Contacts(e.ctx)
	if err != nil {
		return err
	}
	if fs.Lookup("json").Value.String() == "true" {
		for _, ct := range list {
			b, _ := json.Marshal(jsonContact{ct.Name, ct.CardID, ct.Fingerprint, ct.Verified, ct.KeyChanged, ct.KeyRejected, ct.Unread,
				ct.Request, ct.Blocked, ct.Nickname, ct.Muted})
			fmt.Fprintf(e.stdout, "%s\n", b)
		}
		return nil
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no contacts yet; add one with 'pfschat add NAME'")
		return nil
	}
	for _, ct := range list {
		mark := "  "
		switch {
		case ct.KeyChanged:
			mark = "! "
		case ct.Verified:
			mark = "✓ "
		}
		line := fmt.Sprintf("%s%-20s %s", mark, ct.Name, ct.Fingerprint)
		if ct.Unread > 0 {
			line += fmt.Sprintf("  %d unread", ct.Unread)
		}
		if ct.KeyChanged {
			line += "  KEY CHANGED: run 'pfschat fingerprint " + ct.Name + "'"
		} else if ct.KeyRejected {
			line += "  a new key you rejected: its messages are held ('pfschat accept-key " + ct.Name + "' takes it)"
		}
		line += contactNotes(ct) // requests, blocks, nicknames (contactcmd.go)
		fmt.Fprintln(e.stdout, line)
	}
	return nil
}

func cmdFingerprint(e *env, fs *flag.FlagSet, args []string) error {
	return withContact(e, args, func(c profileOps, name string) error {
		sn, err := c.SafetyNumber(e.ctx, name)
		if err != nil {
			return err
		}
		ct, err := c.Contact(e.ctx, name)
		if err != nil {
			return err
		}
		if sn.Pending {
			fmt.Fprintf(e.stdout, "WARNING: %s's identity key has changed; sending is blocked until you accept it.\n", name)
			if old, err := c.TrustedSafetyNumber(e.ctx, name); err == nil {
				fmt.Fprintf(e.stdout, "old safety number: %s\n", old.Digits())
			}
		}
		printSafetyNumber(e.stdout, sn)
		switch {
		case sn.Pending:
			fmt.Fprintf(e.stdout, "compare it with %s, then run: pfschat accept-key %s\n", name, name)
		case ct.Verified:
			fmt.Fprintln(e.stdout, "verified")
		default:
			fmt.Fprintf(e.stdout, "not verified; if %s reads out the same digits, run: pfschat verify %s\n", name, name)
		}
		return nil
	})
}

func cmdVerify(e *env, fs *flag.FlagSet, args []string) error {
	return withContact(e, args, func(c profileOps, name string) error {
		if err := c.Verify(e.ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s is verified\n", name)
		return nil
	})
}

// cmdAcceptKey accepts a contact's new key. Accepting queues messages to them (the
// texts that went to their previous key and never arrived, PAYLOAD.md §4.3; receipts
// held back): it connects to send them before it exits, and when the relay cannot be
// reached it accepts anyway and says they wait for the next connection.
func cmdAcceptKey(e *env, fs *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	// Offline is fine: the key is accepted here, and what that sends waits in the
	// outbox. One unlock (and one passphrase prompt) whether or not the relay answers.
	var c profileOps
	offline := false
	cl, err := e.ownerClient()
	if err != nil {
		return err
	}
	if cl != nil {
		defer cl.Close()
		c = ownerOps{cl}
	} else {
		ctl, err := e.open(true)
		if err != nil {
			return err
		}
		defer e.finish(ctl)
		c, offline = ctl, !ctl.Online()
	}
	if err := c.AcceptKey(e.ctx, name); err != nil {
		if errors.Is(err, chat.ErrNoPendingKey) {
			fmt.Fprintf(e.stdout, "%s's key has not changed; nothing to accept\n", name)
			return nil
		}
		return err
	}
	fmt.Fprintf(e.stdout, "accepted %s's new key; sending is unblocked (run 'pfschat verify %s' once you have compared safety numbers)\n", name, name)
	if offline {
		fmt.Fprintf(e.stderr, "the relay cannot be reached: what accepting the key sends to %s (messages that went to their previous key, receipts) goes out the next time pfschat connects\n", name)
	}
	return nil
}

// cmdRejectKey keeps the trusted key of a contact whose key change the user does not
// believe; no relay needed.
func cmdRejectKey(e *env, fs *flag.FlagSet, args []string) error {
	return withContact(e, args, func(c profileOps, name string) error {
		if err := c.RejectKey(e.ctx, name); err != nil {
			if errors.Is(err, chat.ErrNoPendingKey) {
				fmt.Fprintf(e.stdout, "%s's key has not changed; nothing to reject\n", name)
				return nil
			}
			return err
		}
		fmt.Fprintf(e.stdout, "kept the key you trusted for %s and rejected the new one; sending goes to the trusted key while a session with it lasts "+
			"(without one — after reset-session — nothing can be sent to %s: the relay has prekeys only for the new key). "+
			"The messages the rejected key signs stay marked, without a new warning ('pfschat accept-key %s' takes it after all)\n", name, name, name)
		return nil
	})
}

func cmdRotateKeys(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	n := fs.Lookup("count").Value.(flag.Getter).Get().(int)
	if n < 1 || n > 100 {
		return usagef("--count must be between 1 and 100 (a relay keeps at most 100 one-time keys of each kind)")
	}
	c, done, err := e.ops(true)
	if err != nil {
		return err
	}
	defer done()
	if err := c.RotateKeys(e.ctx, n); err != nil {
		return err
	}
	otp, kem, err := c.OneTimeKeysOnRelay(e.ctx) // the real count: a top-up never takes keys back
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "prekeys up to date: the relay holds %d one-time X25519 and %d one-time ML-KEM keys\n", otp, kem)
	return nil
}

func cmdResetSession(e *env, fs *flag.FlagSet, args []string) error {
	return withContact(e, args, func(c profileOps, name string) error {
		if err := c.ResetSession(e.ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "sessions with %s dropped; the next message starts a new one\n", name)
		return nil
	})
}

// apiErrorName is ", NAME" for an owner's error that names itself (data.name), else "".
func apiErrorName(de *daemon.Error) string {
	if de.Data == nil || de.Data.Name == "" {
		return ""
	}
	return ", " + de.Data.Name
}
