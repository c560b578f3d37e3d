package cli

import (
	"bufio"
	"flag"
	"fmt"
	"strings"

	"pfschat/chat"
)

// confirmLine asks a question on stderr and reads one line of stdin.
func (e *env) confirmLine(question string) string {
	fmt.Fprint(e.stderr, question)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	return strings.TrimSpace(line)
}

func cmdDeleteAccount(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	yes := fs.Lookup("yes").Value.(flag.Getter).Get().(bool)
	c, err := e.online()
	if err != nil {
		return err
	}
	defer c.Close()
	name := c.Card().Identity
	if !yes {
		fmt.Fprintf(e.stderr, "This deletes %q on %s: your card, your prekeys and the messages waiting for you.\nThe name becomes free for anyone to register. Contacts keep your old card and see no one behind it.\n", name, e.flags.RelayURL())
		if got := e.confirmLine("type the name to confirm: "); got != name {
			return fmt.Errorf("not confirmed (typed %q, want %q); nothing deleted", got, name)
		}
	}
	if err := c.DeleteAccount(e.ctx); err != nil {
		return err
	}
	p, _ := e.profile()
	fmt.Fprintf(e.stdout, "account %q deleted on the relay; the name is free.\nThe local profile stays in %s: remove that folder to forget it here too.\n", name, p.Dir)
	return nil
}

func cmdRepin(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	yes := fs.Lookup("yes").Value.(flag.Getter).Get().(bool)
	c, err := e.offline()
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Repin(e.ctx, func(info chat.RepinInfo) bool {
		fmt.Fprintf(e.stdout, "relay %s\n  pinned key:    %s\n  relay now has: %s\n", info.URL, info.Pinned, info.Presented)
		if yes {
			return true
		}
		fmt.Fprintln(e.stderr, "Re-pin only if the relay's operator announced this new fingerprint (a replaced, compromised key).\nAnyone between you and the relay could present a key of their own.")
		return strings.EqualFold(e.confirmLine("type yes to pin the new key: "), "yes")
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "re-pinned: the relay's new key is now trusted")
	return nil
}
