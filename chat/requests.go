package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"pfschat/chat/payload"
	"pfschat/relay"
	"pfschat/storage"
)

// Message requests, blocking, removing and nicknames (issue 13 point 11), and the
// per-contact notification switch (point 10).
//
// A contact created by a stranger's first message is a request (Contact.Request) until
// the user accepts it (AcceptRequest, or by writing to them, or AddContact): until then
// no receipt goes to them, and then the receipts held back go. Blocking (Block) stops everything from them locally — their
// messages are dropped unread, nothing is sent to them — and tells the relay, which then
// refuses their messages to us and their bundle fetches of us (relay/PROTOCOL.md,
// "Blocking"). A block made offline reaches the relay on the next connection.

var (
	// ErrBlocked: the contact is blocked; unblock them to write to them.
	ErrBlocked = errors.New("chat: contact is blocked")
	// ErrNotARequest: AcceptRequest on a contact that is no message request.
	ErrNotARequest = errors.New("chat: no message request from this contact")
)

// blockingRelay is what a relay connection needs for blocks; *client.Client has it.
type blockingRelay interface {
	Block(ctx context.Context, name string) error
	Unblock(ctx context.Context, name string) error
}

// AcceptRequest accepts a message request: the contact joins the contact list, and the
// receipts held back go to them (sendWithheldReceipts). ErrNotARequest when the
// contact is no request.
func (c *Controller) AcceptRequest(ctx context.Context, name string) error {
	r, err := c.contactRow(ctx, name)
	if err != nil {
		return err
	}
	if r.Consented && !r.Blocked {
		return fmt.Errorf("%w: %s is already a contact", ErrNotARequest, name)
	}
	if r.Blocked {
		return fmt.Errorf("%w: unblock %s first", ErrBlocked, name)
	}
	if err := c.store.SetContactConsented(ctx, name, true); err != nil {
		return fmt.Errorf("chat: accepting %s: %w", name, err)
	}
	c.contactChanged(name)
	c.sendWithheldReceipts(ctx, name, "")
	return nil
}

// withheldReceipts is how many of a contact's newest messages sendWithheldReceipts
// looks at: the sender shows its newest messages, and a receipt is small but not free.
const withheldReceipts = storage.MaxPage

// sendWithheldReceipts sends the receipts held back while contact could not have them —
// a message request, or a new key the user had not accepted (fromCard: only the
// messages that card signed) — once the user has accepted them: a read receipt for
// the messages read, when read receipts are on, a delivery receipt for the others.
// Only the newest withheldReceipts messages are looked at; a receipt that arrives twice
// changes nothing. Best effort, as every receipt. c.mu must NOT be held.
func (c *Controller) sendWithheldReceipts(ctx context.Context, contact, fromCard string) {
	msgs, _, err := c.store.Messages(ctx, contact, storage.Cursor{}, withheldReceipts)
	if err != nil {
		c.log.Info("receipts held back while not accepted are not sent", "contact", contact, "err", err)
		return
	}
	readOn := c.ReadReceipts(ctx)
	var delivered, read []string
	for _, m := range msgs {
		if m.Direction != storage.Incoming || m.KeyPending || fromCard != "" && m.SenderCardID != fromCard {
			continue
		}
		p, ok := peerClientID(m.ClientID)
		switch {
		case !ok:
		case readOn && m.State == storage.Read:
			read = append(read, p)
		default:
			delivered = append(delivered, p)
		}
	}
	if len(delivered) > 0 {
		c.sendReceipt(ctx, contact, payload.Delivered, delivered)
	}
	if len(read) > 0 {
		c.sendReceipt(ctx, contact, payload.Read, read)
	}
}

// isRequest reports whether contact is a message request (not accepted, not blocked):
// a message the user writes to them accepts them, and sendWithheldReceipts follows.
func (c *Controller) isRequest(ctx context.Context, contact string) bool {
	r, err := c.store.Contact(ctx, contact)
	return err == nil && !r.Consented && !r.Blocked
}

// Block blocks a contact (or a request): their messages are dropped unread from now
// on, nothing is sent to them, and the relay is told (now when online, else on the next
// connection). Blocking twice is no error.
func (c *Controller) Block(ctx context.Context, name string) error {
	return c.setBlocked(ctx, name, true)
}

// Unblock takes a block back, here and on the relay. The contact stays a request
// until accepted if it was one.
func (c *Controller) Unblock(ctx context.Context, name string) error {
	return c.setBlocked(ctx, name, false)
}

func (c *Controller) setBlocked(ctx context.Context, name string, on bool) error {
	if _, err := c.contactRow(ctx, name); err != nil {
		return err
	}
	if err := c.store.SetContactBlocked(ctx, name, on); err != nil {
		return fmt.Errorf("chat: blocking %s: %w", name, err)
	}
	if _, err := c.loadBlocked(ctx); err != nil {
		c.blocked.Store(nil) // read again on the next message
	}
	c.contactChanged(name)
	if c.isOnline() {
		c.connMu.Lock()
		rc := c.rc
		c.connMu.Unlock()
		if err := c.syncBlock(ctx, rc, name, on); err != nil {
			// Kept locally: tried again on every connection.
			c.log.Warn("telling the relay about a block; retried on the next connection", "err", err)
		}
	}
	return nil
}

