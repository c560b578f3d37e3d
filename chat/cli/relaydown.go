package cli

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"

	"pfschat/chat"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
)

// relayDown is an unreachable relay in words: its address, said once, and the dial's
// reason in a few words ("connection refused"), not the layers' text that names the
// address twice ("ws://h:p/v2/ws: dial tcp h:p: connect: connection refused").
type relayDown struct {
	url    string // the relay's address as the error names it; "" when it names none
	reason string // "connection refused", "no such host", "timed out"; "" when unknown
	what   string // what could not be done, when the error says (after the lead, before the address)
}

// relayDownOf reads err, an error of a relay that could not be reached: the first
// address it names, the dial's reason and what was being done.
func relayDownOf(err error) relayDown {
	var d relayDown
	// Without the lead ("relay unreachable"), which wrapped errors may say more than once.
	lead := strings.TrimPrefix(chat.ErrOffline.Error(), "chat: ")
	parts := slices.DeleteFunc(strings.Split(chat.Sentence(err), ": "), func(p string) bool { return p == lead })
	at := -1
	for i, p := range parts {
		if f := strings.Fields(p); len(f) > 0 && len(f) <= 2 && strings.Contains(f[len(f)-1], "://") {
			d.url, at = f[len(f)-1], i
			break
		}
	}
	if at < 0 {
		d.what = strings.Join(parts, ": ")
		d.reason = dialReason(err)
		return d
	}
	d.what = strings.Join(parts[:at], ": ")
	if d.reason = dialReason(err); d.reason == "" {
		d.reason = strings.Join(parts[at+1:], ": ")
	}
	return d
}

// dialReason is why a dial failed in a few words, without the address it dialed
// (which the relay's URL already says): the system's reason ("connection refused"), a
// name that does not resolve ("no such host"), a timeout. "" when err says none.
func dialReason(err error) string {
	var se *os.SyscallError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &dns):
		return dns.Err
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	return ""
}

// where is "the relay at URL" ("the relay" when the address is not known).
func (d relayDown) where() string {
	if d.url == "" {
		return "the relay"
	}
	return "the relay at " + d.url
}

// because is " (reason)", or "" when the reason is not known.
func (d relayDown) because() string {
	if d.reason == "" {
		return ""
	}
	return " (" + d.reason + ")"
}

// unreachableRelay is the sentence of a relay a command could not reach itself
// (without an owner): "cannot reach the relay at URL (reason)", what could not be done,
// and what to do.
func unreachableRelay(err error) string {
	d := relayDownOf(err)
	s := "cannot reach " + d.where() + d.because()
	if d.what != "" {
		s += ": " + d.what
	}
	return s + "\nis it running? start one with 'pfschat relay', or pass --relay URL"
}

// ownerVersion is the version answer of the profile's owner, asked again (a command's
// connection to it is closed by the time its error is explained); ok false when no
// owner answers now.
func (e *env) ownerVersion() (v daemon.VersionResult, ok bool) {
	cl, err := e.dialOwner()
	if err != nil || cl == nil {
		return v, false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(e.ctx, ownerTimeout)
	defer cancel()
	return v, cl.Call(ctx, "version", nil, &v) == nil
}

// ownerRelay is "the profile's owner (pfschat daemon) is not connected to its relay at
// URL": a command that went through the owner did not dial a relay itself, so neither
// "is it running?" nor "pass --relay URL" is the advice; the owner's relay is (when the
// owner says which, API.md's version).
func ownerRelay(v daemon.VersionResult, ok bool) string {
	who := "the profile's owner"
	if ok && v.Owner != "" {
		who += " (" + profile.OwnerKind(v.Owner).Describe() + ")"
	}
	s := who + " is not connected to its relay"
	if v.Relay != "" {
		s += " at " + v.Relay
	}
	return s
}

// relayIgnored is a line that says --relay, given to a command that went through the
// profile's owner, changed nothing (the owner uses its own relay, owner), "" when no
// --relay was given or it names the owner's relay.
func (e *env) relayIgnored(owner string) string {
	given := e.flags.Relay
	if given == "" || owner == "" {
		return ""
	}
	if norm, err := chat.NormalizeRelayURL(given); err == nil && norm == owner {
		return ""
	}
	return "\n--relay " + given + " is ignored: this command goes through the profile's owner, which uses its own relay (" + owner +
		"); to use another relay, stop the owner and run the command again"
}

// ownerOffline is the sentence of an owner's "offline" refusal (the call needs the
// relay, and the owner is not connected to it): which relay, what could not be done,
// that the owner keeps trying, and whether --relay was ignored.
func ownerOffline(e *env, err error) string {
	v, ok := e.ownerVersion()
	s := ownerRelay(v, ok)
	what := relayDownOf(err).what
	what = strings.TrimSuffix(strings.TrimSuffix(what, "not connected"), ": ")
	if what != "" {
		s += ": " + what
	}
	return s + "\nit keeps trying to connect; run the command again once it has" + e.relayIgnored(v.Relay)
}
