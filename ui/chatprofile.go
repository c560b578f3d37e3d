package ui

import (
	"context"
	"errors"
	"log/slog"
)

// chatProfile is the Profile of a real pfschat home directory, backed by package chat.
type chatProfile struct {
	home, relayURL string
	log            *slog.Logger
}

func newChatProfile(home, relayURL string, log *slog.Logger) *chatProfile {
	return &chatProfile{home: home, relayURL: relayURL, log: log}
}

func (p *chatProfile) DefaultRelayURL() string { return p.relayURL }
func (p *chatProfile) Exists() bool            { return false }
func (p *chatProfile) Create(ctx context.Context, name string, passphrase []byte, relayURL string) (Backend, error) {
	return nil, errors.New("not wired to chat yet")
}
func (p *chatProfile) Open(ctx context.Context, passphrase []byte) (Backend, error) {
	return nil, errors.New("not wired to chat yet")
}
