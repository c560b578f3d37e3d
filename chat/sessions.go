package chat

import (
	"context"
	"errors"
	"fmt"

	"pfschat/ratchet"
	"pfschat/storage"
)

// Session is a Double Ratchet session with one peer card, bound to the store: Encrypt and
// Decrypt persist the new state before they return, so no caller can forget to save it
// (virgil-ratchet's most common bug). Most programs use Controller.Send and the event
// stream instead; Session is the seed's lower-level API.
type Session struct {
	c      *Controller
	row    storage.Session
	s      *ratchet.Session
	peer   *ratchet.Card
	active bool

	first, firstPlain []byte // see LoadUpSession
}

// ID is the session's identifier, equal on both sides.
func (s *Session) ID() string { return s.s.ID() }

// PeerCardID is the card this session talks to.
func (s *Session) PeerCardID() string { return s.s.PeerCardID() }

// Encrypt encrypts plaintext and commits the advanced state.
func (s *Session) Encrypt(ctx context.Context, plaintext []byte) ([]byte, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	cur, err := s.c.loadSession(ctx, s.row.PeerCardID, s.row.ID)
	if err != nil {
		return nil, err
	}
	wire, err := cur.s.Encrypt(plaintext)
	if err != nil {
		return nil, fmt.Errorf("chat: encrypting: %w", err)
	}
	if err := s.c.saveSession(ctx, cur); err != nil {
		return nil, err
	}
	*s = *cur
	return wire, nil
}

