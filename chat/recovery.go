package chat

// Identity recovery (relay/PROTOCOL.md "Identity replacement and recovery"): a
// profile's account gets a recovery code at creation, shown once; on a new machine,
// with the identity key lost, Profile.Recover registers a new card under the same name
// by that code; RotateRecoveryCode replaces the code.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
)

var (
	// ErrRecoveryFailed: the relay refused the recovery code (wrong, or the name has
	// none). Nothing changed.
	ErrRecoveryFailed = errors.New("chat: the relay refused the recovery code")
	// ErrRecoveryLimited: too many recovery attempts for the name or from this address;
	// the *RecoveryLimitedError says how long to wait.
	ErrRecoveryLimited = errors.New("chat: too many recovery attempts")
)

// RecoveryLimitedError is ErrRecoveryLimited with the relay's limit and wait.
type RecoveryLimitedError struct {
	Limit   string // relay limit name: recovery_per_name or recovery_per_address
	Message string
}

func (e *RecoveryLimitedError) Error() string {
	return fmt.Sprintf("too many recovery attempts (%s): %s", e.Limit, e.Message)
}

func (e *RecoveryLimitedError) Unwrap() error { return ErrRecoveryLimited }

// TakeRecoveryCode returns the recovery code made when this controller's profile was
// created (Create) or recovered (Recover), once: later calls return "". The code is
// never stored; show it to the user and let them write it down.
func (c *Controller) TakeRecoveryCode() string {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	code := c.recoveryCode
	c.recoveryCode = ""
	return code
}

// Recover makes a new profile for name on a new machine when the old identity key is
// lost: it parses code (the recovery code shown when the account was made; typos are
// relay.ErrRecoveryCodeChecksum / relay.ErrRecoveryCodeMalformed, caught before
// anything is sent), makes a new identity key and card and a new recovery code, and
// asks the relay to put the card in place of the name's old one. A refused code is
// ErrRecoveryFailed, too many attempts a *RecoveryLimitedError, an unknown name
// ErrUnknownUser; then nothing is left behind. On success the profile is created like
// Create's and the controller holds the new code (TakeRecoveryCode): the old one is
// spent. Contacts see the name's identity key change and confirm it.
func (p Profile) Recover(ctx context.Context, name, code string, passphrase []byte, relayURL string) (*Controller, error) {
	old, err := relay.ParseRecoveryCode(code)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	return p.create(ctx, name, passphrase, relayURL, func(relayURL string, rnd io.Reader, card *ratchet.Card) (*ratchet.Card, ed25519.PublicKey, relay.RecoveryCode, error) {
		next, err := relay.NewRecoveryCode(rnd)
		if err != nil {
			return nil, nil, relay.RecoveryCode{}, fmt.Errorf("chat: generating the recovery code: %w", err)
		}
		signed, relayKey, err := p.recoverCard(ctx, relayURL, card, old.Proof(name), next.Proof(name))
		return signed, relayKey, next, err
	})
}

