package profile

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/charmbracelet/x/term"
)

// The passphrase of a profile comes from, in this order:
//
//  1. the file named by --passphrase-file (trailing line breaks trimmed; refused when
//     group or others may read or write it: SecretFileModeError);
//  2. $PFSCHAT_PASSPHRASE;
//  3. a prompt: the headless commands ask on the terminal (echo off), the UI on its
//     unlock screen.
//
// The file wins over the environment, so a script can pass a file without clearing a
// variable a shell profile exports, and the first source that is given is the only one
// read: an empty file or an empty variable is refused, never passed over. The demo is
// the one exception to "never empty": its throwaway profiles are unsealed and read no
// passphrase at all.

// GivenPassphrase returns the passphrase given up front (sources 1 and 2); given is
// false when neither is set. An empty passphrase is an error.
func (f *Flags) GivenPassphrase() (pass []byte, given bool, err error) {
	if f.PassphraseFile != "" {
		b, err := readPassphraseFile(f.PassphraseFile, "passphrase file", EnvPassphrase)
		return b, true, err
	}
	if p, ok := os.LookupEnv(EnvPassphrase); ok {
		if p == "" {
			return nil, true, fmt.Errorf("%s is set but empty", EnvPassphrase)
		}
		return []byte(p), true, nil
	}
	return nil, false, nil
}

// readPassphraseFile reads a passphrase from file (trailing line breaks trimmed); env
// is the variable that may give it instead, named when the file is refused.
func readPassphraseFile(file, what, env string) ([]byte, error) {
	b, err := readSecretFile(file, what, "give the passphrase in $"+env+" instead")
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n") // no copy: the caller may clear what it gets
	if len(b) == 0 {
		return nil, fmt.Errorf("the %s %s is empty", what, file)
	}
	return b, nil
}

// Passphrase returns the passphrase given up front, else asks for it on the terminal
// stdin is (prompting on stderr; twice when confirm is set, for a new passphrase).
func (f *Flags) Passphrase(stdin io.Reader, stderr io.Writer, prompt string, confirm bool) ([]byte, error) {
	if p, given, err := f.GivenPassphrase(); given || err != nil {
		return p, err
	}
	return promptPassphrase(stdin, stderr, prompt, confirm, "no passphrase: set "+EnvPassphrase+" or pass --passphrase-file FILE")
}

// promptPassphrase asks on the terminal stdin is; without one it fails with missing,
// which names the sources that give this passphrase, and why it is not asked for.
func promptPassphrase(stdin io.Reader, stderr io.Writer, prompt string, confirm bool, missing string) ([]byte, error) {
	in, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(in.Fd()) {
		return nil, errors.New(missing + " (no terminal to prompt on)")
	}
	fmt.Fprint(stderr, prompt)
	p, err := term.ReadPassword(in.Fd())
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, errors.New("the passphrase must not be empty")
	}
	if confirm {
		fmt.Fprint(stderr, "repeat the passphrase: ")
		again, err := term.ReadPassword(in.Fd())
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", err)
		}
		same := subtle.ConstantTimeCompare(again, p) == 1
		clear(again)
		if !same {
			clear(p)
			return nil, errors.New("the two passphrases differ; nothing was created, try again")
		}
	}
	return p, nil
}

// EnvNewPassphrase gives `pfschat passphrase` the new passphrase without a prompt (or
// --new-passphrase-file FILE).
const EnvNewPassphrase = "PFSCHAT_NEW_PASSPHRASE"

// NewPassphrase returns the new passphrase for a passphrase change: from file (trailing
// line breaks trimmed) when given, else $PFSCHAT_NEW_PASSPHRASE, else asked twice on
// the terminal. Empty is refused.
func NewPassphrase(file string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	if file != "" {
		return readPassphraseFile(file, "new passphrase file", EnvNewPassphrase)
	}
	if p, ok := os.LookupEnv(EnvNewPassphrase); ok {
		if p == "" {
			return nil, fmt.Errorf("%s is set but empty", EnvNewPassphrase)
		}
		return []byte(p), nil
	}
	return promptPassphrase(stdin, stderr, "new passphrase: ", true, "no new passphrase: set "+EnvNewPassphrase+" or pass --new-passphrase-file FILE")
}
