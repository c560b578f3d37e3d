package chat

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// Send encrypts text for contact and commits the message, the advanced ratchet state and
// the outbox entry in one transaction, then returns the pending message at once; the
// outbox drains in the background, in order, whenever the relay is reachable. Sending is
// refused while the contact has an unaccepted key change (*KeyChangedError).
//
// The first message to a contact needs the relay (to fetch a prekey bundle); later ones
// can be sent offline.
func (c *Controller) Send(ctx context.Context, contact, text string) (Message, error) {
	if strings.TrimSpace(text) == "" {
		return Message{}, ErrEmptyMessage
	}
	if len(text) > MaxTextBytes {
		return Message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTextTooLong, len(text), MaxTextBytes)
	}
	clientID := newClientID()
	now := c.now()
	msg := &storage.Message{Contact: contact, Direction: storage.Outgoing, Body: []byte(text),
		SentAt: now, State: storage.Pending, ClientID: clientID}
	// The payload takes the next sequence number to the contact; c.mu is held from here
	// to the commit, so two sends never share one.
	encode := func() ([]byte, error) {
		seq, err := c.store.NextSendSeq(ctx, contact)
		if err != nil {
			return nil, fmt.Errorf("chat: numbering a message to %s: %w", contact, err)
		}
		msg.Seq = seq
		return payload.Encode(&payload.Payload{Type: payload.Text, At: now, ID: clientID, Seq: seq, Text: text})
	}
	var id int64
	wasRequest := c.isRequest(ctx, contact)
	err := c.onSession(ctx, contact, true, func(s *Session) error {
		plain, err := encode()
		if err != nil {
			return err
		}
		id, err = c.commitEncrypted(ctx, s, contact, plain, clientID, msg)
		return err
	})
	if errors.Is(err, errAwaitSession) {
		id, err = c.queueAwaiting(ctx, contact, encode, clientID, msg)
	}
	if err != nil {
		return Message{}, err
	}
	if wasRequest {
		c.contactChanged(contact)
		c.sendWithheldReceipts(ctx, contact, "") // writing to them accepted them
	}
	c.kickSender()
	return Message{ID: id, Contact: contact, Outgoing: true, Text: text, SentAt: now, State: Pending, Seq: msg.Seq, Order: msg.Order, clientID: clientID}, nil
}

// errAwaitSession: there is no session with the contact and no relay to start one; the
// message may wait for its session in the outbox.
var errAwaitSession = errors.New("chat: no session yet and the relay is unreachable")

// onSession runs commit with c.mu held on the contact's active session, starting one
// first when there is none (fetching a prekey bundle is a relay round trip, made
// without the lock). Without a session and without the relay it fails with
// errAwaitSession when mayAwait is set (the caller can queue the message to wait for
// its session), and with ErrOffline otherwise.
func (c *Controller) onSession(ctx context.Context, contact string, mayAwait bool, commit func(*Session) error) error {
	err := c.onSessionOnce(ctx, contact, mayAwait, commit)
	var nc *bundleCardError
	if !errors.As(err, &nc) {
		return err
	}
	if err := c.adoptBundleCard(ctx, contact, nc.card); err != nil {
		return err
	}
	// A re-issued card with the same keys is the contact's card now: once more.
	err = c.onSessionOnce(ctx, contact, mayAwait, commit)
	if errors.As(err, &nc) {
		return fmt.Errorf("%w: %s's card changed twice while starting a session; try again", ErrCardRejected, contact)
	}
	return err
}

