package daemon

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pfschat/chat"
	"pfschat/chat/profile"
)

// Limits of the server.
const (
	MaxConns         = 256              // concurrent socket connections
	MaxSubscriptions = 8                // subscriptions per connection
	writeTimeout     = 30 * time.Second // a client that reads nothing for this long is dropped
	receiveSyncWait  = 10 * time.Second // receive waits this long at most for the relay's backlog
)

// Config is what a Server serves.
type Config struct {
	// Controller is the owner's open controller.
	Controller *chat.Controller
	// Hub fans the controller's events out; the server subscribes to it (the owner
	// may subscribe too, as the UI does).
	Hub *Hub
	// Owner is "daemon" or "ui", reported by version.
	Owner profile.OwnerKind
	// Version is the program's version string.
	Version string
	// ReadReceipts: markRead tells contacts (the controller's NoReadReceipts, reported
	// by version so that a client asking for none can refuse).
	ReadReceipts bool
	// Logger receives diagnostics, never message contents or secrets (default: discard).
	Logger *slog.Logger
	// DownloadDir, when set, is where the owner downloads a contact's files by itself,
	// as they arrive and those waiting when it starts (devices: attachments.go); never
	// a stranger's or a message request's. "": only the download method fetches.
	DownloadDir string
	// ResumeUploads: finish at start the uploads an earlier run left (pfschat daemon;
	// the UI resumes its own once it is online).
	ResumeUploads bool
}

// Server serves one owner's controller over JSON-RPC 2.0: newline-delimited on stream
// connections (Serve, the profile's UNIX socket) and over HTTP (HTTPHandler).
type Server struct {
	cfg   Config
	c     *chat.Controller
	log   *slog.Logger
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	mu    sync.Mutex
	lns   []net.Listener
	conns map[*conn]struct{}
	subID atomic.Int64
}

// New returns a server for cfg; it serves nothing until Serve or HTTPHandler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, c: cfg.Controller, log: cfg.Logger, ctx: ctx, stop: stop, conns: make(map[*conn]struct{})}
	if cfg.DownloadDir != "" && cfg.Hub != nil {
		sub := cfg.Hub.Subscribe() // now: no file that arrives from here on is missed
		s.wg.Add(1)
		go s.autoDownload(sub)
	}
	if cfg.ResumeUploads {
		s.wg.Add(1)
		go s.resumeUploads()
	}
	return s
}

// Serve accepts connections on ln until Close; it returns at once.
func (s *Server) Serve(ln net.Listener) {
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				if s.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					s.log.Error("daemon: accept", "err", err)
				}
				return
			}
			s.mu.Lock()
			if len(s.conns) >= MaxConns || s.ctx.Err() != nil {
				s.mu.Unlock()
				refusal := s.refusal(NewError(CodeTooMany, "too many connections (at most %d)", MaxConns))
				writeLine(nc, Response{JSONRPC: Version, Error: refusal})
				nc.Close()
				continue
			}
			c := &conn{s: s, nc: nc, subs: make(map[int64]*Sub)}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c.serve()
			}()
		}
	}()
}

// errClosing answers whatever arrives once Close has begun.
func errClosing() *Error { return NewError(CodeClosing, "the owner is shutting down") }

// refusal is e, a refusal for a limit, or closing once Close has begun: a client that
// is refused while the owner shuts down is told so, not to retry with fewer
// connections or subscriptions. Decide after the limit was looked at, so that a refusal
// is too_many only if the server still ran when it was made.
func (s *Server) refusal(e *Error) *Error {
	if s.ctx.Err() != nil {
		return errClosing()
	}
	return e
}

// Close stops accepting, closes every connection and subscription, and waits for them.
// It leaves the controller open (its owner closes it).
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func writeLine(nc net.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = nc.Write(append(b, '\n'))
	return err
}

// conn is one socket client.
type conn struct {
	s    *Server
	nc   net.Conn
	wmu  sync.Mutex
	mu   sync.Mutex
	subs map[int64]*Sub
}

func (c *conn) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return writeLine(c.nc, v)
}

// errSubscriptionEnded: a notification of a subscription that unsubscribe ended.
var errSubscriptionEnded = errors.New("daemon: subscription ended")

// notify writes n for subscription id unless it has ended. The look and the write hold
// the write lock, and unsubscribe takes the subscription out before its answer is
// written, so no notification of a subscription follows the answer to its unsubscribe.
func (c *conn) notify(id int64, n Notification) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	_, live := c.subs[id]
	c.mu.Unlock()
	if !live {
		return errSubscriptionEnded
	}
	return writeLine(c.nc, n)
}

