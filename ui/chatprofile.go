package ui

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"pfschat/chat"
)

// chatProfile is the Profile of a real pfschat home directory, backed by chat.Profile.
type chatProfile struct {
	p chat.Profile

	mu     sync.Mutex
	probed map[string]ed25519.PublicKey // relay URL → the key onboarding showed
}

// NewChatProfile is the Profile the UI's onboarding and unlock screens use for a
// pfschat profile on disk; the command layer fills in p (directory, relay, logger).
func NewChatProfile(p chat.Profile) Profile { return &chatProfile{p: p} }

func (p *chatProfile) DefaultRelayURL() string { return p.p.DefaultRelayURL() }
func (p *chatProfile) Exists() bool            { return p.p.Exists() }

func (p *chatProfile) Create(ctx context.Context, name string, passphrase []byte, relayURL string) (Backend, error) {
	c, err := p.p.Create(ctx, name, passphrase, relayURL)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ProbeRelay connects without an identity and remembers the key the relay proved, so
// the name checks and the registration are pinned to the key the user was shown.
func (p *chatProfile) ProbeRelay(ctx context.Context, relayURL string) (RelayInfo, error) {
	info, err := p.p.ProbeRelay(ctx, relayURL)
	if err != nil {
		return RelayInfo{}, err
	}
	p.mu.Lock()
	if p.probed == nil {
		p.probed = make(map[string]ed25519.PublicKey)
	}
	p.probed[relayURL] = info.Key
	p.mu.Unlock()
	return RelayInfo{Fingerprint: info.Fingerprint, Registration: info.Registration}, nil
}

func (p *chatProfile) key(relayURL string) ed25519.PublicKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probed[relayURL]
}

func (p *chatProfile) NameAvailable(ctx context.Context, relayURL, name string) (bool, error) {
	return p.p.NameAvailable(ctx, relayURL, p.key(relayURL), name)
}

func (p *chatProfile) CreateWith(ctx context.Context, req CreateRequest) (Backend, error) {
	cp := p.p
	cp.Invite, cp.RelayKey = req.Invite, p.key(req.RelayURL)
	c, err := cp.Create(ctx, req.Name, req.Passphrase, req.RelayURL)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// RecoverWith is `pfschat recover` from onboarding: Profile.Recover pinned to the probed
// relay key.
func (p *chatProfile) RecoverWith(ctx context.Context, req RecoverRequest) (Backend, error) {
	cp := p.p
	cp.RelayKey = p.key(req.RelayURL)
	c, err := cp.Recover(ctx, req.Name, req.Code, req.Passphrase, req.RelayURL)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ProfileName reads the identity's name without the passphrase (it is public).
func (p *chatProfile) ProfileName() (string, string) {
	return p.p.IdentityName(context.Background()), p.p.Dir
}

func (p *chatProfile) Open(ctx context.Context, passphrase []byte) (Backend, error) {
	c, err := p.p.Open(ctx, passphrase)
	if errors.Is(err, chat.ErrWrongPassphrase) {
		return nil, fmt.Errorf("%w: %w", ErrWrongPassphrase, err)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

var _ Backend = (*chat.Controller)(nil)
var _ KeyChangeInspector = (*chat.Controller)(nil)
var _ ReadThroughMarker = (*chat.Controller)(nil)
var _ UnreadHistorian = (*chat.Controller)(nil)
var _ identityReporter = (*chat.Controller)(nil)
var _ Onboarder = (*chatProfile)(nil)
var _ ProfileNamer = (*chatProfile)(nil)
