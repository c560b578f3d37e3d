package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/storage"
)

// Retry requests (chat/PAYLOAD.md §4.3): a message that cannot be read makes the
// receiver ask the sender's client to send it again; the sender re-encrypts it from its
// own history, in a new session, and the receiver shows it in the place of its
// placeholder. Issue 13 point 2.

const (
	// RetryWindow is how long after sending a message its sender answers retry
	// requests for it.
	RetryWindow = 24 * time.Hour
	// ArchivedSessionMaxAge is how long an archived session (replaced by a reset or by
	// the peer's new session) may go unused before it is deleted: the relay keeps a
	// message at most 30 days, so nothing it still holds can need an older one.
	ArchivedSessionMaxAge = 30 * 24 * time.Hour

	// retryRequestedNote ends the reason of a placeholder whose message was asked for
	// again; ResentReason is the reason of the message that took its place.
	retryRequestedNote = "; asked for it again"
	ResentReason       = "re-sent"
)

// RetryRequested reports whether m is the placeholder of a message that could not be
// read and that pfschat asked the sender's client to send again.
func RetryRequested(m Message) bool {
	return m.State == UndecryptableState && strings.HasSuffix(m.Reason, retryRequestedNote)
}

// retryAsk is a retry request owed after a commit: the receive loop sends it once the
// placeholder is committed (c.mu not held: it may start a session).
type retryAsk struct {
	contact     string
	reason      payload.RetryReason
	relayMsgID  int64
	placeholder int64
}

// askRetry sends the retry request for a message that could not be read and notes it on
// its placeholder. Best effort: without consent (the user never wrote to or accepted
// the contact), a session or the relay, none is sent and the placeholder stays as it is.
func (c *Controller) askRetry(ctx context.Context, a *retryAsk) {
	r, err := c.store.Contact(ctx, a.contact)
	if err != nil || !r.Consented {
		c.log.Info("no retry request: the user has not written to or accepted the sender", "contact", a.contact)
		return
	}
	plain, err := payload.Encode(&payload.Payload{Type: payload.RetryRequest, At: c.now(),
		Retry: payload.Retry{Reason: a.reason, RelayMsgID: uint64(a.relayMsgID)}})
	if err != nil {
		c.log.Error("encoding a retry request", "err", err)
		return
	}
	err = c.onSession(ctx, a.contact, false, func(s *Session) error {
		_, err := c.commitEncrypted(ctx, s, a.contact, plain, newClientID(), nil)
		return err
	})
	if err != nil {
		c.log.Info("retry request not sent", "contact", a.contact, "err", err)
		return
	}
	c.kickSender()
	if a.placeholder == 0 {
		return // counted on the line of messages to a previous key: nothing to note
	}
	m, err := c.store.Message(ctx, a.placeholder)
	if err == nil && !strings.HasSuffix(m.Reason, retryRequestedNote) {
		err = c.store.SetReason(ctx, m.ID, m.Reason+retryRequestedNote)
		m.Reason += retryRequestedNote
	}
	if err != nil {
		c.log.Info("noting a retry request on its placeholder", "err", err)
		return
	}
	msg := toMessage(m)
	c.emit(Event{Kind: DeliveryChanged, Contact: m.Contact, Message: &msg})
}

// errNoResend explains why a retry request is not answered.
var errNoResend = errors.New("retry request not answered")

