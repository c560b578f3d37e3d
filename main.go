// Command pfschat is an end-to-end encrypted messenger for the terminal, with perfect
// forward secrecy, for people and for unattended devices. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"pfschat/chat/cli"
	"pfschat/ui"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to the package that owns each command; it holds no logic of its own.
// Global flags may stand before the command word (pfschat --home DIR send bob hi).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	i := commandIndex(args)
	if i < 0 {
		return ui.Main(ctx, args, stdin, stdout, stderr)
	}
	switch args[i] {
	case "demo":
		return ui.Demo(ctx, without(args, i), stdin, stdout, stderr)
	case "relay":
		if err := cli.RunRelay(ctx, args[i+1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "pfschat relay: %v\n", err)
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		return cli.Main(ctx, args, stdin, stdout, stderr)
	}
}

// flagsWithValue are the global flags whose value is the next argument when not
// given as --flag=value.
var flagsWithValue = map[string]bool{"home": true, "relay": true, "passphrase-file": true, "open": true}

// commandIndex returns the index of the first argument that is not a global flag
// or a flag's value, or -1 when there is none (the interactive client).
func commandIndex(args []string) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" || a == "--help" {
			return i
		}
		if !strings.HasPrefix(a, "-") {
			return i
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if flagsWithValue[name] {
			i++
		}
	}
	return -1
}

func without(args []string, i int) []string {
	return append(append([]string(nil), args[:i]...), args[i+1:]...)
}

const usage = `pfschat: end-to-end encrypted chat for the terminal

usage:
  pfschat                      the chat UI (profile in $XDG_DATA_HOME/pfschat)
  pfschat demo                 UI + embedded relay + an echo contact, throwaway profile
  pfschat relay                run a relay (--addr 127.0.0.1:7878, --db FILE)
  pfschat init --name NAME     create an identity and register it, no UI
  pfschat add NAME             fetch and verify a contact's card (trust on first use)
  pfschat send NAME TEXT       send one message, no UI
  pfschat recv [--follow] [--json]   print incoming messages
  pfschat contacts | fingerprint NAME | verify NAME | accept-key NAME
  pfschat rotate-keys [--count N] | reset-session NAME | version

global flags: --home DIR, --relay URL (default ws://127.0.0.1:7878),
              --passphrase-file FILE (or PFSCHAT_PASSPHRASE)
`
