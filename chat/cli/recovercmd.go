package cli

// Recovery codes on the command line: `pfschat recover NAME` gets a lost identity's
// name back on a new machine, `pfschat recovery-code --rotate` replaces the code. init
// prints the first code (cli.go).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/charmbracelet/x/term"

	"pfschat/chat"
	"pfschat/chat/profile"
	"pfschat/ratchet"
)

// recoveryCodeNotice is printed under every recovery code shown.
const recoveryCodeNotice = "This is shown once and stored nowhere on this computer. Write it down and keep it apart from it:\n" +
	"with it, 'pfschat recover NAME' gets your name back on a new machine if this one is lost\n" +
	"(your contacts will see your key change). Anyone holding it can take your name: keep it secret."

// printRecoveryCode shows a new code with the notice.
func printRecoveryCode(w io.Writer, code string) {
	if code == "" {
		return
	}
	fmt.Fprintf(w, "recovery code: %s\n%s\n", code, recoveryCodeNotice)
}

// readLine reads one line from r a byte at a time, so that what follows it (a
// passphrase on the next line) stays unread.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	var one [1]byte
	for b.Len() < 1024 {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(one[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return b.String(), nil
			}
			return b.String(), err
		}
	}
	return b.String(), nil
}

// askRecoveryCode asks for name's recovery code on stderr and reads it from stdin:
// without echo when stdin is a terminal, since the code takes the name for whoever
// sees it on the screen or in the scrollback; one line from a script's pipe.
func askRecoveryCode(stdin io.Reader, stderr io.Writer, name string) (string, error) {
	fmt.Fprintf(stderr, "recovery code for %s: ", name)
	if in, ok := stdin.(*os.File); ok && term.IsTerminal(in.Fd()) {
		b, err := term.ReadPassword(in.Fd())
		fmt.Fprintln(stderr) // the Enter typed was not echoed either
		defer clear(b)
		if err != nil {
			return "", fmt.Errorf("reading the recovery code: %w", err)
		}
		return string(b), nil
	}
	code, err := readLine(stdin)
	if errors.Is(err, io.EOF) && code == "" {
		fmt.Fprintln(stderr)
		return "", errors.New("no recovery code on stdin: type it when asked, give it on stdin's first line, or pass --recovery-code-file FILE")
	}
	if err != nil && code == "" {
		return "", fmt.Errorf("reading the recovery code: %w", err)
	}
	return code, nil
}

func cmdRecover(e *env, fs *flag.FlagSet, args []string) error {
	name, err := oneName(args) // a valid name, or a usage error
	if err != nil {
		return err
	}
	p, err := e.profile()
	if err != nil {
		return err
	}
	if p.Exists() {
		return fmt.Errorf("%w: %s", chat.ErrProfileExists, p.StorePath())
	}
	var code string
	if file := fs.Lookup("recovery-code-file").Value.String(); file != "" {
		b, err := profile.ReadRecoveryCodeFile(file)
		if err != nil {
			return err
		}
		code, _, _ = strings.Cut(string(b), "\n")
		clear(b)
	} else if code, err = askRecoveryCode(e.stdin, e.stderr, name); err != nil {
		return err
	}
	pass, err := e.newPassphrase()
	if err != nil {
		return err
	}
	defer clear(pass)
	c, err := p.Recover(e.ctx, name, strings.TrimSpace(code), pass, p.RelayURL)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stdout, "recovered %s with a new identity key (card %s) in %s\n", c.Me(), c.Card().ID()[:16], p.Dir)
	fmt.Fprintf(e.stdout, "your new key fingerprint: %s\nyour contacts will be asked to confirm your new key; compare safety numbers with them again.\n",
		ratchet.Fingerprint(c.Card().SigningKey))
	fmt.Fprintln(e.stdout, "the old recovery code is used up; here is your new one.")
	printRecoveryCode(e.stdout, c.TakeRecoveryCode())
	return nil
}

func cmdRecoveryCode(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	if !fs.Lookup("rotate").Value.(flag.Getter).Get().(bool) {
		fmt.Fprintln(e.stdout, "Your recovery code was shown once, when this account was made, and is stored nowhere;\n"+
			"it cannot be shown again. 'pfschat recovery-code --rotate' makes a new one (the old one stops working).")
		return nil
	}
	c, err := e.online()
	if err != nil {
		return err
	}
	defer c.Close()
	code, err := c.RotateRecoveryCode(e.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "new recovery code set on the relay; the old one no longer works.")
	printRecoveryCode(e.stdout, code)
	return nil
}
