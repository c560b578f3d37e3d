//go:build !chatlanded

package ui

import (
	"context"
	"errors"
	"log/slog"
)

type chatProfile struct{ relayURL string }

func newChatProfile(home, relayURL string, log *slog.Logger) *chatProfile {
	return &chatProfile{relayURL: relayURL}
}

func (p *chatProfile) DefaultRelayURL() string { return p.relayURL }
func (p *chatProfile) Exists() bool            { return false }
func (p *chatProfile) Create(ctx context.Context, name string, passphrase []byte, relayURL string) (Backend, error) {
	return nil, errors.New("not wired to chat yet")
}
func (p *chatProfile) Open(ctx context.Context, passphrase []byte) (Backend, error) {
	return nil, errors.New("not wired to chat yet")
}
