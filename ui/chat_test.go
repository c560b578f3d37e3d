package ui

import (
	"context"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// These tests drive the UI with real chat controllers, real SQLite stores in temporary
// directories and a real relay over a loopback WebSocket.

// newUser creates name's profile, registered with the relay (closed when the test
// ends). The UI gets the controller itself as its backend (user.Controller): the UI
// closes its backend when it quits.
func newUser(t *testing.T, r *relaytest.Relay, name string) *chattest.User {
	t.Helper()
	return chattest.NewUser(t, r, name, chattest.AllowOffline)
}

// contactsOnRelay is alice and bob on r, each the other's contact.
func contactsOnRelay(t *testing.T, r *relaytest.Relay) (alice, bob *chattest.User) {
	t.Helper()
	alice, bob = newUser(t, r, "alice"), newUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice")
	return alice, bob
}

// quitUI leaves through ctrl+c (which closes the backend) and waits for the program.
func quitUI(t *testing.T, tm *teatest.TestModel) {
	t.Helper()
	press(tm, "ctrl+c")
	tm.WaitFinished(t, teatest.WithFinalTimeout(15*time.Second))
}

func TestOnboardingThenUnlock(t *testing.T) {
	r := relaytest.Start(t)
	newUser(t, r, "bob") // a taken name
	home := t.TempDir()
	profile := newChatProfile(home, r.URL, nil)
	relayFP := ratchet.Fingerprint(r.Server.RelayKey())

	tm, fr := startUI(t, Options{Profile: profile}, 100, 30)
	fr.WaitText(t, "Let's create your identity", "relay:", r.URL)
	press(tm, "enter")
	// The relay's key is shown as soon as it answered, then the name is asked.
	fr.WaitText(t, "relay key "+relayFP, "name:")
	tm.Type("al!ce") // a character no name has is refused with the rule
	press(tm, "enter")
	fr.WaitText(t, "lower-case letters")
	for range 5 {
		press(tm, "backspace")
	}
	// Enter right after typing a taken name: not lost, it waits for the check and says
	// why. Capitals are lower-cased as they are typed: "Bob" is bob.
	tm.Type("Bob")
	press(tm, "enter")
	fr.WaitText(t, "“bob” is taken on this relay — pick another name")
	for range 3 {
		press(tm, "backspace")
	}
	tm.Type("ALice")
	fr.WaitText(t, "✓ alice is free") // checked while typing
	press(tm, "enter")
	fr.WaitText(t, "passphrase:")
	tm.Type("short")
	press(tm, "enter")
	fr.WaitText(t, "at least 8 characters")
	for range 5 {
		press(tm, "backspace")
	}
	typePassphraseTwice(t, tm, fr, "correct horse battery")
	// The end of onboarding: who you are, your key's fingerprint and the relay's.
	done := fr.WaitText(t, "You are alice.", "your key fingerprint", "relay key fingerprint "+relayFP)
	if strings.Contains(done, "correct horse") {
		t.Fatal("passphrase visible on screen")
	}
	press(tm, "enter")
	// The new account's recovery code, shown once; Esc does not close it, Enter does.
	shown := fr.WaitText(t, "Your recovery code", "I wrote it down")
	m := regexp.MustCompile(`[0-9A-Z]{4}(?:-[0-9A-Z]{4}){7}`).FindString(shown)
	if _, err := relay.ParseRecoveryCode(m); err != nil {
		t.Fatalf("the dialog shows no valid recovery code (%q: %v):\n%s", m, err, shown)
	}
	press(tm, "esc")
	press(tm, "enter")
	main := fr.WaitFor(t, "the main screen without the code", func(s string) bool {
		return strings.Contains(s, "relay connected") && strings.Contains(s, "No conversation yet") && !strings.Contains(s, m)
	})
	if strings.Contains(main, "correct horse") {
		t.Fatal("passphrase visible on screen")
	}
	tm.Type("/whoami")
	press(tm, "enter")
	fr.WaitText(t, "signed in as alice · your key ", "relay key "+relayFP)
	quitUI(t, tm)

	// Second run: the profile exists, so the UI asks to unlock it.
	tm2, fr2 := startUI(t, Options{Profile: newChatProfile(home, r.URL, nil)}, 100, 30)
	fr2.WaitText(t, "Unlock alice's profile", "in "+home)
	tm2.Type("wrong passphrase")
	press(tm2, "enter")
	fr2.WaitText(t, "wrong passphrase — try again")
	tm2.Type("correct horse battery")
	press(tm2, "enter")
	fr2.WaitText(t, "relay connected")
	quitUI(t, tm2)

	// A passphrase given up front (PFSCHAT_PASSPHRASE, --passphrase-file) skips the
	// prompt; a wrong one lands on the prompt with the error.
	tm3, fr3 := startUI(t, Options{Profile: newChatProfile(home, "", nil), Passphrase: []byte("nope")}, 100, 30)
	fr3.WaitText(t, "Unlock alice's profile", "wrong passphrase")
	quitUI(t, tm3)
	tm4, fr4 := startUI(t, Options{Profile: newChatProfile(home, "", nil), Passphrase: []byte("correct horse battery")}, 100, 30)
	fr4.WaitText(t, "relay connected")
	quitUI(t, tm4)
}

// A relay that registers by invitation: onboarding asks for the code, says what it is
// when Enter comes with none, reports a wrong one and registers with a right one.
func TestOnboardingWithInvite(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Registration: server.RegistrationInvite})
	code, err := server.CreateInvite(t.Context(), r.Store, 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tm, fr := startUI(t, Options{Profile: newChatProfile(t.TempDir(), r.URL, nil)}, 100, 30)
	fr.WaitText(t, "relay:")
	press(tm, "enter")
	fr.WaitText(t, "name:")
	tm.Type("carol")
	press(tm, "enter")
	fr.WaitText(t, "invite:")
	press(tm, "enter")
	fr.WaitText(t, "this relay registers by invitation")
	tm.Type("not-a-code")
	press(tm, "enter")
	tm.Type("correct horse battery")
	press(tm, "enter")
	tm.Type("correct horse battery")
	press(tm, "enter")
	fr.WaitText(t, "could not create your identity", "invite")
	// The invite field has the focus again; the passphrases are kept.
	for range len("not-a-code") {
		press(tm, "backspace")
	}
	tm.Type(code)
	press(tm, "enter")
	press(tm, "enter")
	press(tm, "enter")
	fr.WaitText(t, "You are carol.")
	press(tm, "enter")
	fr.WaitText(t, "relay connected")
	quitUI(t, tm)
}

