package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/fifo"
	"pfschat/storage"
)

// receiveLoop handles the relay's pushes one at a time, in order: each message is
// decrypted and committed; then, once the burst of pushes has been worked through, the
// delivery receipts are committed (one per contact) and the relay acks go out in one
// frame. Batching keeps a large backlog from costing two frames per message. Receipts
// are always committed before the acks of their messages (see oweReceiptAgain).
//
// It takes the pushes straight from the relay client's queue, which never makes the
// client's reader wait: answers to the requests made while receiving (an ack, a send,
// a card lookup) keep arriving however long a commit takes.
func (c *Controller) receiveLoop(ctx context.Context, rc RelayClient) {
	defer c.wg.Done()
	q := rc.Pushes()
	b := &receiveBatch{receipts: make(map[string][]string)}
	var lastReceipts, firstUnacked time.Time
	flushReceipts := func() {
		if len(b.order) > 0 {
			c.flushReceipts(ctx, b)
			lastReceipts = time.Now()
		}
	}
	flushAcks := func(confirm bool) {
		c.flushAcks(ctx, rc, b, confirm)
		if len(b.acks) > 0 {
			firstUnacked = time.Now() // a failed ack is retried a little later
		}
	}
	for {
		// Receipts go out as soon as nothing else is queued (they move the sender's
		// message to "delivered"); when frames are scarce (near the relay's rate limit)
		// and the last receipt flush was very recent, wait a moment so a fast stream
		// shares one receipt frame. Acks only free the relay's queue, so they wait up to
		// ackDelay and go in one frame, off the latency path.
		wait := time.Duration(-1)
		if len(b.order) > 0 {
			wait = 0
			if rc.FramesScarce() {
				wait = max(0, flushEvery-time.Since(lastReceipts))
			}
		}
		if len(b.acks) > 0 {
			if d := max(0, ackDelay-time.Since(firstUnacked)); wait < 0 || d < wait {
				wait = d
			}
		}
		p, more, ok, timedOut := nextPush(ctx, q, wait)
		if !ok && !timedOut {
			flushReceipts()
			flushAcks(true)
			return
		}
		if ok {
			if p.LowPreKeys != nil {
				c.onLowPreKeys()
			}
			if p.Message != nil {
				if len(b.acks) == 0 {
					firstUnacked = time.Now()
				}
				c.handleIncoming(ctx, p.Message, b)
			}
		}
		if p.Synced || (!more && len(b.order) > 0 && (!rc.FramesScarce() || time.Since(lastReceipts) >= flushEvery)) {
			flushReceipts()
		}
		if p.Synced || len(b.acks) >= maxAckBatch || (len(b.acks) > 0 && time.Since(firstUnacked) >= ackDelay) {
			// The receipts of the messages being acked are committed first: after the
			// ack the relay never brings them back, and a receipt lost to a crash could
			// no longer be owed again.
			flushReceipts()
			flushAcks(p.Synced)
		}
		if p.Synced {
			c.markSynced()
		}
	}
}

// flushEvery is the shortest interval between two receipt flushes when frames are
// scarce; ackDelay is how long acks may wait to share a frame.
const (
	flushEvery = 20 * time.Millisecond
	ackDelay   = 50 * time.Millisecond
)

// nextPush takes the next push from q and reports whether more are queued behind it;
// ok is false once ctx is done or q is closed (the client was closed) and drained.
// With wait >= 0 it gives up after that long (timedOut).
func nextPush(ctx context.Context, q *fifo.Queue[client.Push], wait time.Duration) (p client.Push, more, ok, timedOut bool) {
	var timer <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	for {
		if p, ok := q.Pop(); ok {
			return p, q.Len() > 0, true, false
		}
		if q.Closed() || ctx.Err() != nil {
			return p, false, false, false
		}
		select {
		case <-q.Ready():
		case <-timer:
			return p, false, true, true
		case <-ctx.Done():
		}
	}
}

// maxAckBatch bounds how many committed messages wait for their ack.
const maxAckBatch = 200

// receiveBatch is what a burst of incoming messages owes: receipts and acks.
type receiveBatch struct {
	acks     []int64
	receipts map[string][]string // contact -> sender client IDs to acknowledge
	order    []string            // contacts in first-seen order
}

// owe notes a delivery receipt owed to contact for its message clientID.
func (b *receiveBatch) owe(contact, clientID string) {
	if _, ok := b.receipts[contact]; !ok {
		b.order = append(b.order, contact)
	}
	b.receipts[contact] = append(b.receipts[contact], clientID)
}

