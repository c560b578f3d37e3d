package ui

import (
	"log/slog"

	"pfschat/chat"
)

// newChatProfile is a profile in home as the command layer opens it for the UI: the UI
// starts even when the relay is down.
func newChatProfile(home, relayURL string, log *slog.Logger) Profile {
	return NewChatProfile(chat.Profile{Dir: home, RelayURL: relayURL, Prefs: chat.Preferences{AllowOffline: true, StayUp: true, Logger: log}})
}