func (c *Controller) onSessionOnce(ctx context.Context, contact string, mayAwait bool, commit func(*Session) error) error {
	c.mu.Lock()
	r, card, err := c.sendableContact(ctx, contact)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	s, err := c.activeSession(ctx, r.CardID)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	if s == nil {
		// Fetch a bundle without holding the lock, then look again: a session may have
		// arrived meanwhile.
		c.mu.Unlock()
		if !c.isOnline() && mayAwait {
			return errAwaitSession
		}
		b, err := c.fetchBundle(ctx, card, r.RejectedCardID)
		if err != nil {
			if errors.Is(err, ErrNotInitialized) || !c.isOnline() {
				if mayAwait {
					return errAwaitSession
				}
				return fmt.Errorf("%w: cannot start a session with %s while offline: %w", ErrOffline, contact, err)
			}
			return err
		}
		c.mu.Lock()
		if s, err = c.activeSession(ctx, r.CardID); err != nil {
			c.mu.Unlock()
			return err
		}
		if s == nil {
			if s, err = c.startSession(card, b); err != nil {
				c.mu.Unlock()
				return err
			}
		}
	}
	defer c.mu.Unlock()
	return commit(s)
}

// queueAwaiting commits a message whose session cannot be started yet (offline): its
// plain payload waits in the outbox, marked as awaiting its session and sealed at rest
// like everything else there, until the sender runs the handshake.
func (c *Controller) queueAwaiting(ctx context.Context, contact string, encode func() ([]byte, error), clientID string, msg *storage.Message) (int64, error) {
	c.mu.Lock() // the item joins the sender's queue in commit order
	defer c.mu.Unlock()
	plain, err := encode()
	if err != nil {
		return 0, err
	}
	it := storage.OutboxItem{ClientID: clientID, To: contact, Payload: plain, CreatedAt: c.now(), AwaitingSession: true}
	id, err := c.store.CommitSend(ctx, storage.SendTx{Message: msg, Outbox: it})
	if err != nil {
		return 0, fmt.Errorf("chat: committing message to %s: %w", contact, err)
	}
	it.MessageID = id
	c.out.add(it)
	c.log.Info("no session yet and offline: message waits in the outbox", "to", contact)
	return id, nil
}

// encryptAwaiting runs the handshake for an item that waited for its session and
// commits its ciphertext in place of the plain payload, with the new session state.
func (c *Controller) encryptAwaiting(ctx context.Context, it storage.OutboxItem) (storage.OutboxItem, error) {
	err := c.onSession(ctx, it.To, false, func(s *Session) error {
		wire, err := s.s.Encrypt(it.Payload)
		if err != nil {
			return fmt.Errorf("chat: encrypting for %s: %w", it.To, err)
		}
		s.active = true
		row, err := c.sessionRow(s)
		if err != nil {
			return err
		}
		if err := c.store.CommitAwaited(ctx, row, it.ClientID, wire); err != nil {
			return fmt.Errorf("chat: committing message to %s: %w", it.To, err)
		}
		if it.MessageID != 0 {
			if err := c.store.RecordToCard(ctx, it.MessageID, row.PeerCardID); err != nil {
				c.log.Info("recording the card a message was encrypted for; it cannot be re-sent on request", "err", err)
			}
		}
		it.Payload, it.AwaitingSession = wire, false
		return nil
	})
	return it, err
}

// settle takes a sent or refused item out of the outbox (failure: why it was refused)
// and reports its message's new state from what the removal returned.
func (c *Controller) settle(ctx context.Context, it storage.OutboxItem, failure string) error {
	return c.settleSent(ctx, it, failure, 0)
}

// settleSent is settle that records, for an accepted item, the relay msg id it was
// accepted under (a retry request names it).
func (c *Controller) settleSent(ctx context.Context, it storage.OutboxItem, failure string, relayMsgID int64) error {
	if failure != "" {
		return c.settleRefused(ctx, it, failure)
	}
	var m storage.Message
	var ok bool
	var err error
	c.deliveryMu.Lock() // the settlement's event before a later receipt's (emitDelivery)
	defer c.deliveryMu.Unlock()
	if relayMsgID > 0 {
		m, ok, err = c.store.SettleOutboxAccepted(ctx, it.ClientID, relayMsgID)
	} else {
		m, ok, err = c.store.SettleOutbox(ctx, it.ClientID, "")
	}
	if err != nil {
		return err
	}
	if ok {
		c.emitDeliveryOf(ctx, m, m.HasAttachment)
	}
	return nil
}

