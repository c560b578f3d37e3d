package cli

import (
	"flag"
	"fmt"
	"strings"

	"pfschat/ratchet"
)

// cmdResetIdentity is `pfschat reset-identity [--yes]`: a new identity key for this
// profile, put in place of the old card on the relay by the old key.
func cmdResetIdentity(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	yes := fs.Lookup("yes").Value.(flag.Getter).Get().(bool)
	c, err := e.online()
	if err != nil {
		return err
	}
	defer c.Close()
	name := c.Me()
	if !yes {
		fmt.Fprintf(e.stderr, "This gives %q a new identity key. Every contact sees your key change and must confirm it;\n"+
			"compare safety numbers with them again. Use it when the key may have leaked.\n", name)
		if got := e.confirmLine("type the name to confirm: "); got != name {
			return notConfirmed(got, name, "nothing changed")
		}
	}
	old := ratchet.Fingerprint(c.Card().SigningKey)
	card, err := c.ResetIdentity(e.ctx)
	if err != nil {
		if card == nil {
			return err
		}
		fmt.Fprintln(e.stderr, "pfschat:", strings.TrimPrefix(err.Error(), "chat: "))
	}
	fmt.Fprintf(e.stdout, "identity key replaced for %s\n  old fingerprint: %s\n  new fingerprint: %s\n"+
		"your contacts will be asked to confirm your new key; your recovery code stays the same.\n",
		name, old, ratchet.Fingerprint(card.SigningKey))
	return nil
}
