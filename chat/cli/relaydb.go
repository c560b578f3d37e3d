package cli

// The relay database check at start: a relay that lost its database must not come
// back as a new relay with a new key as if nothing happened.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"pfschat/relay/server"
	"pfschat/storage"
)

// errNotRelayDB is what refusing a database file at --db wraps.
var errNotRelayDB = errors.New("not a pfschat relay database")

// prepareRelayDB creates a missing database file (owner-only: it will hold the relay
// key) and refuses an empty one unless init is set. It reports whether the relay at
// path is new (so it may make a key).
func prepareRelayDB(path string, init bool) (fresh bool, err error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
		if err != nil {
			return false, fmt.Errorf("creating the relay database %s: %w", path, err)
		}
		f.Close()
		return true, nil
	case err != nil:
		return false, fmt.Errorf("relay database %s: %w", path, err)
	case st.IsDir():
		return false, fmt.Errorf("relay database %s is a directory: pass --db FILE", path)
	case st.Size() == 0 && !init:
		return false, fmt.Errorf("%w: %s is empty (0 bytes). A relay whose database was truncated or lost would start "+
			"with a new key and no accounts, and every client would refuse it: restore the database from a backup "+
			"(pfschat relay backup), or pass --init to make a new relay there on purpose", errNotRelayDB, path)
	}
	return st.Size() == 0, nil
}

// openRelayStore opens the store with a clear message for a file that is not a relay
// database (such a file is never modified, --init or not).
func openRelayStore(ctx context.Context, path string, opts storage.RelayOptions) (*storage.Relay, error) {
	store, err := storage.OpenRelay(ctx, path, opts)
	if err == nil {
		return store, nil
	}
	switch {
	case (errors.Is(err, storage.ErrDamaged) || strings.Contains(err.Error(), "not a database")) && !storage.IsSQLiteFile(path):
		// Not damaged, another file: a restore from a backup is not the remedy.
		return nil, fmt.Errorf("%w: %s is not a SQLite database at all (another program's file?). pfschat never "+
			"overwrites a file it did not write, even with --init: move it away or choose another --db", errNotRelayDB, path)
	case errors.Is(err, storage.ErrWrongKind) || errors.Is(err, storage.ErrDamaged) || strings.Contains(err.Error(), "not a database"):
		return nil, fmt.Errorf("%w: %s (%v). pfschat never overwrites a file it did not write, even with --init: "+
			"move it away or choose another --db", errNotRelayDB, path, err)
	case errors.Is(err, storage.ErrRelayKeyNeeded):
		return nil, fmt.Errorf("%w in %s, and no relay key was given: give its key file with --relay-key-file FILE, "+
			"or the key in $%s. Nothing was changed", storage.ErrRelayKeyNeeded, path, storage.RelayKeyEnv)
	case errors.Is(err, storage.ErrRelayKey):
		return nil, fmt.Errorf("%w: the key given (--relay-key-file or $%s) does not open the relay's secrets in %s: "+
			"give the key file this relay was sealed with. Nothing was changed", storage.ErrRelayKey, storage.RelayKeyEnv, path)
	case errors.Is(err, storage.ErrRelayNotSealed):
		return nil, fmt.Errorf("%w in %s, and a relay key was given (--relay-key-file or $%s): the relay seals them when it "+
			"starts with the key; start it so once, or drop the key here. Nothing was changed", storage.ErrRelayNotSealed, path, storage.RelayKeyEnv)
	}
	return nil, fmt.Errorf("opening the relay database %s: %w", path, err)
}

// loadRelayKey reads the relay key of --relay-key-file, or of $PFSCHAT_RELAY_KEY when
// the flag is not given; nil when neither is.
func loadRelayKey(path string) ([]byte, error) {
	k, err := storage.LoadRelayKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: --relay-key-file %s does not exist: for a new relay, make one with 'pfschat relay new-key-file %s' "+
			"(a relay already sealed opens only with the key file it was sealed with)", storage.ErrRelayKey, path, path)
	}
	return k, err // its error names the key, the file or variable, and what is wrong

}

// checkRelayKey refuses a relay database that has no relay key unless the relay is new
// or init is set: a key is made only on purpose.
func checkRelayKey(ctx context.Context, store *storage.Relay, fresh, init bool) error {
	has, err := server.HasRelayKey(ctx, store)
	if err != nil {
		return err
	}
	if has || fresh || init {
		return nil
	}
	return fmt.Errorf("%w: %s has the relay schema but no relay key (damaged, or emptied by hand). Starting would "+
		"make a new key that every client refuses: restore the database from a backup, or pass --init to make a new "+
		"relay key on purpose (clients then re-pin by hand: pfschat repin)", errNotRelayDB, store.Path())
}

// Defaults of the disk high-water mark (pfschat relay --min-free-mib, --disk-reserve-mib).
const (
	DefaultMinFreeMiB     = 256
	DefaultDiskReserveMiB = 32
)
