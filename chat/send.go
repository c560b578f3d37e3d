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
	plain, err := (&payload{Kind: kindText, At: now, ClientID: clientID, Text: text}).marshal()
	if err != nil {
		return Message{}, err
	}
	msg := &storage.Message{Contact: contact, Direction: storage.Direction(dirOut), Body: []byte(text),
		SentAt: now, State: storage.DeliveryState(Pending), ClientID: clientID}
	id, err := c.encryptAndQueue(ctx, contact, plain, clientID, msg)
	if err != nil {
		return Message{}, err
	}
	c.kickSender()
	return Message{ID: id, Contact: contact, Outgoing: true, Text: text, SentAt: now, State: Pending}, nil
}

const (
	dirIn  = 1
	dirOut = 2
)

// encryptAndQueue encrypts plain on the contact's active session (starting one if
// needed) and commits state + message + outbox item in one transaction.
func (c *Controller) encryptAndQueue(ctx context.Context, contact string, plain []byte, clientID string, msg *storage.Message) (int64, error) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		r, card, err := c.sendableContact(ctx, contact)
		if err != nil {
			c.mu.Unlock()
			return 0, err
		}
		s, err := c.activeSession(ctx, r.CardID)
		if err != nil {
			c.mu.Unlock()
			return 0, err
		}
		if s == nil {
			// Fetch a bundle without holding the lock (it is a relay round trip), then
			// look again: a session may have arrived meanwhile.
			c.mu.Unlock()
			if attempt > 0 {
				return 0, fmt.Errorf("chat: no session with %s after starting one", contact)
			}
			if !c.isOnline() && msg != nil && !deferredOK(ctx) {
				// No session yet and no relay to fetch prekeys from: keep the message
				// (sealed, unencrypted by the ratchet) in the outbox; the drainer runs
				// the handshake and encrypts it when the relay is back.
				return c.queueUnencrypted(ctx, contact, plain, clientID, msg)
			}
			b, err := c.fetchBundle(ctx, card)
			if err != nil {
				if errors.Is(err, ErrNotInitialized) || !c.isOnline() {
					if msg != nil && !deferredOK(ctx) {
						return c.queueUnencrypted(ctx, contact, plain, clientID, msg)
					}
					return 0, fmt.Errorf("%w: cannot start a session with %s while offline: %w", ErrOffline, contact, err)
				}
				return 0, err
			}
			c.mu.Lock()
			if s, err = c.activeSession(ctx, r.CardID); err != nil {
				c.mu.Unlock()
				return 0, err
			}
			if s == nil {
				if s, err = c.startSession(card, b); err != nil {
					c.mu.Unlock()
					return 0, err
				}
			}
		}
		id, _, err := c.commitEncrypted(ctx, s, contact, plain, clientID, msg)
		c.mu.Unlock()
		return id, err
	}
}

// unencryptedMarker starts the outbox payload of a message waiting for its session. A
// ratchet message starts with its version byte, never 0, so the two cannot be confused.
const unencryptedMarker = "\x00pfschat-awaiting-session\x00"

// queueUnencrypted commits a message whose session cannot be started yet (offline): the
// payload waits in the outbox, sealed at rest like everything else there.
func (c *Controller) queueUnencrypted(ctx context.Context, contact string, plain []byte, clientID string, msg *storage.Message) (int64, error) {
	id, err := c.store.CommitSend(ctx, storage.SendTx{Message: msg,
		Outbox: storage.OutboxItem{ClientID: clientID, To: contact, Payload: append([]byte(unencryptedMarker), plain...), CreatedAt: c.now()}})
	if err != nil {
		return 0, fmt.Errorf("chat: committing message to %s: %w", contact, err)
	}
	c.log.Info("no session yet and offline: message waits in the outbox", "to", contact)
	return id, nil
}

type deferredKey struct{}

// deferredOK marks the drainer's own encryption of a waiting message: it must not be
// queued unencrypted again.
func deferredOK(ctx context.Context) bool { return ctx.Value(deferredKey{}) != nil }