// settleRefused takes an item the relay refused for good out of the outbox and marks
// its message Failed (failure: why) and, when the message took a sequence number,
// commits the withdrawn notice that gives the number up (chat/PAYLOAD.md §4.6) in the
// same transaction, with the ratchet step that encrypted it. A crash therefore leaves
// either both or neither: then the refused item is still in the outbox, the next run
// sends it again, and the relay's answer settles it then (refused again: with its
// notice; accepted: it is delivered and needs none). Settling the message first and
// queueing the notice afterwards could lose the notice for good, and the receiver
// would report the number as a missing message.
//
// The notice is committed only now, behind anything queued to the contact while the
// relay was answering, so it may arrive after later messages (the relay may reorder
// besides). It carries m's own send time, not the time of the refusal: the receiver
// then places it by its seq, before the later messages that overtook it, as it places
// any late message (storage's placeMessage puts a lower seq before the higher ones only
// when they were sent no earlier), and the conversation reads in the sender's order
// whatever the arrival order, across restarts too.
func (c *Controller) settleRefused(ctx context.Context, it storage.OutboxItem, failure string) error {
	c.mu.Lock() // the notice's ratchet step, from its encryption to its commit
	tx := c.withdrawnNotice(ctx, it)
	if tx != nil && c.beforeCommit != nil {
		c.beforeCommit()
	}
	m, ok, err := c.store.SettleRefused(ctx, it.ClientID, failure, tx)
	if err == nil && ok && tx != nil {
		c.out.add(tx.Outbox) // the sender gets the committed ciphertext itself
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("chat: settling a refused message to %s: %w", it.To, err)
	}
	if ok {
		c.emitDeliveryOf(ctx, m, m.HasAttachment)
		if tx != nil {
			c.kickSender()
		}
	}
	return nil
}

// withdrawnNotice encrypts the withdrawn notice for the refused item's message and
// returns it, with the ratchet state that encrypted it, ready to commit. It returns nil
// when none is due (a receipt, a message without a number, a resend) or none can be sent (no
// session with the contact, no consent, a pending key change: controlSession); the
// refusal is then settled without one. c.mu must be held.
func (c *Controller) withdrawnNotice(ctx context.Context, it storage.OutboxItem) *storage.SendTx {
	if it.MessageID == 0 {
		return nil
	}
	m, err := c.store.Message(ctx, it.MessageID)
	if err != nil || m.Direction != storage.Outgoing || m.Seq == 0 {
		return nil
	}
	if it.ClientID != m.ClientID {
		// A resend (it answers a retry request, under a client id of its own): the
		// message itself was accepted and reached the contact, who holds its place, so
		// its number is not given up — and a notice per refused resend would withdraw
		// one number several times (§4.6: once).
		return nil
	}
	at := m.SentAt
	if at.IsZero() {
		at = c.now()
	}
	plain, err := payload.Encode(&payload.Payload{Type: payload.Withdrawn, At: at, ID: m.ClientID, Seq: m.Seq})
	if err != nil {
		c.log.Info("withdrawn notice not sent", "contact", m.Contact, "err", err)
		return nil
	}
	s, err := c.controlSession(ctx, m.Contact)
	if err == nil && s == nil {
		err = errors.New("no session with the contact")
	}
	var tx storage.SendTx
	if err == nil {
		tx, err = c.encryptSend(s, m.Contact, plain, newClientID(), nil)
	}
	if err != nil {
		c.log.Info("withdrawn notice not sent", "contact", m.Contact, "err", err)
		return nil
	}
	return &tx
}

func (c *Controller) failOutboxItem(ctx context.Context, it storage.OutboxItem, err error) {
	c.log.Warn("message cannot be sent", "to", it.To, "err", err)
	if serr := c.settle(ctx, it, err.Error()); serr != nil {
		c.log.Error("recording a failed send", "err", serr)
	}
}

