package ui

import (
	"context"

	"pfschat/chat"
)

// Backend is everything the UI needs from the chat controller. *chat.Controller
// satisfies it; the UI never reaches past it into storage, relay or ratchet, so a real
// controller can drive the UI in tests.
type Backend interface {
	Me() string
	Contacts(ctx context.Context) ([]chat.Contact, error)
	AddContact(ctx context.Context, name string) (chat.Contact, error)
	// Send returns the pending message at once (already committed to the outbox).
	Send(ctx context.Context, contact, text string) (chat.Message, error)
	// History returns up to n messages older than the message ID before (0 = newest),
	// newest first.
	History(ctx context.Context, contact string, before int64, n int) ([]chat.Message, error)
	MarkRead(ctx context.Context, contact string) error
	SafetyNumber(ctx context.Context, contact string) (chat.SafetyNumber, error)
	Verify(ctx context.Context, contact string) error
	AcceptKey(ctx context.Context, contact string) error
	RejectKey(ctx context.Context, contact string) error
	RotateKeys(ctx context.Context, n int) error
	ResetSession(ctx context.Context, contact string) error
	Events() <-chan chat.Event
	Close() error
}

// KeyChangeInspector is implemented by backends that can show both safety numbers of a
// contact whose identity key changed: the trusted (old) one and the pending (new) one.
// The key-changed dialog uses it when present (*chat.Controller implements it); without
// it the dialog shows SafetyNumber as the new number only.
type KeyChangeInspector interface {
	TrustedSafetyNumber(ctx context.Context, contact string) (chat.SafetyNumber, error)
	PendingSafetyNumber(ctx context.Context, contact string) (chat.SafetyNumber, error)
}

// GapReporter is implemented by backends that know which of a contact's messages have
// not arrived (*chat.Controller does): the conversation shows a line in their place.
type GapReporter interface {
	Gaps(ctx context.Context, contact string) ([]chat.Gap, error)
}

// UnreadHistorian is implemented by backends that can read a conversation from its
// first unread message in one call (*chat.Controller does): a conversation opened with
// thousands of unread messages starts there rather than paging back to it.
// HistoryFromUnread returns, newest first, the messages from the first of the unread
// newest incoming messages to the newest, and up to older messages before those; more
// reports whether still older ones exist.
type UnreadHistorian interface {
	HistoryFromUnread(ctx context.Context, contact string, unread, older int) (msgs []chat.Message, more bool, err error)
}

// ReadThroughMarker is implemented by backends that can mark a conversation read up to
// a message (*chat.Controller does): the main screen marks read only what has been in
// view. Without it a conversation is marked read once its newest message is in view.
type ReadThroughMarker interface {
	MarkReadThrough(ctx context.Context, contact string, id int64) error
}

// Profile opens or creates the local profile behind the UI: onboarding and unlock talk to
// it and receive the Backend the main screen runs on.
type Profile interface {
	// Exists reports whether a profile has been created (unlock) or not (onboarding).
	Exists() bool
	// Create makes an identity, registers it with the relay and returns the backend.
	Create(ctx context.Context, name string, passphrase []byte, relayURL string) (Backend, error)
	// Open unlocks the profile; a wrong passphrase returns an error matching
	// ErrWrongPassphrase with errors.Is.
	Open(ctx context.Context, passphrase []byte) (Backend, error)
	// DefaultRelayURL is offered in onboarding.
	DefaultRelayURL() string
}
