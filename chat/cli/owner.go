package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"pfschat/chat"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
)

// profileOps is what the commands that need no event stream do with a profile: a
// *chat.Controller when the command opened the profile itself, ownerOps when the
// profile's owner (pfschat daemon or the UI) does it for them.
type profileOps interface {
	AddContact(ctx context.Context, name string) (chat.Contact, error)
	Contact(ctx context.Context, name string) (chat.Contact, error)
	Contacts(ctx context.Context) ([]chat.Contact, error)
	SafetyNumber(ctx context.Context, name string) (chat.SafetyNumber, error)
	TrustedSafetyNumber(ctx context.Context, name string) (chat.SafetyNumber, error)
	Verify(ctx context.Context, name string) error
	AcceptKey(ctx context.Context, name string) error
	RejectKey(ctx context.Context, name string) error
	RotateKeys(ctx context.Context, n int) error
	OneTimeKeysOnRelay(ctx context.Context) (x25519, mlkem int, err error)
	ResetSession(ctx context.Context, name string) error
}

var _ profileOps = (*chat.Controller)(nil)

// ownerTimeout bounds finding the owner: a socket that accepts nothing within it is
// treated as a failure, not as "no owner".
const ownerTimeout = 5 * time.Second

// dialOwner connects to the profile's owner; (nil, nil) when none runs.
func (e *env) dialOwner() (*daemon.Client, error) {
	dir, err := e.flags.HomeDir()
	if err != nil {
		return nil, err
	}
	sock, err := daemon.SocketPath(dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(e.ctx, ownerTimeout)
	defer cancel()
	cl, err := daemon.Dial(ctx, sock)
	if errors.Is(err, daemon.ErrNoOwner) {
		return nil, nil
	}
	return cl, err
}

// ops returns the profile's operations: through its owner when one runs, else the
// profile opened here (online when needed). done releases them.
func (e *env) ops(online bool) (profileOps, func(), error) {
	cl, err := e.ownerClient()
	if err != nil {
		return nil, nil, err
	}
	if cl != nil {
		return ownerOps{cl}, func() { cl.Close() }, nil
	}
	if online {
		c, err := e.online()
		if err != nil {
			return nil, nil, err
		}
		return c, func() { e.finish(c) }, nil
	}
	c, err := e.offline()
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close() }, nil
}

// ownerStartWait is how long a command waits for an owner that holds the profile but
// does not serve its socket yet: the daemon or the UI between taking the lock and
// listening (the unlock, a second or two).
const ownerStartWait = 10 * time.Second

// ownerClient connects to the profile's owner, as dialOwner does; when none serves its
// socket yet but one that will holds the profile (the daemon or the UI between taking
// the lock and listening: its unlock), it says so and waits for it, up to
// ownerStartWait. (nil, nil): no owner; the caller opens the profile itself.
func (e *env) ownerClient() (*daemon.Client, error) {
	cl, err := e.dialOwner()
	if err != nil || cl != nil {
		e.viaOwner = cl != nil
		return cl, err
	}
	dir, err := e.flags.HomeDir()
	if err != nil {
		return nil, err
	}
	pid, kind, held := profile.Holder(dir)
	if !held || (kind != profile.OwnerDaemon && kind != profile.OwnerUI) {
		return nil, nil
	}
	fmt.Fprintf(e.stderr, "pfschat: the profile's owner (pid %d, %s) is starting; waiting up to %s for it to take commands\n", pid, kind.Describe(), ownerStartWait)
	ctx, cancel := context.WithTimeout(e.ctx, ownerStartWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil // opening here then names the owner that never came up
		case <-tick.C:
		}
		if cl, err := e.dialOwner(); err != nil || cl != nil {
			e.viaOwner = cl != nil
			return cl, err
		}
		if _, _, held := profile.Holder(dir); !held {
			return nil, nil // it gave up (or ended): open the profile here
		}
	}
}

// ownerOps runs profileOps through the owner's API.
type ownerOps struct{ cl *daemon.Client }

func (o ownerOps) call(ctx context.Context, method string, params, result any) error {
	return daemon.ChatError(o.cl.Call(ctx, method, params, result))
}

func (o ownerOps) AddContact(ctx context.Context, name string) (chat.Contact, error) {
	var r daemon.AddContactResult
	err := o.call(ctx, "addContact", daemon.NameParams{Name: name}, &r)
	return r.Contact.Chat(), err
}

func (o ownerOps) Contact(ctx context.Context, name string) (chat.Contact, error) {
	list, err := o.Contacts(ctx)
	if err != nil {
		return chat.Contact{}, err
	}
	for _, c := range list {
		if c.Name == name {
			return c, nil
		}
	}
	return chat.Contact{}, fmt.Errorf("%w: %q", chat.ErrUnknownContact, name)
}