// sendableContact returns the contact and its current card, or *KeyChangedError when
// sending is blocked. c.mu must be held.
func (c *Controller) sendableContact(ctx context.Context, contact string) (storage.Contact, *ratchet.Card, error) {
	r, err := c.store.Contact(ctx, contact)
	if errors.Is(err, storage.ErrNotFound) {
		return r, nil, fmt.Errorf("%w: %q", ErrUnknownContact, contact)
	}
	if err != nil {
		return r, nil, fmt.Errorf("chat: reading contact %s: %w", contact, err)
	}
	if r.PendingCardID != "" {
		return r, nil, &KeyChangedError{Contact: contact}
	}
	if r.Blocked {
		return r, nil, fmt.Errorf("%w: unblock %s to write to them", ErrBlocked, contact)
	}
	card, err := c.storedCard(ctx, r.CardID)
	if err != nil {
		return r, nil, err
	}
	return r, card, nil
}

// commitEncrypted encrypts on s, commits, and hands the outbox item to the sender.
// c.mu must be held.
func (c *Controller) commitEncrypted(ctx context.Context, s *Session, to string, plain []byte, clientID string, msg *storage.Message) (int64, error) {
	tx, err := c.encryptSend(s, to, plain, clientID, msg)
	if err != nil {
		return 0, err
	}
	if c.beforeCommit != nil {
		c.beforeCommit()
	}
	id, err := c.store.CommitSend(ctx, tx)
	if err != nil {
		return 0, fmt.Errorf("chat: committing message to %s: %w", to, err)
	}
	tx.Outbox.MessageID = id
	c.out.add(tx.Outbox) // the sender gets the committed ciphertext itself: no read-back
	return id, nil
}

// encryptSend encrypts plain in s for to and returns the send to commit: the outbox
// item under clientID, s's state after the step, and msg (nil for a control payload).
// c.mu must be held from here to the commit.
func (c *Controller) encryptSend(s *Session, to string, plain []byte, clientID string, msg *storage.Message) (storage.SendTx, error) {
	wire, err := s.s.Encrypt(plain)
	if err != nil {
		return storage.SendTx{}, fmt.Errorf("chat: encrypting for %s: %w", to, err)
	}
	s.active = true
	row, err := c.sessionRow(s)
	if err != nil {
		return storage.SendTx{}, err
	}
	tx := storage.SendTx{Session: row, Message: msg,
		Outbox: storage.OutboxItem{ClientID: clientID, To: to, Payload: wire, CreatedAt: c.now()}}
	if msg != nil {
		tx.ToCardID = row.PeerCardID // a resend goes only to this card (retry.go)
	}
	return tx, nil
}

func newClientID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("chat: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// errNoConsent: receipts go only to contacts the user wrote to or accepted.
var errNoConsent = errors.New("no receipts to a contact the user has not written to or accepted")

// sendReceipt queues an encrypted receipt for clientIDs to contact. Receipts are best
// effort: without a usable session (or while the contact's key change is pending) none
// is sent. c.mu must NOT be held.
func (c *Controller) sendReceipt(ctx context.Context, contact string, kind payload.Type, clientIDs []string) {
	for len(clientIDs) > 0 {
		batch := clientIDs[:payload.ReceiptFit(clientIDs)] // by count and by size
		clientIDs = clientIDs[len(batch):]
		plain, err := payload.Encode(&payload.Payload{Type: kind, At: c.now(), IDs: batch})
		if err != nil {
			c.log.Error("encoding receipt", "err", err)
			return
		}
		if err := c.queueControl(ctx, contact, plain); err != nil {
			c.log.Info("receipt not sent", "contact", contact, "err", err)
			return
		}
	}
	c.kickSender()
}

// queueControl commits a payload that is no message (a receipt) to the outbox, in the
// contact's active session; it is not sent to a contact the user has not consented to,
// nor without a session.
func (c *Controller) queueControl(ctx context.Context, contact string, plain []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.controlSession(ctx, contact)
	if err == nil && s != nil {
		_, err = c.commitEncrypted(ctx, s, contact, plain, newClientID(), nil)
	}
	return err
}

// controlSession returns the session a control payload (a receipt, a withdrawn notice)
// to contact goes in: its active one, nil when there is none. It is errNoConsent for a
// contact the user has not consented to, and sendableContact's errors when sending to
// the contact is blocked. c.mu must be held.
func (c *Controller) controlSession(ctx context.Context, contact string) (*Session, error) {
	r, _, err := c.sendableContact(ctx, contact)
	if err != nil {
		return nil, err
	}
	if !r.Consented {
		// Less metadata: a stranger learns nothing (not even that the message
		// arrived) until the user writes to or accepts them.
		return nil, errNoConsent
	}
	return c.activeSession(ctx, r.CardID)
}

// sendLoop drains the outbox whenever woken (new message, reconnect): per recipient in
// order, recipients in parallel. A transient refusal (rate limit, full queue, dropped
// connection) is retried with backoff while online.
func (c *Controller) sendLoop(ctx context.Context) {
	defer c.wg.Done()
	backoff := time.Duration(0)
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		if !c.isOnline() {
			c.outboxPassDone()
			continue
		}
		res := c.drainOutbox(ctx)
		c.outboxPassDone()
		switch res {
		case drainedAll:
			backoff = 0
			c.kickSender() // more may have been queued meanwhile; an empty pass is cheap
		case drainedEmpty:
			backoff = 0
		case drainedPartly:
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			if retry != nil {
				retry.Stop()
			}
			retry = time.AfterFunc(backoff, c.kickSender)
		}
	}
}

