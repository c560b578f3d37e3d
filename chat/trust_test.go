package chat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// evilRelay is a test double in front of the real relay client: it can swap the cards
// and prekey bundles the relay hands out, as a compromised relay or a network attacker
// would.
type evilRelay struct {
	RelayClient
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

func withEvil(e *evilRelay) func(*Profile) {
	return func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient {
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
	newUser(t, r, "bob")
	carol := newUser(t, r, "carol")
	_, forged := mallory(t, "bob")
	cases := map[string]func(name string, real *ratchet.Card) *ratchet.Card{
		"self-signed only": func(string, *ratchet.Card) *ratchet.Card { return forged },
		"relay signature copied from the real card": func(_ string, real *ratchet.Card) *ratchet.Card {
			f := *forged
			f.RelaySignature = real.RelaySignature
			return &f
		},
		"someone else's genuine card": func(string, *ratchet.Card) *ratchet.Card { return carol.c.Card() },
	}
	for name, swap := range cases {
		t.Run(name, func(t *testing.T) {
			evil := &evilRelay{card: func(n string, real *ratchet.Card) *ratchet.Card {
				if n == "bob" {
					return swap(n, real)
				}
				return real
			}}
			alice := newUser(t, r, fmt.Sprintf("alice%d", len(t.Name())), withEvil(evil))
			ctx := ctxT(t)
			_, err := alice.c.AddContact(ctx, "bob")
			if !errors.Is(err, ErrCardRejected) {
				t.Fatalf("AddContact with a swapped card: %v, want ErrCardRejected", err)
			}
			if cs, _ := alice.c.Contacts(ctx); len(cs) != 0 {
				t.Fatalf("a refused card still became a contact: %+v", cs)
			}
		})
	}
}

func TestSwappedBundleIsRefused(t *testing.T) {
	r := relaytest.Start(t)
	bob := newUser(t, r, "bob")
	newUser(t, r, "carol")
	ctx := ctxT(t)
	mk, _ := mallory(t, "bob")
	evilSPK, err := ratchet.GeneratePreKey(rand.Reader, mk, ratchet.SignedPreKey, 1, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var carolBundle *ratchet.Bundle
	{
		rc, _ := bob.c.relayClient()
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
			alice := newUser(t, r, "alice"+string(rune('0'+i)), withEvil(evil))
			if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			_, err := alice.c.Send(ctx, "bob", "secret")
			if !errors.Is(err, ErrCardRejected) {
				t.Fatalf("Send over a swapped bundle: %v, want ErrCardRejected", err)
			}
			if h, _ := alice.c.History(ctx, "bob", 0, 10); len(h) != 0 {
				t.Fatalf("a message was committed: %+v", h)
			}
			if out, _ := alice.c.store.Outbox(ctx); len(out) != 0 {
				t.Fatalf("something is in the outbox: %d items", len(out))
			}
		})
	}
}

// reinstall gives name a new identity key: the relay replaces the card (as it would
// for an owner who proves the old key), and a fresh profile holds the new key.
func reinstall(t *testing.T, r *relaytest.Relay, old *user) *user {
	t.Helper()
	ctx := ctxT(t)
	k, card := mallory(t, old.name)
	card.Device = "new phone"
	card, err := ratchet.NewCard(k, old.name, "username", "new phone", time.Now().UTC().Truncate(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := client.New(client.Config{URL: r.URL, Identity: old.c.id, Card: old.c.card})
	if err := rc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := rc.ReplaceCard(ctx, card)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	relayKey := old.c.relayKeyNow()
	old.close()

	p := Profile{Dir: filepath.Join(t.TempDir(), old.name+"2"), StoreOptions: storage.ClientOptions{KDF: testKDF, Synchronous: "NORMAL"}}
	p.Prefs.OneTimeKeys = 10
	p.Prefs.Logger = testLogger(t)
	if err := mkdirAll(p.Dir); err != nil {
		t.Fatal(err)
	}
	st, err := storage.CreateClientWith(ctx, p.StorePath(), testPass, p.StoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := k.MarshalBinary()
	must(t, st.SetMeta(ctx, metaRelayKey, relayKey))
	must(t, st.SetMeta(ctx, metaRelayURL, []byte(r.URL)))
	must(t, st.SaveIdentity(ctx, storage.Identity{Name: old.name, CardID: signed.ID(), Card: []byte(signed.Export()), PrivateKey: priv}))
	st.Close()
	u := &user{t: t, name: old.name, p: p}
	u.reopen()
	t.Cleanup(u.close)
	return u
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeyChangeBlocksSendingUntilAccepted(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "before")
	must(t, alice.c.Verify(ctx, "bob"))
	oldNumber, err := alice.c.SafetyNumber(ctx, "bob")
	must(t, err)

	bob2 := reinstall(t, r, bob)
	if _, err := bob2.c.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob2.c.Send(ctx, "alice", "new phone, who dis"); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, alice.c, "key change", func(e Event) bool { return e.Kind == ContactKeyChanged })
	if ev.Contact != "bob" || !errors.Is(ev.Err, ErrKeyChanged) {
		t.Fatalf("event %+v", ev)
	}
	// The message itself is shown (with the contact flagged), never dropped.
	waitReceived(t, alice.c, "bob", "new phone, who dis")

	ct, err := alice.c.Contact(ctx, "bob")
	must(t, err)
	if !ct.KeyChanged {
		t.Fatal("contact not flagged")
	}
	var kc *KeyChangedError
	if _, err := alice.c.Send(ctx, "bob", "blocked?"); !errors.As(err, &kc) || kc.Contact != "bob" {
		t.Fatalf("send during a pending key change: %v", err)
	}
	if err := alice.c.Verify(ctx, "bob"); !errors.As(err, &kc) {
		t.Fatalf("verify during a pending key change: %v", err)
	}
	newNumber, err := alice.c.SafetyNumber(ctx, "bob")
	must(t, err)
	if !newNumber.Pending || newNumber.Digits() == oldNumber.Digits() {
		t.Fatalf("safety number during a key change: pending=%v same=%v", newNumber.Pending, newNumber.Digits() == oldNumber.Digits())
	}
	if b2, _ := bob2.c.SafetyNumber(ctx, "alice"); b2.Digits() != newNumber.Digits() {
		t.Fatal("the new safety number differs between the two sides")
	}

	must(t, alice.c.AcceptKey(ctx, "bob"))
	ct, _ = alice.c.Contact(ctx, "bob")
	if ct.KeyChanged || ct.Verified {
		t.Fatalf("after accept: %+v (the new key must not inherit the verified mark)", ct)
	}
	m, err := alice.c.Send(ctx, "bob", "welcome back")
	must(t, err)
	waitReceived(t, bob2.c, "alice", "welcome back")
	waitState(t, alice.c, m.ID, Delivered)
	if err := alice.c.AcceptKey(ctx, "bob"); !errors.Is(err, ErrNoPendingKey) {
		t.Fatalf("second accept: %v", err)
	}
}

// dropRelay accepts the first message to a recipient and silently drops it, as a lossy
// relay would.
type dropRelay struct {
	RelayClient
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
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient {
			d.RelayClient = client.New(cfg)
			return d
		}
	})
	bob := newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	lost, err := alice.c.Send(ctx, "bob", "lost in transit")
	must(t, err)
	waitState(t, alice.c, lost.ID, Sent)
	m, err := alice.c.Send(ctx, "bob", "second")
	must(t, err)
	waitReceived(t, bob.c, "alice", "second")
	waitState(t, alice.c, m.ID, Delivered)
	r2, err := bob.c.Send(ctx, "alice", "got your second")
	must(t, err)
	waitReceived(t, alice.c, "bob", "got your second")
	waitState(t, bob.c, r2.ID, Delivered)
}

// The seed's low-level flow: start a session from a card, encrypt, hand the bytes over
// by any transport, load the session up from the first message and decrypt.
func TestSeedSessionAPI(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	bobCard, err := alice.c.fetchCard(ctx, "bob")
	must(t, err)
	if s, err := alice.c.ActiveSession(ctx, bobCard.ID()); err != nil || s != nil {
		t.Fatalf("active session before any: %v %v", s, err)
	}
	s, err := alice.c.StartNewSession(ctx, bobCard)
	must(t, err)
	w1, err := s.Encrypt(ctx, []byte("one"))
	must(t, err)
	w2, err := s.Encrypt(ctx, []byte("two"))
	must(t, err)

	aliceCard := alice.c.Card()
	bs, err := bob.c.LoadUpSession(ctx, aliceCard, w1)
	must(t, err)
	if bs.ID() != s.ID() {
		t.Fatal("the two sides disagree on the session ID")
	}
	p1, err := bs.Decrypt(ctx, w1)
	must(t, err)
	p2, err := bs.Decrypt(ctx, w2)
	must(t, err)
	if string(p1) != "one" || string(p2) != "two" {
		t.Fatalf("decrypted %q, %q", p1, p2)
	}
	// A replay changes nothing and is refused.
	if _, err := bs.Decrypt(ctx, w2); err == nil {
		t.Fatal("replay decrypted")
	}
	back, err := bs.Encrypt(ctx, []byte("three"))
	must(t, err)
	as, err := alice.c.LoadUpSession(ctx, bob.c.Card(), back)
	must(t, err)
	p3, err := as.Decrypt(ctx, back)
	must(t, err)
	if string(p3) != "three" {
		t.Fatalf("decrypted %q", p3)
	}
	must(t, alice.c.RemoveSessions(ctx, bobCard.ID()))
	if s, _ := alice.c.ActiveSession(ctx, bobCard.ID()); s != nil {
		t.Fatal("session survived RemoveSessions")
	}
}

// A relay presenting a key other than the pinned one is a hard error naming both keys.
func TestRelayKeyChangeIsRefused(t *testing.T) {
	r1, r2 := relaytest.Start(t), relaytest.Start(t)
	alice := newUser(t, r1, "alice")
	alice.close()
	p := alice.p
	p.RelayURL = r2.URL // same profile, an impostor relay
	_, err := p.Open(ctxT(t), testPass)
	var rk *RelayKeyChangedError
	if !errors.As(err, &rk) {
		t.Fatalf("opening against another relay: %v, want *RelayKeyChangedError", err)
	}
	for _, fp := range []string{ratchet.Fingerprint(r1.Server.RelayKey()), ratchet.Fingerprint(r2.Server.RelayKey())} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("error %q does not show fingerprint %s", err, fp)
		}
	}
	// Even with AllowOffline the mismatch is fatal, not "offline".
	p.Prefs.AllowOffline = true
	if _, err := p.Open(ctxT(t), testPass); !errors.As(err, &rk) {
		t.Fatalf("with AllowOffline: %v", err)
	}
	// The genuine relay still works.
	alice.reopen()
}