func (o ownerOps) Contacts(ctx context.Context) ([]chat.Contact, error) {
	var list []daemon.Contact
	if err := o.call(ctx, "contacts", nil, &list); err != nil {
		return nil, err
	}
	out := make([]chat.Contact, len(list))
	for i, c := range list {
		out[i] = c.Chat()
	}
	return out, nil
}

func (o ownerOps) fingerprint(ctx context.Context, name string) (daemon.FingerprintResult, error) {
	var r daemon.FingerprintResult
	err := o.call(ctx, "fingerprint", daemon.NameParams{Name: name}, &r)
	return r, err
}

func (o ownerOps) SafetyNumber(ctx context.Context, name string) (chat.SafetyNumber, error) {
	r, err := o.fingerprint(ctx, name)
	if err != nil {
		return chat.SafetyNumber{}, err
	}
	return r.SafetyNumber.Chat()
}

func (o ownerOps) TrustedSafetyNumber(ctx context.Context, name string) (chat.SafetyNumber, error) {
	r, err := o.fingerprint(ctx, name)
	if err != nil {
		return chat.SafetyNumber{}, err
	}
	if r.Trusted == nil {
		return r.SafetyNumber.Chat()
	}
	return r.Trusted.Chat()
}

func (o ownerOps) Verify(ctx context.Context, name string) error {
	return o.call(ctx, "verify", daemon.NameParams{Name: name}, nil)
}

func (o ownerOps) AcceptKey(ctx context.Context, name string) error {
	return o.call(ctx, "acceptKey", daemon.NameParams{Name: name}, nil)
}

func (o ownerOps) RejectKey(ctx context.Context, name string) error {
	return o.call(ctx, "rejectKey", daemon.NameParams{Name: name}, nil)
}

func (o ownerOps) ResetSession(ctx context.Context, name string) error {
	return o.call(ctx, "resetSession", daemon.NameParams{Name: name}, nil)
}

func (o ownerOps) RotateKeys(ctx context.Context, n int) error {
	return o.call(ctx, "rotateKeys", daemon.RotateKeysParams{Count: n}, nil)
}

func (o ownerOps) OneTimeKeysOnRelay(ctx context.Context) (x25519, mlkem int, err error) {
	var r daemon.OneTimeKeysResult
	err = o.call(ctx, "oneTimeKeys", nil, &r)
	return r.X25519, r.MLKEM, err
}

// viaOwner runs send, send-file and recv through the profile's owner when one runs: ok is false
// when there is none (the command then opens the profile itself).
func viaOwner(e *env, cmd string, fs *flag.FlagSet, args []string) (ok bool, err error) {
	if cmd != "send" && cmd != "recv" && cmd != "send-file" {
		return false, nil
	}
	cl, err := e.ownerClient()
	if err != nil || cl == nil {
		return err != nil, err
	}
	defer cl.Close()
	switch cmd {
	case "send":
		return true, sendViaOwner(e, cl, fs, args)
	case "send-file":
		return true, sendFileViaOwner(e, cl, fs, args) // sendfile.go
	}
	return true, recvViaOwner(e, cl, fs, args)
}

// sendArgs is send's NAME and TEXT (TEXT "-" reads stdin), read the same way with an
// owner and without one: stdin loses only its one final newline (the line end of echo
// or a here-document), and an empty text or one over chat.MaxTextBytes is a usage
// error (exit 2) — refused, never cut to fit.
func sendArgs(e *env, args []string) (name, text string, err error) {
	if len(args) < 2 {
		return "", "", usagef("want NAME and TEXT")
	}
	if name, err = userName(args[0]); err != nil {
		return "", "", err
	}
	text = strings.Join(args[1:], " ")
	if text == "-" {
		// One byte more than a message may carry, plus the newline that ends the input:
		// enough to tell a text that is too long, which is refused below, never cut.
		b, err := io.ReadAll(io.LimitReader(e.stdin, chat.MaxTextBytes+2))
		if err != nil {
			return "", "", fmt.Errorf("reading the message from stdin: %w", err)
		}
		text = strings.TrimSuffix(string(b), "\n")
	}
	if strings.TrimSpace(text) == "" { // as chat.Send refuses it, but as a usage error
		return "", "", usagef("the message is empty (or only white space); give its TEXT, or '-' and the text on stdin")
	}
	if len(text) > chat.MaxTextBytes {
		return "", "", usagef("the message is %s bytes or more; one message carries at most %d bytes of text (split it into several messages)",
			fmt.Sprint(len(text)), chat.MaxTextBytes)
	}
	return name, text, nil
}

