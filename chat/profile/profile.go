// Package profile holds the facts every part of the pfschat binary must agree on about
// where a profile lives and how it is chosen and unlocked: the data and state
// directories (XDG rules), the passphrase sources, the global flags and the default
// relay. Each is written here once; the UI, the headless commands, the demo, the relay
// command and package chat all ask this package.
//
// It lives under chat/ rather than in the command layer (chat/cli) because package chat
// needs the default relay URL itself, and a library must not import its command layer.
// It imports nothing of the project, so every package, the relay command included, may
// import it.
package profile

import (
	"slices"
	"strings"
)

// Environment variables read by pfschat.
const (
	// EnvHome, when set, is the profile directory for the UI and every headless command
	// (a --home flag still wins).
	EnvHome = "PFSCHAT_HOME"
	// EnvPassphrase gives the passphrase to scripts and devices (--passphrase-file wins).
	EnvPassphrase = "PFSCHAT_PASSPHRASE"
	// EnvRelay is the relay URL when --relay is not given (before the one the profile
	// remembers).
	EnvRelay = "PFSCHAT_RELAY"
	// EnvInvite is the invite code of `pfschat init` when --invite is not given: a
	// flag's value is visible to every user of the machine (ps), a variable is not.
	EnvInvite = "PFSCHAT_INVITE"
)

// DefaultRelayAddr is where `pfschat relay` listens, and so where a new profile looks
// for its relay, unless told otherwise.
const DefaultRelayAddr = "127.0.0.1:7878"

// DefaultRelayURL is the relay a profile connects to unless --relay, $PFSCHAT_RELAY or
// the profile itself names another.
const DefaultRelayURL = "ws://" + DefaultRelayAddr

// secretEnv are the variables that carry a secret into pfschat.
var secretEnv = []string{EnvPassphrase, EnvNewPassphrase, EnvInvite}

// EnvWithoutSecrets is env (os.Environ's form) without the variables that carry a
// secret: the environment for a program pfschat starts (a file opener, and whatever
// that starts in turn), which has no use for the passphrase and may log or report its
// environment.
func EnvWithoutSecrets(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(secretEnv, name) {
			out = append(out, kv)
		}
	}
	return out
}