func TestTwoUsersTalk(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := contactsOnRelay(t, r)
	ta, fa := startUI(t, Options{Backend: alice.Controller, Bell: true}, 100, 30)
	tb, fb := startUI(t, Options{Backend: bob.Controller}, 100, 30)
	fa.WaitText(t, "relay connected", "bob")
	fb.WaitText(t, "relay connected", "alice")

	ta.Type("hello bob, this is end-to-end encrypted")
	press(ta, "enter")
	fb.WaitText(t, "hello bob, this is end-to-end encrypted")
	// Bob has the conversation open: alice's message turns delivered (and read).
	fa.WaitFor(t, "a delivered mark on alice's message", func(s string) bool {
		return lineWith(s, "hello bob").endsWith("✓✓")
	})

	tb.Type("hi alice")
	press(tb, "alt+enter") // a new line inside the same message
	tb.Type("second line")
	press(tb, "enter")
	fa.WaitText(t, "hi alice", "second line")
	fb.WaitFor(t, "a delivered mark on bob's message", func(s string) bool {
		return lineWith(s, "second line").endsWith("✓✓")
	})

	// /rotate publishes fresh prekeys; /reset (confirmed) drops the session and the next
	// message starts a new one that bob still reads.
	ta.Type("/rotate")
	press(ta, "enter")
	fa.WaitText(t, "prekeys rotated")
	ta.Type("/reset")
	press(ta, "enter")
	fa.WaitText(t, "Reset session", "Start a fresh encrypted session with bob")
	ta.Type("y")
	fa.WaitText(t, "session with bob reset")
	ta.Type("after the reset")
	press(ta, "enter")
	fb.WaitText(t, "after the reset")

	// A message from a stranger, in a conversation that is not open: carol is listed
	// under "Requests" (not among the contacts) with an unread count, and the bell rings.
	carol := newUser(t, r, "carol")
	chattest.AddContact(t, carol, "alice")
	if _, err := carol.Send(ctx, "alice", "are you there?"); err != nil {
		t.Fatal(err)
	}
	carolLine := func(s string) string {
		lines := strings.Split(s, "\n")
		for i := 1; i+1 < len(lines); i++ {
			if strings.HasPrefix(lines[i], " Requests ") {
				return lines[i+1]
			}
		}
		return ""
	}
	fa.WaitFor(t, "carol under Requests with 1 unread", func(s string) bool {
		l := carolLine(s)
		return strings.Contains(l, "carol") && strings.Contains(l, " 1 ")
	})
	teatest.WaitFor(t, ta.Output(), func(b []byte) bool { return strings.Contains(string(b), "\a") },
		teatest.WithDuration(10*time.Second))
	press(ta, "ctrl+down") // the request is listed below bob
	fa.WaitText(t, "are you there?", "message request")
	fa.WaitFor(t, "the unread count cleared", func(s string) bool {
		return !strings.Contains(carolLine(s), " 1 ")
	})
	quitUI(t, ta)
	quitUI(t, tb)
}

