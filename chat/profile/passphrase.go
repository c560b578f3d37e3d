package profile

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

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

// MinNewPassphrase is the fewest characters a new passphrase may have — one a profile
// is created with (the UI's onboarding, init, recover) or changed to (passphrase). An
// existing profile's passphrase is never checked against it: one made before the rule
// still unlocks.
const MinNewPassphrase = 8

// ErrShortPassphrase refuses a new passphrase shorter than MinNewPassphrase; its words
// are the UI's onboarding's.
var ErrShortPassphrase = fmt.Errorf("use at least %d characters: the passphrase protects your keys and history on this machine", MinNewPassphrase)

// CheckNewPassphrase refuses a new passphrase shorter than MinNewPassphrase characters
// (runes, not bytes) with ErrShortPassphrase, saying where it came from (source: "the
// passphrase you typed", "$PFSCHAT_PASSPHRASE", …).
func CheckNewPassphrase(p []byte, source string) error {
	if n := utf8.RuneCount(p); n < MinNewPassphrase {
		chars := "characters"
		if n == 1 {
			chars = "character"
		}
		return fmt.Errorf("%s is too short (%d %s): %w", source, n, chars, ErrShortPassphrase)
	}
	return nil
}

// Passphrase returns the passphrase given up front, else asks for it on the terminal
// stdin is (prompting on stderr). It is the passphrase of an existing profile, to
// unlock it: any length opens.
func (f *Flags) Passphrase(stdin io.Reader, stderr io.Writer, prompt string) ([]byte, error) {
	if p, given, err := f.GivenPassphrase(); given || err != nil {
		return p, err
	}
	return promptPassphrase(stdin, stderr, prompt, "no passphrase: set "+EnvPassphrase+" or pass --passphrase-file FILE")
}

// CreatePassphrase returns the passphrase of a profile being made (init, recover):
// given up front, else asked twice on the terminal. One shorter than MinNewPassphrase
// is refused (ErrShortPassphrase) before anything is made.
func (f *Flags) CreatePassphrase(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	p, given, err := f.GivenPassphrase()
	if err != nil {
		return nil, err
	}
	if !given {
		return promptNewPassphrase(stdin, stderr, "new passphrase: ", "no passphrase: set "+EnvPassphrase+" or pass --passphrase-file FILE", "nothing was created")
	}
	source := "$" + EnvPassphrase
	if f.PassphraseFile != "" {
		source = "the passphrase in " + f.PassphraseFile
	}
	if err := CheckNewPassphrase(p, source); err != nil {
		clear(p)
		return nil, fmt.Errorf("%w; nothing was created", err)
	}
	return p, nil
}

// promptPassphrase asks on the terminal stdin is; without one it fails with missing,
// which names the sources that give this passphrase, and why it is not asked for.
func promptPassphrase(stdin io.Reader, stderr io.Writer, prompt string, missing string) ([]byte, error) {
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
	return p, nil
}

// promptNewPassphrase asks for a new passphrase twice on the terminal stdin is,
// refusing a short one before asking again; nothing says what the refusal left
// undone ("nothing was created").
func promptNewPassphrase(stdin io.Reader, stderr io.Writer, prompt, missing, nothing string) ([]byte, error) {
	p, err := promptPassphrase(stdin, stderr, prompt, missing)
	if err != nil {
		return nil, err
	}
	if err := CheckNewPassphrase(p, "the passphrase you typed"); err != nil {
		clear(p)
		return nil, fmt.Errorf("%w; %s, try again", err, nothing)
	}
	fmt.Fprint(stderr, "repeat the passphrase: ")
	again, err := term.ReadPassword(stdin.(*os.File).Fd())
	fmt.Fprintln(stderr)
	if err != nil {
		clear(p)
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	same := subtle.ConstantTimeCompare(again, p) == 1
	clear(again)
	if !same {
		clear(p)
		return nil, fmt.Errorf("the two passphrases differ; %s, try again", nothing)
	}
	return p, nil
}

// EnvNewPassphrase gives `pfschat passphrase` the new passphrase without a prompt (or
// --new-passphrase-file FILE).
const EnvNewPassphrase = "PFSCHAT_NEW_PASSPHRASE"

// NewPassphrase returns the new passphrase for a passphrase change: from file (trailing
// line breaks trimmed) when given, else $PFSCHAT_NEW_PASSPHRASE, else asked twice on
// the terminal. Empty, or shorter than MinNewPassphrase, is refused.
func NewPassphrase(file string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var p []byte
	var err error
	source := "$" + EnvNewPassphrase
	if file != "" {
		source = "the new passphrase in " + file
		p, err = readPassphraseFile(file, "new passphrase file", EnvNewPassphrase)
	} else if v, ok := os.LookupEnv(EnvNewPassphrase); ok {
		if v == "" {
			return nil, fmt.Errorf("%s is set but empty", EnvNewPassphrase)
		}
		p = []byte(v)
	} else {
		return promptNewPassphrase(stdin, stderr, "new passphrase: ", "no new passphrase: set "+EnvNewPassphrase+" or pass --new-passphrase-file FILE", "nothing was changed")
	}
	if err != nil {
		return nil, err
	}
	if err := CheckNewPassphrase(p, source); err != nil {
		clear(p)
		return nil, fmt.Errorf("%w; nothing was changed", err)
	}
	return p, nil
}
