package chat

import (
	"pfschat/ratchet"
	"pfschat/storage"
)

// Hooks for chat's external tests (package chat_test), which use chat/chattest; they
// reach past the exported API only here, and only where a test checks what the API
// does not show (the store, the relay connection, the pinned relay key).

var (
	StoredCard    = (*Controller).storedCard
	FetchCard     = (*Controller).fetchCard
	RelayKeyNow   = (*Controller).relayKeyNow
	RelayClientOf = (*Controller).relayClient
)

// StoreOf is the controller's client store.
func StoreOf(c *Controller) *storage.Client { return c.store }

// IdentityKeyOf is the controller's identity key.
func IdentityKeyOf(c *Controller) *ratchet.IdentityKey { return c.id }

// The meta keys under which a profile's store remembers its relay.
const (
	MetaRelayKey = metaRelayKey
	MetaRelayURL = metaRelayURL
)