func TestVerifyFromBothSides(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := contactsOnRelay(t, r)
	ctx := t.Context()
	snA, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	snB, err := bob.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if snA.Digits() != snB.Digits() || len(strings.ReplaceAll(snA.Digits(), " ", "")) != 60 {
		t.Fatalf("safety numbers differ or are not 60 digits: %q vs %q", snA.Digits(), snB.Digits())
	}
	groups := strings.Fields(snA.Digits())

	for _, side := range []struct {
		c    *chat.Controller
		peer string
	}{{alice.Controller, "bob"}, {bob.Controller, "alice"}} {
		tm, fr := startUI(t, Options{Backend: side.c}, 100, 30)
		fr.WaitText(t, "not verified (/verify)")
		tm.Type("/verify")
		press(tm, "enter")
		// The dialog shows the 60 digits as 3 rows of 4 groups.
		fr.WaitText(t, "Verify "+side.peer, strings.Join(groups[0:4], "  "), strings.Join(groups[4:8], "  "), strings.Join(groups[8:12], "  "))
		tm.Type("v")
		fr.WaitText(t, side.peer+" is verified", "✔ verified")
		ct, err := side.c.Contact(ctx, side.peer)
		if err != nil || !ct.Verified {
			t.Fatalf("%s not verified in the store: %+v %v", side.peer, ct, err)
		}
		quitUI(t, tm)
	}
}