// sendUnencrypted runs the handshake for a message that waited for its session,
// commits the ciphertext as its own outbox item (client ID + ".e", so a crash midway is
// recognised), sends it, and then retires both items.
func (c *Controller) sendUnencrypted(ctx context.Context, rc RelayClient, it storage.OutboxItem, queue []storage.OutboxItem) sendResult {
	encID := it.ClientID + ".e"
	var wire []byte
	for _, q := range queue {
		if q.ClientID == encID { // encrypted before a crash: send that
			wire = q.Payload
		}
	}
	if wire == nil {
		plain := it.Payload[len(unencryptedMarker):]
		_, err := c.encryptAndQueue(context.WithValue(ctx, deferredKey{}, true), it.To, plain, encID, nil)
		switch {
		case errors.Is(err, storage.ErrExists):
			return sendLater // committed by a previous pass; the next pass finds it
		case errors.Is(err, ErrCardRejected), errors.Is(err, ErrUnknownUser), errors.Is(err, ErrUnknownContact):
			c.failOutboxItem(ctx, it, err)
			return sendDone
		case err != nil:
			c.log.Info("waiting message still cannot be encrypted", "to", it.To, "err", err)
			return sendLater
		}
		items, err := c.store.Outbox(ctx)
		if err != nil {
			return sendLater
		}
		for _, q := range items {
			if q.ClientID == encID {
				wire = q.Payload
			}
		}
		if wire == nil {
			return sendLater
		}
	}
	enc := storage.OutboxItem{ClientID: encID, To: it.To, Payload: wire}
	if r := c.sendOne(ctx, rc, enc, nil); r != sendDone {
		return r
	}
	if err := c.store.RemoveOutbox(ctx, it.ClientID); err != nil {
		c.log.Error("removing a sent item from the outbox", "err", err)
		return sendLater
	}
	c.emitDelivery(ctx, it.ClientID)
	return sendDone
}