func (c *conn) serve() {
	ctx, cancel := context.WithCancel(c.s.ctx)
	defer func() {
		cancel()
		c.nc.Close()
		c.mu.Lock()
		for _, sub := range c.subs {
			sub.Close()
		}
		c.mu.Unlock()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	sc := bufio.NewScanner(c.nc)
	sc.Buffer(make([]byte, 0, 4096), MaxRequestBytes+1)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		req, id, rerr := DecodeRequest(line)
		if rerr != nil {
			if c.write(Response{JSONRPC: Version, Error: rerr, ID: id}) != nil {
				return
			}
			continue
		}
		result, rerr := c.s.call(ctx, c, req)
		sa, isStart := result.(startAfter)
		if isStart {
			result = sa.v
		}
		if !req.Notify && c.write(c.s.response(req.ID, result, rerr)) != nil {
			return
		}
		if isStart {
			close(sa.started) // the stream's first notification follows its response
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		if c.write(Response{JSONRPC: Version, Error: NewError(CodeInvalidRequest, "request line longer than %d bytes", MaxRequestBytes)}) == nil {
			drainBeforeClose(c.nc)
		}
	}
}

// drainBeforeClose ends a connection the owner stops reading so that its last answer
// can be read: closed with the rest of the client's line unread, the socket is reset,
// and a client still reading (or writing) loses the answer (found by a client that
// sent an oversized line in one write). It closes the write side, then reads and drops
// up to drainLimit bytes for at most drainTime.
func drainBeforeClose(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(drainTime))
	io.CopyN(io.Discard, nc, drainLimit)
}

const (
	drainTime  = time.Second
	drainLimit = 4 * MaxRequestBytes
)

func (s *Server) response(id ID, result any, rerr *Error) Response {
	if rerr != nil {
		return Response{JSONRPC: Version, Error: rerr, ID: id}
	}
	b, err := json.Marshal(result)
	if err != nil {
		return Response{JSONRPC: Version, Error: NewError(CodeInternalError, "encoding the result: %v", err), ID: id}
	}
	return Response{JSONRPC: Version, Result: b, ID: id}
}

type empty struct{}

// call runs one request. c is nil over HTTP (no subscriptions there). An error about a
// contact (contactCodes: unknown_contact, key_changed, …) names them in its data,
// whichever method refused: the contact its params name.
func (s *Server) call(ctx context.Context, c *conn, req *Request) (any, *Error) {
	res, e := s.callMethod(ctx, c, req)
	if e != nil && e.Code == CodeInternalError && s.ctx.Err() != nil {
		// Cut short by the owner's shutdown (its context canceled under the call):
		// the caller is to go on through the next owner, not report an internal error.
		e = errClosing()
	}
	if e != nil && e.Data != nil && e.Data.Contact == "" && contactCodes[e.Code] {
		e.Data.Contact = contactParam(req.Params)
	}
	return res, e
}

// contactCodes are the codes whose errors name the contact concerned (data.contact).
var contactCodes = map[int]bool{CodeUnknownContact: true, CodeKeyChanged: true, CodeOnlyRejectedKey: true, CodeStalePreKey: true}