// answerRetry answers a retry request from contact, who sent it with card: it re-sends
// the named message when the rules of chat/PAYLOAD.md §4.3 allow, and marks it failed
// when the resend cannot be made. c.mu must NOT be held.
func (c *Controller) answerRetry(ctx context.Context, contact string, card *ratchet.Card, req payload.Retry) error {
	var m storage.Message
	var err error
	if req.RelayMsgID != 0 {
		m, err = c.store.SentByRelayMsgID(ctx, contact, int64(req.RelayMsgID))
	} else {
		m, err = c.store.MessageByClientID(ctx, req.ID)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: no message of ours to %s matches it (a receipt is never re-sent)", errNoResend, contact)
	}
	if err != nil {
		return fmt.Errorf("chat: looking up the message a retry request names: %w", err)
	}
	si, err := c.store.SentInfo(ctx, m.ID)
	if err != nil {
		return err
	}
	ct, err := c.store.Contact(ctx, contact)
	if err != nil {
		return fmt.Errorf("chat: reading contact %s: %w", contact, err)
	}
	// An attachment has a seq too, but only texts are re-sent (PAYLOAD.md §4.3): as a
	// text it would put its caption in the file's place.
	_, aerr := c.store.Attachment(ctx, m.ClientID)
	if aerr != nil && !errors.Is(aerr, storage.ErrNotFound) {
		return fmt.Errorf("chat: looking up the attachment a retry request may name: %w", aerr)
	}
	switch {
	case m.Direction != storage.Outgoing || m.Contact != contact || m.Seq == 0 || aerr == nil:
		return fmt.Errorf("%w: it names no text of ours to %s", errNoResend, contact)
	case si.ToCardID == "" || si.ToCardID != card.ID():
		return fmt.Errorf("%w: the message was encrypted for another identity key than the one asking", errNoResend)
	case ct.CardID != card.ID() || ct.PendingCardID != "":
		return fmt.Errorf("%w: the asking key is not %s's accepted identity key", errNoResend, contact)
	case m.State == Failed || m.State == Pending:
		return fmt.Errorf("%w: the message is %s", errNoResend, m.State)
	case c.now().Sub(m.SentAt) > RetryWindow:
		return fmt.Errorf("%w: the message was sent more than %v ago", errNoResend, RetryWindow)
	case si.Resends >= storage.MaxResends:
		return fmt.Errorf("%w: the message was re-sent %d times already", errNoResend, si.Resends)
	}
	plain, err := resendPayload(m, req.RelayMsgID)
	if err == nil {
		err = c.resend(ctx, m, card, plain)
	}
	if err != nil {
		if errors.Is(err, storage.ErrResendLimit) {
			return fmt.Errorf("%w: %w", errNoResend, err)
		}
		if errors.Is(err, ErrOffline) || errors.Is(err, errAwaitSession) || ctx.Err() != nil {
			return err // transient: the peer may ask again; the message keeps its mark
		}
		reason := "could not be re-sent: " + err.Error()
		if serr := c.store.SetDeliveryState(ctx, m.ID, Failed, reason); serr != nil {
			return serr
		}
		if fm, ferr := c.store.Message(ctx, m.ID); ferr == nil {
			msg := toMessage(fm)
			c.emit(Event{Kind: DeliveryChanged, Contact: contact, Message: &msg})
		}
		return err
	}
	c.log.Info("message re-sent on the contact's retry request", "contact", contact, "message", m.ID)
	c.kickSender()
	return nil
}

// resendPayload is the payload of text m sent again: the original's id, seq and time,
// and resend of, when known, the relay msg id the original was accepted under.
func resendPayload(m storage.Message, resendOf uint64) ([]byte, error) {
	p := &payload.Payload{Type: payload.Text, At: m.SentAt, ID: m.ClientID, Seq: m.Seq, Text: string(m.Body), ResendOf: resendOf}
	plain, err := payload.Encode(p)
	if errors.Is(err, payload.ErrOversize) {
		p.ResendOf = 0 // the longest texts have no room for it (PAYLOAD.md §4.1)
		plain, err = payload.Encode(p)
	}
	return plain, err
}

