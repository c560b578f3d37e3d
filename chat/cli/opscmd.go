package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"pfschat/chat"
	"pfschat/chat/profile"
)

// confirmLine asks a question on stderr and reads one line of stdin.
func (e *env) confirmLine(question string) string {
	fmt.Fprint(e.stderr, question)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(e.stderr) // no line end was read: the next message starts a line of its own
	}
	return strings.TrimSpace(line)
}

// notConfirmed is the error of a question answered with something other than the
// name it wants; no answer at all (a script's empty stdin) also says how to confirm
// without one.
func notConfirmed(typed, want, nothing string) error {
	if typed == "" {
		return fmt.Errorf("not confirmed (no answer on stdin); %s: type the name when asked, or pass --yes", nothing)
	}
	return fmt.Errorf("not confirmed (typed %q, want %q); %s", typed, want, nothing)
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
		fmt.Fprintf(e.stderr, "This deletes %q on %s: your card, your prekeys and the messages waiting for you.\nThe name becomes free for anyone to register. Contacts keep your old card and see no one behind it.\n", name, c.RelayURL())
		if got := e.confirmLine("type the name to confirm: "); got != name {
			return notConfirmed(got, name, "nothing deleted")
		}
	}
	if err := c.DeleteAccount(e.ctx); err != nil {
		return err
	}
	c.Close() // its store's -wal and -shm go with it: the advice names what stays
	p, _ := e.profile()
	fmt.Fprintf(e.stdout, "account %q deleted on the relay; the name is free.\n%s\n", name, forgetAdvice(p))
	return nil
}

// forgetAdvice says how to forget a profile on this machine too: remove its folder
// when it holds nothing else, else only the profile's own files — the default profile
// shares its folder with the default relay database (relay.db), which holds a relay's
// key and accounts.
func forgetAdvice(p chat.Profile) string {
	own, others, err := p.Files()
	if err != nil || len(own) == 0 {
		return fmt.Sprintf("The local profile stays in %s.", p.Dir)
	}
	if len(others) == 0 {
		return fmt.Sprintf("The local profile stays in %s, which holds nothing else: remove that folder to forget it here too.", p.Dir)
	}
	what := "files that are not the profile's"
	if slices.ContainsFunc(others, profile.IsRelayFile) {
		what = "a relay's database, with its accounts and its key, and other files that are not the profile's"
		if !slices.ContainsFunc(others, func(n string) bool { return !profile.IsRelayFile(n) }) {
			what = "a relay's database, with its accounts and its key"
		}
	}
	return fmt.Sprintf("The local profile stays in %s. That folder also holds %s (%s): do not remove the folder; to forget the profile here too, remove only its own files there: %s.",
		p.Dir, what, nameList(others), strings.Join(own, ", "))
}

// nameList is up to four names, and how many more.
func nameList(names []string) string {
	if len(names) <= 4 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:4], ", "), len(names)-4)
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
	answer := "-" // none asked yet
	err = c.Repin(e.ctx, func(info chat.RepinInfo) bool {
		fmt.Fprintf(e.stdout, "relay %s\n  pinned key:    %s\n  relay now has: %s\n", info.URL, info.Pinned, info.Presented)
		if yes {
			return true
		}
		fmt.Fprintln(e.stderr, "Re-pin only if the relay's operator announced this new fingerprint (a replaced, compromised key).\nAnyone between you and the relay could present a key of their own.")
		answer = e.confirmLine("type yes to pin the new key: ")
		return strings.EqualFold(answer, "yes")
	})
	if errors.Is(err, chat.ErrRepinDeclined) && answer == "" {
		return fmt.Errorf("%w (no answer on stdin): type yes when asked, or pass --yes once you have compared the fingerprint", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "re-pinned: the relay's new key is now trusted")
	return nil
}
