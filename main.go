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
	stopOn := []os.Signal{os.Interrupt, syscall.SIGTERM}
	// A closed terminal (SIGHUP) stops pfschat as Ctrl+C does, so the demo removes its
	// throwaway profile and a UI or relay commits and closes its store; under nohup
	// (SIGHUP ignored) it stays ignored.
	if !signal.Ignored(syscall.SIGHUP) {
		stopOn = append(stopOn, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopOn...)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run hands the arguments to the command layer, chat/cli; it holds no logic of its own.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Main(ctx, args, stdin, stdout, stderr)
}
