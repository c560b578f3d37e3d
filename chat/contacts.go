package chat

import (
	"context"
	"errors"
	"fmt"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// AddContact fetches name's card from the relay, verifies it (self signature, the pinned
// relay's signature, and that it is name's), and trusts it on first use. Adding someone
// already known is not an error: the card is fetched again, and a different key is
// flagged as a key change (ContactKeyChanged) instead of being trusted silently.
func (c *Controller) AddContact(ctx context.Context, name string) (Contact, error) {
	if err := ratchet.ValidateName(name); err != nil {
		return Contact{}, fmt.Errorf("chat: %q is not a valid name: %w", name, err) // err says the rule
	}
	if name == c.name {
		return Contact{}, fmt.Errorf("%w (%q): add someone else", ErrIsYou, name)
	}
	card, err := c.fetchCard(ctx, name)
	if err != nil {
		return Contact{}, err
	}
	wasRequest := c.isRequest(ctx, name)
	ct, err := func() (Contact, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, err := c.trustCard(ctx, name, card, false); err != nil {
			return Contact{}, err
		}
		// Adding someone is accepting them: receipts may go to them.
		if err := c.store.SetContactConsented(ctx, name, true); err != nil {
			return Contact{}, fmt.Errorf("chat: adding contact %s: %w", name, err)
		}
		return c.contact(ctx, name)
	}()
	if err == nil {
		c.contactChanged(name)
	}
	if err == nil && wasRequest {
		c.sendWithheldReceipts(ctx, name, "")
	}
	return ct, err
}

// fetchCard asks the relay for name's card and verifies it.
func (c *Controller) fetchCard(ctx context.Context, name string) (*ratchet.Card, error) {
	rc, err := c.relayClient()
	if err != nil {
		return nil, err
	}
	rctx, cancel := withRPCTimeout(ctx)
	defer cancel()
	card, err := rc.LookupCard(rctx, name)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownUser, name)
		}
		return nil, fmt.Errorf("chat: fetching %s's card: %w", name, err)
	}
	if err := c.checkCard(card, name); err != nil {
		return nil, err
	}
	return card, nil
}

// cardByIDLooker is a relay client that can look a card up by its ID (relay/PROTOCOL.md
// "Card lookup by ID"); *client.Client is one.
type cardByIDLooker interface {
	LookupCardByID(ctx context.Context, cardID string) (card *ratchet.Card, replaced bool, err error)
}

// fetchSenderCard fetches the card a message names (its from_card_id), by that ID, and
// checks it is name's: a message from a card that is not its name's current card is
// refused with that reason. A relay without lookup_card is asked by name.
func (c *Controller) fetchSenderCard(ctx context.Context, name, cardID string) (*ratchet.Card, error) {
	rc, err := c.relayClient()
	if err != nil {
		return nil, err
	}
	l, ok := rc.(cardByIDLooker)
	if !ok {
		return c.fetchCard(ctx, name)
	}
	rctx, cancel := withRPCTimeout(ctx)
	defer cancel()
	card, replaced, err := l.LookupCardByID(rctx, cardID)
	var pe *relay.ProtocolError
	switch {
	case errors.As(err, &pe) && pe.Code == relay.CodeUnknownType:
		return c.fetchCard(ctx, name) // a relay from before lookup_card
	case isNotFound(err):
		return nil, fmt.Errorf("%w: card %.12s is not %s's current card on the relay", ErrCardRejected, cardID, name)
	case err != nil:
		return nil, fmt.Errorf("chat: fetching %s's card %.12s: %w", name, cardID, err)
	case replaced:
		return nil, fmt.Errorf("%w: card %.12s is not %s's current card on the relay: it was replaced", ErrCardRejected, cardID, name)
	}
	if err := c.checkCard(card, name); err != nil {
		return nil, err
	}
	return card, nil
}

