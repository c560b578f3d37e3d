package ui

import "context"

// Onboarder is implemented by profiles that can reach a relay before an identity exists
// (NewChatProfile's does). Onboarding then shows the relay's key fingerprint, checks the
// name while it is typed, asks for an invite code when the relay registers by
// invitation, and creates the identity pinned to the relay key it showed.
type Onboarder interface {
	// ProbeRelay connects to the relay without an identity.
	ProbeRelay(ctx context.Context, relayURL string) (RelayInfo, error)
	// NameAvailable reports whether name is free on the probed relay.
	NameAvailable(ctx context.Context, relayURL, name string) (bool, error)
	// CreateWith is Profile.Create with an invite code, pinned to the probed key.
	CreateWith(ctx context.Context, req CreateRequest) (Backend, error)
}

// RelayInfo is what onboarding shows about a relay.
type RelayInfo struct {
	Fingerprint  string // of the key the relay proved it holds
	Registration string // "open", "invite", "closed", or "" when the relay does not say
}

// CreateRequest is what onboarding collected.
type CreateRequest struct {
	Name       string
	Passphrase []byte
	RelayURL   string
	Invite     string
}

// ProfileNamer is implemented by profiles that know whose they are before they are
// unlocked: the unlock screen names the profile.
type ProfileNamer interface {
	// ProfileName is the identity's name ("" when unknown) and where the profile lives.
	ProfileName() (name, where string)
}

// identityReporter is a backend that can show the user's own key fingerprint and the
// relay's (*chat.Controller is one): the end of onboarding and /whoami show them.
type identityReporter interface {
	Fingerprint() string
	RelayFingerprint() string
}