type drainResult int

const (
	drainedEmpty drainResult = iota
	drainedAll
	drainedPartly
)

// drainOutbox sends what is queued: the items commits handed over, or, when the copy
// may be stale (start-up, reconnect), the store's whole outbox.
func (c *Controller) drainOutbox(ctx context.Context) drainResult {
	if c.out.isStale() {
		c.mu.Lock() // no commit may slip between the read and the replacement
		items, err := c.store.Outbox(ctx)
		if err == nil {
			c.out.reload(items)
		}
		c.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil { // not the controller closing
				c.log.Error("reading outbox", "err", err)
			}
			return drainedPartly
		}
	}
	byTo, order := c.out.takeAll()
	if len(order) == 0 {
		return drainedEmpty
	}
	rc, err := c.relayClient()
	if err != nil {
		for _, to := range order {
			c.out.putBack(to, byTo[to])
		}
		return drainedPartly
	}
	const parallel = 64
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allOK := true
	for _, to := range order {
		queue := byTo[to]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			i := 0
			defer func() { c.out.putBack(to, queue[i:]) }()
			for i < len(queue) {
				switch c.sendOne(ctx, rc, &queue[i]) {
				case sendDone:
					i++
				case sendPaced:
					// Over the relay's frame rate: wait a moment and retry in place,
					// so the queue keeps its order and moves at the allowed rate.
					t := time.NewTimer(paceDelay)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				default:
					mu.Lock()
					allOK = false
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if !allOK {
		return drainedPartly
	}
	return drainedAll
}

type sendResult int

const (
	sendDone  sendResult = iota // accepted (or refused for good and marked failed)
	sendPaced                   // over the relay's rate limit: retry shortly
	sendLater                   // transient failure: stays in the outbox
)

// paceDelay is how long a recipient's queue waits after a rate-limit refusal.
const paceDelay = 50 * time.Millisecond

// sendOne sends one outbox item and settles it. An item awaiting its session is
// encrypted first, in place (so a retry sends that ciphertext).
func (c *Controller) sendOne(ctx context.Context, rc RelayClient, it *storage.OutboxItem) sendResult {
	if it.AwaitingSession {
		enc, err := c.encryptAwaiting(ctx, *it)
		switch {
		case errors.Is(err, ErrCardRejected), errors.Is(err, ErrUnknownUser), errors.Is(err, ErrUnknownContact), isPermanent(err):
			c.failOutboxItem(ctx, *it, err)
			return sendDone
		case err != nil:
			c.log.Info("waiting message still cannot be encrypted", "to", it.To, "err", err)
			return sendLater
		}
		*it = enc
	}
	sctx, cancel := withRPCTimeout(ctx)
	relayMsgID, err := rc.Send(sctx, it.To, it.Payload, it.ClientID)
	cancel()
	var pe *relay.ProtocolError
	if errors.As(err, &pe) && pe.Code == relay.CodeRateLimited {
		return sendPaced
	}
	if err != nil && !isPermanent(err) {
		c.log.Info("send deferred", "to", it.To, "err", err)
		c.noteDeferral(it.ClientID, err)
		return sendLater
	}
	c.noteDeferral(it.ClientID, nil)
	// An acceptance changes no session state, so c.mu is not needed: the settlement is
	// its own transaction, and the receive path never moves a state backwards. A
	// refusal's settlement takes c.mu itself, for its withdrawn notice (settleRefused).
	failure := ""
	if err != nil {
		failure = err.Error() // refused for good: record why
		c.log.Warn("message refused by the relay", "to", it.To, "err", err)
	}
	if err := c.settleSent(ctx, *it, failure, relayMsgID); err != nil {
		c.log.Error("removing a sent item from the outbox", "err", err)
		return sendLater
	}
	return sendDone
}

// emitDelivery reports the state of the outgoing message with clientID, read from the
// store (a receipt changed it).
func (c *Controller) emitDelivery(ctx context.Context, clientID string) {
	c.deliveryMu.Lock() // after a settlement that committed before the receipt
	defer c.deliveryMu.Unlock()
	m, err := c.store.MessageByClientID(ctx, clientID)
	if err != nil {
		return
	}
	c.emitDeliveryOf(ctx, m, true)
}

// emitDeliveryOf reports m's new state, with its attachment when it is a file: a
// subscriber replaces its copy of the message with the event's (chat/daemon/API.md
// "delivery"), and a file message without its file would turn into a caption.
// maybeFile false: m is known to have none (a settled send says so), and the store is
// not asked.
func (c *Controller) emitDeliveryOf(ctx context.Context, m storage.Message, maybeFile bool) {
	msg := toMessage(m)
	if maybeFile {
		c.fillAttachment(ctx, &msg)
	}
	c.emit(Event{Kind: DeliveryChanged, Contact: m.Contact, Message: &msg})
}

// History returns up to n messages with contact older than message ID before (0 = the
// newest), newest first.
func (c *Controller) History(ctx context.Context, contact string, before int64, n int) ([]Message, error) {
	if n <= 0 {
		n = 50
	}
	rows, _, err := c.store.Messages(ctx, contact, storage.Cursor{BeforeID: before}, n)
	if err != nil {
		return nil, fmt.Errorf("chat: reading history with %s: %w", contact, err)
	}
	out := make([]Message, len(rows))
	for i, r := range rows {
		out[i] = toMessage(r)
	}
	c.fillAttachments(ctx, out) // one read for the page, not one per message
	return out, nil
}

// HistoryFromUnread returns, newest first, the messages with contact from its first
// unread one (the oldest of its unread newest incoming messages, unread of them) to the
// newest, and up to older messages before those; more reports whether still older
// messages exist (History goes on from the oldest returned). It costs two reads of the
// store whatever unread is, so a conversation with thousands of unread messages opens
// at the first of them without paging back to it. At most storage.MaxUnreadWindow
// messages from the first unread are returned, the newest ones (then more is true and
// none older come with them). unread <= 0 is History(contact, 0, older).
func (c *Controller) HistoryFromUnread(ctx context.Context, contact string, unread, older int) (msgs []Message, more bool, err error) {
	if older <= 0 {
		older = 50
	}
	window, err := c.store.MessagesFromUnread(ctx, contact, unread)
	if err != nil {
		return nil, false, fmt.Errorf("chat: reading history with %s: %w", contact, err)
	}
	rows := window
	if len(window) >= storage.MaxUnreadWindow {
		more = true
	} else {
		var cur storage.Cursor
		if len(window) > 0 {
			cur.BeforeID = window[len(window)-1].ID
		}
		page, next, err := c.store.Messages(ctx, contact, cur, older)
		if err != nil {
			return nil, false, fmt.Errorf("chat: reading history with %s: %w", contact, err)
		}
		rows, more = append(rows, page...), next != (storage.Cursor{})
	}
	msgs = make([]Message, len(rows))
	for i, r := range rows {
		msgs[i] = toMessage(r)
	}
	c.fillAttachments(ctx, msgs) // one read per storage.AttachmentsChunk messages, not one each
	return msgs, more, nil
}

func toMessage(r storage.Message) Message {
	return Message{ID: r.ID, Contact: r.Contact, Outgoing: r.Direction == storage.Outgoing,
		Text: string(r.Body), SentAt: r.SentAt, ReceivedAt: r.ReceivedAt,
		State: r.State, Reason: r.Reason, Seq: r.Seq, Order: r.Order, KeyPending: r.KeyPending, SenderCardID: r.SenderCardID,
		clientID: r.ClientID}
}

// MarkRead marks the conversation read and, unless disabled, tells the contact which
// messages were read (an encrypted read receipt).
func (c *Controller) MarkRead(ctx context.Context, contact string) error {
	return c.markRead(ctx, contact, 0)
}

// MarkReadThrough is MarkRead for the messages up to and including message id, the
// newest one shown: messages after it stay unread. A reader that marks what it has
// printed uses it, so a crash can never leave a message read that it did not show.
func (c *Controller) MarkReadThrough(ctx context.Context, contact string, id int64) error {
	if id <= 0 {
		return fmt.Errorf("chat: MarkReadThrough: message id %d", id)
	}
	return c.markRead(ctx, contact, id)
}

// markRead marks the contact's incoming messages up to through (0: all) read. The read
// receipt is committed before the messages are marked: a crash in between sends it once
// more next time (harmless, a message's state only moves forward), while the other
// order could lose it for good, and with it, when the delivery receipt was not
// committed yet either, the sender's only news that the message arrived.
func (c *Controller) markRead(ctx context.Context, contact string, through int64) error {
	r, err := c.store.Contact(ctx, contact)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrUnknownContact, contact)
	}
	if err != nil {
		return fmt.Errorf("chat: reading contact %s: %w", contact, err)
	}
	if r.Unread == 0 {
		return nil
	}
	var told map[string]bool
	readReceipts := c.ReadReceipts(ctx)
	if readReceipts {
		rows, err := c.unreadRows(ctx, contact)
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range rows {
			if through == 0 || m.ID <= through {
				ids = append(ids, m.ClientID)
			}
		}
		told = c.sendReadReceipt(ctx, contact, ids, nil)
	}
	ids, err := c.store.MarkReadThrough(ctx, contact, through)
	if err != nil {
		return fmt.Errorf("chat: marking %s read: %w", contact, err)
	}
	if len(ids) > 0 {
		c.emit(Event{Kind: MessagesRead, Contact: contact})
	}
	if readReceipts {
		c.sendReadReceipt(ctx, contact, ids, told) // those that arrived meanwhile
	}
	return nil
}

