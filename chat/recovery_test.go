package chat_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// A user who lost the identity key gets the name back on a new machine with the
// recovery code shown once at creation: typos are caught before anything is sent, a
// wrong code is refused, the right one replaces the card (a new code is made, the old
// one is spent), and the contact sees the ⚠ key change and confirms it before talking
// to the new key.
func TestRecoverIdentityWithCode(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	code := alice.TakeRecoveryCode()
	if len(code) != relay.RecoveryCodeLen {
		t.Fatalf("recovery code %q", code)
	}
	if again := alice.TakeRecoveryCode(); again != "" {
		t.Fatal("the recovery code was handed out twice")
	}
	chattest.AddContact(t, alice, "bob")
	chattest.Send(t, alice, bob, "before")
	alice.Close() // the device is lost: its profile is gone for good

	p := chattest.NewProfile(t, "alice-new-machine")
	typo := []byte(code)
	typo[0] ^= 1 // another symbol of the alphabet or a malformed one: caught locally
	if _, err := p.Recover(ctx, "alice", string(typo), chattest.Passphrase, r.URL); !errors.Is(err, relay.ErrRecoveryCodeChecksum) && !errors.Is(err, relay.ErrRecoveryCodeMalformed) {
		t.Fatalf("recovering with a typo: %v", err)
	}
	wrong, _ := relay.NewRecoveryCode(strings.NewReader(strings.Repeat("x", 16)))
	if _, err := p.Recover(ctx, "alice", wrong.String(), chattest.Passphrase, r.URL); !errors.Is(err, chat.ErrRecoveryFailed) {
		t.Fatalf("recovering with a wrong code: %v, want ErrRecoveryFailed", err)
	}
	if p.Exists() {
		t.Fatal("a refused recovery left a profile behind")
	}
	c, err := p.Recover(ctx, "alice", strings.ToLower(code), chattest.Passphrase, r.URL)
	if err != nil {
		t.Fatalf("recovering with the code: %v", err)
	}
	alice2 := &chattest.User{Controller: c, Name: "alice", Profile: p, Passphrase: chattest.Passphrase}
	t.Cleanup(func() { alice2.Close() })
	next := alice2.TakeRecoveryCode()
	if next == "" || next == code {
		t.Fatalf("after recovery the new code is %q (old %q)", next, code)
	}
	// The old code is spent.
	p3 := chattest.NewProfile(t, "alice-third-machine")
	if _, err := p3.Recover(ctx, "alice", code, chattest.Passphrase, r.URL); !errors.Is(err, chat.ErrRecoveryFailed) {
		t.Fatalf("the spent code: %v, want ErrRecoveryFailed", err)
	}

	// Bob sees the key change and must confirm it; the message waits behind it.
	chattest.AddContact(t, alice2, "bob")
	if _, err := alice2.Send(ctx, "bob", "it's me, new phone"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, bob, "alice's key change", func(e chat.Event) bool {
		return e.Kind == chat.ContactKeyChanged && e.Contact == "alice"
	})
	got := chattest.WaitReceived(t, bob, "alice", "it's me, new phone")
	if !got.KeyPending {
		t.Fatal("the message from the recovered identity is not held behind the key change")
	}
	chattest.Must(t, bob.AcceptKey(ctx, "alice"))
	chattest.Send(t, bob, alice2, "welcome back")
}

// RotateRecoveryCode replaces the code: the old one stops working, the new one works.
func TestRotateRecoveryCode(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := chattest.NewUser(t, r, "alice")
	old := alice.TakeRecoveryCode()
	next, err := alice.RotateRecoveryCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next == old || len(next) != relay.RecoveryCodeLen {
		t.Fatalf("rotated code %q (old %q)", next, old)
	}
	alice.Close()
	p := chattest.NewProfile(t, "alice-2")
	if _, err := p.Recover(ctx, "alice", old, chattest.Passphrase, r.URL); !errors.Is(err, chat.ErrRecoveryFailed) {
		t.Fatalf("the replaced code: %v, want ErrRecoveryFailed", err)
	}
	c, err := p.Recover(ctx, "alice", next, chattest.Passphrase, r.URL)
	if err != nil {
		t.Fatalf("the rotated code: %v", err)
	}
	c.Close()
}

