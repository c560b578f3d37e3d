package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/server"
	"pfschat/storage"
)

func init() { relaySubcommands["rotate-key"] = runRelayRotateKey }

// runRelayRotateKey is `pfschat relay rotate-key [--db FILE]`: a planned relay key
// change, run while the relay is stopped.
func runRelayRotateKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pfschat relay rotate-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", DefaultRelayDBPath(), "relay database file (SQLite)")
	keyFile := fs.String("relay-key-file", "", "the `file` holding the relay key (64 hex digits) the relay's secrets in --db are sealed under (or set $PFSCHAT_RELAY_KEY): needed for a sealed relay; a relay in the clear given one is sealed, and its new key written sealed")
	compromised := fs.Bool("compromised", false, "the old key is compromised: make a new key WITHOUT a statement from it; clients refuse the new key until their users run pfschat repin")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pfschat relay rotate-key [--db FILE] [--relay-key-file FILE] [--compromised]\n\nGives the relay a new key. The old key signs a statement naming the new one; the relay serves it\nto every client, which checks it against its pinned key and re-pins. Every card is re-signed with\nthe new key. Stop the relay first, back the database up, rotate, start the relay again.\n\n")
		printFlags(fs.Output(), fs)
	}
	if helped, err := parseFlags(fs, args, stdout); helped || err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q (see pfschat relay rotate-key --help)", fs.Arg(0))
	}
	if *dbPath == "" {
		return fmt.Errorf("no relay database: pass --db FILE")
	}
	if st, err := os.Stat(*dbPath); errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist", errNotRelayDB, *dbPath)
	} else if err != nil {
		return err
	} else if st.Size() == 0 {
		return fmt.Errorf("%w: %s is empty", errNotRelayDB, *dbPath)
	}
	sealKey, err := loadRelayKey(*keyFile)
	if err != nil {
		return err
	}
	// A running relay would go on serving the old key (and its clients would never see
	// the statement): refuse while it holds the database.
	lock, err := lockRelayDB(*dbPath, "pfschat relay rotate-key", "rotate the relay key")
	if err != nil {
		return err
	}
	defer lock.release()
	// Holding the lock, a clear database given a key is sealed in place, as the relay
	// does at start: the new key is written sealed.
	store, err := openRelayStore(ctx, *dbPath, storage.RelayOptions{SealKey: sealKey, SealInPlace: true})
	if err != nil {
		return err
	}
	defer store.Close()
	rotate := func() (server.Rotation, error) { return server.RotateKey(ctx, store, time.Now()) }
	if *compromised {
		rotate = func() (server.Rotation, error) { return server.ReplaceCompromisedKey(ctx, store) }
	}
	rot, err := rotate()
	if err != nil {
		return err
	}
	if *compromised {
		fmt.Fprintf(stdout, "relay key replaced in %s (no statement from the compromised key)\n  old: %s\n  new: %s\n%s re-signed.\n"+
			"Announce the new fingerprint where your users will see it; each user compares it and runs pfschat repin.\n",
			*dbPath, ratchet.Fingerprint(rot.Old), ratchet.Fingerprint(rot.New), plural(rot.Cards, "card"))
		return nil
	}
	fmt.Fprintf(stdout, "relay key rotated in %s\n  old: %s\n  new: %s\n%s re-signed. Start the relay: clients that pinned the old key re-pin the new one by themselves.\n",
		*dbPath, ratchet.Fingerprint(rot.Old), ratchet.Fingerprint(rot.New), plural(rot.Cards, "card"))
	return nil
}