// sendReadReceipt sends a read receipt for the stored client ids not in skip, and
// returns the peer ids it covered.
func (c *Controller) sendReadReceipt(ctx context.Context, contact string, stored []string, skip map[string]bool) map[string]bool {
	told := make(map[string]bool)
	var peerIDs []string
	for _, id := range stored {
		if p, ok := peerClientID(id); ok && !skip[p] {
			peerIDs = append(peerIDs, p)
			told[p] = true
		}
	}
	if len(peerIDs) > 0 {
		c.sendReceipt(ctx, contact, payload.Read, peerIDs)
	}
	return told
}

// unreadRows returns the unread incoming messages with contact, newest first.
func (c *Controller) unreadRows(ctx context.Context, contact string) ([]storage.Message, error) {
	rows, err := c.store.UnreadMessages(ctx, contact)
	if err != nil {
		return nil, fmt.Errorf("chat: reading unread messages of %s: %w", contact, err)
	}
	return rows, nil
}

// Unread returns every unread incoming message (undecryptable ones included), oldest
// first, across contacts. MarkRead a contact once its messages are shown.
func (c *Controller) Unread(ctx context.Context) ([]Message, error) {
	contacts, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, fmt.Errorf("chat: listing contacts: %w", err)
	}
	var out []Message
	for _, ct := range contacts {
		if ct.Unread == 0 {
			continue
		}
		rows, err := c.unreadRows(ctx, ct.Name)
		if err != nil {
			return nil, err
		}
		msgs := make([]Message, len(rows))
		for i, r := range rows {
			msgs[i] = toMessage(r)
			msgs[i].Request = !ct.Consented && !ct.Blocked
		}
		c.fillAttachments(ctx, msgs)
		out = append(out, msgs...)
	}
	// Arrival order across contacts; within a conversation its own order, so a late
	// message comes before those that overtook it (each contact keeps its slots).
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	slots := make(map[string][]int)
	for i, m := range out {
		slots[m.Contact] = append(slots[m.Contact], i)
	}
	for _, idx := range slots {
		ms := make([]Message, len(idx))
		for j, i := range idx {
			ms[j] = out[i]
		}
		slices.SortStableFunc(ms, func(a, b Message) int { return cmp.Compare(a.Order, b.Order) })
		for j, i := range idx {
			out[i] = ms[j]
		}
	}
	return out, nil
}

