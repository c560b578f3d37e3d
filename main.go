// Command pfschat is an end-to-end encrypted messenger for the terminal, with perfect
// forward secrecy, for people and for unattended devices. See README.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"pfschat/chat/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run hands the arguments to the command layer, chat/cli; it holds no logic of its own.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Main(ctx, args, stdin, stdout, stderr)
}
