package server

// Identity recovery (PROTOCOL.md "Identity replacement and recovery"): a register
// frame may carry the proof of a recovery code, of which the relay keeps only a keyed
// hash; a recover frame presents the proof to replace the name's card when its key is
// lost, attempts limited per name and per address; set_recovery (logged in) replaces
// the code.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"

	"pfschat/relay"
	"pfschat/storage"
)

// Names of the recovery limits.
const (
	LimitRecoveryPerName    = "recovery_per_name"    // recover attempts per target name: rate_limited
	LimitRecoveryPerAddress = "recovery_per_address" // recover attempts per source address: rate_limited
)

// metaRecoveryKey holds the relay's HMAC key for recovery verifiers (32 random bytes,
// made on first start).
const metaRecoveryKey = "recovery_hmac_key"

// recoveryStore is what recovery needs of the store (the SQLite store has it).
type recoveryStore interface {
	SetRecovery(ctx context.Context, name, cardID string, verifier []byte) error
	RecoverAccount(ctx context.Context, name string, check func(stored []byte) bool, newAcc storage.Account) (string, error)
}

var _ recoveryStore = (*storage.Relay)(nil)

// initRecovery loads (or makes) the recovery HMAC key. A directory that is not the
// SQLite store keeps no recovery codes: recover and set_recovery are refused.
func (s *Server) initRecovery(ctx context.Context) error {
	rs, ok := s.dir.(recoveryStore)
	if !ok {
		return nil
	}
	key, err := s.dir.Meta(ctx, metaRecoveryKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("relay: generating the recovery key: %w", err)
		}
		if err := s.createMeta(ctx, metaRecoveryKey, &key); err != nil {
			return fmt.Errorf("relay: saving the recovery key: %w", err)
		}
	case err != nil:
		return fmt.Errorf("relay: loading the recovery key: %w", err)
	case len(key) != 32:
		return fmt.Errorf("relay: stored recovery key has %d bytes, want 32: the database is damaged", len(key))
	}
	s.recovery, s.recoveryKey = rs, key
	return nil
}

// recoveryVerifier is the stored form of a proof for name.
func (s *Server) recoveryVerifier(name string, proof []byte) []byte {
	return relay.RecoveryVerifier(s.recoveryKey, name, proof)
}

// registerVerifier is the verifier a register frame sets (nil without a proof).
func (c *conn) registerVerifier(f *relay.Frame, name string) []byte {
	if f.Recovery == nil || c.s.recovery == nil {
		return nil
	}
	return c.s.recoveryVerifier(name, f.Recovery)
}

// onRecover replaces a name's card with the one in the frame when the frame's proof
// matches the name's recovery verifier; the frame's new proof becomes the next one.
// It needs no login: it is how a user who lost the identity key gets the name back.
func (c *conn) onRecover(f *relay.Frame) {
	if c.s.recovery == nil {
		c.replyError(f.ID, relay.CodeNoRecovery, "this relay keeps no recovery codes", "")
		return
	}
	// Per address first, before the card's signature is checked: one address cannot
	// spend every name's attempts, nor the relay's CPU on frames it then refuses.
	if ok, retry := c.s.ab.recoveryPerAddress.allow(c.addrKey); !ok {
		c.rateLimited(f.ID, LimitRecoveryPerAddress, "too many recovery attempts from your address", retry)
		return
	}
	card, ok := c.parseCard(f)
	if !ok {
		return
	}
	name := card.Identity
	if ok, retry := c.s.ab.recoveryPerName.allow(name); !ok {
		c.rateLimited(f.ID, LimitRecoveryPerName, "too many recovery attempts for "+strconv.Quote(name)+"; wait before trying again", retry)
		return
	}
	if err := card.SignAsRelay(c.s.priv); err != nil {
		c.internal(f.ID, "signing the card", err)
		return
	}
	export := card.Export()
	want := c.s.recoveryVerifier(name, f.Recovery)
	ctx, cancel := c.opCtx()
	defer cancel()
	_, err := c.s.recovery.RecoverAccount(ctx, name, func(stored []byte) bool { return hmac.Equal(stored, want) },
		storage.Account{Name: name, CardID: card.ID(), Card: []byte(export), CreatedAt: c.s.now().UTC(),
			Recovery: c.s.recoveryVerifier(name, f.NewRecovery)})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		c.replyError(f.ID, relay.CodeNotFound, "no account is registered under "+strconv.Quote(name), "")
		return
	case errors.Is(err, storage.ErrRecoveryRefused):
		c.s.log.Info("recovery refused", "conn", c.id, "name", name)
		c.replyError(f.ID, relay.CodeRecoveryFailed, "the recovery code is wrong, or none is set for "+strconv.Quote(name)+"; attempts are limited", "")
		return
	case errors.Is(err, storage.ErrExists):
		c.replyError(f.ID, relay.CodeBadCard, cardTakenText, "")
		return
	case err != nil:
		c.internal(f.ID, "recovering the account", err)
		return
	}
	acc := &account{name: name, cardID: card.ID(), card: card, export: export}
	c.s.accounts.Store(name, acc)
	c.s.log.Info("account recovered with its recovery code: card replaced", "conn", c.id, "name", name)
	c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: export})
	// Whoever still holds the old card's connections stops receiving the name's messages.
	c.s.hub.Notice(name, Notice{CardReplaced: acc.cardID})
}

// onSetRecovery replaces the logged-in account's recovery verifier.
func (c *conn) onSetRecovery(f *relay.Frame) {
	if c.s.recovery == nil {
		c.replyError(f.ID, relay.CodeNoRecovery, "this relay keeps no recovery codes", "")
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	err := c.s.recovery.SetRecovery(ctx, c.acct.name, c.acct.cardID, c.s.recoveryVerifier(c.acct.name, f.Recovery))
	if errors.Is(err, storage.ErrNotFound) {
		c.replyError(f.ID, relay.CodeCardReplaced, "the card this connection logged in with is no longer the name's", "")
		return
	}
	if err != nil {
		c.internal(f.ID, "setting the recovery code", err)
		return
	}
	c.s.log.Info("recovery code replaced", "conn", c.id, "name", c.acct.name)
	c.send(&relay.Frame{Type: relay.TypeOK, ID: f.ID})
}