// Incoming messages are stored under "in:" + sender + "/" + the sender's client ID, so a
// peer can never collide with another peer's IDs or with our own outgoing ones (names
// never contain '/').
func incomingClientID(from, peerID string) string { return "in:" + from + "/" + peerID }

func peerClientID(stored string) (string, bool) {
	rest, ok := strings.CutPrefix(stored, "in:")
	if !ok {
		return "", false
	}
	_, id, ok := strings.Cut(rest, "/")
	return id, ok
}

// cryptoRand is crypto/rand as an io.Reader value usable in package variables.
type cryptoRand struct{}

func (cryptoRand) Read(b []byte) (int, error) { return rand.Read(b) }

// metaReadReceipts is the profile's read-receipt preference ("off" turns them off).
const metaReadReceipts = "read_receipts"

// ReadReceipts reports whether read receipts are sent: not when the profile's
// preference (SetReadReceipts, `/receipts off`) or Preferences.NoReadReceipts (`recv
// --no-read-receipts`) turns them off. Delivery receipts are not affected.
func (c *Controller) ReadReceipts(ctx context.Context) bool {
	if c.prefs.NoReadReceipts {
		return false
	}
	v, err := c.store.Meta(ctx, metaReadReceipts)
	return err != nil || string(v) != "off"
}

