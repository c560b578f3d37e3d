package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// printFlags lists a command's flags as the README spells them — "--name VALUE" — each
// with its real default: the value the flag starts with (flag.PrintDefaults writes
// "-name" and hides some defaults).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if len(f.Name) == 1 {
			head = "  -" + f.Name // -v, as the README writes it
		}
		if v, ok := valueNames[f.Name]; ok && typ != "" {
			head += " " + v
		} else if typ == "int" || typ == "uint" {
			head += " N"
		} else if typ != "" {
			head += " " + strings.ToUpper(typ)
		}
		fmt.Fprintln(w, head)
		line := "      " + usage
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" && !strings.Contains(usage, "(default") {
			if typ == "string" {
				d = fmt.Sprintf("%q", d)
			}
			line += " (default " + d + ")"
		}
		fmt.Fprintln(w, line)
	})
}

// usageOf sets fs's usage text: the head line(s), then printFlags.
func usageOf(fs *flag.FlagSet, head string) func() {
	return func() {
		fmt.Fprint(fs.Output(), head) // stdout for --help, stderr for a mistake (parseFlags)
		printFlags(fs.Output(), fs)
	}
}

// parseFlags parses a command's flags. --help prints the command's
// usage (fs.Usage, written to fs.Output()) to stdout, as every other command's --help
// does, and reports helped; a mistake prints the error and the usage to fs's output,
// stderr, and is a usage error.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (helped bool, err error) {
	out, usage := fs.Output(), fs.Usage
	fs.Usage = func() {}     // printed below, where it belongs
	fs.SetOutput(io.Discard) // and the mistake by the caller, once (flag prints it too)
	err = fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		usage()
		fs.SetOutput(out)
		return true, nil
	case err != nil:
		// The usage line alone, not every flag: the mistake, printed after it, is what
		// the user needs to see (a relay's 80 lines of flags buried it).
		var full strings.Builder
		fs.SetOutput(&full)
		usage()
		fs.SetOutput(out)
		line, _, _ := strings.Cut(full.String(), "\n")
		fmt.Fprintf(out, "%s   (--help lists the flags)\n", line)
		return false, usageErr{flagMistake(fs, err)}
	}
	return false, nil
}

// valueNames are the README's names for flag values.
var valueNames = map[string]string{
	"home": "DIR", "relay": "URL", "passphrase-file": "FILE", "db": "FILE", "log": "FILE",
	"addr": "HOST:PORT", "open": "NAME", "name": "NAME", "device": "LABEL",
	"new-passphrase-file": "FILE", "recovery-code-file": "FILE", "caption": "TEXT", "download-dir": "DIR",
	"invite": "CODE", "http": "ADDR", "http-host": "HOST:PORT,…",
	"tls-cert": "FILE", "tls-key": "FILE", "acme-domain": "NAME", "acme-email": "ADDR",
	"acme-http-addr": "HOST:PORT", "admin-addr": "HOST:PORT", "log-level": "LEVEL", "synchronous": "MODE",
	"nats-prefix": "PREFIX",
}

// flagMistake is a flag error as a user reads it: an unknown flag gets the flag it most
// likely meant ("--listen" → "did you mean --addr?"), when there is one.
func flagMistake(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		return badValue(fs, m[1], m[2], m[3])
	}
	name, ok := strings.CutPrefix(msg, "flag provided but not defined: -")
	if !ok {
		return msg
	}
	if s := closestFlag(fs, strings.TrimPrefix(name, "-")); len(s) == 1 {
		msg += " (did you mean -" + s + "?)" // -v, as the README writes it
	} else if s != "" {
		msg += " (did you mean --" + s + "?)"
	}
	return msg
}

// invalidValue is package flag's error for a value a flag cannot take: the value, the
// flag's name and why.
var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -([^:]+): (.*)$`)

// badValue says what is wrong with value for the flag name, with the flag named as the
// README does (--login-timeout) and, for a duration, what one looks like (flag's own
// "parse error" said nothing).
func badValue(fs *flag.FlagSet, value, name, why string) string {
	dashes := "--"
	if len(name) == 1 {
		dashes = "-"
	}
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, isDuration := g.Get().(time.Duration); isDuration {
				return fmt.Sprintf("invalid value %q for flag %s%s: want a duration with its unit, such as 10s, 5m or 2h", value, dashes, name)
			}
		}
	}
	return fmt.Sprintf("invalid value %q for flag %s%s: %s", value, dashes, name, why)
}

// flagSynonyms are the names other programs give the flags pfschat calls otherwise.
var flagSynonyms = map[string]string{
	"listen": "addr", "bind": "addr", "address": "addr", "port": "addr", "database": "db",
	"passphrase": "passphrase-file", "password": "passphrase-file", "dir": "home",
	"profile": "home", "url": "relay", "server": "relay", "debug": "v", "verbose": "v",
}

// closestFlag is the flag of fs that name most likely meant: its synonym, else the one
// within two edits (a typo), else "".
func closestFlag(fs *flag.FlagSet, name string) string {
	name = strings.ToLower(name)
	if s, ok := flagSynonyms[name]; ok && fs.Lookup(s) != nil {
		return s
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if n := nearest(name, names); n != "" {
		return n
	}
	// A typo of a synonym ("adress" is address, so addr).
	var synonyms []string
	for w, s := range flagSynonyms {
		if fs.Lookup(s) != nil {
			synonyms = append(synonyms, w)
		}
	}
	slices.Sort(synonyms) // the same suggestion each time
	return flagSynonyms[nearest(name, synonyms)]
}