// oweReceiptAgain handles a delivery that comes back: it was committed but not
// acknowledged, so the process stopped (or lost the relay) after the commit, perhaps
// before the message's delivery receipt was committed (receipts are committed before
// acks). The receipt is owed again: a second one changes nothing, a message's state
// only moves forward, while without it the sender could see "sent" for good.
func (c *Controller) oweReceiptAgain(ctx context.Context, relayID string, b *receiveBatch) {
	m, err := c.store.ReceivedByRelayID(ctx, relayID)
	if errors.Is(err, storage.ErrNotFound) {
		return // a receipt or another payload that stores no message
	}
	if err != nil {
		c.log.Info("looking up a redelivered message; its delivery receipt is not sent again", "err", err)
		return
	}
	if m.State == UndecryptableState {
		return
	}
	if peerID, ok := peerClientID(m.ClientID); ok {
		b.owe(m.Contact, peerID)
	}
}

// flushReceipts commits the owed delivery receipts, one per contact. They are committed
// even while closing (the messages they acknowledge are committed), so a clean shutdown
// never loses one.
func (c *Controller) flushReceipts(ctx context.Context, b *receiveBatch) {
	keep := context.WithoutCancel(ctx)
	for _, contact := range b.order {
		c.sendReceipt(keep, contact, payload.Delivered, b.receipts[contact])
		delete(b.receipts, contact)
	}
	b.order = b.order[:0]
}

// flushAcks acks the committed messages in one frame. Acks that fail stay owed and go
// with the next flush; the relay also redelivers un-acked messages on reconnect, and
// SeenRelayID recognises them.
//
// With confirm (the backlog's end, and the last flush) it waits for the relay's ok, so
// that a receiver that stops once synced (a one-shot recv) leaves nothing to come
// again. Otherwise the ack is quiet (PROTOCOL.md "ack"): the relay sends no ok, the
// loop does not wait for one, and a lost ack is a redelivery.
func (c *Controller) flushAcks(ctx context.Context, rc RelayClient, b *receiveBatch, confirm bool) {
	if len(b.acks) == 0 || ctx.Err() != nil {
		return
	}
	if !confirm {
		if err := rc.AckNoWait(b.acks...); err != nil {
			c.log.Info("ack deferred", "count", len(b.acks), "err", err)
			return
		}
		b.acks = b.acks[:0]
		return
	}
	actx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	if err := rc.Ack(actx, b.acks...); err != nil {
		c.log.Info("ack deferred", "count", len(b.acks), "err", err)
		if len(b.acks) > 4*maxAckBatch { // the relay redelivers them anyway
			b.acks = b.acks[:0]
		}
		return
	}
	b.acks = b.acks[:0]
}

// relayMessageID identifies a relay delivery for de-duplication: the relay's queue ID
// plus a digest of the body, so that a reused queue ID (a reset relay database) can never
// make us drop a different message.
func relayMessageID(in *client.Incoming) string {
	sum := sha256.Sum256(in.Body)
	return strconv.FormatInt(in.ID, 10) + ":" + hex.EncodeToString(sum[:8])
}

// received is the outcome of processing one incoming message, for events after commit.
type received struct {
	msg        *storage.Message
	receipts   []string // client IDs whose delivery state changed
	receiptFor string   // contact to send a delivery receipt to
	receiptID  string   // the sender's client ID to acknowledge
	contactNew bool
	request    bool // the sender is a message request (Message.Request)
	undecrypt  error
	stranger   string // undecryptable from someone who is not a contact
	// previousKey: the conversation's summary line of messages sent to a previous
	// identity key, counted up by this one (previouskey.go)
	previousKey *storage.Message

	askRetry    *retryAsk      // a retry request to send for the placeholder (retry.go)
	retryReq    *payload.Retry // a retry request from the contact to answer
	retryFrom   *ratchet.Card  // the card it came from
	retrySender string
}

