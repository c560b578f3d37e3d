package ratchet

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of them
// (test with errors.Is); the wrapping message names the field or step that failed.
var (
	// ErrMalformed: the input does not have the expected structure or length.
	ErrMalformed = errors.New("ratchet: malformed input")
	// ErrTrailingBytes: a decoder found bytes after a complete value.
	ErrTrailingBytes = errors.New("ratchet: trailing bytes")
	// ErrOversize: a length field or value exceeds its documented limit.
	ErrOversize = errors.New("ratchet: field too large")
	// ErrUnknownVersion: a version (format, card, message) this code does not speak.
	ErrUnknownVersion = errors.New("ratchet: unknown version")
	// ErrBadSignature: a card, relay or prekey signature does not verify.
	ErrBadSignature = errors.New("ratchet: bad signature")
	// ErrCardIDMismatch: a card's ID does not match the expected one.
	ErrCardIDMismatch = errors.New("ratchet: card ID mismatch")
	// ErrInvalidName: a user name outside [a-z0-9._-]{1,32}.
	ErrInvalidName = errors.New("ratchet: invalid name (use 1-32 of a-z 0-9 . _ -)")
	// ErrWrongCard: a bundle, an initial message or one's own card belongs to another
	// card. (A prekey checked against another card fails with ErrBadSignature.)
	ErrWrongCard = errors.New("ratchet: belongs to another card")
	// ErrMissingPreKey: a bundle lacks a mandatory prekey, or the responder lacks
	// the private half a message names.
	ErrMissingPreKey = errors.New("ratchet: missing prekey")
	// ErrDecrypt: authentication failed (tampered, truncated or foreign message).
	ErrDecrypt = errors.New("ratchet: decryption failed")
	// ErrReplay: the message key was already used or is gone (forward secrecy).
	ErrReplay = errors.New("ratchet: message already decrypted or its key is gone")
	// ErrTooManySkipped: the message is further ahead than MaxSkip.
	ErrTooManySkipped = errors.New("ratchet: too many skipped messages")
	// ErrPlaintextTooLarge: plaintext longer than MaxPlaintext.
	ErrPlaintextTooLarge = errors.New("ratchet: plaintext too large")
	// ErrNotInitial: AcceptSession was given a message that is not an initial message.
	ErrNotInitial = errors.New("ratchet: not an initial message")
	// ErrWrongSession: an initial message that belongs to another session (the
	// caller should AcceptSession it), or to the other direction.
	ErrWrongSession = errors.New("ratchet: message belongs to another session")
	// ErrNoSendingChain: the session cannot send yet (a responder state that never
	// received a message). Only reachable with hand-built states.
	ErrNoSendingChain = errors.New("ratchet: session cannot send yet")
)

// errf wraps a sentinel with a detail message: "detail: sentinel".
func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}