func TestKeyChangedFlow(t *testing.T) {
	r := relaytest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	alice := newUser(t, r, "alice")

	// Bob is a bare identity registered through the relay client, so the test can
	// replace his card with a new key, as a reinstall (or an attacker) would.
	oldKey, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(oldKey, "bob", "username", "test", time.Now().UTC().Truncate(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(client.Config{URL: r.URL})
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(ctx, card)
	anon.Close()
	if err != nil {
		t.Fatal(err)
	}
	chattest.AddContact(t, alice, "bob")

	tm, fr := startUI(t, Options{Backend: alice.Controller}, 100, 30)
	fr.WaitText(t, "bob", "not verified")

	newKey, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newCard, err := ratchet.NewCard(newKey, "bob", "username", "test", time.Now().UTC().Truncate(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	owner := client.New(client.Config{URL: r.URL, Identity: oldKey, Card: signed})
	if err := owner.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.ReplaceCard(ctx, newCard); err != nil {
		t.Fatal(err)
	}
	owner.Close()

	// Re-fetching bob's card notices the new key: a warning, no pop-up.
	tm.Type("/add bob")
	press(tm, "enter")
	fr.WaitFor(t, "the key change flagged and the add dialog closed", func(s string) bool {
		return strings.Contains(s, "⚠ key changed") && strings.Contains(s, "/accept to review") && !strings.Contains(s, "Add a contact")
	})

	// Sending is blocked: trying says so and keeps the text. No dialog opens under the
	// keys typed on after that Enter: it took the "a" of the next word as "accept".
	tm.Type("are you still bob?")
	press(tm, "enter")
	fr.WaitText(t, "sending is paused")
	tm.Type(" anyway, and again")
	if s := fr.WaitText(t, "are you still bob? anyway, and again", "⚠ key changed"); strings.Contains(s, "Identity key changed") {
		t.Fatalf("a send opened the key-change dialog under the keys typed on:\n%s", s)
	}
	if ct, err := alice.Contact(ctx, "bob"); err != nil || !ct.KeyChanged {
		t.Fatalf("keys typed after a refused send changed the key's state: %+v %v", ct, err)
	}

	// /accept opens the dialog with the old and the new number.
	press(tm, "ctrl+u") // clear the input the refused message waits in
	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitText(t, "Identity key changed: bob", "new safety number:")
	trusted, err := alice.TrustedSafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	pending, err := alice.PendingSafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	tg, pg := strings.Fields(trusted.Digits()), strings.Fields(pending.Digits())
	fr.WaitText(t, strings.Join(tg[0:4], "  "), strings.Join(pg[0:4], "  "))

	// Not now: the dialog closes at once, still blocked.
	press(tm, "esc")
	tm.Type("are you still bob?")
	press(tm, "enter")
	fr.WaitText(t, "are you still bob?", "sending is paused")

	// Accept: the warning goes, the contact is unverified under the new key.
	press(tm, "ctrl+u")
	tm.Type("/accept")
	press(tm, "enter")
	fr.WaitText(t, "Identity key changed: bob", "new safety number:")
	tm.Type("a")
	fr.WaitText(t, "accepted bob's new key")
	fr.WaitFor(t, "the warning gone", func(s string) bool { return !strings.Contains(s, "⚠ key changed") })
	ct, err := alice.Contact(ctx, "bob")
	if err != nil || ct.KeyChanged || ct.CardID != newCard.ID() {
		t.Fatalf("after accept: %+v %v (want card %s)", ct, err, newCard.ID())
	}
	quitUI(t, tm)
}

// line helpers for frame assertions.
type frameLine string

func lineWith(frame, text string) frameLine {
	for _, l := range strings.Split(frame, "\n") {
		if strings.Contains(l, text) {
			return frameLine(l)
		}
	}
	return ""
}

func (l frameLine) endsWith(s string) bool {
	return strings.HasSuffix(strings.TrimRight(string(l), " "), s)
}

func TestReconnectingStatusAndOutbox(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := contactsOnRelay(t, r) // receipts go only to contacts bob accepted
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "relay connected", "bob")
	// The session needs bob's prekey bundle from the relay: start it while online.
	tm.Type("first")
	press(tm, "enter")
	fr.WaitFor(t, "first delivered", func(s string) bool { return lineWith(s, "first").endsWith("✓✓") })

	r.Close()
	fr.WaitText(t, "reconnecting")
	// Sent while offline: committed to the outbox, shown as pending.
	tm.Type("written while the relay was down")
	press(tm, "enter")
	fr.WaitFor(t, "a pending mark", func(s string) bool {
		return lineWith(s, "written while the relay").endsWith("◷")
	})

	r.Restart(t)
	fr.WaitText(t, "relay connected")
	fr.WaitFor(t, "the outbox drained", func(s string) bool {
		l := lineWith(s, "written while the relay")
		return l.endsWith("✓") || l.endsWith("✓✓")
	})
	chattest.WaitReceived(t, bob, "alice", "written while the relay was down")
	got, err := bob.History(ctx, "alice", 0, 10)
	if err != nil || len(got) == 0 || got[0].Text != "written while the relay was down" {
		t.Fatalf("bob got %+v, %v", got, err)
	}
	quitUI(t, tm)
}