// checkCard verifies a card the relay handed us: signatures and identity.
func (c *Controller) checkCard(card *ratchet.Card, name string) error {
	if card == nil {
		return fmt.Errorf("%w: relay returned no card for %s", ErrCardRejected, name)
	}
	rk := c.relayKeyNow()
	if len(rk) == 0 {
		return fmt.Errorf("%w: no pinned relay key to check %s's card against", ErrCardRejected, name)
	}
	if err := card.VerifyWithRelay(rk); err != nil {
		return fmt.Errorf("%w: %s's card: %w", ErrCardRejected, name, err)
	}
	if card.Identity != name {
		return fmt.Errorf("%w: asked for %s's card, got %s's", ErrCardRejected, name, card.Identity)
	}
	return nil
}

// trustCard records a verified card for name: a new contact is trusted on first use; a
// card with the contact's current keys replaces the old one silently (same safety
// number); different keys become the contact's pending card, which blocks sending until
// AcceptKey. It reports whether a key change was flagged. fromMessage: the card came
// with a message, not from the user's own AddContact — a new contact is then a
// stranger, and the key the user rejected stays rejected without a new warning (an
// AddContact asks again). c.mu must be held.
func (c *Controller) trustCard(ctx context.Context, name string, card *ratchet.Card, fromMessage bool) (keyChanged bool, err error) {
	id := card.ID()
	contact, err := c.store.Contact(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		if err := c.putCard(ctx, card, false); err != nil {
			return false, err
		}
		add := c.store.AddContact
		if fromMessage {
			add = c.store.AddStranger
		}
		if err := add(ctx, name, id, c.now()); err != nil && !errors.Is(err, storage.ErrExists) {
			return false, fmt.Errorf("chat: adding contact %s: %w", name, err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("chat: reading contact %s: %w", name, err)
	}
	if contact.CardID == id || contact.PendingCardID == id {
		return contact.PendingCardID != "", nil
	}
	if contact.RejectedCardID == id && fromMessage {
		return contact.PendingCardID != "", nil
	}
	current, err := c.storedCard(ctx, contact.CardID)
	if err != nil {
		return false, err
	}
	sameKeys := current.SigningKey.Equal(card.SigningKey) && string(current.AgreementKey) == string(card.AgreementKey)
	if sameKeys && contact.PendingCardID == "" {
		// A re-issued card with the same keys: same safety number, keep the verified mark.
		if err := c.putCard(ctx, card, contact.Verified); err != nil {
			return false, err
		}
		contact.CardID = id
		if err := c.store.UpdateContact(ctx, contact); err != nil {
			return false, fmt.Errorf("chat: updating contact %s: %w", name, err)
		}
		return false, nil
	}
	if err := c.putCard(ctx, card, false); err != nil {
		return false, err
	}
	contact.PendingCardID = id
	if contact.RejectedCardID == id {
		contact.RejectedCardID = "" // asked again: pending, not rejected
	}
	if err := c.store.UpdateContact(ctx, contact); err != nil {
		return false, fmt.Errorf("chat: flagging %s's key change: %w", name, err)
	}
	c.log.Warn("contact identity key changed; sending blocked until accepted", "contact", name)
	c.emit(Event{Kind: ContactKeyChanged, Contact: name, Err: &KeyChangedError{Contact: name}})
	return true, nil
}

func (c *Controller) putCard(ctx context.Context, card *ratchet.Card, verified bool) error {
	data, err := card.MarshalBinary()
	if err != nil {
		return fmt.Errorf("chat: encoding %s's card: %w", card.Identity, err)
	}
	if err := c.store.PutCard(ctx, storage.Card{ID: card.ID(), Name: card.Identity, Data: data, FirstSeen: c.now(), Verified: verified}); err != nil {
		return fmt.Errorf("chat: storing %s's card: %w", card.Identity, err)
	}
	return nil
}

// storedCard loads and re-verifies a card from the store.
func (c *Controller) storedCard(ctx context.Context, id string) (*ratchet.Card, error) {
	row, err := c.store.Card(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("chat: loading card %.12s: %w", id, err)
	}
	card, err := ratchet.ParseCard(row.Data)
	if err != nil {
		return nil, fmt.Errorf("chat: card %.12s in the store: %w", id, err)
	}
	if card.ID() != id {
		return nil, fmt.Errorf("%w: stored card %.12s has ID %.12s", ErrCardRejected, id, card.ID())
	}
	return card, nil
}

// Contacts lists contacts, unread first, then by last activity.
func (c *Controller) Contacts(ctx context.Context) ([]Contact, error) {
	rows, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, fmt.Errorf("chat: listing contacts: %w", err)
	}
	out := make([]Contact, 0, len(rows))
	for _, r := range rows {
		out = append(out, c.toContact(ctx, r))
	}
	return out, nil
}

// Contact returns one contact.
func (c *Controller) Contact(ctx context.Context, name string) (Contact, error) {
	return c.contact(ctx, name)
}

// contactRow reads a contact's row, mapping a missing one to ErrUnknownContact.
func (c *Controller) contactRow(ctx context.Context, name string) (storage.Contact, error) {
	r, err := c.store.Contact(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return r, fmt.Errorf("%w: %q", ErrUnknownContact, name)
	}
	if err != nil {
		return r, fmt.Errorf("chat: reading contact %s: %w", name, err)
	}
	return r, nil
}

func (c *Controller) contact(ctx context.Context, name string) (Contact, error) {
	r, err := c.contactRow(ctx, name)
	if err != nil {
		return Contact{}, err
	}
	return c.toContact(ctx, r), nil
}

func (c *Controller) toContact(ctx context.Context, r storage.Contact) Contact {
	ct := Contact{Name: r.Name, CardID: r.CardID, Unread: r.Unread, LastActivity: r.LastMessageAt,
		Verified: r.Verified, KeyChanged: r.PendingCardID != "", KeyRejected: r.RejectedCardID != "",
		Request: !r.Consented && !r.Blocked, Blocked: r.Blocked, Nickname: r.Nickname, Muted: r.Muted}
	if card, err := c.storedCard(ctx, r.CardID); err == nil {
		ct.Fingerprint = ratchet.Fingerprint(card.SigningKey)
	}
	return ct
}

// SafetyNumber returns the number to compare with contact. While a key change is
// pending it is the number of the new key (SafetyNumber.Pending), which is what the user
// must compare before accepting it.
func (c *Controller) SafetyNumber(ctx context.Context, contact string) (SafetyNumber, error) {
	r, err := c.contactRow(ctx, contact)
	if err != nil {
		return SafetyNumber{}, err
	}
	if r.PendingCardID != "" {
		return c.safetyNumberFor(ctx, contact, r.PendingCardID, true)
	}
	return c.safetyNumberFor(ctx, contact, r.CardID, false)
}

// PendingSafetyNumber returns the safety number of the contact's new, not yet accepted
// key, or else of the key the user rejected (SafetyNumber.Rejected: AcceptKey still
// takes it); ErrNoPendingKey when there is neither.
func (c *Controller) PendingSafetyNumber(ctx context.Context, contact string) (SafetyNumber, error) {
	r, err := c.contactRow(ctx, contact)
	if err != nil {
		return SafetyNumber{}, err
	}
	id, rejected := reviewedCard(r)
	if id == "" {
		return SafetyNumber{}, fmt.Errorf("%w: %s", ErrNoPendingKey, contact)
	}
	sn, err := c.safetyNumberFor(ctx, contact, id, true)
	sn.Rejected = rejected
	return sn, err
}

// reviewedCard is the card a key-change review is about: the contact's pending card, or
// else the one the user rejected (rejected true); "" when neither.
func reviewedCard(r storage.Contact) (id string, rejected bool) {
	if r.PendingCardID != "" {
		return r.PendingCardID, false
	}
	return r.RejectedCardID, r.RejectedCardID != ""
}

// TrustedSafetyNumber returns the safety number of the contact's accepted key, even while
// a change is pending.
func (c *Controller) TrustedSafetyNumber(ctx context.Context, contact string) (SafetyNumber, error) {
	r, err := c.contactRow(ctx, contact)
	if err != nil {
		return SafetyNumber{}, err
	}
	return c.safetyNumberFor(ctx, contact, r.CardID, false)
}

func (c *Controller) safetyNumberFor(ctx context.Context, contact, cardID string, pending bool) (SafetyNumber, error) {
	card, err := c.storedCard(ctx, cardID)
	if err != nil {
		return SafetyNumber{}, err
	}
	digits, err := computeSafetyNumber(c.name, c.card.SigningKey, c.card.AgreementKey, card.Identity, card.SigningKey, card.AgreementKey)
	if err != nil {
		return SafetyNumber{}, err
	}
	return SafetyNumber{Contact: contact, CardID: cardID, Pending: pending, digits: digits}, nil
}

// Verify marks the contact's current key as verified: call it after comparing safety
// numbers. A pending key change must be accepted first (the user compares the new
// number, then accepts, then verifies).
func (c *Controller) Verify(ctx context.Context, contact string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.contactRow(ctx, contact)
	if err != nil {
		return err
	}
	if r.PendingCardID != "" {
		return &KeyChangedError{Contact: contact}
	}
	if err := c.store.SetCardVerified(ctx, r.CardID, true); err != nil {
		return fmt.Errorf("chat: marking %s verified: %w", contact, err)
	}
	c.contactChanged(contact)
	return nil
}

// RejectKey keeps the key the user trusted and rejects the contact's new one: sending
// is unblocked, to the trusted key. The messages the new key signed stay marked as
// such (KeyPending), and so do later ones, without a new warning: the rejection is
// remembered until the user accepts that key after all (AcceptKey), or AddContact
// finds it on the relay and asks again. A different new key is a new key change. For
// a key change the user does not believe: a relay, or anyone with its key, can
// present one. ErrNoPendingKey when no new key waits (the rejected one included).
func (c *Controller) RejectKey(ctx context.Context, contact string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.contactRow(ctx, contact)
	if err != nil {
		return err
	}
	if r.PendingCardID == "" {
		return fmt.Errorf("%w: %s", ErrNoPendingKey, contact)
	}
	rejected := r.PendingCardID
	r.PendingCardID, r.RejectedCardID = "", rejected
	if err := c.store.UpdateContact(ctx, r); err != nil {
		return fmt.Errorf("chat: rejecting %s's new key: %w", contact, err)
	}
	c.log.Warn("contact's new identity key rejected; the trusted key stays", "contact", contact, "rejected", rejected)
	c.contactChanged(contact)
	return nil
}

// AcceptKey trusts the contact's new key, or else the key the user rejected: it becomes
// the contact's card (not verified), and sending is unblocked; the next message starts
// a session with the new key.
func (c *Controller) AcceptKey(ctx context.Context, contact string) error {
	accepted, wasRequest, err := c.acceptKey(ctx, contact)
	if err != nil {
		return err
	}
	c.contactChanged(contact)
	c.resendToNewKey(ctx, contact, accepted)
	// The messages the new key signed had no receipts while it was not accepted (nor
	// any message while the contact was a request).
	if wasRequest {
		accepted = ""
	}
	c.sendWithheldReceipts(ctx, contact, accepted)
	return nil
}

// acceptKey makes the pending card the contact's, and returns its id and whether the
// contact was a request.
func (c *Controller) acceptKey(ctx context.Context, contact string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.contactRow(ctx, contact)
	if err != nil {
		return "", false, err
	}
	id, _ := reviewedCard(r)
	if id == "" {
		return "", false, fmt.Errorf("%w: %s", ErrNoPendingKey, contact)
	}
	old, wasRequest := r.CardID, !r.Consented && !r.Blocked
	r.CardID, r.PendingCardID, r.RejectedCardID = id, "", ""
	if err := c.store.UpdateContact(ctx, r); err != nil {
		return "", false, fmt.Errorf("chat: accepting %s's new key: %w", contact, err)
	}
	if err := c.store.SetContactConsented(ctx, contact, true); err != nil {
		return "", false, fmt.Errorf("chat: accepting %s's new key: %w", contact, err)
	}
	if err := c.store.SetCardVerified(ctx, old, false); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("clearing verified mark of superseded card", "err", err)
	}
	return r.CardID, wasRequest, nil
}