// handleIncoming commits one message (or an "undecryptable" record) and notes the ack
// and receipt it owes. A transient local failure (the store) leaves it un-acked, so the
// relay delivers it again.
func (c *Controller) handleIncoming(ctx context.Context, in *client.Incoming, b *receiveBatch) {
	relayID := relayMessageID(in)
	seen, err := c.store.SeenRelayID(ctx, relayID)
	if err != nil {
		c.log.Error("checking a message against the seen list; leaving it for redelivery", "err", err)
		return
	}
	if seen {
		c.oweReceiptAgain(ctx, relayID, b)
	} else if blocked, err := c.dropIfBlocked(ctx, in.From, relayID); err != nil {
		c.log.Error("checking a message against the blocks; leaving it for redelivery", "err", err)
		return
	} else if !blocked {
		res, err := c.receive(ctx, in, relayID)
		switch {
		case errors.Is(err, storage.ErrDuplicate):
		case err != nil:
			c.log.Error("could not commit an incoming message; leaving it for redelivery", "from", in.From, "err", err)
			return
		default:
			if res.contactNew && res.msg == nil && res.previousKey == nil {
				c.forgetUnshownStranger(ctx, in.From)
			}
			if res.receiptFor != "" {
				b.owe(res.receiptFor, res.receiptID)
			}
			c.afterReceive(context.WithoutCancel(ctx), res)
		}
	}
	b.acks = append(b.acks, in.ID)
}

// forgetUnshownStranger removes the message request that only the message just
// received made, when it showed nothing: a receipt, a withdrawn notice or a retry
// request of someone who is not a contact (a removed contact's receipt for our last
// message, in flight as we removed them) makes no request. Their next real message
// does, as for any stranger.
func (c *Controller) forgetUnshownStranger(ctx context.Context, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct, err := c.store.Contact(ctx, name)
	if err != nil || ct.Consented {
		return // gone already, or the user took them as a contact meanwhile
	}
	if err := c.store.DeleteContact(ctx, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("a stranger whose message showed nothing is left as a request", "from", name, "err", err)
	}
}

func (c *Controller) afterReceive(ctx context.Context, res *received) {
	if res.askRetry != nil {
		c.askRetry(ctx, res.askRetry)
	}
	if res.retryReq != nil {
		if err := c.answerRetry(ctx, res.retrySender, res.retryFrom, *res.retryReq); err != nil {
			c.log.Info("retry request", "from", res.retrySender, "err", err)
		}
	}
	if res.stranger != "" {
		c.emit(Event{Kind: Undecryptable, Contact: res.stranger, Err: res.undecrypt})
	}
	if res.previousKey != nil {
		m := toMessage(*res.previousKey)
		c.emit(Event{Kind: DeliveryChanged, Contact: m.Contact, Message: &m})
	}
	if res.contactNew && res.msg != nil {
		c.emit(Event{Kind: ContactAdded, Contact: res.msg.Contact})
	}
	if res.msg != nil && res.msg.Direction == storage.Incoming {
		m := toMessage(*res.msg)
		m.Request = res.request
		c.fillAttachment(ctx, &m)
		if res.undecrypt != nil {
			c.emit(Event{Kind: Undecryptable, Contact: m.Contact, Message: &m, Err: res.undecrypt})
		} else {
			c.emit(Event{Kind: MessageReceived, Contact: m.Contact, Message: &m})
		}
	}
	for _, id := range res.receipts {
		c.emitDelivery(ctx, id)
	}
}