func sendViaOwner(e *env, cl *daemon.Client, fs *flag.FlagSet, args []string) error {
	name, text, err := sendArgs(e, args)
	if err != nil {
		return err
	}
	wait, err := waitFlag(fs)
	if err != nil {
		return err
	}
	p := daemon.SendParams{To: name, Text: text, WaitMs: max(wait.Milliseconds(), 1)}
	var r daemon.SendResult
	err = cl.Call(e.ctx, "send", p, &r)
	if errors.Is(err, &daemon.Error{Code: daemon.CodeUnknownContact}) {
		if err := cl.Call(e.ctx, "addContact", daemon.NameParams{Name: name}, nil); err != nil {
			return daemon.ChatError(err)
		}
		fmt.Fprintf(e.stderr, "added %s (trusted on first use; 'pfschat fingerprint %s' shows the safety number)\n", name, name)
		err = cl.Call(e.ctx, "send", p, &r)
	}
	var re *daemon.Error
	if errors.As(err, &re) && re.Code == daemon.CodeSendRefused && re.Data != nil {
		return fmt.Errorf("the relay refused the message: %s", re.Data.Reason)
	}
	if err != nil && errors.Is(err, e.ctx.Err()) {
		// Stopped (Ctrl-C, SIGTERM) after the request went out, most often while the
		// owner waited for the relay: the owner has the message and sends it, as a
		// send without an owner stopped then keeps it (exit 3), not a failure to retry.
		return queuedErr{"interrupted; the owner of this profile has the message and sends it. Do not send it again."}
	}
	if err != nil {
		return daemon.ChatError(err)
	}
	if r.State != "accepted" {
		// Connected, and not accepted in time: the relay answers but refuses it for
		// now (the recipient's queue on it is full, its disk is): "unreachable" would
		// be wrong, as without an owner (cmdSend).
		var v daemon.VersionResult
		verr := cl.Call(e.ctx, "version", nil, &v)
		if verr == nil && v.Online {
			return queuedErr{fmt.Sprintf("the relay has not accepted the message within %v: it answers, but refuses it for now "+
				"(the recipient's queue on the relay may be full until they fetch what waits, or the relay's disk); "+
				"the message is kept in the outbox (message %d) and the pfschat owner of this profile sends it as soon as the relay takes it. "+
				"Do not send it again.", wait, r.ID)}
		}
		return queuedErr{fmt.Sprintf("%s; the message is kept in the outbox (message %d) "+
			"and goes out as soon as the owner reconnects (it keeps trying). Do not send it again.%s", ownerRelay(v, verr == nil), r.ID, e.relayIgnored(v.Relay))}
	}
	fmt.Fprintf(e.stdout, "sent to %s (message %d)\n", name, r.ID)
	return nil
}

