package chat_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// evilRelay is a test double in front of the real relay client: it can swap the cards
// and prekey bundles the relay hands out, as a compromised relay or a network attacker
// would.
type evilRelay struct {
	chat.RelayClient
	card   func(name string, real *ratchet.Card) *ratchet.Card
	bundle func(name string, real *ratchet.Bundle) *ratchet.Bundle
}

func (e *evilRelay) LookupCard(ctx context.Context, name string) (*ratchet.Card, error) {
	c, err := e.RelayClient.LookupCard(ctx, name)
	if err != nil || e.card == nil {
		return c, err
	}
	return e.card(name, c), nil
}

func (e *evilRelay) FetchBundle(ctx context.Context, name string) (*ratchet.Bundle, error) {
	b, err := e.RelayClient.FetchBundle(ctx, name)
	if err != nil || e.bundle == nil {
		return b, err
	}
	return e.bundle(name, b), nil
}

func withEvil(e *evilRelay) func(*chat.Profile) {
	return func(p *chat.Profile) {
		p.Prefs.Dial = func(cfg client.Config) chat.RelayClient {
			e.RelayClient = client.New(cfg)
			return e
		}
	}
}

// mallory makes an identity and a self-signed card claiming name.
func mallory(t *testing.T, name string) (*ratchet.IdentityKey, *ratchet.Card) {
	t.Helper()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ratchet.NewCard(k, name, "username", "evil", time.Now().UTC().Truncate(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, c
}

func TestSwappedCardIsRefused(t *testing.T) {
	r := relaytest.Start(t)
	chattest.NewUser(t, r, "bob")
	carol := chattest.NewUser(t, r, "carol")
	_, forged := mallory(t, "bob")
	cases := map[string]func(name string, real *ratchet.Card) *ratchet.Card{
		"self-signed only": func(string, *ratchet.Card) *ratchet.Card { return forged },
		"relay signature copied from the real card": func(_ string, real *ratchet.Card) *ratchet.Card {
			f := *forged
			f.RelaySignature = real.RelaySignature
			return &f
		},
		"someone else's genuine card": func(string, *ratchet.Card) *ratchet.Card { return carol.Card() },
	}
	for name, swap := range cases {
		t.Run(name, func(t *testing.T) {
			evil := &evilRelay{card: func(n string, real *ratchet.Card) *ratchet.Card {
				if n == "bob" {
					return swap(n, real)
				}
				return real
			}}
			alice := chattest.NewUser(t, r, fmt.Sprintf("alice%d", len(t.Name())), withEvil(evil))
			ctx := t.Context()
			_, err := alice.AddContact(ctx, "bob")
			if !errors.Is(err, chat.ErrCardRejected) {
				t.Fatalf("AddContact with a swapped card: %v, want ErrCardRejected", err)
			}
			if cs, _ := alice.Contacts(ctx); len(cs) != 0 {
				t.Fatalf("a refused card still became a contact: %+v", cs)
			}
		})
	}
}

func TestSwappedBundleIsRefused(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	chattest.NewUser(t, r, "carol")
	ctx := t.Context()
	mk, _ := mallory(t, "bob")
	evilSPK, err := ratchet.GeneratePreKey(rand.Reader, mk, ratchet.SignedPreKey, 1, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var carolBundle *ratchet.Bundle
	{
		rc, _ := chat.RelayClientOf(bob.Controller)
		if carolBundle, err = rc.FetchBundle(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]func(real *ratchet.Bundle) *ratchet.Bundle{
		"signed prekey from another key": func(real *ratchet.Bundle) *ratchet.Bundle {
			b := *real
			b.SignedPreKey = evilSPK.Public()
			return &b
		},
		"another user's bundle": func(*ratchet.Bundle) *ratchet.Bundle { return carolBundle },
		"no signed prekey": func(real *ratchet.Bundle) *ratchet.Bundle {
			b := *real
			b.SignedPreKey = ratchet.PublicPreKey{}
			return &b
		},
	}
	i := 0
	for name, swap := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			evil := &evilRelay{bundle: func(n string, real *ratchet.Bundle) *ratchet.Bundle {
				if n == "bob" {
					return swap(real)
				}
				return real
			}}
			alice := chattest.NewUser(t, r, "alice"+string(rune('0'+i)), withEvil(evil))
			if _, err := alice.AddContact(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			_, err := alice.Send(ctx, "bob", "secret")
			if !errors.Is(err, chat.ErrCardRejected) {
				t.Fatalf("Send over a swapped bundle: %v, want ErrCardRejected", err)
			}
			if h, _ := alice.History(ctx, "bob", 0, 10); len(h) != 0 {
				t.Fatalf("a message was committed: %+v", h)
			}
			if out, _ := chat.StoreOf(alice.Controller).Outbox(ctx); len(out) != 0 {
				t.Fatalf("something is in the outbox: %d items", len(out))
			}
		})
	}
}

// reinstall gives name a new identity key: the relay replaces the card (as it would
// for an owner who proves the old key), and a fresh profile holds the new key.
func reinstall(t *testing.T, r *relaytest.Relay, old *chattest.User) *chattest.User {
	t.Helper()
	ctx := t.Context()
	k, card := mallory(t, old.Name)
	card.Device = "new phone"
	card, err := ratchet.NewCard(k, old.Name, "username", "new phone", time.Now().UTC().Truncate(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := client.New(client.Config{URL: r.URL, Identity: chat.IdentityKeyOf(old.Controller), Card: old.Card()})
	if err := rc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := rc.ReplaceCard(ctx, card)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	relayKey := chat.RelayKeyNow(old.Controller)
	old.Close()

	p := chattest.NewProfile(t, old.Name+"2")
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := storage.CreateClientWith(ctx, p.StorePath(), chattest.Passphrase, p.StoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := k.MarshalBinary()
	chattest.Must(t, st.SetMeta(ctx, chat.MetaRelayKey, relayKey))
	chattest.Must(t, st.SetMeta(ctx, chat.MetaRelayURL, []byte(r.URL)))
	chattest.Must(t, st.SaveIdentity(ctx, storage.Identity{Name: old.Name, CardID: signed.ID(), Card: []byte(signed.Export()), PrivateKey: priv}))
	st.Close()
	return chattest.OpenUser(t, old.Name, p)
}

// verifiedThenChanged: alice verifies bob after a first message; bob comes back with a
// new identity key (bob2) and writes text to her. It returns alice's trusted contact
// and safety number for bob from before the change.
func verifiedThenChanged(t *testing.T, text string) (r *relaytest.Relay, alice, bob2 *chattest.User, trusted chat.Contact, oldNumber chat.SafetyNumber) {
	t.Helper()
	r = relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.Send(t, alice, bob, "before")
	chattest.Must(t, alice.Verify(ctx, "bob"))
	oldNumber, err := alice.SafetyNumber(ctx, "bob")
	chattest.Must(t, err)
	trusted, err = alice.Contact(ctx, "bob")
	chattest.Must(t, err)
	bob2 = reinstall(t, r, bob)
	chattest.AddContact(t, bob2, "alice")
	if _, err := bob2.Send(ctx, "alice", text); err != nil {
		t.Fatal(err)
	}
	return r, alice, bob2, trusted, oldNumber
}

func TestKeyChangeBlocksSendingUntilAccepted(t *testing.T) {
	_, alice, bob2, _, oldNumber := verifiedThenChanged(t, "new phone, who dis")
	ctx := t.Context()
	ev := chattest.WaitEvent(t, alice, "key change", func(e chat.Event) bool { return e.Kind == chat.ContactKeyChanged })
	if ev.Contact != "bob" || !errors.Is(ev.Err, chat.ErrKeyChanged) {
		t.Fatalf("event %+v", ev)
	}
	// The message itself is kept (with the contact flagged), never dropped, but only
	// behind the key-change warning: marked with the key it came from.
	got := chattest.WaitReceived(t, alice, "bob", "new phone, who dis")
	if !got.KeyPending || got.SenderCardID != bob2.Card().ID() {
		t.Fatalf("message from the new key: pending=%v card=%.12s", got.KeyPending, got.SenderCardID)
	}
	if h, _ := alice.History(ctx, "bob", 0, 10); len(h) != 2 || !h[0].KeyPending || h[1].KeyPending {
		t.Fatalf("history during the key change: %+v", h)
	}

	ct, err := alice.Contact(ctx, "bob")
	chattest.Must(t, err)
	if !ct.KeyChanged {
		t.Fatal("contact not flagged")
	}
	var kc *chat.KeyChangedError
	if _, err := alice.Send(ctx, "bob", "blocked?"); !errors.As(err, &kc) || kc.Contact != "bob" {
		t.Fatalf("send during a pending key change: %v", err)
	}
	if err := alice.Verify(ctx, "bob"); !errors.As(err, &kc) {
		t.Fatalf("verify during a pending key change: %v", err)
	}
	newNumber, err := alice.SafetyNumber(ctx, "bob")
	chattest.Must(t, err)
	if !newNumber.Pending || newNumber.Digits() == oldNumber.Digits() {
		t.Fatalf("safety number during a key change: pending=%v same=%v", newNumber.Pending, newNumber.Digits() == oldNumber.Digits())
	}
	if b2, _ := bob2.SafetyNumber(ctx, "alice"); b2.Digits() != newNumber.Digits() {
		t.Fatal("the new safety number differs between the two sides")
	}

	chattest.Must(t, alice.AcceptKey(ctx, "bob"))
	if h, _ := alice.History(ctx, "bob", 0, 10); len(h) != 2 || h[0].KeyPending {
		t.Fatalf("history after accepting the key: %+v", h)
	}
	ct, _ = alice.Contact(ctx, "bob")
	if ct.KeyChanged || ct.Verified {
		t.Fatalf("after accept: %+v (the new key must not inherit the verified mark)", ct)
	}
	m, err := alice.Send(ctx, "bob", "welcome back")
	chattest.Must(t, err)
	chattest.WaitReceived(t, bob2, "alice", "welcome back")
	chattest.WaitState(t, alice, m.ID, chat.Delivered)
	if err := alice.AcceptKey(ctx, "bob"); !errors.Is(err, chat.ErrNoPendingKey) {
		t.Fatalf("second accept: %v", err)
	}
}

// A key change the user does not believe (a relay can present one: it signs cards) is
// rejected: the trusted key stays, verified mark and all, sending to it works again,
// and the rejected key's messages stay marked — later ones too, without a new warning
// (the rejection is remembered: each message from it raised the warning again). Found
// by a hostile-relay run: the only ways out were to accept the attacker's key or to
// remove the contact. AddContact finding the rejected key on the relay asks again (the
// UI test takes a rejected key with AcceptKey directly).
func TestRejectKeyKeepsTheTrustedKey(t *testing.T) {
	_, alice, bob2, trusted, _ := verifiedThenChanged(t, "it is me, honest")
	ctx := t.Context()
	chattest.WaitEvent(t, alice, "key change", func(e chat.Event) bool { return e.Kind == chat.ContactKeyChanged })
	chattest.Must(t, alice.RejectKey(ctx, "bob"))
	ct, err := alice.Contact(ctx, "bob")
	chattest.Must(t, err)
	if ct.KeyChanged || ct.CardID != trusted.CardID || !ct.Verified {
		t.Fatalf("after reject: %+v, want the trusted card %.12s, verified, no key change", ct, trusted.CardID)
	}
	if h, _ := alice.History(ctx, "bob", 0, 10); len(h) != 2 || !h[0].KeyPending {
		t.Fatalf("history after the reject: %+v (the new key's message stays marked)", h)
	}
	if _, err := alice.Send(ctx, "bob", "to the key I trust"); err != nil {
		t.Fatalf("send after the reject: %v", err)
	}
	if err := alice.RejectKey(ctx, "bob"); !errors.Is(err, chat.ErrNoPendingKey) {
		t.Fatalf("second reject: %v", err)
	}
	if _, err := bob2.Send(ctx, "alice", "please accept"); err != nil {
		t.Fatal(err)
	}
	// The warning comes before the message's own event, if at all.
	chattest.WaitEvent(t, alice, "the rejected key's message", func(e chat.Event) bool {
		if e.Kind == chat.ContactKeyChanged {
			t.Fatal("a message from the rejected key warned again")
		}
		return e.Kind == chat.MessageReceived && e.Contact == "bob" && e.Message.Text == "please accept"
	})
	ct, err = alice.Contact(ctx, "bob")
	chattest.Must(t, err)
	if ct.KeyChanged || ct.CardID != trusted.CardID {
		t.Fatalf("after a message from the rejected key: %+v, want the trusted card, no key change", ct)
	}
	h, err := alice.History(ctx, "bob", 0, 10)
	chattest.Must(t, err)
	if len(h) != 4 || !h[0].KeyPending || h[0].Text != "please accept" {
		t.Fatalf("history: %+v, want the rejected key's new message newest, marked", h)
	}
	sn, err := alice.PendingSafetyNumber(ctx, "bob")
	if err != nil || !sn.Rejected || sn.CardID == trusted.CardID {
		t.Fatalf("the rejected key's safety number: %+v, %v", sn, err)
	}

	// Adding bob again finds the rejected key on the relay: the user asked, so it is
	// a key change to decide again.
	if ct, err := alice.AddContact(ctx, "bob"); err != nil || !ct.KeyChanged {
		t.Fatalf("adding bob again: %+v, %v, want the rejected key flagged again", ct, err)
	}
	if sn, err := alice.PendingSafetyNumber(ctx, "bob"); err != nil || sn.Rejected {
		t.Fatalf("after adding bob again: %+v, %v, want a pending key, not a rejected one", sn, err)
	}

	// Accepted after all: it becomes bob's key, and its messages are bob's.
	chattest.Must(t, alice.AcceptKey(ctx, "bob"))
	ct, err = alice.Contact(ctx, "bob")
	chattest.Must(t, err)
	if ct.KeyChanged || ct.CardID != sn.CardID || ct.Verified {
		t.Fatalf("after accepting the rejected key: %+v, want card %.12s, not verified", ct, sn.CardID)
	}
	if h, _ := alice.History(ctx, "bob", 0, 10); len(h) != 4 || h[0].KeyPending || h[2].KeyPending {
		t.Fatalf("history after the accept: %+v, want nothing marked", h)
	}
	if _, err := alice.PendingSafetyNumber(ctx, "bob"); !errors.Is(err, chat.ErrNoPendingKey) {
		t.Fatalf("a pending key after the accept: %v", err)
	}
	m, err := alice.Send(ctx, "bob", "fine, it is you")
	chattest.Must(t, err)
	chattest.WaitReceived(t, bob2, "alice", "fine, it is you")
	chattest.WaitState(t, alice, m.ID, chat.Delivered)
}

// dropRelay accepts the first message to a recipient and silently drops it, as a lossy
// relay would.
type dropRelay struct {
	chat.RelayClient
	mu      sync.Mutex
	dropped int
}

func (d *dropRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	d.mu.Lock()
	drop := d.dropped == 0
	d.dropped++
	d.mu.Unlock()
	if drop {
		return 1, nil
	}
	return d.RelayClient.Send(ctx, to, body, clientID)
}

// A session's first message lost: the next one still carries the handshake, so the
// peer can start the session from it.
func TestLostFirstMessageIsRecoverable(t *testing.T) {
	r := relaytest.Start(t)
	d := &dropRelay{}
	alice := chattest.NewUser(t, r, "alice", func(p *chat.Profile) {
		p.Prefs.Dial = func(cfg client.Config) chat.RelayClient {
			d.RelayClient = client.New(cfg)
			return d
		}
	})
	bob := chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	lost, err := alice.Send(ctx, "bob", "lost in transit")
	chattest.Must(t, err)
	chattest.WaitState(t, alice, lost.ID, chat.Sent)
	m := chattest.Send(t, alice, bob, "second")
	chattest.WaitState(t, alice, m.ID, chat.Delivered)
	r2 := chattest.Send(t, bob, alice, "got your second")
	chattest.WaitState(t, bob, r2.ID, chat.Delivered)
}

// The seed's low-level flow: start a session from a card, encrypt, hand the bytes over
// by any transport, load the session up from the first message and decrypt.
func TestSeedSessionAPI(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	bobCard, err := chat.FetchCard(alice.Controller, ctx, "bob")
	chattest.Must(t, err)
	if s, err := alice.ActiveSession(ctx, bobCard.ID()); err != nil || s != nil {
		t.Fatalf("active session before any: %v %v", s, err)
	}
	s, err := alice.StartNewSession(ctx, bobCard)
	chattest.Must(t, err)
	w1, err := s.Encrypt(ctx, []byte("one"))
	chattest.Must(t, err)
	w2, err := s.Encrypt(ctx, []byte("two"))
	chattest.Must(t, err)

	aliceCard := alice.Card()
	bs, err := bob.LoadUpSession(ctx, aliceCard, w1)
	chattest.Must(t, err)
	if bs.ID() != s.ID() {
		t.Fatal("the two sides disagree on the session ID")
	}
	p1, err := bs.Decrypt(ctx, w1)
	chattest.Must(t, err)
	p2, err := bs.Decrypt(ctx, w2)
	chattest.Must(t, err)
	if string(p1) != "one" || string(p2) != "two" {
		t.Fatalf("decrypted %q, %q", p1, p2)
	}
	// A replay changes nothing and is refused.
	if _, err := bs.Decrypt(ctx, w2); err == nil {
		t.Fatal("replay decrypted")
	}
	back, err := bs.Encrypt(ctx, []byte("three"))
	chattest.Must(t, err)
	as, err := alice.LoadUpSession(ctx, bob.Card(), back)
	chattest.Must(t, err)
	p3, err := as.Decrypt(ctx, back)
	chattest.Must(t, err)
	if string(p3) != "three" {
		t.Fatalf("decrypted %q", p3)
	}
	chattest.Must(t, alice.RemoveSessions(ctx, bobCard.ID()))
	if s, _ := alice.ActiveSession(ctx, bobCard.ID()); s != nil {
		t.Fatal("session survived RemoveSessions")
	}
}

// A relay presenting a key other than the pinned one is a hard error naming both keys.
func TestRelayKeyChangeIsRefused(t *testing.T) {
	r1, r2 := relaytest.Start(t), relaytest.Start(t)
	alice := chattest.NewUser(t, r1, "alice")
	alice.Close()
	p := alice.Profile
	p.RelayURL = r2.URL // same profile, an impostor relay
	_, err := p.Open(t.Context(), chattest.Passphrase)
	var rk *chat.RelayKeyChangedError
	if !errors.As(err, &rk) {
		t.Fatalf("opening against another relay: %v, want *RelayKeyChangedError", err)
	}
	for _, fp := range []string{ratchet.Fingerprint(r1.Server.RelayKey()), ratchet.Fingerprint(r2.Server.RelayKey())} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("error %q does not show fingerprint %s", err, fp)
		}
	}
	// The genuine relay still works.
	alice.Reopen()
}

// fastRetry makes a test controller's relay client retry within milliseconds.
func fastRetry(p *chat.Profile) {
	p.Prefs.Dial = func(cfg client.Config) chat.RelayClient {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
		return client.New(cfg)
	}
}

// waitKeyMismatch waits for a connection state that reports the relay-key mismatch
// and returns it.
func waitKeyMismatch(t *testing.T, c chattest.EventSource) *chat.RelayKeyChangedError {
	t.Helper()
	var rk *chat.RelayKeyChangedError
	chattest.WaitEvent(t, c, "a relay-key mismatch", func(e chat.Event) bool {
		return e.Kind == chat.ConnectionChanged && e.State.Status != chat.Online && errors.As(e.State.Err, &rk) && rk.Presented != ""
	})
	return rk
}

// A program that stays up (StayUp: the UI, the daemon) opens on a relay-key
// mismatch, reports both fingerprints in its connection state, keeps retrying the
// pinned key and comes back online by itself when the pinned relay returns.
func TestRelayKeyMismatchKeepsRetrying(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice", chattest.StayUp, fastRetry)
	alice.Close()
	r.Close()
	genuine := r.CopyDB(t)
	rot := r.ReplaceKeyCompromised(t)

	alice.Reopen() // no error: the controller stays up
	rk := waitKeyMismatch(t, alice)
	if rk.Pinned != ratchet.Fingerprint(rot.Old) || rk.Presented != ratchet.Fingerprint(rot.New) {
		t.Fatalf("mismatch names pinned %q and presented %q, want %q and %q", rk.Pinned, rk.Presented, ratchet.Fingerprint(rot.Old), ratchet.Fingerprint(rot.New))
	}
	r.UseDB(t, genuine) // the pinned relay returns
	chattest.WaitEvent(t, alice, "online again with the pinned key", func(e chat.Event) bool {
		return e.Kind == chat.ConnectionChanged && e.State.Status == chat.Online
	})
	if !alice.Online() {
		t.Fatal("not online after the pinned relay returned")
	}
}

// RepinRelay replaces the pin of a running controller only with the key the user
// confirmed, and the connection comes up under the new pin at once.
func TestRepinRelayWhileRunning(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice", chattest.StayUp, fastRetry)
	alice.Close()
	rot := r.ReplaceKeyCompromised(t)
	alice.Reopen()
	rk := waitKeyMismatch(t, alice)

	// A fingerprint other than the relay's changes nothing.
	if err := alice.RepinRelay(t.Context(), rk.Pinned); !errors.Is(err, chat.ErrRepinChanged) {
		t.Fatalf("re-pinning with a fingerprint the relay does not present: %v, want ErrRepinChanged", err)
	}
	chattest.Must(t, alice.RepinRelay(t.Context(), rk.Presented))
	chattest.WaitEvent(t, alice, "online under the new pin", func(e chat.Event) bool {
		return e.Kind == chat.ConnectionChanged && e.State.Status == chat.Online
	})
	if got := pinnedFP(t, alice); got != ratchet.Fingerprint(rot.New) {
		t.Fatalf("pinned %s after the re-pin, want %s", got, ratchet.Fingerprint(rot.New))
	}
	// The pin is in the store: reopening goes online with the new key. Open may return
	// before its first login has finished (failed once in CI at load 8: not yet online
	// when asked at once), so the test waits for it, and a key mismatch fails at once.
	alice.Reopen()
	if !alice.Online() {
		chattest.WaitEvent(t, alice, "the reopened profile online under the new pin", func(e chat.Event) bool {
			var rk *chat.RelayKeyChangedError
			if e.Kind == chat.ConnectionChanged && errors.As(e.State.Err, &rk) {
				t.Fatalf("the reopened profile refused the relay's key: %v", rk)
			}
			return e.Kind == chat.ConnectionChanged && e.State.Status == chat.Online
		})
	}
}

func pinnedFP(t *testing.T, u *chattest.User) string {
	t.Helper()
	k, _, err := u.PinnedRelayKey(t.Context())
	chattest.Must(t, err)
	return ratchet.Fingerprint(k)
}

// A contact added but not yet written to makes a new identity; the first send fetches
// a bundle of their new card. That is a key change, offered as one (the send refused
// with *KeyChangedError, the ContactKeyChanged event, the new key pending), not a
// bundle that "does not verify": it was refused as card_rejected, and only adding the
// contact again led to the key change (found by an outside tester through the daemon).
func TestFirstSendFindsTheContactsNewCard(t *testing.T) {
	r := relaytest.Start(t)
	alice, carol := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "carol")
	ctx := t.Context()
	chattest.AddContact(t, alice, "carol")
	carol2 := reinstall(t, r, carol)
	var kc *chat.KeyChangedError
	if _, err := alice.Send(ctx, "carol", "hello?"); !errors.As(err, &kc) || kc.Contact != "carol" {
		t.Fatalf("a first send after the contact's new identity: %v, want *KeyChangedError", err)
	}
	chattest.WaitEvent(t, alice, "key change", func(e chat.Event) bool {
		return e.Kind == chat.ContactKeyChanged && e.Contact == "carol"
	})
	if ct, err := alice.Contact(ctx, "carol"); err != nil || !ct.KeyChanged {
		t.Fatalf("contact after the send: %+v, %v (want the new key pending)", ct, err)
	}
	chattest.Must(t, alice.AcceptKey(ctx, "carol"))
	_, err := alice.Send(ctx, "carol", "hello again")
	chattest.Must(t, err)
	chattest.WaitReceived(t, carol2, "alice", "hello again") // a message request to carol2: no receipt
}