// The old device, once its identity was recovered elsewhere, is told so — live, and
// on the next start (not "is the relay running?") — and what waited in its outbox
// fails with that reason.
func TestOldDeviceToldIdentityReplaced(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := chattest.NewUser(t, r, "alice", chattest.AllowOffline)
	chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	code := alice.TakeRecoveryCode()

	p := chattest.NewProfile(t, "alice-new")
	c, err := p.Recover(ctx, "alice", code, chattest.Passphrase, r.URL)
	chattest.Must(t, err)
	c.Close()

	chattest.WaitEvent(t, alice, "told the identity was replaced", func(e chat.Event) bool {
		return e.Kind == chat.ConnectionChanged && errors.Is(e.State.Err, chat.ErrIdentityReplaced)
	})
	m, err := alice.Send(ctx, "bob", "written after the recovery")
	chattest.Must(t, err)
	alice.Close()

	if _, err := alice.Profile.Open(ctx, chattest.Passphrase); !errors.Is(err, chat.ErrIdentityReplaced) {
		t.Fatalf("opening the old profile: %v, want ErrIdentityReplaced", err)
	}
	old, err := alice.Profile.NewController(ctx, chattest.Passphrase)
	chattest.Must(t, err)
	defer old.Close()
	h, err := old.History(ctx, "bob", 0, 10)
	chattest.Must(t, err)
	if len(h) != 1 || h[0].ID != m.ID || h[0].State != chat.Failed || !strings.Contains(h[0].Reason, "identity was replaced") {
		t.Fatalf("the outbox entry after the replacement: %+v", h)
	}
}

// reset-identity with the old key: the card is replaced on the relay, the profile
// talks on under the new key after the contact confirmed the change, and the new key
// survives a restart.
func TestResetIdentityWithOldKey(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice")
	chattest.Send(t, alice, bob, "old key")
	chattest.Send(t, bob, alice, "seen")
	oldCard := alice.Card().ID()

	card, err := alice.ResetIdentity(ctx)
	if err != nil {
		t.Fatalf("reset-identity: %v", err)
	}
	if card.ID() == oldCard || alice.Card().ID() != card.ID() {
		t.Fatal("the card did not change")
	}
	if _, err := alice.Send(ctx, "bob", "new key"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, bob, "alice's key change", func(e chat.Event) bool {
		return e.Kind == chat.ContactKeyChanged && e.Contact == "alice"
	})
	if got := chattest.WaitReceived(t, bob, "alice", "new key"); !got.KeyPending {
		t.Fatal("the new key's message is not held behind the key change")
	}
	chattest.Must(t, bob.AcceptKey(ctx, "alice"))
	chattest.Send(t, bob, alice, "hello new key")
	alice.Reopen()
	if alice.Card().ID() != card.ID() {
		t.Fatal("the new identity did not survive a restart")
	}
	chattest.Send(t, alice, bob, "after the restart")
}

