package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"pfschat/storage"
)

func init() { relaySubcommands["backup"] = runRelayBackup }

// runRelayBackup is `pfschat relay backup [--db FILE] DEST`: a consistent copy of the
// relay database, taken while the relay runs.
func runRelayBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pfschat relay backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", DefaultRelayDBPath(), "relay database file (SQLite)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pfschat relay backup [--db FILE] DEST\n\nCopies the relay database to DEST (a new file; never overwritten) with SQLite's VACUUM INTO,\nwhile the relay runs. DEST holds the relay's secrets as the database does: sealed when the relay runs\nwith --relay-key-file (the copy opens only with that key), in the clear otherwise (keep it as safe as the\nrelay's private key).\n\n")
		printFlags(fs.Output(), fs)
	}
	if helped, err := parseFlags(fs, args, stdout); helped || err != nil {
		return err
	}
	if fs.NArg() > 1 && strings.HasPrefix(fs.Arg(1), "-") {
		// Flags after DEST: flag parsing stopped at DEST, so "--db X" was taken for
		// more arguments.
		return usagef("backup: flags go before DEST: pfschat relay backup %s %s",
			strings.Join(fs.Args()[1:], " "), fs.Arg(0))
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usagef("relay backup needs one argument, the file to write; got %s", plural(fs.NArg(), "argument"))
	}
	if *dbPath == "" {
		return fmt.Errorf("no relay database: pass --db FILE")
	}
	start := time.Now()
	if err := storage.BackupRelay(ctx, *dbPath, fs.Arg(0)); err != nil {
		return err
	}
	st, err := os.Stat(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s (%d bytes, integrity ok, %s)\n", *dbPath, fs.Arg(0), st.Size(), time.Since(start).Round(time.Millisecond))
	return nil
}
