package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"

	"pfschat/chat"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
)

// Your data, your way (issue 13 point 12): backup, restore, passphrase, and the local
// deletion of messages.

// passphraseFlags are `pfschat passphrase`'s own flags.
// errRestoreOverProfile refuses a restore into a home that holds a profile.
var errRestoreOverProfile = errors.New("a restore never replaces a profile; this home already holds one")

func passphraseFlags(fs *flag.FlagSet) {
	fs.String("new-passphrase-file", "", "read the new passphrase from FILE, the owner's alone: chmod 600 (else $"+profile.EnvNewPassphrase+", else a prompt)")
}

func oneFile(args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want exactly one FILE, got %s", plural(len(args), "argument"))
	}
	return args[0], nil
}

func cmdBackup(e *env, fs *flag.FlagSet, args []string) error {
	file, err := oneFile(args)
	if err != nil {
		return err
	}
	p, err := e.profile()
	if err != nil {
		return err
	}
	if !p.Exists() {
		return fmt.Errorf("%w: %s", chat.ErrNoProfile, p.StorePath())
	}
	pass, err := e.passphrase(e.unlockPrompt(p))
	if err != nil {
		return err
	}
	defer clear(pass)
	if err := p.Backup(e.ctx, file, pass); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up the profile in %s to %s, sealed under its passphrase.\nRestore it with 'pfschat --home NEW_DIR restore %s'.\n", p.Dir, file, file)
	return nil
}

func cmdRestore(e *env, fs *flag.FlagSet, args []string) error {
	file, err := oneFile(args)
	if err != nil {
		return err
	}
	p, err := e.profile()
	if err != nil {
		return err
	}
	if p.Exists() {
		// Not chat.ErrProfileExists: its advice is init's (a second identity).
		return fmt.Errorf("%w: %s", errRestoreOverProfile, p.StorePath())
	}
	pass, err := e.passphrase("the backup's passphrase: ")
	if err != nil {
		return err
	}
	defer clear(pass)
	if err := p.Restore(e.ctx, file, pass); err != nil {
		if errors.Is(err, chat.ErrWrongPassphrase) {
			// Not "for this profile": the profile does not exist yet; the backup's is wrong.
			return fmt.Errorf("wrong passphrase for the backup %s: give the passphrase its profile had when the backup was made (%s or --passphrase-file); nothing was restored", file, profile.EnvPassphrase)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "restored the profile into %s. Its sessions were reset: each conversation starts a new one with its next message.\n", p.Dir)
	return nil
}

func cmdPassphrase(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	c, err := e.offline()
	if err != nil {
		return err
	}
	defer c.Close()
	newPass, err := profile.NewPassphrase(fs.Lookup("new-passphrase-file").Value.String(), e.stdin, e.stderr)
	if err != nil {
		return err
	}
	defer clear(newPass)
	if err := c.ChangePassphrase(e.ctx, newPass); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "passphrase changed. Backups made before still open with the old one.")
	return nil
}

func cmdDeleteMessage(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 2 {
		return usagef("want NAME and ID, got %s", plural(len(args), "argument"))
	}
	name, err := oneName(args[:1])
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || id <= 0 {
		return usagef("ID %q is not a message id (the \"id\" of recv --json)", args[1])
	}
	if err := withMessages(e, func(c messageOps) error { return c.DeleteMessage(e.ctx, name, id) }); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted message %d of %s from this profile\n", id, name)
	return nil
}

func cmdClear(e *env, fs *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	var n int
	err = withMessages(e, func(c messageOps) (err error) {
		n, err = c.ClearConversation(e.ctx, name)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d messages of the conversation with %s from this profile\n", n, name)
	return nil
}

// messageOps is what delete-message and clear do; *chat.Controller and ownerOps have it.
type messageOps interface {
	DeleteMessage(ctx context.Context, contact string, id int64) error
	ClearConversation(ctx context.Context, contact string) (int, error)
}

var (
	_ messageOps = (*chat.Controller)(nil)
	_ messageOps = ownerOps{}
)

// withMessages runs fn through the profile's owner when one runs — so that the owner's
// UI shows the deletion at once (a "deleted" notification), and the command is not
// refused for the lock it holds — else on the profile opened here, offline.
func withMessages(e *env, fn func(c messageOps) error) error {
	cl, err := e.ownerClient()
	if err != nil {
		return err
	}
	if cl != nil {
		defer cl.Close()
		return fn(ownerOps{cl})
	}
	c, err := e.offline()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func (o ownerOps) DeleteMessage(ctx context.Context, contact string, id int64) error {
	return o.call(ctx, "deleteMessage", daemon.DeleteMessageParams{Contact: contact, ID: id}, nil)
}

func (o ownerOps) ClearConversation(ctx context.Context, contact string) (int, error) {
	var r daemon.ClearResult
	err := o.call(ctx, "clearConversation", daemon.ContactParams{Contact: contact}, &r)
	return r.Deleted, err
}