// SetReadReceipts stores the profile's read-receipt preference.
func (c *Controller) SetReadReceipts(ctx context.Context, on bool) error {
	v := "on"
	if !on {
		v = "off"
	}
	if err := c.store.SetMeta(ctx, metaReadReceipts, []byte(v)); err != nil {
		return fmt.Errorf("chat: saving the read-receipt preference: %w", err)
	}
	return nil
}

// noteDeferral records the relay's answer when it refused the item with clientID for
// now (nil: it is settled, nothing to remember).
func (c *Controller) noteDeferral(clientID string, err error) {
	var pe *relay.ProtocolError
	c.deferMu.Lock()
	defer c.deferMu.Unlock()
	if err == nil || !errors.As(err, &pe) {
		delete(c.deferred, clientID)
		return
	}
	if c.deferred == nil {
		c.deferred = make(map[string]*relay.ProtocolError)
	}
	c.deferred[clientID] = pe
}

// SendDeferral is the relay's answer when it last refused the outgoing message m for
// now (such as storage_full: its disk is nearly full), nil when it has not: m was not
// tried, was accepted, or did not reach the relay.
func (c *Controller) SendDeferral(m Message) *relay.ProtocolError {
	c.deferMu.Lock()
	defer c.deferMu.Unlock()
	return c.deferred[m.clientID]
}