// contactParam is the contact a request's params name ("to", "contact" or "name"), ""
// when they name none.
func contactParam(params json.RawMessage) string {
	var p struct {
		To      string `json:"to"`
		Contact string `json:"contact"`
		Name    string `json:"name"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	return cmp.Or(p.To, p.Contact, p.Name)
}

func (s *Server) callMethod(ctx context.Context, c *conn, req *Request) (any, *Error) {
	if s.ctx.Err() != nil {
		return nil, errClosing()
	}
	switch req.Method {
	case "version":
		var p empty
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		return VersionResult{Version: s.cfg.Version, API: APIVersion, Owner: string(s.cfg.Owner), Me: s.c.Me(),
			ReadReceipts: s.cfg.ReadReceipts, Online: s.c.Online(), Relay: s.c.RelayURL()}, nil
	case "send":
		var p SendParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		return s.send(ctx, p)
	case "sendFile": // attachments.go
		var p SendFileParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		return s.sendFile(ctx, p)
	case "download": // attachments.go
		var p DownloadParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		return s.download(ctx, p)
	case "pendingDownloads": // attachments.go
		var p empty
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		return s.pendingDownloads(ctx)
	case "receive":
		var p empty
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if s.c.Online() {
			wctx, cancel := context.WithTimeout(ctx, receiveSyncWait)
			s.c.WaitSynced(wctx) // without the backlog: what is stored now
			cancel()
		}
		unread, err := s.c.Unread(ctx)
		if err != nil {
			return nil, errorFor(err)
		}
		out := ReceiveResult{Messages: make([]Message, 0, len(unread))}
		for _, m := range unread {
			out.Messages = append(out.Messages, FromMessage(m))
		}
		return out, nil
	case "subscribe":
		var p empty
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if c == nil {
			return nil, NewError(CodeNotOverHTTP, "subscribe needs the socket; over HTTP use GET /api/v1/events")
		}
		return c.subscribe(ctx)
	case "unsubscribe":
		var p SubscriptionParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if c == nil {
			return nil, NewError(CodeNotOverHTTP, "unsubscribe needs the socket")
		}
		if p.Subscription == 0 {
			return nil, NewError(CodeInvalidParams, `"subscription" is required`)
		}
		c.mu.Lock()
		sub, ok := c.subs[p.Subscription]
		delete(c.subs, p.Subscription)
		c.mu.Unlock()
		if !ok {
			return nil, NewError(CodeInvalidParams, "no subscription %d on this connection", p.Subscription)
		}
		sub.Close()
		return empty{}, nil
	case "markRead":
		var p MarkReadParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if p.Contact == "" || p.Through < 0 {
			return nil, NewError(CodeInvalidParams, `markRead needs "contact" and "through" >= 0 (0 = everything)`)
		}
		var err error
		if p.Through == 0 {
			err = s.c.MarkRead(ctx, p.Contact)
		} else {
			err = s.c.MarkReadThrough(ctx, p.Contact, p.Through)
		}
		if err != nil {
			return nil, errorFor(err)
		}
		return empty{}, nil
	case "deleteMessage":
		var p DeleteMessageParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if p.Contact == "" || p.ID <= 0 {
			return nil, NewError(CodeInvalidParams, `deleteMessage needs "contact" and "id" > 0`)
		}
		err := s.c.DeleteMessage(ctx, p.Contact, p.ID)
		if errors.Is(err, chat.ErrUnknownMessage) { // not not_a_file, as a download's
			return nil, NewError(CodeUnknownMessage, "%v; give the id of one of the conversation's messages", err)
		}
		if err != nil {
			return nil, errorFor(err)
		}
		return empty{}, nil
	case "clearConversation":
		var p ContactParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if p.Contact == "" {
			return nil, NewError(CodeInvalidParams, `"contact" is required`)
		}
		n, err := s.c.ClearConversation(ctx, p.Contact)
		if err != nil {
			return nil, errorFor(err)
		}
		return ClearResult{Deleted: n}, nil
	case "contacts":
		var p empty
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		list, err := s.c.Contacts(ctx)
		if err != nil {
			return nil, errorFor(err)
		}
		out := make([]Contact, 0, len(list))
		for _, ct := range list {
			out = append(out, FromContact(ct))
		}
		return out, nil
	case "addContact":
		name, e := nameParam(req)
		if e != nil {
			return nil, e
		}
		ct, err := s.c.AddContact(ctx, name)
		if err != nil {
			return nil, errorFor(err)
		}
		sn, err := s.c.SafetyNumber(ctx, name)
		if err != nil {
			return nil, errorFor(err)
		}
		return AddContactResult{Contact: FromContact(ct), SafetyNumber: FromSafetyNumber(sn)}, nil
	case "fingerprint":
		name, e := nameParam(req)
		if e != nil {
			return nil, e
		}
		sn, err := s.c.SafetyNumber(ctx, name)
		if err != nil {
			return nil, errorFor(err)
		}
		ct, err := s.c.Contact(ctx, name)
		if err != nil {
			return nil, errorFor(err)
		}
		out := FingerprintResult{SafetyNumber: FromSafetyNumber(sn), Verified: ct.Verified}
		if sn.Pending {
			if old, err := s.c.TrustedSafetyNumber(ctx, name); err == nil {
				t := FromSafetyNumber(old)
				out.Trusted = &t
			}
		}
		return out, nil
	case "verify", "acceptKey", "rejectKey", "resetSession":
		name, e := nameParam(req)
		if e != nil {
			return nil, e
		}
		fn := map[string]func(context.Context, string) error{"verify": s.c.Verify, "acceptKey": s.c.AcceptKey, "rejectKey": s.c.RejectKey, "resetSession": s.c.ResetSession}[req.Method]
		if err := fn(ctx, name); err != nil {
			return nil, errorFor(err)
		}
		return empty{}, nil
	case "rotateKeys":
		p := RotateKeysParams{Count: chat.DefaultOneTimeKeys}
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		if p.Count < 1 || p.Count > 100 {
			return nil, NewError(CodeInvalidParams, "count must be between 1 and 100")
		}
		if err := s.c.RotateKeys(ctx, p.Count); err != nil {
			return nil, errorFor(err)
		}
		return empty{}, nil
	case "gaps":
		var p GapsParams
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		return s.gaps(ctx, p.Name)
	case "oneTimeKeys":
		var p empty
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e
		}
		x, m, err := s.c.OneTimeKeysOnRelay(ctx)
		if err != nil {
			return nil, errorFor(err)
		}
		return OneTimeKeysResult{X25519: x, MLKEM: m}, nil
	}
	if res, e, ok := s.contactMethod(ctx, req); ok { // requests and blocking (contactmethods.go)
		return res, e
	}
	return nil, NewError(CodeMethodNotFound, "no method %q (see API.md)", req.Method)
}

// gaps lists the holes in name's incoming sequence, or in every contact's (name "").
func (s *Server) gaps(ctx context.Context, name string) (any, *Error) {
	names := []string{name}
	if name == "" {
		list, err := s.c.Contacts(ctx)
		if err != nil {
			return nil, errorFor(err)
		}
		names = names[:0]
		for _, ct := range list {
			names = append(names, ct.Name)
		}
	} else if _, err := s.c.Contact(ctx, name); err != nil {
		return nil, errorFor(err)
	}
	out := GapsResult{Gaps: []Gap{}}
	for _, n := range names {
		gs, err := s.c.Gaps(ctx, n)
		if err != nil {
			return nil, errorFor(err)
		}
		for _, g := range gs {
			out.Gaps = append(out.Gaps, FromGap(g))
		}
	}
	return out, nil
}

func nameParam(req *Request) (string, *Error) {
	var p NameParams
	if e := DecodeParams(req.Params, &p); e != nil {
		return "", e
	}
	if p.Name == "" {
		return "", NewError(CodeInvalidParams, `"name" is required`)
	}
	return p.Name, nil
}

func (s *Server) send(ctx context.Context, p SendParams) (any, *Error) {
	if p.To == "" {
		return nil, NewError(CodeInvalidParams, `"to" is required`)
	}
	if p.WaitMs < 0 || p.WaitMs > int64(10*time.Minute/time.Millisecond) {
		return nil, NewError(CodeInvalidParams, `"waitMs" must be between 0 and 600000`)
	}
	var sub *Sub
	if p.WaitMs > 0 { // listen before sending, so the "sent" event cannot be missed
		sub = s.cfg.Hub.Subscribe()
		defer sub.Close()
	}
	m, err := s.c.Send(ctx, p.To, p.Text)
	if err != nil {
		return nil, errorFor(err)
	}
	return s.awaitAccepted(ctx, sub, m.ID, p.To, p.WaitMs)
}

// awaitAccepted answers send and sendFile for message id: "accepted" once the relay
// holds it within waitMs (sub listens since before the message was committed; nil:
// do not wait), "queued" otherwise, send_refused when the relay refused it.
func (s *Server) awaitAccepted(ctx context.Context, sub *Sub, id int64, to string, waitMs int64) (any, *Error) {
	queued := SendResult{ID: id, State: "queued"}
	if sub == nil || !s.c.Online() {
		return queued, nil
	}
	timer := time.NewTimer(time.Duration(waitMs) * time.Millisecond)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				return queued, nil
			}
			if ev.Kind != chat.DeliveryChanged || ev.Message == nil || ev.Message.ID != id {
				continue
			}
			switch ev.Message.State {
			case chat.Pending:
				continue
			case chat.Failed:
				e := NewError(CodeSendRefused, "the relay refused message %d: %s", id, ev.Message.Reason)
				e.Data.Contact, e.Data.Reason = to, ev.Message.Reason
				return nil, e
			}
			return SendResult{ID: id, State: "accepted"}, nil
		case <-timer.C:
			return queued, nil
		case <-ctx.Done():
			return queued, nil
		}
	}
}

func (c *conn) subscribe(ctx context.Context) (any, *Error) {
	c.mu.Lock()
	if len(c.subs) >= MaxSubscriptions {
		c.mu.Unlock()
		// Close may have begun since call looked: the subscriptions are ending then.
		return nil, c.s.refusal(NewError(CodeTooMany, "at most %d subscriptions per connection", MaxSubscriptions))
	}
	id := c.s.subID.Add(1)
	sub := c.s.cfg.Hub.Subscribe()
	c.subs[id] = sub
	c.mu.Unlock()
	// The answer goes out before the first notification: the stream starts once this
	// call's response is written (the connection handles one request at a time).
	started := make(chan struct{})
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		select {
		case <-started:
		case <-ctx.Done():
			sub.Close()
			return
		}
		err := c.s.stream(ctx, id, sub, func(n Notification) error { return c.notify(id, n) })
		c.mu.Lock()
		delete(c.subs, id) // ended: it no longer counts against MaxSubscriptions
		c.mu.Unlock()
		if err != nil && ctx.Err() == nil && !errors.Is(err, errSubscriptionEnded) {
			c.s.log.Debug("daemon: subscription ended", "subscription", id, "err", err)
		}
	}()
	return startAfter{SubscribeResult{Subscription: id}, started}, nil
}

// startAfter is a result that releases a waiting stream once it has been written: the
// stream's first notification follows the response that names the subscription.
type startAfter struct {
	v       any
	started chan struct{}
}

// stream sends sub's events as notifications through emit: first every unread incoming
// message in the store, then every event as it comes (a message that is both in the
// backlog and an event is sent once). It returns when sub ends, ctx is done or emit
// fails. sub is closed on return.
func (s *Server) stream(ctx context.Context, id int64, sub *Sub, emit func(Notification) error) error {
	defer sub.Close()
	unread, err := s.c.Unread(ctx)
	if err != nil {
		return err
	}
	seen := make(chat.Shown, len(unread))
	for _, m := range unread {
		seen.Mark(m.ID, m.State == chat.UndecryptableState)
		am := FromMessage(m)
		if err := emit(notification(NotifyMessage, Event{Subscription: id, Message: &am})); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-sub.C():
			if !ok {
				return nil
			}
			n, ok := eventNotification(id, ev)
			if !ok {
				continue
			}
			if n.Method == NotifyMessage {
				placeholder := ev.Message.State == chat.UndecryptableState
				if ev.Message.ID != 0 && !seen.Fresh(ev.Message.ID, placeholder) {
					continue // a resend that replaces a placeholder is news (chat.Shown)
				}
				seen.Mark(ev.Message.ID, placeholder)
			}
			if err := emit(n); err != nil {
				return err
			}
		}
	}
}

func notification(method string, ev Event) Notification {
	b, _ := json.Marshal(ev) // plain structs: cannot fail
	return Notification{JSONRPC: Version, Method: method, Params: b}
}

// eventNotification is the notification for a controller event, if the API shows it.
func eventNotification(id int64, ev chat.Event) (Notification, bool) {
	switch ev.Kind {
	case chat.MessageReceived, chat.Undecryptable:
		if ev.Message == nil || ev.Message.Outgoing {
			return Notification{}, false // unreadable, from a stranger: nothing stored
		}
		m := FromMessage(*ev.Message)
		return notification(NotifyMessage, Event{Subscription: id, Message: &m}), true
	case chat.DeliveryChanged:
		if ev.Message == nil {
			return Notification{}, false
		}
		m := FromMessage(*ev.Message)
		return notification(NotifyDelivery, Event{Subscription: id, Message: &m}), true
	case chat.ContactKeyChanged:
		return notification(NotifyKeyChanged, Event{Subscription: id, Contact: ev.Contact}), true
	case chat.ContactChanged:
		return notification(NotifyContact, Event{Subscription: id, Contact: ev.Contact}), true
	case chat.MessagesRead:
		return notification(NotifyMarkedRead, Event{Subscription: id, Contact: ev.Contact}), true
	case chat.MessagesDeleted:
		e := Event{Subscription: id, Contact: ev.Contact}
		if ev.Message != nil {
			e.ID = ev.Message.ID
		}
		return notification(NotifyDeleted, e), true
	case chat.TransferProgress: // attachments.go
		if ev.Transfer == nil {
			return Notification{}, false
		}
		t := fromTransfer(*ev.Transfer)
		if ev.Message != nil && ev.Message.Attachment != nil {
			t.Path = ev.Message.Attachment.Path
		}
		return notification(NotifyTransfer, Event{Subscription: id, Contact: ev.Contact, Transfer: t}), true
	case chat.ConnectionChanged:
		e := Event{Subscription: id, Status: ev.State.Status.String()}
		if ev.State.Err != nil {
			e.Error = ev.State.Err.Error()
		}
		return notification(NotifyConnection, e), true
	}
	return Notification{}, false
}

// String is for logs.
func (s *Server) String() string { return fmt.Sprintf("daemon(%s)", s.cfg.Owner) }
