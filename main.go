// Command pfschat is an end-to-end encrypted messenger for the terminal, with perfect
// forward secrecy, for people and for unattended devices. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run hands the arguments to the command layer, chat/cli; it holds no logic of its own.
// Global flags may stand before the command word (pfschat --home DIR send bob hi).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The relay command is the one still dispatched here: it moves into chat/cli
	// (relaycmd.go), and then this switch goes and run is cli.Main alone.
	if i := profile.CommandIndex(args); i >= 0 {
		switch args[i] {
		case "relay":
			if err := relay.RunCommand(ctx, args[i+1:], stdout, stderr); err != nil {
				fmt.Fprintf(stderr, "pfschat relay: %v\n", err)
				return 1
			}
			return 0
		}
	}
	return cli.Main(ctx, args, stdin, stdout, stderr)
}
