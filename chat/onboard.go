package chat

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"

	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/storage"
)

// What onboarding needs before an identity exists (issue 13 point 7): the relay's key
// and registration policy, and whether a name is free.

// RelayInfo is what a relay says about itself to an anonymous connection.
type RelayInfo struct {
	URL string // normalized
	// Key is the key the relay proved it holds on this connection; Fingerprint is its
	// ratchet.Fingerprint, to compare with the one the operator publishes.
	Key         ed25519.PublicKey
	Fingerprint string
	// Registration is the policy the relay announced: "open", "invite", "closed", or
	// "" when it does not say.
	Registration string
}

// registrationReporter is a relay client that reports the hello's registration policy;
// *client.Client is one.
type registrationReporter interface{ Registration() string }

// anonymous connects to rawURL without an identity; pinned, when set, must be the key
// the relay proves it holds.
func (p Profile) anonymous(ctx context.Context, rawURL string, pinned ed25519.PublicKey) (RelayClient, string, error) {
	u, err := NormalizeRelayURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	dial := p.Prefs.Dial
	if dial == nil {
		dial = func(cfg client.Config) RelayClient { return client.New(cfg) }
	}
	logger := p.Prefs.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc := dial(client.Config{URL: u, Logger: logger, InsecureWS: p.Prefs.InsecureWS, RootCAs: p.Prefs.RootCAs, PinnedRelayKey: pinned})
	if err := rc.Connect(ctx); err != nil {
		rc.Close()
		return nil, "", fmt.Errorf("%w: %s: %w", ErrOffline, u, err)
	}
	return rc, u, nil
}

// ProbeRelay connects to the relay at rawURL without an identity and returns its proven
// key and registration policy. Nothing is stored.
func (p Profile) ProbeRelay(ctx context.Context, rawURL string) (RelayInfo, error) {
	rc, u, err := p.anonymous(ctx, rawURL, nil)
	if err != nil {
		return RelayInfo{}, err
	}
	defer rc.Close()
	info := RelayInfo{URL: u, Key: rc.RelayKey()}
	if len(info.Key) == ed25519.PublicKeySize {
		info.Fingerprint = ratchet.Fingerprint(info.Key)
	}
	if r, ok := rc.(registrationReporter); ok {
		info.Registration = r.Registration()
	}
	return info, nil
}

// NameAvailable asks the relay at rawURL whether name is free to register. With relayKey
// set, the relay must prove that key (the one onboarding showed). An invalid name is
// an error wrapping ratchet.ErrInvalidName.
func (p Profile) NameAvailable(ctx context.Context, rawURL string, relayKey ed25519.PublicKey, name string) (bool, error) {
	if err := ratchet.ValidateName(name); err != nil {
		return false, fmt.Errorf("chat: %q is not a valid name (1–32 of a-z 0-9 . _ -): %w", name, err)
	}
	rc, _, err := p.anonymous(ctx, rawURL, relayKey)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	_, err = rc.LookupCard(ctx, name)
	switch {
	case err == nil:
		return false, nil
	case isNotFound(err):
		return true, nil
	}
	return false, fmt.Errorf("chat: asking the relay about %q: %w", name, err)
}

// IdentityName is the name of the profile's identity, read without the passphrase (it
// is public and stored in the clear), for the unlock screen; "" when unknown.
func (p Profile) IdentityName(ctx context.Context) string {
	name, err := storage.PeekClientName(ctx, p.StorePath())
	if err != nil && !errors.Is(err, storage.ErrNotFound) && p.Prefs.Logger != nil {
		p.Prefs.Logger.Info("reading the profile's name", "err", err)
	}
	return name
}
