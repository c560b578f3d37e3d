package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/charmbracelet/x/term"

	"pfschat/chat"
	"pfschat/chat/profile"
	"pfschat/ui"
)

// openLog opens the log file (0600, directory 0700). The UI owns the terminal, so
// nothing is ever logged there; if the file cannot be opened logs are dropped.
func openLog(path string) (*slog.Logger, func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return slog.New(slog.DiscardHandler), func() {}, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return slog.New(slog.DiscardHandler), func() {}, fmt.Errorf("log file: %w", err)
	}
	// A log made looser by hand (or by an old version) is owner-only again: it names
	// contacts (and an old version's, files).
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return slog.New(slog.DiscardHandler), func() {}, fmt.Errorf("log file: %w", err)
	}
	// One file for every profile's UI (and the demos): each line says which process
	// wrote it, so two UIs open at once (two --home) can be told apart.
	logger := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})).With("pid", os.Getpid())
	return logger, func() { f.Close() }, nil
}

// parseNoArgs parses the flags of a command that takes no arguments (the UI, demo).
// ok is false when the command is done: --help was shown (code 0), or a usage mistake
// was reported (code 2; unexpected formats a stray argument).
func parseNoArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, unexpected string) (code int, ok bool) {
	if helped, err := parseFlags(fs, args, stdout); helped {
		return exitOK, false
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err) // the mistake, as a subcommand says it
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, unexpected, fs.Arg(0))
		return exitUsage, false
	}
	return exitOK, true
}

// runUI runs the interactive client (`pfschat` without a command word) and returns the
// exit code.
func runUI(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pfschat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags profile.Flags
	flags.Register(fs, profile.UI)
	fs.Usage = usageOf(fs, "usage: pfschat [flags]   (the chat UI; 'pfschat help' lists the commands)\n")
	if code, ok := parseNoArgs(fs, args, stdout, stderr, "pfschat: unexpected argument %q; see pfschat help\n"); !ok {
		return code
	}
	home, err := flags.HomeDir()
	if err != nil {
		fmt.Fprintf(stderr, "pfschat: %v\n", err)
		return exitFail
	}
	autoDownload, err := autoDownloadMax(flags.AutoDownloadMiB)
	if err != nil {
		fmt.Fprintf(stderr, "pfschat: %v\n", err)
		return exitUsage
	}
	// The same passphrase rules as the headless commands; without one given up front
	// the UI asks on its unlock screen.
	pass, _, err := flags.GivenPassphrase()
	if err != nil {
		fmt.Fprintf(stderr, "pfschat: %v\n", err)
		return exitFail
	}
	// Both before anything is made: a refusal leaves no directory or log behind.
	if msg := ownedElsewhere(ctx, home); msg != "" {
		fmt.Fprintln(stderr, msg)
		return exitFail
	}
	if msg := notATerminal("pfschat", stdin, stdout); msg != "" {
		fmt.Fprintln(stderr, msg)
		return exitUsage
	}
	_, statErr := os.Stat(home)
	madeHome := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(home, 0o700); err != nil {
		fmt.Fprintf(stderr, "pfschat: cannot create the profile directory: %v\n", err)
		return exitFail
	}
	if madeHome {
		// Left during onboarding (Ctrl+C before the identity was made), the new
		// directory goes again, as a failed 'pfschat init' leaves nothing; os.Remove
		// takes only an empty one, so a profile made in it stays.
		defer os.Remove(home)
	}
	logger, closeLog := slog.New(slog.DiscardHandler), func() {}
	logPath, err := profile.LogFile()
	if err == nil {
		logger, closeLog, err = openLog(logPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pfschat: %v (continuing without a log)\n", err)
	}
	defer closeLog()
	// Libraries that log through the default logger must not write over the UI either.
	slog.SetDefault(logger)
	logger.Info("starting", "home", home)

	p := chat.Profile{Dir: home, RelayURL: flags.RelayURL(), Owner: profile.OwnerUI, Prefs: chat.Preferences{
		// The UI opens even when the relay is down and shows "reconnecting in N s";
		// sends wait in the outbox.
		AllowOffline: true,
		StayUp:       true,
		Logger:       logger,
		InsecureWS:   flags.InsecureWS,
	}}
	if flags.InsecureWS {
		fmt.Fprintln(stderr, "pfschat: warning: --insecure-ws:", profile.InsecureWSWarning)
	}
	opts := ui.Options{Profile: uiOwnerProfile{ui.NewChatProfile(p), home, logger}, Passphrase: pass, Bell: !flags.NoBell, Logger: logger, OpenContact: flags.Open, Notifier: ui.DetectNotifier(os.Getenv),
		AutoDownloadMax: autoDownload, Graphics: ui.DetectGraphics(os.Getenv)}
	return runProgram(ctx, opts, stdin, stdout, stderr)
}

// notATerminal says why the UI cannot run on stdin and stdout, or "" when both are
// terminals. Bubble Tea given anything else draws escape sequences into a pipe or a
// file and waits on input that never comes (or fails with an epoll error for
// /dev/null); a user or a script gets a sentence and the commands meant for them.
func notATerminal(name string, stdin io.Reader, stdout io.Writer) string {
	which := ""
	if f, ok := stdin.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		which = "standard input is not one"
	} else if f, ok := stdout.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		which = "standard output is not one"
	}
	if which == "" {
		return ""
	}
	return name + ": the chat UI needs a terminal, and " + which + "; scripts and devices use the headless commands " +
		"(pfschat send, recv, send-file, daemon …: see pfschat help)"
}

// runProgram runs the UI until it quits and turns the outcome into an exit code.
func runProgram(ctx context.Context, opts ui.Options, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := ui.Run(ctx, opts, stdin, stdout); err != nil {
		opts.Logger.Error("ui", "err", err)
		fmt.Fprintf(stderr, "pfschat: %v\n", err)
		return exitFail
	}
	return exitOK
}

// autoDownloadMax turns --auto-download-mib into ui.Options.AutoDownloadMax: "0" turns
// it off (negative), N MiB is N<<20 bytes.
func autoDownloadMax(mib string) (int64, error) {
	n, err := strconv.ParseInt(cmp.Or(mib, "10"), 10, 64)
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("--auto-download-mib %q: want a whole number of MiB, 0 to %d (0: nothing downloads by itself)", mib, 1<<20)
	}
	if n == 0 {
		return -1, nil
	}
	return n << 20, nil
}
