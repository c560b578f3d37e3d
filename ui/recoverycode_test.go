package ui

import (
	"strings"
	"testing"

	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// When a contact recovers their name with a new identity key, the conversation shows
// "NAME's safety number changed" in place, between the old key's messages and the new
// key's (which wait behind the key-change warning), and it stays after /accept.
func TestSafetyNumberChangedInline(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	chattest.AddContact(t, bob, "alice")
	chattest.Send(t, bob, alice, "from the old phone")
	code := bob.TakeRecoveryCode()
	bob.Close()

	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "from the old phone")

	p := chattest.NewProfile(t, "bob-new")
	c, err := p.Recover(ctx, "bob", code, chattest.Passphrase, r.URL)
	chattest.Must(t, err)
	bob2 := &chattest.User{Controller: c, Name: "bob", Profile: p, Passphrase: chattest.Passphrase}
	t.Cleanup(func() { bob2.Close() })
	chattest.AddContact(t, bob2, "alice")
	if _, err := bob2.Send(ctx, "alice", "from the new phone"); err != nil {
		t.Fatal(err)
	}
	frame := fr.WaitText(t, "⚠ bob's safety number changed", "new, not yet accepted identity key")
	old, changed := strings.Index(frame, "from the old phone"), strings.Index(frame, "bob's safety number changed")
	if old < 0 || changed < old {
		t.Fatalf("the change is not shown after the old key's message:\n%s", frame)
	}
	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitText(t, "Identity key changed: bob")
	tm.Type("a")
	fr.WaitFor(t, "the new message shown, the change still marked", func(s string) bool {
		return strings.Contains(s, "from the new phone") && strings.Contains(s, "bob's safety number changed")
	})
	if ct, err := alice.Contact(ctx, "bob"); err != nil || ct.KeyChanged || ct.CardID != bob2.Card().ID() {
		t.Fatalf("after accept: %+v %v", ct, err)
	}
	quitUI(t, tm)
}

// Onboarding with a name that is taken points to recovery.
func TestOnboardingTakenNamePointsToRecovery(t *testing.T) {
	r := relaytest.Start(t)
	newUser(t, r, "alice")
	tm, fr := startUI(t, Options{Profile: newChatProfile(t.TempDir(), r.URL, nil)}, 120, 30)
	fr.WaitText(t, "relay:")
	press(tm, "enter")
	fr.WaitText(t, "name:")
	tm.Type("alice")
	press(tm, "enter")
	fr.WaitFor(t, "the taken name and the way to recover it", func(s string) bool {
		flat := strings.Join(strings.Fields(s), " ")
		return strings.Contains(flat, "is taken") && strings.Contains(flat, "recovery code") && strings.Contains(flat, "pfschat recover alice")
	})
}
