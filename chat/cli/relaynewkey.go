package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"pfschat/storage"
)

func init() {
	relaySubcommands["new-key-file"] = runRelayNewKeyFile("new-key-file")
	// Its first name, from when only a cluster sealed its secrets.
	relaySubcommands["new-cluster-key"] = runRelayNewKeyFile("new-cluster-key")
}

// runRelayNewKeyFile runs `pfschat relay new-key-file FILE` (or new-cluster-key): it
// writes a fresh relay key (64 hex digits) that seals the relay's secrets, in its
// database or in a cluster's JetStream, owner-only and never over an existing file.
// The relay is given the file (--relay-key-file) or its content ($PFSCHAT_RELAY_KEY);
// every node of a cluster the same.
func runRelayNewKeyFile(name string) func(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		fs := flag.NewFlagSet("pfschat relay "+name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: pfschat relay %s FILE\n\nWrites a new relay key that seals the relay's secrets (its identity key) in its database or, for a\n"+
				"cluster, in JetStream (README \"The relay's key at rest\"). Give the file to the relay: pfschat relay --db DB\n"+
				"--relay-key-file FILE, or pfschat relay --nats ... --relay-key-file FILE on every node of a cluster.\n", name)
		}
		if helped, err := parseFlags(fs, args, stdout); helped || err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("pfschat relay %s FILE: give one file to write", name)
		}
		path := fs.Arg(0)
		// A missing directory (the README's /etc/pfschat on a new machine) is made, owner-only.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("making the relay key file's directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: a relay key file is never overwritten (the secrets sealed under its key would no longer open); choose another file", path)
		}
		if err != nil {
			return fmt.Errorf("writing the relay key file: %w", err)
		}
		_, err = io.WriteString(f, storage.GenerateRelayKey()+"\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("writing the relay key file: %w", err)
		}
		fmt.Fprintf(stdout, "wrote a new relay key to %s (owner-only)\ngive it to the relay as --relay-key-file (the same file to every node of a cluster); "+
			"keep a backup of it apart from the relay's database or NATS: without it they do not open\n", path)
		return nil
	}
}
