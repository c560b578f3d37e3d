package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
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
func usageOf(fs *flag.FlagSet, w io.Writer, head string) func() {
	return func() {
		fmt.Fprint(w, head)
		printFlags(w, fs)
	}
}

// valueNames are the README's names for flag values.
var valueNames = map[string]string{
	"home": "DIR", "relay": "URL", "passphrase-file": "FILE", "db": "FILE", "log": "FILE",
	"addr": "HOST:PORT", "open": "NAME", "name": "NAME", "device": "LABEL",
	"new-passphrase-file": "FILE", "recovery-code-file": "FILE", "caption": "TEXT", "download-dir": "DIR",
	"invite": "CODE", "http": "ADDR", "http-host": "NAMES",
	"tls-cert": "FILE", "tls-key": "FILE", "acme-domain": "NAME", "acme-email": "ADDR",
	"acme-http-addr": "HOST:PORT", "admin-addr": "HOST:PORT", "log-level": "LEVEL", "synchronous": "MODE",
	"nats-prefix": "PREFIX",
}