// receive decrypts and commits one message. It returns an error only for local failures
// (retry later); anything wrong with the message itself is committed as an undecryptable
// record, because a message that can never be read must not be retried forever.
func (c *Controller) receive(ctx context.Context, in *client.Incoming, relayID string) (*received, error) {
	card, contactNew, cerr := c.senderCard(ctx, in.From, in.FromCardID)
	if cerr != nil && !errors.Is(cerr, ErrCardRejected) && !errors.Is(cerr, ErrUnknownUser) {
		return nil, cerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	res := &received{contactNew: contactNew}
	// retryable: the message came from the contact's verified card, so its sender can
	// be asked to send it again (PAYLOAD.md §4.3).
	retryable := false
	undecryptable := func(reason error) (*received, error) {
		if _, err := c.store.Contact(ctx, in.From); errors.Is(err, storage.ErrNotFound) {
			// A stranger whose card does not verify: there is no conversation to put
			// a placeholder in, and trusting the card to make one would defeat the
			// check. Reported as an event and logged, then acked.
			c.log.Warn("unreadable message from an unverifiable stranger", "from", in.From, "reason", reason)
			res.undecrypt = reason
			res.stranger = in.From
			if _, err := c.store.CommitReceive(ctx, storage.ReceiveTx{RelayID: relayID}); err != nil {
				return nil, err
			}
			return res, nil
		}
		msg := &storage.Message{Contact: in.From, Direction: storage.Incoming, ReceivedAt: now,
			SentAt: in.ReceivedAt, State: UndecryptableState, Reason: reason.Error(), RelayID: relayID}
		id, err := c.store.CommitReceive(ctx, storage.ReceiveTx{Message: msg, RelayID: relayID})
		if err != nil {
			return nil, err
		}
		msg.ID = id
		res.msg, res.undecrypt = msg, reason
		if retryable && in.ID > 0 {
			res.askRetry = &retryAsk{contact: in.From, reason: payload.RetryUndecryptable, relayMsgID: in.ID, placeholder: id}
		}
		c.log.Warn("undecryptable message recorded", "from", in.From, "reason", reason)
		return res, nil
	}
	if cerr != nil {
		return undecryptable(fmt.Errorf("the sender's card could not be verified: %w", cerr))
	}
	retryable = true
	env, err := ratchet.DecodeEnvelope(in.Body)
	if err != nil {
		return undecryptable(fmt.Errorf("malformed message: %w", err))
	}
	var (
		sess     *Session
		plain    []byte
		consumed []storage.PreKeyRef
		first    *storage.FirstMessage
		lastErr  error
		replay   bool // a session said ErrReplay: already decrypted, or the key is gone
		// keyKnown: a session that said ErrReplay has received on the message's chain,
		// so its key was used or is gone; otherwise (a session dropped since, a
		// forgery) the message is undecryptable, and asked for again.
		keyKnown bool
	)
	// dropReplay records the relay id (so the relay's redeliveries are recognised) and
	// nothing else: a replay is neither shown nor stored, only counted.
	dropReplay := func(counter *atomic.Int64, why string) (*received, error) {
		if _, err := c.store.CommitReceive(ctx, storage.ReceiveTx{RelayID: relayID}); err != nil {
			return nil, err
		}
		counter.Add(1)
		c.log.Warn("replayed message dropped", "from", in.From, "why", why)
		return res, nil
	}
	if env.Initial != nil {
		if env.Initial.InitiatorCardID != card.ID() {
			return undecryptable(fmt.Errorf("initial message claims card %.12s but came from %.12s", env.Initial.InitiatorCardID, card.ID()))
		}
		if s, err := c.loadSession(ctx, card.ID(), env.Initial.SessionID()); err == nil {
			if plain, lastErr = s.s.Decrypt(in.Body); lastErr == nil {
				sess = s
			}
			replay = errors.Is(lastErr, ratchet.ErrReplay)
			keyKnown = replay && s.s.KnowsRatchetKey(env.Header.DH)
		} else if first = firstMessage(env.Initial); c.firstSeen(ctx, first) {
			return dropReplay(&c.replayedFirst, "a copy of a first message accepted before")
		} else {
			s, p, used, err := c.acceptSession(ctx, card, env)
			if err != nil {
				lastErr = err
			} else {
				sess, plain, consumed = s, p, used
				if err := c.chooseActive(ctx, sess); err != nil {
					return nil, err
				}
			}
		}
	} else {
		all, err := c.sessions(ctx, card.ID())
		if err != nil {
			return nil, err
		}
		// No advice here: the retry request (retry.go) is what helps, and the reason
		// says it went ("; asked for it again").
		lastErr = errors.New("no session with the sender")
		for _, s := range all {
			if p, err := s.s.Decrypt(in.Body); err == nil {
				sess, plain, lastErr = s, p, nil
				break
			} else {
				lastErr = err
				if errors.Is(err, ratchet.ErrReplay) {
					replay = true
					keyKnown = keyKnown || s.s.KnowsRatchetKey(env.Header.DH)
				}
			}
		}
	}
	header := &storage.HeaderRef{DH: env.Header.DH, N: env.Header.N}
	if sess == nil && replay {
		// The ratchet says "already decrypted, or its key is gone". The first is a
		// replay (dropped silently), whichever session decrypted it then; the second,
		// when a session has received on the message's chain, a late message whose
		// skipped key expired or was evicted: shown as a placeholder, and remembered
		// so that a copy of it is a replay in turn.
		seen, err := c.store.WasDecrypted(ctx, *header)
		if err != nil {
			return nil, err
		}
		if seen {
			return dropReplay(&c.replayed, "a message already decrypted, under a new relay id")
		}
	}
	if sess == nil && replay && !keyKnown {
		lastErr = errors.New("no session with the sender knows its ratchet key (one dropped since, or not theirs)")
	}
	if sess == nil && replay && keyKnown {
		msg := &storage.Message{Contact: in.From, Direction: storage.Incoming, ReceivedAt: now,
			SentAt: in.ReceivedAt, State: UndecryptableState, Reason: KeyGoneReason, RelayID: relayID}
		id, err := c.store.CommitReceive(ctx, storage.ReceiveTx{Message: msg, RelayID: relayID, Decrypted: header})
		if err != nil {
			return nil, err
		}
		msg.ID = id
		res.msg, res.undecrypt = msg, errors.New(KeyGoneReason)
		c.log.Warn("a late message whose key is gone", "from", in.From, "err", lastErr)
		return res, nil
	}
	if sess == nil && toPreviousKey(c.card, env, in) {
		res, err := c.previousKeyMessage(ctx, in, relayID, res, now) // previouskey.go
		if err == nil {
			// Asked for again all the same: neither the header nor the relay's
			// received_at is authenticated before decryption, and a relay could forge
			// either to pass off a message it corrupted as one to a previous key. A
			// sender answers only a request from the card it encrypted for, so one
			// truly sent to the previous key stays unanswered (and counted).
			res.askRetry = &retryAsk{contact: in.From, reason: payload.RetryUndecryptable, relayMsgID: in.ID}
		}
		return res, err
	}
	if sess == nil {
		return undecryptable(fmt.Errorf("could not decrypt: %w", lastErr))
	}
	if sess.row.ID == "" {
		first = firstMessage(env.Initial) // the record goes in the new session's transaction
	} else {
		first = nil
	}
	row, err := c.sessionRow(sess)
	if err != nil {
		return nil, err
	}
	tx := storage.ReceiveTx{Session: &row, ConsumedPreKeys: consumed, RelayID: relayID, FirstMessage: first, Decrypted: header}
	for _, dh := range sess.s.SkippedChains() {
		tx.SkippedChains = append(tx.SkippedChains, dh[:]) // their age is kept beside the state
	}
	// A message signed by a changed identity key the user has not accepted is kept
	// behind the key-change warning, and its receipts do not count.
	keyPending := false
	if ct, err := c.store.Contact(ctx, in.From); err == nil {
		keyPending = card.ID() != ct.CardID && (card.ID() == ct.PendingCardID || card.ID() == ct.RejectedCardID)
		res.request = !ct.Consented && !ct.Blocked
	}
	pl, perr := payload.Decode(plain)
	// dupErr is nil when a text or attachment repeats an id this sender used before.
	dupErr := storage.ErrNotFound
	if perr == nil && (pl.Type == payload.Text || pl.Type == payload.Attachment) {
		var dup storage.Message
		dup, dupErr = c.store.MessageByClientID(ctx, incomingClientID(in.From, pl.ID))
		if dupErr == nil && (dup.Direction != storage.Incoming || dup.Contact != in.From) {
			dupErr = storage.ErrNotFound
		}
	}
	switch {
	case errors.Is(perr, payload.ErrUnknownType):
		// A newer client's type (chat/PAYLOAD.md §4): the ratchet step is committed,
		// nothing is shown, no receipt is owed.
		c.log.Info("ignoring a message payload of a type this version does not know", "from", in.From, "err", perr)
	case perr != nil:
		// The ratchet state advanced, so it is committed; the content is recorded as
		// unreadable rather than dropped.
		tx.Message = &storage.Message{Contact: in.From, Direction: storage.Incoming, ReceivedAt: now,
			SentAt: in.ReceivedAt, State: UndecryptableState,
			Reason: "unreadable content: " + perr.Error(), RelayID: relayID}
		res.undecrypt = perr
		if in.ID > 0 && !keyPending {
			res.askRetry = &retryAsk{contact: in.From, reason: payload.RetryUnreadable, relayMsgID: in.ID}
		}
	case (pl.Type == payload.Text || pl.Type == payload.Attachment) && !errors.Is(dupErr, storage.ErrNotFound):
		if dupErr != nil {
			return nil, fmt.Errorf("chat: looking up a received message id: %w", dupErr)
		}
		// An original and its resend (PAYLOAD.md §4.3), or any message repeating an
		// id the sender used before (§3): shown once, and the first one stays as it
		// is. The receipt is owed again (the first one may be what was lost).
		c.log.Info("duplicate of a message already received (a resend) not shown again", "from", in.From, "type", pl.Type)
		res.receiptFor, res.receiptID = in.From, pl.ID
	case pl.Type == payload.Text:
		tx.Message = &storage.Message{Contact: in.From, Direction: storage.Incoming, Body: []byte(pl.Text),
			SentAt: pl.At, ReceivedAt: now, State: Delivered, Seq: pl.Seq,
			ClientID: incomingClientID(in.From, pl.ID), RelayID: relayID,
			SenderCardID: card.ID(), KeyPending: keyPending}
		res.receiptFor, res.receiptID = in.From, pl.ID
		if ph, ok := c.placeholderFor(ctx, in.From, pl.ResendOf); ok {
			tx.Replaces = ph.ID
			tx.Message.Reason = ResentReason
		}
	case pl.Type == payload.RetryRequest:
		// Answered after the commit (it may start a session); a request from a key
		// the user has not accepted is not (answerRetry).
		res.retryReq, res.retryFrom, res.retrySender = &pl.Retry, card, in.From
	case pl.Type == payload.Attachment:
		// A file (chat/PAYLOAD.md §4.5): the message (its caption) and the attachment row
		// commit together; the download is the caller's (Download, PendingDownloads).
		att, err := c.incomingAttachment(in.From, pl, now)
		if err != nil {
			// It did arrive: its number is taken (PAYLOAD.md §3), not a hole, and it is
			// placed by it like any message of the sender's.
			tx.Message = &storage.Message{Contact: in.From, Direction: storage.Incoming, ReceivedAt: now,
				SentAt: pl.At, State: UndecryptableState, Reason: "unreadable attachment: " + err.Error(), RelayID: relayID,
				Seq: pl.Seq, SenderCardID: card.ID(), KeyPending: keyPending}
			res.undecrypt = err
			break
		}
		tx.Message = &storage.Message{Contact: in.From, Direction: storage.Incoming, Body: []byte(pl.Text),
			SentAt: pl.At, ReceivedAt: now, State: Delivered, Seq: pl.Seq,
			ClientID: att.ClientID, RelayID: relayID,
			SenderCardID: card.ID(), KeyPending: keyPending}
		tx.Attachment = att
		res.receiptFor, res.receiptID = in.From, pl.ID
	case pl.Type == payload.Withdrawn:
		// The relay refused the contact's message for good (chat/PAYLOAD.md §4.6): its
		// place in the conversation says so, and its number is no hole (Gaps). It is
		// placed by its seq like a late message (its at is the refused message's), so
		// later messages that overtook it stay after it. No client id: no receipt may
		// ever name the refused message (it would mark it read).
		tx.Message = &storage.Message{Contact: in.From, Direction: storage.Incoming,
			SentAt: pl.At, ReceivedAt: now, State: Failed, Reason: WithdrawnReason, Seq: pl.Seq, RelayID: relayID,
			SenderCardID: card.ID(), KeyPending: keyPending}
	case pl.Type != payload.Delivered && pl.Type != payload.Read:
		// Specified in PAYLOAD.md but not acted on yet (identity changed, §4.4):
		// ignored as an unknown type would be.
		c.log.Info("ignoring a message payload this version does not act on", "from", in.From, "type", pl.Type)
	case keyPending:
		// A receipt from a key not accepted says nothing about the verified contact.
	default:
		st := Delivered
		if pl.Type == payload.Read {
			st = Read
		}
		for _, id := range pl.IDs {
			m, err := c.store.MessageByClientID(ctx, id)
			// Only our own outgoing messages to this very contact, and only forwards.
			if err != nil || m.Direction != storage.Outgoing || m.Contact != in.From || m.State >= st && m.State != Failed {
				continue
			}
			tx.DeliveryUpdates = append(tx.DeliveryUpdates, storage.DeliveryUpdate{ClientID: id, State: st})
			res.receipts = append(res.receipts, id)
		}
	}
	id, err := c.store.CommitReceive(ctx, tx)
	if errors.Is(err, storage.ErrReplayedFirstMessage) {
		res.msg, res.undecrypt, res.receiptFor, res.receipts = nil, nil, "", nil
		return dropReplay(&c.replayedFirst, "a copy of a first message accepted before")
	}
	if err != nil {
		return nil, err
	}
	if tx.Message != nil {
		tx.Message.ID = id
		res.msg = tx.Message
		if res.askRetry != nil && res.askRetry.placeholder == 0 {
			res.askRetry.placeholder = id
		}
	}
	return res, nil
}

// firstMessage is the replay record of an initial message.
func firstMessage(h *ratchet.InitialHeader) *storage.FirstMessage {
	return &storage.FirstMessage{SignedPreKeyID: h.SignedPreKeyID, KEMKind: uint8(h.KEMPreKeyKind),
		KEMPreKeyID: h.KEMPreKeyID, Ephemeral: h.EphemeralKey}
}

// firstSeen reports whether a first message was accepted before. A failed look-up
// reports false: the commit checks again, in the session's transaction.
func (c *Controller) firstSeen(ctx context.Context, f *storage.FirstMessage) bool {
	seen, err := c.store.FirstMessageSeen(ctx, *f)
	if err != nil {
		c.log.Warn("looking up a first message", "err", err)
	}
	return seen
}

// chooseActive decides whether a session just created from a peer's initial message
// becomes the active one. If our active session is one we started and the peer has not
// answered yet, both sides started at the same moment: both keep the session with the
// smaller ID, so they converge without exchanging anything. Otherwise the peer started
// afresh (a reset, a new device state) and its session wins. c.mu must be held.
func (c *Controller) chooseActive(ctx context.Context, incoming *Session) error {
	cur, err := c.activeSession(ctx, incoming.s.PeerCardID())
	if err != nil {
		return err
	}
	switch {
	case cur == nil:
		incoming.active = true
	case cur.s.Initiator() && !cur.s.Acknowledged():
		incoming.active = incoming.s.ID() < cur.s.ID()
	default:
		incoming.active = true
	}
	return nil
}

// senderCard returns the verified card a message was sent with, adding the sender as a
// contact on first use and flagging a key change when the card is new. c.mu must NOT be
// held (it may ask the relay).
func (c *Controller) senderCard(ctx context.Context, from, cardID string) (*ratchet.Card, bool, error) {
	r, err := c.store.Contact(ctx, from)
	switch {
	case err == nil && (r.CardID == cardID || r.PendingCardID == cardID || r.RejectedCardID == cardID):
		card, err := c.storedCard(ctx, cardID)
		return card, false, err
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return nil, false, fmt.Errorf("chat: reading contact %s: %w", from, err)
	}
	isNew := errors.Is(err, storage.ErrNotFound)
	card, err := c.fetchSenderCard(ctx, from, cardID)
	if err != nil {
		return nil, false, err
	}
	if card.ID() != cardID {
		return nil, false, fmt.Errorf("%w: the message came with card %.12s but the relay lists %.12s for %s", ErrCardRejected, cardID, card.ID(), from)
	}
	c.mu.Lock()
	_, err = c.trustCard(ctx, from, card, true)
	c.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	return card, isNew, nil
}

func isNotFound(err error) bool {
	var pe *relay.ProtocolError
	return errors.As(err, &pe) && (pe.Code == relay.CodeNotFound || pe.Code == relay.CodeNoPreKeys)
}

// isPermanent reports whether a relay send error will not go away by retrying: the
// message is marked failed with the relay's reason instead of being retried forever.
func isPermanent(err error) bool {
	var pe *relay.ProtocolError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case relay.CodeNotFound, relay.CodeFrameTooLarge, relay.CodeBadField, relay.CodeForbidden,
		relay.CodeTTLTooLong, relay.CodeInvalidName, relay.CodeBadFrame,
		relay.CodeBlocked: // the recipient blocked us (PROTOCOL.md "Blocking")
		return true
	}
	return false
}

// placeholderFor finds the placeholder a resend from contact fills: the unreadable
// message recorded for the delivery with relay msg id resendOf (PAYLOAD.md §4.3). The
// line of messages sent to a previous key (§4.4) is none, though it carries the relay
// id of the first message it counted: a resend of that message shows on its own and
// the line stays.
func (c *Controller) placeholderFor(ctx context.Context, contact string, resendOf uint64) (storage.Message, bool) {
	if resendOf == 0 || resendOf > math.MaxInt64 {
		return storage.Message{}, false
	}
	ph, err := c.store.UndecryptableByRelayMsgID(ctx, contact, int64(resendOf))
	if err != nil {
		return storage.Message{}, false
	}
	if _, line := PreviousKeyCount(toMessage(ph)); line {
		return storage.Message{}, false
	}
	return ph, true
}