// resendToNewKey sends again, in a session with contact's newly accepted card cardID,
// the texts to them of the last RetryWindow that went out encrypted for an earlier card
// of theirs and were never delivered: sent after they replaced their key and before
// this client knew, those can never be read (chat/PAYLOAD.md §4.4), and a retry
// request from the new key is not answered while it is not accepted (§4.3). The user
// has now accepted it, as Signal's sender re-encrypts for a changed identity. The
// rules of answerRetry hold otherwise: texts only, at most MaxResends each. Best
// effort: what cannot be re-sent now is logged and stays as it is.
func (c *Controller) resendToNewKey(ctx context.Context, contact, cardID string) {
	card, err := c.storedCard(ctx, cardID)
	if err != nil {
		c.log.Info("no resend to a contact's new key", "contact", contact, "err", err)
		return
	}
	msgs, _, err := c.store.Messages(ctx, contact, storage.Cursor{}, withheldReceipts)
	if err != nil {
		c.log.Info("no resend to a contact's new key", "contact", contact, "err", err)
		return
	}
	sent := 0
	for i := len(msgs) - 1; i >= 0; i-- { // oldest first: they arrive in their order
		m := msgs[i]
		if m.Direction != storage.Outgoing || m.State != Sent || m.Seq == 0 || c.now().Sub(m.SentAt) > RetryWindow {
			continue
		}
		si, err := c.store.SentInfo(ctx, m.ID)
		if err != nil || si.ToCardID == "" || si.ToCardID == cardID || si.Resends >= storage.MaxResends {
			continue
		}
		if _, err := c.store.Attachment(ctx, m.ClientID); !errors.Is(err, storage.ErrNotFound) {
			continue // an attachment, or unknown: only texts are re-sent
		}
		plain, err := resendPayload(m, uint64(si.RelayMsgID))
		if err == nil {
			err = c.resend(ctx, m, card, plain)
		}
		if err == nil {
			err = c.store.RecordToCard(ctx, m.ID, cardID)
		}
		if err != nil {
			c.log.Info("a message to a contact's previous key not re-sent", "contact", contact, "message", m.ID, "err", err)
			continue
		}
		sent++
	}
	if sent > 0 {
		c.log.Info("messages to a contact's previous key re-sent to the key the user accepted", "contact", contact, "messages", sent)
		c.kickSender()
	}
}

// resend encrypts plain, the resend of message m, in a session the receiver can read —
// one newer than m: the peer's own newer session, or the one this client started for
// an earlier resend and the peer has not answered yet; else it archives the sessions
// with the card and starts one — and commits it as a new outbox item on m.
func (c *Controller) resend(ctx context.Context, m storage.Message, card *ratchet.Card, plain []byte) error {
	c.mu.Lock()
	cur, err := c.activeSession(ctx, card.ID())
	if err == nil && cur != nil && !c.newerThan(cur, m) {
		err = c.store.ArchiveSessions(ctx, card.ID())
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.onSession(ctx, m.Contact, false, func(s *Session) error {
		if s.s.PeerCardID() != card.ID() {
			return fmt.Errorf("%w: the contact's card changed", errNoResend)
		}
		wire, err := s.s.Encrypt(plain)
		if err != nil {
			return fmt.Errorf("chat: encrypting for %s: %w", m.Contact, err)
		}
		s.active = true
		row, err := c.sessionRow(s)
		if err != nil {
			return err
		}
		it := storage.OutboxItem{ClientID: resendClientID(), To: m.Contact, Payload: wire, MessageID: m.ID, CreatedAt: c.now()}
		if err := c.store.CommitResend(ctx, row, m.ID, it); err != nil {
			return err
		}
		row.Generation++
		s.row = row
		c.resendSessions[card.ID()] = row.ID
		c.out.add(it)
		return nil
	})
}

// newerThan reports whether the receiver holds session s and it is newer than the one m
// went out in. c.mu held.
func (c *Controller) newerThan(s *Session, m storage.Message) bool {
	if !s.s.Initiator() {
		return s.row.CreatedAt.After(m.SentAt) // the peer started it after m was sent
	}
	return !s.s.Acknowledged() && c.resendSessions[s.s.PeerCardID()] == s.row.ID
}

// resendClientID is the relay client_id of a resend: not the original's, which the
// relay would drop as a duplicate (PAYLOAD.md §3).
func resendClientID() string { return newClientID() }

// expireArchivedSessions deletes archived sessions unused for ArchivedSessionMaxAge.
func (c *Controller) expireArchivedSessions(ctx context.Context) {
	c.mu.Lock()
	n, err := c.store.DeleteIdleSessions(ctx, c.now().Add(-ArchivedSessionMaxAge))
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("deleting idle archived sessions", "err", err)
	} else if n > 0 {
		c.log.Info("deleted idle archived sessions", "count", n)
	}
}
