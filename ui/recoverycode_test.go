package ui

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// bobRecovers opens alice's UI on bob after a message from him, then has bob recover
// his name with a new key on a new profile and write text from it. It returns bob's
// card ID from before.
func bobRecovers(t *testing.T, text string) (alice *chattest.User, bob2 *chattest.User, oldCard string, tm *teatest.TestModel, fr *chattest.Frames) {
	t.Helper()
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	chattest.AddContact(t, bob, "alice")
	chattest.Send(t, bob, alice, "from the old phone")
	oldCard = bob.Card().ID()
	code := bob.TakeRecoveryCode()
	bob.Close()

	tm, fr = startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "from the old phone")

	p := chattest.NewProfile(t, "bob-new")
	c, err := p.Recover(ctx, "bob", code, chattest.Passphrase, r.URL)
	chattest.Must(t, err)
	bob2 = &chattest.User{Controller: c, Name: "bob", Profile: p, Passphrase: chattest.Passphrase}
	t.Cleanup(func() { bob2.Close() })
	chattest.AddContact(t, bob2, "alice")
	if _, err := bob2.Send(ctx, "alice", text); err != nil {
		t.Fatal(err)
	}
	return alice, bob2, oldCard, tm, fr
}

// When a contact recovers their name with a new identity key, the conversation shows
// "NAME's safety number changed" in place, between the old key's messages and the new
// key's (which wait behind the key-change warning), and it stays after /accept.
func TestSafetyNumberChangedInline(t *testing.T) {
	ctx := t.Context()
	alice, bob2, _, tm, fr := bobRecovers(t, "from the new phone")
	frame := fr.WaitText(t, "⚠ bob's safety number changed", "new, not yet accepted identity key")
	old, changed := strings.Index(frame, "from the old phone"), strings.Index(frame, "bob's safety number changed")
	if old < 0 || changed < old {
		t.Fatalf("the change is not shown after the old key's message:\n%s", frame)
	}
	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitText(t, "Identity key changed: bob", "new safety number:") // "a" counts once the number is on screen
	tm.Type("a")
	fr.WaitFor(t, "the new message shown, the change still marked", func(s string) bool {
		return strings.Contains(s, "from the new phone") && strings.Contains(s, "bob's safety number changed")
	})
	if ct, err := alice.Contact(ctx, "bob"); err != nil || ct.KeyChanged || ct.CardID != bob2.Card().ID() {
		t.Fatalf("after accept: %+v %v", ct, err)
	}
	quitUI(t, tm)
}

// A key change the user does not believe is rejected in the same dialog ("r"): the
// warning goes, the trusted key stays, and the new key's message stays marked. /accept
// opens the rejected key again, which may be accepted after all (and not rejected twice).
func TestRejectKeyInTheDialog(t *testing.T) {
	ctx := t.Context()
	alice, _, trusted, tm, fr := bobRecovers(t, "trust me")
	fr.WaitText(t, "⚠ bob's safety number changed")
	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitText(t, "Identity key changed: bob", "reject it, keep the trusted one")
	tm.Type("r")
	fr.WaitText(t, "kept the key you trusted for bob")
	if ct, err := alice.Contact(ctx, "bob"); err != nil || ct.KeyChanged || ct.CardID != trusted {
		t.Fatalf("after reject: %+v %v (want card %.12s)", ct, err, trusted)
	}
	fr.WaitText(t, "bob's new, not yet accepted identity key") // the message stays held

	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitFor(t, "the rejected key's dialog", func(s string) bool {
		return strings.Contains(s, "You rejected this new identity key of bob's") &&
			strings.Contains(s, "accept it after all") && !strings.Contains(s, "reject it, keep")
	})
	tm.Type("r") // not offered: nothing happens
	tm.Type("a")
	fr.WaitFor(t, "the rejected key accepted, its message shown", func(s string) bool {
		return strings.Contains(s, "accepted bob's new key") && strings.Contains(s, "trust me")
	})
	if ct, err := alice.Contact(ctx, "bob"); err != nil || ct.KeyChanged || ct.CardID == trusted {
		t.Fatalf("after accepting the rejected key: %+v %v (want a card other than %.12s)", ct, err, trusted)
	}
	quitUI(t, tm)
}