func (p Profile) recoverCard(ctx context.Context, relayURL string, card *ratchet.Card, proof, newProof []byte) (*ratchet.Card, ed25519.PublicKey, error) {
	dial := p.Prefs.Dial
	if dial == nil {
		dial = func(cfg client.Config) RelayClient { return client.New(cfg) }
	}
	logger := p.Prefs.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc := dial(client.Config{URL: relayURL, Logger: logger, InsecureWS: p.Prefs.InsecureWS, RootCAs: p.Prefs.RootCAs,
		PinnedRelayKey: p.RelayKey}) // the key onboarding showed, as register pins it
	defer rc.Close()
	rec, ok := rc.(interface {
		Recover(ctx context.Context, card *ratchet.Card, proof, newProof []byte) (*ratchet.Card, error)
	})
	if !ok {
		return nil, nil, fmt.Errorf("chat: this relay client cannot recover accounts")
	}
	if err := rc.Connect(ctx); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrOffline, relayURL, err)
	}
	relayKey := rc.RelayKey()
	signed, err := rec.Recover(ctx, card, proof, newProof)
	var pe *relay.ProtocolError
	switch {
	case errors.As(err, &pe) && pe.Code == relay.CodeRecoveryFailed:
		return nil, nil, fmt.Errorf("%w for %q on %s", ErrRecoveryFailed, card.Identity, relayURL)
	case errors.As(err, &pe) && pe.Code == relay.CodeRateLimited:
		return nil, nil, &RecoveryLimitedError{Limit: pe.Limit, Message: pe.Message}
	case errors.As(err, &pe) && pe.Code == relay.CodeNotFound:
		return nil, nil, fmt.Errorf("%w: no account %q on %s", ErrUnknownUser, card.Identity, relayURL)
	case err != nil:
		return nil, nil, fmt.Errorf("chat: recovering %s on %s: %w", card.Identity, relayURL, err)
	}
	if err := signed.VerifyWithRelay(relayKey); err != nil {
		return nil, nil, fmt.Errorf("%w: the relay's signature on our own card: %w", ErrCardRejected, err)
	}
	if signed.ID() != card.ID() {
		return nil, nil, fmt.Errorf("%w: the relay returned a different card than the one sent", ErrCardRejected)
	}
	return signed, relayKey, nil
}

// RotateRecoveryCode makes a new recovery code for this account, sets it on the relay
// (the old one stops working) and returns it, to be shown once. It needs the relay.
func (c *Controller) RotateRecoveryCode(ctx context.Context) (string, error) {
	rc, err := c.relayClient()
	if err != nil {
		return "", err
	}
	s, ok := rc.(interface {
		SetRecovery(ctx context.Context, proof []byte) error
	})
	if !ok {
		return "", fmt.Errorf("chat: this relay client cannot set recovery codes")
	}
	code, err := relay.NewRecoveryCode(c.rand)
	if err != nil {
		return "", fmt.Errorf("chat: generating the recovery code: %w", err)
	}
	if err := s.SetRecovery(ctx, code.Proof(c.name)); err != nil {
		return "", err
	}
	c.log.Info("recovery code replaced")
	return code.String(), nil
}

// ErrIdentityReplaced: the relay says this profile's card was replaced by a newer
// one for its name (replace_card or a recovery on another device). The profile can no
// longer log in; its unsent messages failed with this reason.
var ErrIdentityReplaced = errors.New("chat: this profile's identity was replaced on the relay by a newer card (a reset or a recovery on another device)")

// IdentityReplacedAdvice is what to do about ErrIdentityReplaced, for the CLI and the UI
// to show beside it.
const IdentityReplacedAdvice = "if you recovered or reset your identity on another device, use that one; if not, someone has your recovery code or key: recover your name again with your code ('pfschat --home NEWDIR recover NAME') and tell your contacts"

// isCardReplaced reports whether err is the relay's card_replaced.
func isCardReplaced(err error) bool {
	var pe *relay.ProtocolError
	return errors.As(err, &pe) && pe.Code == relay.CodeCardReplaced
}

// identityReplaced fails every outbox entry with the reason and returns the error to
// report: the device can no longer send as its name.
func (c *Controller) identityReplaced(ctx context.Context, cause error) error {
	err := fmt.Errorf("%w: %s can no longer send or receive as %q here (%v)", ErrIdentityReplaced, c.prefs.RelayURL, c.name, cause)
	reason := "not sent: your identity was replaced by a newer card on another device"
	items, lerr := c.store.Outbox(ctx)
	if lerr != nil {
		c.log.Error("reading the outbox to fail it", "err", lerr)
	}
	for _, it := range items {
		m, ok, serr := c.store.SettleOutbox(ctx, it.ClientID, reason)
		if serr != nil {
			c.log.Error("failing an outbox entry", "err", serr)
			continue
		}
		if ok {
			msg := toMessage(m)
			c.emit(Event{Kind: DeliveryChanged, Contact: m.Contact, Message: &msg})
		}
	}
	c.out.markStale()
	c.log.Error("identity replaced on the relay; this profile can no longer log in", "failed_outbox_entries", len(items))
	return err
}
