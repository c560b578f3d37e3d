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

// Recoverer is implemented by profiles that can take a name back on a new machine with
// its recovery code (NewChatProfile's can, through chat's Profile.Recover — what
// `pfschat recover` does). Onboarding offers it when the typed name is taken.
type Recoverer interface {
	// RecoverWith replaces the name's card by a new identity's, authorised by the
	// recovery code, pinned to the probed relay key; the backend holds the new code.
	RecoverWith(ctx context.Context, req RecoverRequest) (Backend, error)
}

// RecoverRequest is what onboarding collected for a recovery.
type RecoverRequest struct {
	Name       string
	Code       string // as typed; the profile parses it (relay.ParseRecoveryCode)
	Passphrase []byte
	RelayURL   string
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