// A user who reinstalls (here: recovers the name on a new machine) starts with an empty
// history, while the contact's counter of messages to them goes on. The first message
// the new installation gets from the contact is numbered 4: the three before it went to
// the old installation, and no "message has not arrived" is shown for them. (The
// contact's receipt for "it's me" may come before its reply, or after: either way.)
func TestReinstalledReceiverSeesNoFalseGap(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	code := alice.TakeRecoveryCode()
	chattest.AddContact(t, bob, "alice")
	for _, text := range []string{"one", "two", "three"} {
		chattest.Send(t, bob, alice, text)
	}
	alice.Close()

	var mu sync.Mutex
	now := time.Now()
	p := chattest.NewProfile(t, "alice-new-machine", func(p *chat.Profile) {
		p.Prefs.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	c, err := p.Recover(ctx, "alice", code, chattest.Passphrase, r.URL)
	chattest.Must(t, err)
	alice2 := &chattest.User{Controller: c, Name: "alice", Profile: p, Passphrase: chattest.Passphrase}
	t.Cleanup(func() { alice2.Close() })
	chattest.AddContact(t, alice2, "bob")
	chattest.Must(t, func() error { _, err := alice2.Send(ctx, "bob", "it's me, new phone"); return err }())
	chattest.WaitEvent(t, bob, "alice's key change", func(e chat.Event) bool {
		return e.Kind == chat.ContactKeyChanged && e.Contact == "alice"
	})
	chattest.Must(t, bob.AcceptKey(ctx, "alice"))
	chattest.Send(t, bob, alice2, "welcome back")
	h, err := alice2.History(ctx, "bob", 0, 10)
	chattest.Must(t, err)
	if h[0].Text != "welcome back" || h[0].Seq != 4 {
		t.Fatalf("bob's reply is %q with seq %d, want \"welcome back\" with seq 4 (his counter goes on)", h[0].Text, h[0].Seq)
	}

	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	gaps, err := alice2.Gaps(ctx, "bob")
	chattest.Must(t, err)
	if len(gaps) != 0 {
		t.Fatalf("the reinstalled profile reports bob's messages to the old one as missing: %+v", gaps)
	}
	// Deleting that first message keeps its place: the run still starts at 4.
	chattest.Must(t, alice2.DeleteMessage(ctx, "bob", h[0].ID))
	gaps, err = alice2.Gaps(ctx, "bob")
	chattest.Must(t, err)
	if len(gaps) != 0 {
		t.Fatalf("after deleting bob's first message here, gaps %+v", gaps)
	}
}

// A text sent to a contact's previous identity key — after they reset it, before this
// client knew — can never be read by them (the new key holds one summary line for
// it). Once the user accepts the new key, the text goes again, in a session with that
// key, and arrives; one that was delivered before the reset does not.
func TestAcceptedKeyGetsUndeliveredTextsAgain(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice")
	hello := chattest.Send(t, alice, bob, "hello")
	delivered := chattest.Send(t, bob, alice, "delivered before the reset")
	chattest.WaitState(t, bob, delivered.ID, chat.Delivered)
	// Bob's receipt for "hello" too: one still on its way at the reset reaches the new
	// key, which cannot read it, and leaves a placeholder no resend fills (seen once
	// in CI under the race detector).
	chattest.WaitStored(t, alice, "bob", hello.ID, chat.Delivered)

	if _, err := alice.ResetIdentity(ctx); err != nil {
		t.Fatalf("reset-identity: %v", err)
	}
	lost, err := bob.Send(ctx, "alice", "while you were away")
	chattest.Must(t, err)
	chattest.WaitEvent(t, alice, "the placeholder of the message to the previous key", func(e chat.Event) bool {
		return e.Kind == chat.Undecryptable && e.Contact == "bob"
	})
	chattest.WaitState(t, bob, lost.ID, chat.Sent) // accepted by the relay, never delivered

	if _, err := alice.Send(ctx, "bob", "new key"); err != nil {
		t.Fatal(err)
	}
	chattest.WaitEvent(t, bob, "alice's key change", func(e chat.Event) bool {
		return e.Kind == chat.ContactKeyChanged && e.Contact == "alice"
	})
	chattest.Must(t, bob.AcceptKey(ctx, "alice"))
	chattest.WaitReceived(t, alice, "bob", "while you were away")
	chattest.WaitState(t, bob, lost.ID, chat.Delivered)

	chattest.Send(t, bob, alice, "after") // everything before it has arrived
	var texts []string
	for _, m := range chattest.FullHistory(t, alice, "bob") {
		switch {
		case m.State == chat.UndecryptableState:
			t.Errorf("a placeholder is left in alice's history: %+v", m)
		case !m.Outgoing:
			texts = append(texts, m.Text)
		}
	}
	// The resend took its placeholder's place; nothing came twice.
	want := []string{"delivered before the reset", "while you were away", "after"}
	if !slices.Equal(texts, want) {
		t.Fatalf("alice's messages from bob: %q, want %q", texts, want)
	}
}

// A text that waits on the relay for alice when she resets her identity is read with
// her old key before it goes: the reset waits for the backlog. (Fetched after the
// card was replaced, it could only be counted as "sent to your previous key": seen in
// the identity walk.)
func TestResetIdentityReadsTheBacklogFirst(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	alice.Close()
	waiting, err := bob.Send(ctx, "alice", "waiting for you")
	chattest.Must(t, err)
	chattest.WaitState(t, bob, waiting.ID, chat.Sent)

	alice.Reopen()
	if _, err := alice.ResetIdentity(ctx); err != nil {
		t.Fatalf("reset-identity: %v", err)
	}
	found := false
	for _, m := range chattest.FullHistory(t, alice, "bob") {
		if m.State == chat.UndecryptableState {
			t.Errorf("alice's history has an unreadable line: %+v", m)
		}
		found = found || m.Text == "waiting for you"
	}
	if !found {
		t.Fatal(`"waiting for you" is not in alice's history`)
	}
}

// A store left by a creation cut short (the process stopped before the identity was
// saved in it) does not stand in the way of the next creation, which removes it; a
// finished profile still refuses a second one. Creating it took the registration and
// the store side by side.
func TestCreateAfterACreationCutShort(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	p := chattest.NewProfile(t, "alice")
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	left, err := storage.CreateClientWith(ctx, p.StorePath(), chattest.Passphrase, p.StoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	left.Close()
	c, err := p.Create(ctx, "alice", chattest.Passphrase, r.URL)
	if err != nil {
		t.Fatalf("creating over an unfinished store: %v", err)
	}
	if got := c.Me(); got != "alice" {
		t.Fatalf("created %q", got)
	}
	c.Close()
	if _, err := p.Create(ctx, "alice2", chattest.Passphrase, r.URL); !errors.Is(err, chat.ErrProfileExists) {
		t.Fatalf("creating over a finished profile: %v, want ErrProfileExists", err)
	}
	again, err := p.Open(ctx, chattest.Passphrase)
	if err != nil {
		t.Fatalf("the finished profile does not open: %v", err)
	}
	again.Close()
}