// Decrypt decrypts a message of this session and commits the advanced state. On error
// nothing changes.
func (s *Session) Decrypt(ctx context.Context, wire []byte) ([]byte, error) {
	if s.first != nil && string(s.first) == string(wire) {
		plain := s.firstPlain
		s.first, s.firstPlain = nil, nil
		return plain, nil
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	cur, err := s.c.loadSession(ctx, s.row.PeerCardID, s.row.ID)
	if err != nil {
		return nil, err
	}
	plain, err := cur.s.Decrypt(wire)
	if err != nil {
		return nil, fmt.Errorf("chat: decrypting: %w", err)
	}
	if err := s.c.saveSession(ctx, cur); err != nil {
		return nil, err
	}
	*s = *cur
	return plain, nil
}

// ActiveSession returns the live session with the card, or nil when there is none.
func (c *Controller) ActiveSession(ctx context.Context, cardID string) (*Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.activeSession(ctx, cardID)
}

func (c *Controller) activeSession(ctx context.Context, cardID string) (*Session, error) {
	rows, err := c.store.Sessions(ctx, cardID)
	if err != nil {
		return nil, fmt.Errorf("chat: listing sessions: %w", err)
	}
	for _, r := range rows {
		if r.Active {
			return c.parseSession(ctx, r)
		}
	}
	return nil, nil
}

// sessions returns every stored session with the card, active first.
func (c *Controller) sessions(ctx context.Context, cardID string) ([]*Session, error) {
	rows, err := c.store.Sessions(ctx, cardID)
	if err != nil {
		return nil, fmt.Errorf("chat: listing sessions: %w", err)
	}
	out := make([]*Session, 0, len(rows))
	for _, r := range rows {
		s, err := c.parseSession(ctx, r)
		if err != nil {
			c.log.Error("skipping unreadable session", "session", r.ID, "err", err)
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

func (c *Controller) loadSession(ctx context.Context, cardID, id string) (*Session, error) {
	rows, err := c.store.Sessions(ctx, cardID)
	if err != nil {
		return nil, fmt.Errorf("chat: listing sessions: %w", err)
	}
	for _, r := range rows {
		if r.ID == id {
			return c.parseSession(ctx, r)
		}
	}
	return nil, fmt.Errorf("chat: session %.12s is gone", id)
}

func (c *Controller) parseSession(ctx context.Context, r storage.Session) (*Session, error) {
	s, err := ratchet.ParseSession(r.State)
	if err != nil {
		return nil, fmt.Errorf("chat: session %.12s in the store: %w", r.ID, err)
	}
	s.SetRand(c.rand)
	return &Session{c: c, row: r, s: s, active: r.Active}, nil
}

// sessionRow is the storage row for s's current state.
func (c *Controller) sessionRow(s *Session) (storage.Session, error) {
	state, err := s.s.MarshalBinary()
	if err != nil {
		return storage.Session{}, fmt.Errorf("chat: encoding session state: %w", err)
	}
	now := c.now()
	row := s.row
	if row.ID == "" {
		row.ID = s.s.ID()
		row.PeerCardID = s.s.PeerCardID()
		row.CreatedAt = now
	}
	row.Active = s.active
	row.State = state
	row.UpdatedAt = now
	return row, nil
}

func (c *Controller) saveSession(ctx context.Context, s *Session) error {
	row, err := c.sessionRow(s)
	if err != nil {
		return err
	}
	if err := c.store.PutSession(ctx, row); err != nil {
		return fmt.Errorf("chat: saving session: %w", err)
	}
	row.Generation++ // the commit's compare-and-swap moved the row on
	s.row = row
	return nil
}

// StartNewSession fetches the card owner's prekey bundle, verifies it against the card and
// the pinned relay key (a swapped bundle is refused), runs the PQXDH handshake and stores
// the new session as the active one. Its messages are initial messages until the peer
// answers, so a lost first message is recoverable.
func (c *Controller) StartNewSession(ctx context.Context, card *ratchet.Card) (*Session, error) {
	b, err := c.fetchBundle(ctx, card, "")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.startSession(card, b)
	if err != nil {
		return nil, err
	}
	if err := c.saveSession(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// fetchBundle fetches and verifies card's prekey bundle. rejected is the id of the
// contact's card the user rejected ("" for none): a bundle of that card is refused with
// *RejectedKeyOnlyError (the relay has no prekeys for the trusted key any more), not as
// one that failed verification.
func (c *Controller) fetchBundle(ctx context.Context, card *ratchet.Card, rejected string) (*ratchet.Bundle, error) {
	rc, err := c.relayClient()
	if err != nil {
		return nil, err
	}
	rctx, cancel := withRPCTimeout(ctx)
	defer cancel()
	b, err := rc.FetchBundle(rctx, card.Identity)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %q has no prekeys on the relay", ErrUnknownUser, card.Identity)
		}
		return nil, fmt.Errorf("chat: fetching %s's prekeys: %w", card.Identity, err)
	}
	if b == nil || b.Card == nil {
		return nil, fmt.Errorf("%w: empty bundle for %s", ErrCardRejected, card.Identity)
	}
	if rejected != "" && b.Card.ID() == rejected {
		return nil, &RejectedKeyOnlyError{Contact: card.Identity} // names the contact and what it fetched
	}
	if b.Card.ID() != card.ID() && c.checkCard(b.Card, card.Identity) == nil {
		// The relay's current card for the name, not the one we have: the contact made
		// a new identity (or the relay lies, which the key-change warning is for). It
		// was refused as a bundle that does not verify (card_rejected through the
		// daemon), and the key change was never offered.
		return nil, &bundleCardError{card: b.Card}
	}
	if err := b.Verify(card, c.relayKeyNow()); err != nil {
		return nil, fmt.Errorf("%w: %s's prekey bundle: %w", ErrCardRejected, card.Identity, err)
	}
	// The creation time is signed with the key (ratchet/SPEC.md §8.2).
	if age := c.now().Sub(b.SignedPreKey.CreatedAt); age > MaxBundlePreKeyAge {
		return nil, fmt.Errorf("%w: %s's signed prekey was made %d days ago (more than %d): their device has not been online to renew it, or the relay hands out a key it should have dropped; ask them to open pfschat, then try again",
			ErrStalePreKey, card.Identity, int(age.Hours()/24), int(MaxBundlePreKeyAge.Hours()/24))
	}
	return b, nil
}

// bundleCardError: the relay handed out a bundle for the contact's current card on
// the relay, which is not the card we have for them (fetchBundle).
type bundleCardError struct{ card *ratchet.Card }

func (e *bundleCardError) Error() string {
	return fmt.Sprintf("chat: the relay has a new card for %s (%.12s)", e.card.Identity, e.card.ID())
}

func (e *bundleCardError) Unwrap() error { return ErrKeyChanged }

// adoptBundleCard takes the card of a *bundleCardError as trustCard takes any card the
// relay hands out: new keys become the contact's pending key, which blocks sending
// (*KeyChangedError, and the ContactKeyChanged event); the same keys on a re-issued
// card replace the old card silently, and nil says to fetch again.
func (c *Controller) adoptBundleCard(ctx context.Context, contact string, card *ratchet.Card) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed, err := c.trustCard(ctx, contact, card, false)
	if err != nil {
		return err
	}
	if changed {
		return &KeyChangedError{Contact: contact}
	}
	return nil
}

// startSession runs the handshake on a verified bundle. c.mu must be held.
func (c *Controller) startSession(card *ratchet.Card, b *ratchet.Bundle) (*Session, error) {
	rs, err := ratchet.StartSession(c.rand, c.id, c.card, card, c.relayKeyNow(), b)
	if err != nil {
		return nil, fmt.Errorf("chat: starting a session with %s: %w", card.Identity, err)
	}
	rs.SetRand(c.rand)
	return &Session{c: c, s: rs, peer: card, active: true}, nil
}

// LoadUpSession returns the session an incoming message belongs to: an existing one, or,
// for an initial message of a new session, one created from it with our prekeys (the
// one-time prekeys it used are deleted). Then call Session.Decrypt with the same message.
// Most programs let the controller's receive loop do all of this.
func (c *Controller) LoadUpSession(ctx context.Context, card *ratchet.Card, wire []byte) (*Session, error) {
	env, err := ratchet.DecodeEnvelope(wire)
	if err != nil {
		return nil, fmt.Errorf("chat: reading message: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if env.Initial == nil {
		s, err := c.activeSession(ctx, card.ID())
		if err == nil && s == nil {
			err = fmt.Errorf("chat: no session with %s", card.Identity)
		}
		return s, err
	}
	if s, err := c.loadSession(ctx, card.ID(), env.Initial.SessionID()); err == nil {
		return s, nil
	}
	first := firstMessage(env.Initial)
	if c.firstSeen(ctx, first) {
		return nil, fmt.Errorf("chat: %w", storage.ErrReplayedFirstMessage)
	}
	s, plain, consumed, err := c.acceptSession(ctx, card, env)
	if err != nil {
		return nil, err
	}
	// The handshake already decrypted this message; Decrypt of the same bytes returns
	// that plaintext once, so the seed's load-then-decrypt flow works unchanged.
	s.first, s.firstPlain = append([]byte(nil), wire...), plain
	// The session, the replay record and the deletion of the one-time prekeys it
	// consumed commit together.
	row, err := c.sessionRow(s)
	if err != nil {
		return nil, err
	}
	if _, err := c.store.CommitReceive(ctx, storage.ReceiveTx{Session: &row, ConsumedPreKeys: consumed, FirstMessage: first}); err != nil {
		return nil, fmt.Errorf("chat: saving session: %w", err)
	}
	row.Generation++
	s.row = row
	return s, nil
}

// acceptSession creates a session from an initial message with our stored prekeys and
// returns it with the decrypted payload and the one-time prekeys it consumed. c.mu held.
func (c *Controller) acceptSession(ctx context.Context, peer *ratchet.Card, env *ratchet.Envelope) (*Session, []byte, []storage.PreKeyRef, error) {
	h := env.Initial
	var keys ratchet.ResponderKeys
	var consumed []storage.PreKeyRef
	var err error
	if keys.SignedPreKey, err = c.privatePreKey(ctx, ratchet.SignedPreKey, h.SignedPreKeyID); err != nil {
		return nil, nil, nil, err
	}
	if h.OneTimePreKeyID != 0 {
		if keys.OneTimePreKey, err = c.privatePreKey(ctx, ratchet.OneTimePreKey, h.OneTimePreKeyID); err != nil {
			return nil, nil, nil, err
		}
		consumed = append(consumed, storage.PreKeyRef{Kind: uint8(ratchet.OneTimePreKey), ID: h.OneTimePreKeyID})
	}
	if keys.KEMPreKey, err = c.privatePreKey(ctx, h.KEMPreKeyKind, h.KEMPreKeyID); err != nil {
		return nil, nil, nil, err
	}
	if h.KEMPreKeyKind == ratchet.KEMOneTime {
		consumed = append(consumed, storage.PreKeyRef{Kind: uint8(ratchet.KEMOneTime), ID: h.KEMPreKeyID})
	}
	rs, plain, err := ratchet.AcceptSession(c.id, c.card, peer, keys, env)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accepting the session: %w", err)
	}
	rs.SetRand(c.rand)
	return &Session{c: c, s: rs, peer: peer}, plain, consumed, nil
}

// errPreKeyGone: an initial message names a prekey we no longer hold (already used, or
// expired): the message cannot be read.
var errPreKeyGone = errors.New("the prekey it was encrypted to is no longer held (already used or expired)")

func (c *Controller) privatePreKey(ctx context.Context, kind ratchet.PreKeyKind, id uint32) (*ratchet.PrivatePreKey, error) {
	row, err := c.store.PreKey(ctx, uint8(kind), id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%s %d: %w", kindName(kind), id, errPreKeyGone)
	}
	if err != nil {
		return nil, fmt.Errorf("chat: loading %s %d: %w", kindName(kind), id, err)
	}
	k, err := ratchet.ParsePrivatePreKey(row.Private)
	if err != nil {
		return nil, fmt.Errorf("chat: %s %d in the store: %w", kindName(kind), id, err)
	}
	return k, nil
}

// RemoveSessions deletes every local session with the card.
func (c *Controller) RemoveSessions(ctx context.Context, cardID string) error {
	if cardID == "" {
		return errors.New("chat: RemoveSessions needs a card ID")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.store.DeleteSessions(ctx, cardID); err != nil {
		return fmt.Errorf("chat: removing sessions: %w", err)
	}
	return nil
}

// ResetSession archives the sessions with the contact's card; the next message starts a
// fresh session (with a new handshake), which the peer adopts when it arrives. The
// archived sessions still decrypt what the peer sent under them before it saw the new
// one (as Signal keeps archived sessions), until they are trimmed (storage
// MaxSessionsPerPeer) or unused for ArchivedSessionMaxAge; nothing in flight is lost.
func (c *Controller) ResetSession(ctx context.Context, contact string) error {
	r, err := c.store.Contact(ctx, contact)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrUnknownContact, contact)
	}
	if err != nil {
		return fmt.Errorf("chat: reading contact %s: %w", contact, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.store.ArchiveSessions(ctx, r.CardID); err != nil {
		return fmt.Errorf("chat: resetting the session with %s: %w", contact, err)
	}
	return nil
}

// GentleReset drops all local sessions and prekeys and publishes fresh ones: new signed
// and last-resort prekeys replace the old ones on the relay, and one-time prekeys are
// topped up. One-time prekeys still waiting on the relay keep their private halves (the
// relay protocol cannot recall them, and a peer may fetch one at any moment); every
// other private prekey is deleted. Contacts and history stay. Use it when the local
// session state is suspected broken; peers adopt the new sessions as they arrive.
func (c *Controller) GentleReset(ctx context.Context) error {
	rc, err := c.relayClient()
	if err != nil {
		return err
	}
	rctx, cancel := withRPCTimeout(ctx)
	status, err := rc.PreKeyStatus(rctx)
	cancel()
	if err != nil {
		return fmt.Errorf("chat: gentle reset needs the relay: %w", err)
	}
	onRelay := map[ratchet.PreKeyKind]map[uint32]bool{ratchet.OneTimePreKey: {}, ratchet.KEMOneTime: {}}
	for _, id := range status.OneTimeIDs {
		onRelay[ratchet.OneTimePreKey][id] = true
	}
	for _, id := range status.KEMOneTimeIDs {
		onRelay[ratchet.KEMOneTime][id] = true
	}
	c.rotateMu.Lock()
	c.mu.Lock()
	err = c.store.DeleteSessions(ctx, "")
	for _, kind := range []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.OneTimePreKey, ratchet.KEMLastResort, ratchet.KEMOneTime} {
		if err != nil {
			break
		}
		var keys []storage.PreKey
		if keys, err = c.store.PreKeys(ctx, uint8(kind)); err != nil {
			break
		}
		var ids []uint32
		for _, k := range keys {
			if !onRelay[kind][k.ID] {
				ids = append(ids, k.ID)
			}
		}
		if len(ids) > 0 {
			err = c.store.DeletePreKeys(ctx, uint8(kind), ids)
		}
	}
	c.mu.Unlock()
	c.rotateMu.Unlock()
	if err != nil {
		return fmt.Errorf("chat: gentle reset: %w", err)
	}
	return c.RotateKeys(ctx, c.prefs.OneTimeKeys)
}