// Onboarding with a name that is taken offers to recover it: ctrl+r asks for the
// recovery code (a malformed or mistyped code is refused with a sentence before
// anything is sent; a code the relay refuses sends the user back to the code), then the
// passphrase twice; the relay puts the new card in place of the old one, the done
// screen says so, and the NEW recovery code is shown once, as after a creation.
func TestOnboardingRecoversTakenName(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := newUser(t, r, "alice")
	oldCard := alice.Card().ID()
	code := alice.TakeRecoveryCode()
	if code == "" {
		t.Fatal("no recovery code at creation")
	}

	tm, fr := startUI(t, Options{Profile: newChatProfile(t.TempDir(), r.URL, nil)}, 120, 30)
	fr.WaitText(t, "relay:")
	press(tm, "enter")
	fr.WaitText(t, "name:")
	tm.Type("alice")
	fr.WaitText(t, "“alice” is taken", "ctrl+r")
	press(tm, "enter")
	fr.WaitFor(t, "the taken name and the offer to recover it", func(s string) bool {
		flat := strings.Join(strings.Fields(s), " ")
		return strings.Contains(flat, "“alice” is taken on this relay") && strings.Contains(flat, "press ctrl+r to recover it with your recovery code")
	})
	press(tm, "ctrl+r")
	fr.WaitText(t, "Recover “alice” with your recovery code", "recovery code:")

	clearInput := func(n int) {
		for range n {
			press(tm, "backspace")
		}
	}
	tm.Type("1234")
	press(tm, "enter")
	fr.WaitText(t, "this is not a recovery code")
	clearInput(4)
	// One symbol changed for another symbol of the code: well-formed, bad checksum.
	typo := []byte(code)
	for i := range len(code) {
		if code[i] != typo[0] && code[i] != '-' {
			typo[0] = code[i]
			break
		}
	}
	tm.Type(string(typo))
	press(tm, "enter")
	fr.WaitText(t, "does not check out")
	clearInput(len(typo))

	// A well-formed code that is not alice's: the relay refuses it, nothing changes.
	tm.Type(newRecoveryCode(t))
	press(tm, "enter")
	fr.WaitText(t, "passphrase:")
	typePassphraseTwice(t, tm, fr, "correct horse battery")
	fr.WaitText(t, "the relay refused this recovery code")
	clearInput(len(code))

	tm.Type(code)
	// Typed, the code is masked as a passphrase is: it takes the name for whoever
	// reads it off the screen.
	typed := fr.WaitText(t, "recovery code:", strings.Repeat("•", len(code)))
	if strings.Contains(typed, code[:9]) {
		t.Fatalf("the recovery code shows as it is typed:\n%s", typed)
	}
	press(tm, "enter")
	fr.WaitText(t, "passphrase:")
	typePassphraseTwice(t, tm, fr, "correct horse battery")
	done := fr.WaitText(t, "You are alice.", "your key fingerprint", "Recovered with your recovery code")
	if strings.Contains(done, code) {
		t.Fatal("the spent recovery code is still on screen")
	}
	press(tm, "enter")
	shown := fr.WaitText(t, "Your recovery code", "I wrote it down")
	m := regexp.MustCompile(`[0-9A-Z]{4}(?:-[0-9A-Z]{4}){7}`).FindString(shown)
	if _, err := relay.ParseRecoveryCode(m); err != nil || m == code {
		t.Fatalf("the dialog shows no new recovery code (%q, old %q: %v):\n%s", m, code, err, shown)
	}
	press(tm, "enter")
	fr.WaitText(t, "relay connected")

	// On the relay: alice's card is a new one, the old one is kept as replaced.
	anon := client.New(client.Config{URL: r.URL, PinnedRelayKey: r.Server.RelayKey()})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	cur, err := anon.LookupCard(ctx, "alice")
	if err != nil || cur.ID() == oldCard {
		t.Fatalf("alice's card after the recovery: %v", err)
	}
	if _, replaced, err := anon.LookupCardByID(ctx, oldCard); err != nil || !replaced {
		t.Fatalf("the old card after the recovery: replaced %v, %v", replaced, err)
	}
	quitUI(t, tm)
}

func newRecoveryCode(t *testing.T) string {
	t.Helper()
	c, err := relay.NewRecoveryCode(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// Messages sent to the user's previous identity key are one line per conversation,
// counted in place (chat/previouskey.go), not "could not be decrypted … ask NAME to send
// it again" per message.
func TestPreviousKeySummaryLine(t *testing.T) {
	be := newMemBackend("alice", func() time.Time { return fixedNow })
	be.addContact(chat.Contact{Name: "bob"})
	be.addMessage(chat.Message{Contact: "bob", Text: "before", SentAt: fixedNow.Add(-time.Minute)})
	_, fr := startUI(t, Options{Backend: be, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "before")
	m := be.addMessage(chat.Message{Contact: "bob", State: chat.UndecryptableState,
		Reason: "1 message sent to your previous key could not be read", SentAt: fixedNow})
	be.events <- chat.Event{Kind: chat.Undecryptable, Contact: "bob", Message: &m}
	fr.WaitText(t, "⚠ 1 message sent to your previous key could not be read")
	m.Reason = "3 messages sent to your previous key could not be read"
	be.events <- chat.Event{Kind: chat.DeliveryChanged, Contact: "bob", Message: &m}
	frame := fr.WaitText(t, "⚠ 3 messages sent to your previous key could not be read")
	if strings.Contains(frame, "1 message sent") || strings.Contains(frame, "ask bob to send it again") {
		t.Fatalf("the count was not updated in place:\n%s", frame)
	}
}
