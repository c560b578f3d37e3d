package ui

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// DefaultRelayURL is the relay a new profile points at unless told otherwise.
const DefaultRelayURL = "ws://127.0.0.1:7878"

// Paths are where the interactive client keeps its data and its log.
type Paths struct {
	Home    string // profile and database
	LogFile string
}

// DefaultPaths follows the XDG base directory spec: data in $XDG_DATA_HOME/pfschat
// (default ~/.local/share/pfschat), the log in $XDG_STATE_HOME/pfschat (default
// ~/.local/state/pfschat). home, when not empty, replaces the data directory, and so does
// $PFSCHAT_HOME, as for the headless commands.
func DefaultPaths(home string) (Paths, error) {
	userHome, herr := os.UserHomeDir()
	xdg := func(env, fallback string) (string, error) {
		if v := os.Getenv(env); v != "" && filepath.IsAbs(v) {
			return filepath.Join(v, "pfschat"), nil
		}
		if herr != nil {
			return "", fmt.Errorf("no $%s and no home directory: %w", env, herr)
		}
		return filepath.Join(userHome, fallback, "pfschat"), nil
	}
	var p Paths
	var err error
	if home == "" {
		home = os.Getenv(chat.EnvHome)
	}
	if home != "" {
		p.Home = home
	} else if p.Home, err = xdg("XDG_DATA_HOME", ".local/share"); err != nil {
		return p, err
	}
	state, err := xdg("XDG_STATE_HOME", ".local/state")
	if err != nil {
		return p, err
	}
	p.LogFile = filepath.Join(state, "pfschat.log")
	return p, nil
}

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
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})), func() { f.Close() }, nil
}

// Main runs the interactive client (`pfschat`) and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pfschat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "profile directory (default $XDG_DATA_HOME/pfschat)")
	relayURL := fs.String("relay", "", "relay URL (default: the one the profile remembers, else "+DefaultRelayURL+")")
	passFile := fs.String("passphrase-file", "", "read the passphrase from this file instead of asking (or set PFSCHAT_PASSPHRASE)")
	noBell := fs.Bool("no-bell", false, "no terminal bell for messages in other conversations")
	open := fs.String("open", "", "open the conversation with this contact")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pfschat: unexpected argument %q; see pfschat help\n", fs.Arg(0))
		return 2
	}
	paths, err := DefaultPaths(*home)
	if err != nil {
		fmt.Fprintf(stderr, "pfschat: %v; pass --home DIR\n", err)
		return 1
	}
	if err := os.MkdirAll(paths.Home, 0o700); err != nil {
		fmt.Fprintf(stderr, "pfschat: cannot create the profile directory: %v\n", err)
		return 1
	}
	logger, closeLog, err := openLog(paths.LogFile)
	if err != nil {
		fmt.Fprintf(stderr, "pfschat: %v (continuing without a log)\n", err)
	}
	defer closeLog()
	// Libraries that log through the default logger must not write over the UI either.
	slog.SetDefault(logger)
	logger.Info("starting", "home", paths.Home)

	opts := Options{Profile: newChatProfile(paths.Home, *relayURL, logger), Bell: !*noBell, Logger: logger, OpenContact: *open}
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			fmt.Fprintf(stderr, "pfschat: reading the passphrase file: %v\n", err)
			return 1
		}
		opts.Passphrase = []byte(strings.TrimRight(string(b), "\r\n"))
	} else if v, ok := os.LookupEnv("PFSCHAT_PASSPHRASE"); ok {
		opts.Passphrase = []byte(v)
	}
	return runProgram(ctx, opts, stdin, stdout, stderr, logger)
}

// runProgram runs the UI until it quits and closes whatever backend it ended with.
func runProgram(ctx context.Context, opts Options, stdin io.Reader, stdout, stderr io.Writer, logger *slog.Logger) int {
	app := New(ctx, opts)
	p := tea.NewProgram(app, tea.WithContext(ctx), tea.WithInput(stdin), tea.WithOutput(stdout))
	_, err := p.Run()
	if b := app.backend; b != nil && !app.quitting {
		if cerr := b.Close(); cerr != nil {
			logger.Warn("closing chat backend", "err", cerr)
		}
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, tea.ErrProgramPanic):
	case errors.Is(err, tea.ErrInterrupted), errors.Is(err, tea.ErrProgramKilled):
		return 0 // ctrl+c or the context ended: a normal way out
	}
	logger.Error("ui", "err", err)
	fmt.Fprintf(stderr, "pfschat: %v\n", err)
	return 1
}
