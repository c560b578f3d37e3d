package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"pfschat/relay/cluster"
)

func init() { relaySubcommands["new-cluster-key"] = runRelayNewClusterKey }

// runRelayNewClusterKey runs `pfschat relay new-cluster-key FILE`: it writes a fresh
// key (64 hex digits) that seals the relay's identity key in JetStream, owner-only,
// and never over an existing file. Every node of the cluster is given the same file
// (--relay-key-file) or its content ($PFSCHAT_RELAY_KEY).
func runRelayNewClusterKey(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pfschat relay new-cluster-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pfschat relay new-cluster-key FILE\n\nWrites a new key that seals a relay cluster's identity key in JetStream (README \"Run a relay cluster\").\nGive the same file to every relay node: pfschat relay --nats ... --relay-key-file FILE.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageErr{err.Error()}
	}
	if fs.NArg() != 1 {
		return usagef("pfschat relay new-cluster-key FILE: give one file to write")
	}
	path := fs.Arg(0)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: a cluster's key is never overwritten (its relay key would no longer open); choose another file", path)
	}
	if err != nil {
		return fmt.Errorf("writing the cluster key: %w", err)
	}
	_, err = io.WriteString(f, cluster.GenerateSealKey()+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing the cluster key: %w", err)
	}
	fmt.Fprintf(stdout, "wrote a new cluster key to %s (owner-only)\ncopy it to every relay node of the cluster and give it as --relay-key-file; keep a backup apart from NATS\n", path)
	return nil
}
