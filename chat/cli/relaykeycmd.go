package cli

import (
	"flag"
	"fmt"

	"pfschat/ratchet"
)

// cmdRelayKey is `pfschat relay-key`: the relay this profile talks to and the
// fingerprint of the key it pinned, offline. Compare it with the operator's
// announcement; after a replaced key, `pfschat repin` (or /repin in the UI) changes it.
func cmdRelayKey(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	c, err := e.offline()
	if err != nil {
		return err
	}
	defer c.Close()
	k, url, err := c.PinnedRelayKey(e.ctx)
	if err != nil {
		return err
	}
	if len(k) == 0 {
		fmt.Fprintf(e.stdout, "relay %s\n  pinned key: none yet (pinned on the first connection)\n", url)
		return nil
	}
	fmt.Fprintf(e.stdout, "relay %s\n  pinned key: %s\n", url, ratchet.Fingerprint(k))
	return nil
}
