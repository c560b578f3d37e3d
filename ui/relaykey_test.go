package ui

import (
	"strings"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// When the relay presents a key other than the pinned one, the UI opens anyway and
// shows a banner with both fingerprints and what to do; /repin shows both again in a
// confirmation, and confirming re-pins and brings the connection up.
func TestRelayKeyMismatchBannerAndRepin(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice", chattest.StayUp) // as the UI opens it
	alice.Close()
	rot := r.ReplaceKeyCompromised(t)
	oldFP, newFP := ratchet.Fingerprint(rot.Old), ratchet.Fingerprint(rot.New)

	p := alice.Profile
	p.Prefs.Dial = func(cfg client.Config) chat.RelayClient {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
		return client.New(cfg)
	}
	tm, fr := startUI(t, Options{Profile: NewChatProfile(p), Passphrase: append([]byte(nil), chattest.Passphrase...)}, 140, 30) // the UI wipes it
	banner := fr.WaitText(t, "The relay's key changed", "/repin", "⚠ relay key changed")
	if !strings.Contains(banner, oldFP) || !strings.Contains(banner, newFP) {
		t.Fatalf("the banner does not show both fingerprints (%s, %s):\n%s", oldFP, newFP, banner)
	}

	// Saying no changes nothing.
	tm.Type("/repin")
	press(tm, "enter")
	fr.WaitText(t, "Re-pin the relay key", "old (pinned):  "+oldFP, "new (relay):   "+newFP)
	press(tm, "n")
	fr.WaitFor(t, "the dialog closed, the banner still there", func(s string) bool {
		return !strings.Contains(s, "Re-pin the relay key") && strings.Contains(s, "The relay's key changed")
	})

	tm.Type("/repin")
	press(tm, "enter")
	fr.WaitText(t, "Re-pin the relay key")
	press(tm, "y")
	fr.WaitFor(t, "online under the new pin, the banner gone", func(s string) bool {
		return strings.Contains(s, "relay connected") && !strings.Contains(s, "The relay's key changed")
	})
	quitUI(t, tm)

	// The pin is stored: the next start goes online with the new key.
	alice.Reopen()
	if got := pinnedFP(t, alice); got != newFP {
		t.Fatalf("pinned %s after the re-pin, want %s", got, newFP)
	}
}

// /repin with nothing to re-pin says so, neutrally.
func TestRepinWithoutMismatch(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	tm, fr := startUI(t, Options{Backend: b}, 100, 30)
	fr.WaitText(t, "No conversation yet")
	tm.Type("/repin")
	press(tm, "enter")
	fr.WaitText(t, "nothing to re-pin")
}

func pinnedFP(t *testing.T, u *chattest.User) string {
	t.Helper()
	k, _, err := u.PinnedRelayKey(t.Context())
	chattest.Must(t, err)
	return ratchet.Fingerprint(k)
}

// The banner at 40×12 shrinks to one line and the screen keeps its size.
func TestRelayKeyBannerSmallTerminal(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	_, fr := startUI(t, Options{Backend: b}, 40, 12)
	fr.WaitText(t, "No conversation yet")
	b.events <- chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: chat.Reconnecting,
		Err: &chat.RelayKeyChangedError{URL: "wss://relay.example", Pinned: "8313 1686 323a 22c1 1a6e", Presented: "153c 2f20 4a6a cd89 d316"}}}
	f := fr.WaitText(t, "⚠ relay key changed — /repin", "⚠ relay key")
	if lines := strings.Split(f, "\n"); len(lines) > 12 {
		t.Fatalf("the screen grew to %d lines:\n%s", len(lines), f)
	}
}
