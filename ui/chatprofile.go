package ui

import (
	"context"
	"errors"
	"fmt"

	"pfschat/chat"
)

// chatProfile is the Profile of a real pfschat home directory, backed by chat.Profile.
type chatProfile struct {
	p chat.Profile
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
