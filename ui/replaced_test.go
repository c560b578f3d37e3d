package ui

import (
	"testing"

	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// TestUnlockReplacedIdentitySaysWhatToDo: a profile whose name was recovered on another
// device cannot log in any more; unlocking it says so and what to do, as the CLI does,
// not only what happened.
func TestUnlockReplacedIdentitySaysWhatToDo(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice")
	code := alice.TakeRecoveryCode()
	chattest.Must(t, alice.Close())
	elsewhere := chattest.NewProfile(t, "alice-elsewhere")
	c, err := elsewhere.Recover(t.Context(), "alice", code, chattest.Passphrase, r.URL)
	chattest.Must(t, err)
	t.Cleanup(func() { c.Close() })

	p := alice.Profile
	p.Prefs.AllowOffline, p.Prefs.StayUp = true, true
	tm, fr := startUI(t, Options{Profile: NewChatProfile(p), Passphrase: chattest.Passphrase}, 100, 30)
	fr.WaitText(t, "could not open your profile", "use that one", "recover NAME")
	quitUI(t, tm)
}