func (c *Controller) failOutboxItem(ctx context.Context, it storage.OutboxItem, err error) {
	if it.MessageID != 0 {
		if serr := c.store.SetDeliveryState(ctx, it.MessageID, storage.Failed, err.Error()); serr != nil {
			c.log.Error("recording a failed send", "err", serr)
		}
	}
	c.log.Warn("message cannot be sent", "to", it.To, "err", err)
	if rerr := c.store.RemoveOutbox(ctx, it.ClientID); rerr != nil {
		c.log.Error("removing a failed item from the outbox", "err", rerr)
	}
	if it.MessageID != 0 {
		c.emitDelivery(ctx, it.ClientID)
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
	card, err := c.storedCard(ctx, r.CardID)
	if err != nil {
		return r, nil, err
	}
	return r, card, nil
}

// commitEncrypted encrypts on s and commits. c.mu must be held.
func (c *Controller) commitEncrypted(ctx context.Context, s *Session, to string, plain []byte, clientID string, msg *storage.Message) (int64, []byte, error) {
	wire, err := s.s.Encrypt(plain)
	if err != nil {
		return 0, nil, fmt.Errorf("chat: encrypting for %s: %w", to, err)
	}
	s.active = true
	row, err := c.sessionRow(s)
	if err != nil {
		return 0, nil, err
	}
	id, err := c.store.CommitSend(ctx, storage.SendTx{
		Session: row,
		Message: msg,
		Outbox:  storage.OutboxItem{ClientID: clientID, To: to, Payload: wire, CreatedAt: c.now()},
	})
	if err != nil {
		return 0, nil, fmt.Errorf("chat: committing message to %s: %w", to, err)
	}
	return id, wire, nil
}

func newClientID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("chat: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// sendReceipt queues an encrypted receipt for clientIDs to contact. Receipts are best
// effort: without a usable session (or while the contact's key change is pending) none
// is sent. c.mu must NOT be held.
func (c *Controller) sendReceipt(ctx context.Context, contact string, kind payloadKind, clientIDs []string) {
	for len(clientIDs) > 0 {
		batch := clientIDs[:min(len(clientIDs), maxReceiptIDs)]
		clientIDs = clientIDs[len(batch):]
		plain, err := (&payload{Kind: kind, At: c.now(), ClientIDs: batch}).marshal()
		if err != nil {
			c.log.Error("encoding receipt", "err", err)
			return
		}
		c.mu.Lock()
		r, _, err := c.sendableContact(ctx, contact)
		var s *Session
		if err == nil {
			s, err = c.activeSession(ctx, r.CardID)
		}
		if err == nil && s != nil {
			_, _, err = c.commitEncrypted(ctx, s, contact, plain, newClientID(), nil)
		}
		c.mu.Unlock()
		if err != nil {
			c.log.Info("receipt not sent", "contact", contact, "err", err)
			return
		}
	}
	c.kickSender()
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

// drainOutbox sends what is in the outbox.
func (c *Controller) drainOutbox(ctx context.Context) drainResult {
	items, err := c.store.Outbox(ctx)
	if err != nil {
		c.log.Error("reading outbox", "err", err)
		return drainedPartly
	}
	if len(items) == 0 {
		return drainedEmpty
	}
	rc, err := c.relayClient()
	if err != nil {
		return drainedPartly
	}
	byTo := make(map[string][]storage.OutboxItem)
	var order []string
	for _, it := range items {
		if _, ok := byTo[it.To]; !ok {
			order = append(order, it.To)
		}
		byTo[it.To] = append(byTo[it.To], it)
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
			for i := 0; i < len(queue); {
				switch c.sendOne(ctx, rc, queue[i], queue) {
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

// sendOne sends one outbox item (queue is the rest of its recipient's outbox).
func (c *Controller) sendOne(ctx context.Context, rc RelayClient, it storage.OutboxItem, queue []storage.OutboxItem) sendResult {
	if strings.HasPrefix(string(it.Payload), unencryptedMarker) {
		return c.sendUnencrypted(ctx, rc, it, queue)
	}
	if err := c.pace.wait(ctx); err != nil {
		return sendLater
	}
	sctx, cancel := withRPCTimeout(ctx)
	_, err := rc.Send(sctx, it.To, it.Payload, it.ClientID)
	cancel()
	var pe *relay.ProtocolError
	if errors.As(err, &pe) && pe.Code == relay.CodeRateLimited {
		return sendPaced
	}
	if err != nil && !isPermanent(err) {
		c.log.Info("send deferred", "to", it.To, "err", err)
		return sendLater
	}
	// No session state changes here, so c.mu is not needed: each store call is its own
	// transaction, and the receive path never moves a state backwards.
	if err != nil {
		// Refused for good: record why, then take it out of the outbox.
		if it.MessageID != 0 {
			if serr := c.store.SetDeliveryState(ctx, it.MessageID, storage.Failed, err.Error()); serr != nil {
				c.log.Error("recording a failed send", "err", serr)
			}
		}
		c.log.Warn("message refused by the relay", "to", it.To, "err", err)
	}
	// RemoveOutbox also moves the message from pending to sent, never backwards (a
	// receipt may already have arrived).
	rerr := c.store.RemoveOutbox(ctx, it.ClientID)
	if rerr != nil {
		c.log.Error("removing a sent item from the outbox", "err", rerr)
		return sendLater
	}
	if it.MessageID != 0 {
		c.emitDelivery(ctx, it.ClientID)
	}
	return sendDone
}

func (c *Controller) emitDelivery(ctx context.Context, clientID string) {
	m, err := c.store.MessageByClientID(ctx, clientID)
	if err != nil {
		return
	}
	msg := toMessage(m)
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
	return out, nil
}

func toMessage(r storage.Message) Message {
	return Message{ID: r.ID, Contact: r.Contact, Outgoing: r.Direction == storage.Direction(dirOut),
		Text: string(r.Body), SentAt: r.SentAt, ReceivedAt: r.ReceivedAt,
		State: DeliveryState(r.State), Reason: r.Reason}
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
	if !c.prefs.NoReadReceipts {
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
	if !c.prefs.NoReadReceipts {
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
		c.sendReceipt(ctx, contact, kindReadReceipt, peerIDs)
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
		for _, r := range rows {
			out = append(out, toMessage(r))
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
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
