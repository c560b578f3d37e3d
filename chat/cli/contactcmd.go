package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"pfschat/chat"
	"pfschat/chat/daemon"
)

// Message requests, blocking, removing, nicknames and muting (issue 13 points 10 and
// 11), through the profile's owner when one runs.

// contactPrefsOps is what these commands do; *chat.Controller and ownerOps have it.
type contactPrefsOps interface {
	AcceptRequest(ctx context.Context, name string) error
	Block(ctx context.Context, name string) error
	Unblock(ctx context.Context, name string) error
	RemoveContact(ctx context.Context, name string) error
	SetNickname(ctx context.Context, name, nickname string) error
	SetMuted(ctx context.Context, name string, muted bool) error
	Contact(ctx context.Context, name string) (chat.Contact, error)
}

var (
	_ contactPrefsOps = (*chat.Controller)(nil)
	_ contactPrefsOps = ownerOps{}
)

func (o ownerOps) AcceptRequest(ctx context.Context, name string) error {
	return o.call(ctx, "acceptRequest", daemon.NameParams{Name: name}, nil)
}
func (o ownerOps) Block(ctx context.Context, name string) error {
	return o.call(ctx, "block", daemon.NameParams{Name: name}, nil)
}
func (o ownerOps) Unblock(ctx context.Context, name string) error {
	return o.call(ctx, "unblock", daemon.NameParams{Name: name}, nil)
}
func (o ownerOps) RemoveContact(ctx context.Context, name string) error {
	return o.call(ctx, "removeContact", daemon.NameParams{Name: name}, nil)
}
func (o ownerOps) SetNickname(ctx context.Context, name, nickname string) error {
	return o.call(ctx, "setNickname", daemon.NicknameParams{Name: name, Nickname: nickname}, nil)
}
func (o ownerOps) SetMuted(ctx context.Context, name string, muted bool) error {
	return o.call(ctx, "setMuted", daemon.MutedParams{Name: name, Muted: muted}, nil)
}

// contactNotes is what `pfschat contacts` adds to a contact's line.
func contactNotes(ct chat.Contact) string {
	var out string
	if ct.Nickname != "" {
		out += fmt.Sprintf("  (%q)", ct.Nickname)
	}
	switch {
	case ct.Blocked:
		out += "  BLOCKED"
	case ct.Request:
		out += "  REQUEST: 'pfschat accept-request " + ct.Name + "', 'block' or 'remove'"
	}
	if ct.Muted {
		out += "  muted"
	}
	return out
}

// withPrefs runs fn on the profile's owner, or on the profile opened here; online
// tries the relay too (a block reaches it at once), without failing when it is down.
func withPrefs(e *env, online bool, fn func(c contactPrefsOps) error) (relayTold bool, err error) {
	cl, err := e.ownerClient()
	if err != nil {
		return false, err
	}
	if cl != nil {
		defer cl.Close()
		return true, fn(ownerOps{cl})
	}
	var c *chat.Controller
	if online {
		c, err = e.open(true)
	} else {
		c, err = e.offline()
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	relayTold = online && c.Online()
	return relayTold, fn(c)
}

// errAlreadyContact: accept-request of a contact already accepted, which is no failure
// (as accept-key of an unchanged key and a second block are none).
var errAlreadyContact = errors.New("already a contact")

// errNotBlocked: unblock of someone not blocked, which is no failure either (the UI's
// /unblock says the same).
var errNotBlocked = errors.New("not blocked")

// unblockOnce is Unblock that takes a contact not blocked as done.
func unblockOnce(c contactPrefsOps, ctx context.Context, name string) error {
	if ct, err := c.Contact(ctx, name); err == nil && !ct.Blocked {
		return errNotBlocked
	}
	return c.Unblock(ctx, name)
}

// acceptRequestOnce is AcceptRequest that takes a contact accepted already as done.
func acceptRequestOnce(c contactPrefsOps, ctx context.Context, name string) error {
	err := c.AcceptRequest(ctx, name)
	if errors.Is(err, chat.ErrNotARequest) {
		return errAlreadyContact
	}
	return err
}

func nameCmd(what string, online bool, fn func(c contactPrefsOps, ctx context.Context, name string) error, done func(e *env, name string, relayTold bool)) func(*env, *flag.FlagSet, []string) error {
	return func(e *env, fs *flag.FlagSet, args []string) error {
		name, err := oneName(args)
		if err != nil {
			return err
		}
		told, err := withPrefs(e, online, func(c contactPrefsOps) error { return fn(c, e.ctx, name) })
		if errors.Is(err, errAlreadyContact) {
			fmt.Fprintf(e.stdout, "%s is a contact already; nothing to accept\n", name)
			return nil
		}
		if errors.Is(err, errNotBlocked) {
			fmt.Fprintf(e.stdout, "%s is not blocked; nothing to unblock\n", name)
			return nil
		}
		if err != nil {
			return err
		}
		done(e, name, told)
		return nil
	}
}

var (
	cmdAcceptRequest = nameCmd("accept-request", false, acceptRequestOnce, func(e *env, name string, _ bool) {
		fmt.Fprintf(e.stdout, "accepted %s: now a contact (compare safety numbers with 'pfschat fingerprint %s')\n", name, name)
	})
	cmdBlock = nameCmd("block", true, contactPrefsOps.Block, func(e *env, name string, told bool) {
		if told {
			fmt.Fprintf(e.stdout, "blocked %s: their messages are dropped, and the relay refuses them\n", name)
		} else {
			fmt.Fprintf(e.stdout, "blocked %s here: their messages are dropped; the relay is told on the next connection\n", name)
		}
	})
	cmdUnblock = nameCmd("unblock", true, unblockOnce, func(e *env, name string, told bool) {
		fmt.Fprintf(e.stdout, "unblocked %s\n", name)
	})
	cmdRemove = nameCmd("remove", false, contactPrefsOps.RemoveContact, func(e *env, name string, _ bool) {
		fmt.Fprintf(e.stdout, "removed %s and the conversation from this profile\n", name)
	})
	cmdMute = nameCmd("mute", false, func(c contactPrefsOps, ctx context.Context, name string) error { return c.SetMuted(ctx, name, true) },
		func(e *env, name string, _ bool) {
			fmt.Fprintf(e.stdout, "muted %s: no desktop notifications for their messages\n", name)
		})
	cmdUnmute = nameCmd("unmute", false, func(c contactPrefsOps, ctx context.Context, name string) error { return c.SetMuted(ctx, name, false) },
		func(e *env, name string, _ bool) { fmt.Fprintf(e.stdout, "unmuted %s\n", name) })
)

func cmdNickname(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) < 1 {
		return usagef("want NAME [NICKNAME]")
	}
	name, err := oneName(args[:1])
	if err != nil {
		return err
	}
	nick := strings.Join(args[1:], " ")
	if _, err := withPrefs(e, false, func(c contactPrefsOps) error { return c.SetNickname(e.ctx, name, nick) }); err != nil {
		return err
	}
	if nick == "" {
		fmt.Fprintf(e.stdout, "removed %s's nickname\n", name)
	} else {
		fmt.Fprintf(e.stdout, "%s is shown as %q on this device\n", name, strings.TrimSpace(nick))
	}
	return nil
}