// syncBlock tells the relay one block state and records that it did.
func (c *Controller) syncBlock(ctx context.Context, rc RelayClient, name string, on bool) error {
	br, ok := rc.(blockingRelay)
	if !ok {
		return errors.New("the relay connection cannot block")
	}
	ctx, cancel := withRPCTimeout(ctx)
	defer cancel()
	var err error
	if on {
		err = br.Block(ctx, name)
	} else {
		err = br.Unblock(ctx, name)
	}
	var pe *relay.ProtocolError
	if errors.As(err, &pe) && pe.Code == relay.CodeTooManyBlocks {
		c.log.Warn("the relay keeps no more blocks; this one holds only here", "limit", relay.MaxBlocks)
		err = nil // nothing more to do: the local block still drops their messages
	}
	if err != nil {
		return err
	}
	return c.store.SetBlockSynced(ctx, name, on)
}

// syncBlocks sends the relay every block state it has not confirmed (blocks made
// offline), after each (re)connection.
func (c *Controller) syncBlocks(ctx context.Context, rc RelayClient) {
	rows, err := c.store.Contacts(ctx)
	if err != nil {
		c.log.Warn("reading blocks to tell the relay", "err", err)
		return
	}
	for _, r := range rows {
		if r.Blocked != r.BlockSynced {
			if err := c.syncBlock(ctx, rc, r.Name, r.Blocked); err != nil {
				c.log.Warn("telling the relay about a block; retried on the next connection", "err", err)
				return
			}
		}
	}
}

// dropIfBlocked reports whether a message from sender must be dropped unread because
// the user blocked them; it then records the relay id (a redelivery is recognised) and
// nothing else. Messages the relay queued before the block arrive so.
func (c *Controller) dropIfBlocked(ctx context.Context, sender, relayID string) (bool, error) {
	set, err := c.blockedSet(ctx)
	if err != nil {
		return false, err
	}
	if !set[sender] {
		return false, nil
	}
	if _, err := c.store.CommitReceive(ctx, storage.ReceiveTx{RelayID: relayID}); err != nil && !errors.Is(err, storage.ErrDuplicate) {
		return false, err
	}
	return true, nil
}

// blockedSet returns the blocked contacts, reading them from the store the first time.
// The profile's lock makes this controller the only writer of blocks, so the set stays
// true (setBlocked refreshes it).
func (c *Controller) blockedSet(ctx context.Context) (map[string]bool, error) {
	if p := c.blocked.Load(); p != nil {
		return *p, nil
	}
	return c.loadBlocked(ctx)
}

func (c *Controller) loadBlocked(ctx context.Context) (map[string]bool, error) {
	rows, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, fmt.Errorf("chat: reading blocks: %w", err)
	}
	set := make(map[string]bool)
	for _, r := range rows {
		if r.Blocked {
			set[r.Name] = true
		}
	}
	c.blocked.Store(&set)
	return set, nil
}

// RemoveContact removes a contact (or declines a request) with its conversation from
// this profile. Their next message makes them a request again. A blocked contact is
// not removed (the block would go with it): unblock first.
func (c *Controller) RemoveContact(ctx context.Context, name string) error {
	r, err := c.contactRow(ctx, name)
	if err != nil {
		return err
	}
	if r.Blocked {
		return fmt.Errorf("%w: removing %s would end the block; unblock first, or keep them blocked", ErrBlocked, name)
	}
	files, err := c.store.IncomingAttachmentIDs(ctx, name)
	if err != nil {
		return fmt.Errorf("chat: removing %s: %w", name, err)
	}
	if err := c.store.DeleteContact(ctx, name); err != nil {
		return fmt.Errorf("chat: removing %s: %w", name, err)
	}
	c.dropPartials(files) // their files are not fetched any more
	c.contactChanged(name)
	return nil
}

// SetNickname gives a contact a local display name ("" removes it); it is never sent.
func (c *Controller) SetNickname(ctx context.Context, name, nickname string) error {
	if _, err := c.contactRow(ctx, name); err != nil {
		return err
	}
	nickname = strings.TrimSpace(nickname)
	if err := c.store.SetContactNickname(ctx, name, nickname); err != nil {
		return fmt.Errorf("chat: nickname for %s: %w", name, err)
	}
	c.contactChanged(name)
	return nil
}

// SetMuted turns desktop notifications for a contact off (true) or back on.
func (c *Controller) SetMuted(ctx context.Context, name string, muted bool) error {
	if _, err := c.contactRow(ctx, name); err != nil {
		return err
	}
	if err := c.store.SetContactMuted(ctx, name, muted); err != nil {
		return fmt.Errorf("chat: muting %s: %w", name, err)
	}
	c.contactChanged(name)
	return nil
}