func recvViaOwner(e *env, cl *daemon.Client, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	follow := fs.Lookup("follow").Value.String() == "true"
	asJSON := fs.Lookup("json").Value.String() == "true"
	count := fs.Lookup("count").Value.(flag.Getter).Get().(int)
	noRR := fs.Lookup("no-read-receipts").Value.String() == "true"
	if count < 0 || (count > 0 && !follow) {
		return usagef("--count N needs --follow and N >= 1")
	}
	var v daemon.VersionResult
	if err := cl.Call(e.ctx, "version", nil, &v); err != nil {
		return daemon.ChatError(err)
	}
	if noRR && v.ReadReceipts {
		return fmt.Errorf("--no-read-receipts: this profile is held by its owner (pfschat %s), which sends read receipts; "+
			"restart it with --no-read-receipts, or run recv without the flag", v.Owner)
	}
	if err := checkDownloadDir(fs); err != nil {
		return err
	}
	if follow && !v.Online {
		// As without an owner (cmdRecv), with the owner's relay: it is the one that waits.
		fmt.Fprintf(e.stderr, "%s; waiting for it (it keeps trying; ctrl+c to stop)%s\n", ownerRelay(v, true), e.relayIgnored(v.Relay))
	}
	downloadDir := fs.Lookup("download-dir").Value.String()
	printed := make(chat.Shown)
	// markRead marks the contact's messages read through id: only once printed, so a
	// crash in between shows them again next time, a signal after it does not.
	markRead := func(contact string, id int64) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 10*time.Second)
		defer cancel()
		if err := cl.Call(ctx, "markRead", daemon.MarkReadParams{Contact: contact, Through: id}, nil); err != nil {
			return recvOwnerGone(err)
		}
		return nil
	}
	// printOne prints m unless it was printed already (fresh false).
	printOne := func(m daemon.Message) (fresh bool, err error) {
		placeholder := m.State == chat.UndecryptableState.String()
		if !printed.Fresh(m.ID, placeholder) {
			return false, nil
		}
		printed.Mark(m.ID, placeholder)
		fetchViaOwner(e, cl, &m, downloadDir) // sendfile.go
		if e.ctx.Err() != nil {
			return false, errRecvStopped // as without an owner (cmdRecv)
		}
		if err := printMessage(e, m, asJSON); err != nil {
			return false, err
		}
		return true, nil
	}
	// Files of messages printed before but not downloaded then (the sender was not yet
	// a contact) are fetched now, their paths on stderr, as without an owner.
	fetchEarlierViaOwner(e, cl, downloadDir) // sendfile.go
	if !follow {
		var r daemon.ReceiveResult
		if err := cl.Call(e.ctx, "receive", nil, &r); err != nil {
			return daemon.ChatError(err)
		}
		// As without an owner (cmdRecv): what was printed is marked read once all of
		// it is, in one markRead per contact (one markedRead for each of them).
		readThrough := make(map[string]int64)
		stopped := false
		for _, m := range r.Messages {
			if fresh, err := printOne(m); errors.Is(err, errRecvStopped) {
				stopped = true
				break
			} else if err != nil {
				return err
			} else if fresh {
				readThrough[m.Contact] = max(readThrough[m.Contact], m.ID)
			}
		}
		for contact, id := range readThrough {
			if err := markRead(contact, id); err != nil {
				return err
			}
		}
		if stopped {
			return nil
		}
		// As without an owner: what is stored is printed, and a relay that cannot be
		// reached now is said and exit 1 (the owner may not have its backlog yet).
		var now daemon.VersionResult
		if err := cl.Call(e.ctx, "version", nil, &now); err != nil {
			return daemon.ChatError(err)
		}
		if !now.Online {
			// The owner's relay named, and that it keeps trying (explain: ownerOffline).
			return fmt.Errorf("%w: what it holds was printed", chat.ErrOffline)
		}
		return nil
	}
	var sr daemon.SubscribeResult
	if err := cl.Call(e.ctx, "subscribe", nil, &sr); err != nil {
		return daemon.ChatError(err)
	}
	for {
		n, err := cl.Next(e.ctx)
		if err != nil {
			if e.ctx.Err() != nil {
				return nil
			}
			return recvOwnerGone(err)
		}
		ev, err := n.Event()
		if err != nil {
			return err
		}
		switch n.Method {
		case daemon.NotifyMessage:
			if ev.Message == nil {
				continue
			}
			fresh, err := printOne(*ev.Message)
			if errors.Is(err, errRecvStopped) {
				return nil
			} else if err != nil {
				return err
			}
			if fresh {
				if err := markRead(ev.Message.Contact, ev.Message.ID); err != nil {
					return err
				}
			}
			if fresh && count > 0 && len(printed) >= count {
				return nil
			}
		case daemon.NotifyKeyChanged:
			fmt.Fprintf(e.stderr, "warning: %s's identity key changed; run 'pfschat fingerprint %s', compare, then 'pfschat accept-key %s'\n", ev.Contact, ev.Contact, ev.Contact)
		case daemon.NotifyConnection:
			if e.flags.Verbose {
				fmt.Fprintf(e.stderr, "relay: %s\n", ev.Status)
			}
		}
	}
}

// recvOwnerGone is recv's error when a call to its owner failed: the owner's own
// refusal as it is, else (the connection broke, or the owner is closing) that the owner
// went away and what to do.
func recvOwnerGone(err error) error {
	var de *daemon.Error
	if errors.As(err, &de) && de.Code != daemon.CodeClosing {
		return daemon.ChatError(err)
	}
	return fmt.Errorf("%w: %w; run 'pfschat recv' again: it goes through the next owner, or opens the profile itself", errOwnerGone, daemon.ChatError(err))
}

// printMessage prints one incoming message from the owner exactly as recv prints one
// from the store (recvLine).
func printMessage(e *env, m daemon.Message, asJSON bool) error {
	cm := chat.Message{ID: m.ID, Contact: m.Contact, Outgoing: m.Outgoing, Text: m.Text, SentAt: m.SentAt,
		ReceivedAt: m.ReceivedAt, State: stateNamed(m.State), Reason: m.Reason, Seq: m.Seq, KeyPending: m.KeyPending, Request: m.Request,
		Attachment: m.File.Chat()}
	_, err := io.WriteString(e.stdout, recvLine(cm, asJSON))
	return err
}

// stateNamed is the delivery state whose String is name (the API sends names).
func stateNamed(name string) chat.DeliveryState {
	for s := range chat.DeliveryState(255) {
		if s.String() == name {
			return s
		}
	}
	return chat.Delivered
}
