package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"pfschat/relay/server"
	"pfschat/storage"
)

func init() { relaySubcommands["invite"] = RunRelayInvite }

// RunRelayInvite runs `pfschat relay invite [--uses N] [--ttl D] [--db FILE]`: it
// makes an invite code for a relay with --registration invite and prints it once.
// Only its hash is stored (in the relay's database, which the running relay reads),
// so the code cannot be recovered later: hand it to the invitee, who runs
// `pfschat init --invite CODE`.
func RunRelayInvite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pfschat relay invite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", DefaultRelayDBPath(), "relay database file (SQLite)")
	uses := fs.Int("uses", 1, "registrations the code allows")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long the code works (0 = until used)")
	var clusterOpts clusterFlags // a relay cluster's invites are in JetStream (relaycluster.go)
	clusterOpts.registerAs(fs, "make the invite for a relay cluster: its state is in NATS JetStream")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pfschat relay invite [--uses N] [--ttl D] [--db FILE | --nats URL[,URL…] [--nats-creds FILE]] [--relay-key-file FILE]\n\nPrints a one-time invite code for a relay run with --registration invite.\n\n")
		printFlags(fs.Output(), fs)
	}
	if helped, err := parseFlags(fs, args, stdout); helped || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see pfschat relay invite --help)", fs.Arg(0))
	}
	if *uses <= 0 {
		return usagef("--uses %d: an invite allows at least one registration", *uses)
	}
	if *ttl < 0 {
		return usagef("--ttl %v: must not be negative (0 = until used)", *ttl)
	}
	natsURLs, err := clusterOpts.check(fs)
	if err != nil {
		return err
	}
	var store interface {
		CreateInvite(ctx context.Context, inv storage.Invite) error
	}
	if clusterOpts.enabled() {
		dir, closeDir, err := openClusterDirectory(ctx, clusterOpts, natsURLs)
		if err != nil {
			return err
		}
		defer closeDir()
		store = dir
	} else {
		sealKey, err := loadRelayKey(*clusterOpts.keyFile)
		if err != nil {
			return err
		}
		st, err := openInviteDB(ctx, *dbPath, sealKey)
		if err != nil {
			return err
		}
		defer st.Close()
		store = st
	}
	code, err := server.CreateInvite(ctx, store, *uses, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, code)
	when := "until used"
	if *ttl > 0 {
		when = "until " + time.Now().Add(*ttl).Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "invite for %s, valid %s; the invitee runs: pfschat init --name NAME --invite %s\n", plural(*uses, "registration"), when, code)
	return nil
}

// openInviteDB opens the SQLite relay database at dbPath for invite, with the relay
// key its secrets are sealed under (nil: none). It seals nothing in place: the relay
// may be running.
func openInviteDB(ctx context.Context, dbPath string, sealKey []byte) (*storage.Relay, error) {
	if dbPath == "" {
		return nil, errors.New("no relay database: pass --db FILE")
	}
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("relay database %s: %w (run pfschat relay first, or pass --db FILE)", dbPath, err)
	}
	return openRelayStore(ctx, dbPath, storage.RelayOptions{SealKey: sealKey})
}
