package ratchet

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestKDFMatchesStandardLibrary(t *testing.T) {
	r := seeded(7)
	k := newKDF()
	for i := 0; i < 200; i++ {
		var key, ikm [32]byte
		r.Read(key[:])
		r.Read(ikm[:])
		msg := make([]byte, i)
		r.Read(msg)
		k.setKey(&key)
		k.macKeyed(msg[:i/2], msg[i/2:], nil)
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		if !bytes.Equal(k.t[:], m.Sum(nil)) {
			t.Fatalf("HMAC differs for %d-byte message", i)
		}
		mk, next := k.kdfCK(&key)
		for j, want := range [][32]byte{mk, next} {
			m := hmac.New(sha256.New, key[:])
			m.Write([]byte{byte(j + 1)})
			if !bytes.Equal(want[:], m.Sum(nil)) {
				t.Fatal("KDF_CK differs")
			}
		}
		var out [64]byte
		k.hkdf64(&out, &key, &ikm, labelRootKDF)
		want, _ := hkdf.Key(sha256.New, ikm[:], key[:], LabelRootKDF, 64)
		if !bytes.Equal(out[:], want) {
			t.Fatal("HKDF differs")
		}
		rk, ck := k.kdfRK(&key, &ikm)
		if !bytes.Equal(rk[:], want[:32]) || !bytes.Equal(ck[:], want[32:]) {
			t.Fatal("KDF_RK differs")
		}
		key2, n := k.messageKeys(&ikm)
		want, _ = hkdf.Key(sha256.New, ikm[:], nil, LabelMessageKeys, 44)
		if !bytes.Equal(key2[:], want[:32]) || !bytes.Equal(n[:], want[32:]) {
			t.Fatal("message key expansion differs")
		}
	}
}

func TestBothSidesDeriveSameSecrets(t *testing.T) {
	for _, tc := range []struct {
		name            string
		opk, oneTimeKEM bool
	}{{"full", true, true}, {"no one-time prekey", false, true}, {"last-resort KEM only", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			relay := newRelay(t, 10)
			a := newParty(t, "alice", 11, relay)
			b := newParty(t, "bob", 12, relay)
			alice, err := StartSession(seeded(13), a.key, a.card, b.card, relay.pub, b.bundle(tc.opk, tc.oneTimeKEM))
			if err != nil {
				t.Fatal(err)
			}
			if alice.UsedOneTimePreKey() != tc.opk {
				t.Fatalf("UsedOneTimePreKey = %v", alice.UsedOneTimePreKey())
			}
			wire, err := alice.Encrypt([]byte("hi"))
			if err != nil {
				t.Fatal(err)
			}
			env, err := DecodeEnvelope(wire)
			if err != nil {
				t.Fatal(err)
			}
			if env.Type != MessageInitial || env.Initial == nil {
				t.Fatal("first message is not initial")
			}
			if (env.Initial.OneTimePreKeyID != 0) != tc.opk {
				t.Fatal("one-time prekey id not as expected")
			}
			bob, pt, err := AcceptSession(b.key, b.card, a.card, b.responderKeys(env), env)
			if err != nil {
				t.Fatal(err)
			}
			if string(pt) != "hi" || bob.UsedOneTimePreKey() != tc.opk {
				t.Fatalf("pt %q usedOPK %v", pt, bob.UsedOneTimePreKey())
			}
			if alice.rk != bob.rk || alice.ID() != bob.ID() || env.Initial.SessionID() != alice.ID() {
				t.Fatal("root keys or session IDs differ")
			}
			if alice.PeerCardID() != b.card.ID() || bob.PeerCardID() != a.card.ID() || alice.ad != bob.ad {
				t.Fatal("peer card IDs or AD differ")
			}
			if !bob.Acknowledged() || alice.Acknowledged() || !alice.Initiator() || bob.Initiator() {
				t.Fatal("roles wrong")
			}
			reply, err := bob.Encrypt([]byte("hello alice"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := alice.Decrypt(reply); err != nil || string(pt) != "hello alice" {
				t.Fatalf("reply: %q %v", pt, err)
			}
			if !alice.Acknowledged() {
				t.Fatal("alice should be acknowledged")
			}
			next, _ := alice.Encrypt([]byte("normal now"))
			if next[1] != byte(MessageNormal) {
				t.Fatal("acknowledged initiator still sends initial messages")
			}
			if pt, err := bob.Decrypt(next); err != nil || string(pt) != "normal now" {
				t.Fatalf("%q %v", pt, err)
			}
		})
	}
}

// TestRandomInterleaving sends 1000 messages in both directions, delivering
// them in random order (gaps within MaxSkip), and checks each decrypts exactly
// once and every redelivery fails without changing the state.
//
// Seed 3 persists both sessions (MarshalBinary, ParseSession) after every
// operation, as a store-backed client does.
func TestRandomInterleaving(t *testing.T) {
	for seed := uint64(0); seed < 4; seed++ {
		persist := seed == 3
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			alice, bob, _, _ := pair(t, 100+seed*10)
			reload := func(s **Session) {
				if !persist {
					return
				}
				n, err := ParseSession(mustMarshal(t, *s))
				if err != nil {
					t.Fatal(err)
				}
				n.SetRand((*s).rand)
				*s = n
			}
			rng := mrand.New(mrand.NewPCG(seed, 99))
			type msg struct {
				wire []byte
				text string
			}
			var toBob, toAlice []msg
			var delivered []msg // for replays
			sent := 0
			deliver := func(sp **Session, queue *[]msg) {
				reload(sp)
				s := *sp
				q := *queue
				i := rng.IntN(len(q))
				m := q[i]
				*queue = append(q[:i], q[i+1:]...)
				pt, err := s.Decrypt(m.wire)
				if err != nil {
					t.Fatalf("deliver %q: %v", m.text, err)
				}
				if string(pt) != m.text {
					t.Fatalf("got %q want %q", pt, m.text)
				}
				delivered = append(delivered, m)
			}
			for sent < 1000 || len(toBob)+len(toAlice) > 0 {
				switch op := rng.IntN(10); {
				case op < 3 && sent < 1000:
					reload(&alice)
					text := fmt.Sprintf("a%d", sent)
					w, err := alice.Encrypt([]byte(text))
					if err != nil {
						t.Fatal(err)
					}
					toBob = append(toBob, msg{w, text})
					sent++
				case op < 6 && sent < 1000:
					reload(&bob)
					text := fmt.Sprintf("b%d", sent)
					w, err := bob.Encrypt([]byte(text))
					if err != nil {
						t.Fatal(err)
					}
					toAlice = append(toAlice, msg{w, text})
					sent++
				case op < 8 && len(toBob) > 0:
					deliver(&bob, &toBob)
				case len(toAlice) > 0:
					deliver(&alice, &toAlice)
				case len(toBob) > 0:
					deliver(&bob, &toBob)
				}
			}
			if got := alice.ReceiveCount() + bob.ReceiveCount(); got != 1001 { // + pair's hello
				t.Fatalf("received %d", got)
			}
			if len(alice.skipped)+len(bob.skipped) != 0 {
				t.Fatalf("skipped keys left: %d %d", len(alice.skipped), len(bob.skipped))
			}
			// Exactly once: every redelivery fails and changes nothing.
			for _, m := range delivered[:200] {
				s := bob
				if m.text[0] == 'b' {
					s = alice
				}
				before := mustMarshal(t, s)
				if _, err := s.Decrypt(m.wire); err == nil {
					t.Fatalf("%q decrypted twice", m.text)
				}
				if !bytes.Equal(before, mustMarshal(t, s)) {
					t.Fatal("failed redelivery changed the state")
				}
			}
		})
	}
}

func TestForwardSecrecy(t *testing.T) {
	alice, bob, _, _ := pair(t, 20)
	var wires [][]byte
	for i := 0; i < 5; i++ {
		w, _ := alice.Encrypt([]byte(fmt.Sprint(i)))
		wires = append(wires, w)
	}
	// Bob decrypts 0, 1, 3 (2 and 4 stay pending, 2 as a skipped key).
	for _, i := range []int{0, 1, 3} {
		if _, err := bob.Decrypt(wires[i]); err != nil {
			t.Fatal(err)
		}
	}
	stolen, err := ParseSession(mustMarshal(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 3} {
		if _, err := stolen.Decrypt(wires[i]); !errors.Is(err, ErrReplay) {
			t.Fatalf("stolen state decrypts message %d again: %v", i, err)
		}
	}
	for _, i := range []int{2, 4} { // not yet decrypted: still readable, as intended
		if _, err := stolen.Decrypt(wires[i]); err != nil {
			t.Fatalf("pending message %d: %v", i, err)
		}
	}
	// After a full round trip, old-chain messages stay unreadable too, and are
	// recognised as such (ErrReplay) for several chains.
	for round := 0; round < MaxPreviousChains+1; round++ {
		r, _ := bob.Encrypt([]byte("r"))
		alice.Decrypt(r)
		w, _ := alice.Encrypt([]byte("new chain"))
		if _, err := bob.Decrypt(w); err != nil {
			t.Fatal(err)
		}
		stolen, _ = ParseSession(mustMarshal(t, bob))
		for _, i := range []int{0, 1, 3} {
			_, err := stolen.Decrypt(wires[i])
			if err == nil {
				t.Fatalf("message %d decrypts from a later state", i)
			}
			if round < MaxPreviousChains-1 && !errors.Is(err, ErrReplay) {
				t.Fatalf("round %d: old-chain message %d: %v, want ErrReplay", round, i, err)
			}
		}
	}
}

func TestPostCompromiseSecurity(t *testing.T) {
	alice, bob, _, _ := pair(t, 30)
	w, _ := bob.Encrypt([]byte("before"))
	alice.Decrypt(w)
	// The attacker copies Alice's state at time t, and later sees every message.
	attacker, err := ParseSession(mustMarshal(t, alice))
	if err != nil {
		t.Fatal(err)
	}
	attacker.SetRand(seeded(666))
	// Bob's messages on the current chain are readable to the attacker (that is
	// what the compromise means)...
	w1, _ := bob.Encrypt([]byte("still compromised"))
	if _, err := attacker.Decrypt(w1); err != nil {
		t.Fatalf("attacker should follow the current chain: %v", err)
	}
	alice.Decrypt(w1)
	// ...until one full DH round trip: Alice sends with a fresh ratchet key,
	// Bob answers with his.
	a1, _ := alice.Encrypt([]byte("fresh key"))
	bob.Decrypt(a1)
	b1, _ := bob.Encrypt([]byte("healed"))
	if pt, err := alice.Decrypt(b1); err != nil || string(pt) != "healed" {
		t.Fatalf("alice: %q %v", pt, err)
	}
	if pt, err := attacker.Decrypt(b1); err == nil {
		t.Fatalf("attacker decrypted %q after a round trip", pt)
	}
	// The attacker forging its own sending chain does not help either.
	attacker.Encrypt([]byte("forged"))
	if _, err := attacker.Decrypt(b1); err == nil {
		t.Fatal("attacker decrypted after rekeying itself")
	}
}

// TestTamperingLeavesStateUnchanged flips every bit position's byte and
// truncates at every length, for an initial and a normal message.
func TestTamperingLeavesStateUnchanged(t *testing.T) {
	alice, bob, _, _ := pair(t, 40)
	initialWire, _ := alice.Encrypt([]byte("initial again"))
	r, _ := bob.Encrypt([]byte("reply"))
	normalToAlice := r
	for name, tc := range map[string]struct {
		to   *Session
		wire []byte
	}{"initial": {bob, initialWire}, "normal": {alice, normalToAlice}} {
		t.Run(name, func(t *testing.T) {
			before := mustMarshal(t, tc.to)
			check := func(what string, w []byte) {
				t.Helper()
				if _, err := tc.to.Decrypt(w); err == nil {
					t.Fatalf("%s: decrypted", what)
				}
				if !bytes.Equal(before, mustMarshal(t, tc.to)) {
					t.Fatalf("%s: state changed", what)
				}
			}
			for i := range tc.wire {
				w := bytes.Clone(tc.wire)
				w[i] ^= 1 << (i % 8)
				check(fmt.Sprintf("flip byte %d", i), w)
			}
			for n := 0; n < len(tc.wire); n++ {
				check(fmt.Sprintf("truncate to %d", n), tc.wire[:n])
			}
			check("trailing byte", append(bytes.Clone(tc.wire), 0))
			if _, err := tc.to.Decrypt(tc.wire); err != nil {
				t.Fatalf("untampered message: %v", err)
			}
		})
	}
}

func TestWrongSessionAndDirection(t *testing.T) {
	alice, bob, a, b := pair(t, 50)
	// A second session between the same cards: its initial message is not bob's.
	relay := newRelay(t, 50)
	alice2, err := StartSession(seeded(77), a.key, a.card, b.card, relay.pub, b.bundle(false, false))
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := alice2.Encrypt([]byte("other session"))
	before := mustMarshal(t, bob)
	if _, err := bob.Decrypt(w2); !errors.Is(err, ErrWrongSession) {
		t.Fatalf("got %v", err)
	}
	if !bytes.Equal(before, mustMarshal(t, bob)) {
		t.Fatal("state changed")
	}
	// An initial message reflected back to its sender.
	w, _ := alice.Encrypt([]byte("to bob"))
	if _, err := alice.Decrypt(w); !errors.Is(err, ErrWrongSession) {
		t.Fatalf("reflected initial: %v", err)
	}
	// A normal message to AcceptSession.
	r, _ := bob.Encrypt([]byte("x"))
	env, _ := DecodeEnvelope(r)
	if _, _, err := AcceptSession(a.key, a.card, b.card, ResponderKeys{}, env); !errors.Is(err, ErrNotInitial) {
		t.Fatalf("AcceptSession(normal): %v", err)
	}
	// The other session's initial message accepted with missing keys.
	env2, _ := DecodeEnvelope(w2)
	if _, _, err := AcceptSession(b.key, b.card, a.card, ResponderKeys{SignedPreKey: b.spk}, env2); !errors.Is(err, ErrMissingPreKey) {
		t.Fatalf("missing KEM key: %v", err)
	}
	if _, _, err := AcceptSession(b.key, b.card, a.card, ResponderKeys{SignedPreKey: b.opk, KEMPreKey: b.lr}, env2); !errors.Is(err, ErrMissingPreKey) {
		t.Fatalf("wrong signed prekey: %v", err)
	}
	// Accepting as the wrong card.
	if _, _, err := AcceptSession(a.key, a.card, b.card, b.responderKeys(env2), env2); !errors.Is(err, ErrWrongCard) {
		t.Fatalf("wrong responder: %v", err)
	}
	if _, _, err := AcceptSession(b.key, b.card, b.card, b.responderKeys(env2), env2); !errors.Is(err, ErrWrongCard) {
		t.Fatalf("wrong initiator card: %v", err)
	}
	if s, pt, err := AcceptSession(b.key, b.card, a.card, b.responderKeys(env2), env2); err != nil || string(pt) != "other session" || s.ID() == bob.ID() {
		t.Fatalf("second session: %v", err)
	}
}

func TestLostFirstMessage(t *testing.T) {
	relay := newRelay(t, 60)
	a := newParty(t, "alice", 61, relay)
	b := newParty(t, "bob", 62, relay)
	alice, err := StartSession(seeded(63), a.key, a.card, b.card, relay.pub, b.bundle(true, false))
	if err != nil {
		t.Fatal(err)
	}
	w0, _ := alice.Encrypt([]byte("zero"))
	w1, _ := alice.Encrypt([]byte("one"))
	w2, _ := alice.Encrypt([]byte("two"))
	env, err := DecodeEnvelope(w2)
	if err != nil {
		t.Fatal(err)
	}
	bob, pt, err := AcceptSession(b.key, b.card, a.card, b.responderKeys(env), env)
	if err != nil || string(pt) != "two" {
		t.Fatalf("%q %v", pt, err)
	}
	for _, w := range [][]byte{w0, w1} {
		if _, err := bob.Decrypt(w); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Decrypt(w0); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed initial: %v", err)
	}
}

func TestTooManySkippedAndEviction(t *testing.T) {
	alice, bob, _, _ := pair(t, 70)
	var wires [][]byte
	for i := 0; i <= MaxSkip+1; i++ {
		w, err := alice.Encrypt([]byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, w)
	}
	// wires[0] is message 1 of the chain (the pair's hello was 0): bob expects 1.
	before := mustMarshal(t, bob)
	if _, err := bob.Decrypt(wires[MaxSkip+1]); !errors.Is(err, ErrTooManySkipped) {
		t.Fatalf("jump beyond MaxSkip: %v", err)
	}
	if !bytes.Equal(before, mustMarshal(t, bob)) {
		t.Fatal("state changed")
	}
	if _, err := bob.Decrypt(wires[MaxSkip]); err != nil {
		t.Fatalf("jump of exactly MaxSkip: %v", err)
	}
	if len(bob.skipped) != MaxSkip {
		t.Fatalf("stored %d skipped keys", len(bob.skipped))
	}
	// A second jump on a new chain evicts the oldest keys.
	r, _ := bob.Encrypt([]byte("r"))
	alice.Decrypt(r)
	var w2 [][]byte
	for i := 0; i < 11; i++ {
		w, _ := alice.Encrypt([]byte("n"))
		w2 = append(w2, w)
	}
	if _, err := bob.Decrypt(w2[10]); err != nil {
		t.Fatal(err)
	}
	if len(bob.skipped) != MaxSkippedKeys {
		t.Fatalf("stored %d skipped keys, cap %d", len(bob.skipped), MaxSkippedKeys)
	}
	// The 11 oldest (and the MaxSkip+1st, never stored) are gone; the rest open.
	for i := 0; i < 11; i++ {
		if _, err := bob.Decrypt(wires[i]); !errors.Is(err, ErrReplay) {
			t.Fatalf("evicted key %d: %v", i, err)
		}
	}
	if _, err := bob.Decrypt(wires[11]); err != nil {
		t.Fatalf("kept key: %v", err)
	}
	if _, err := bob.Decrypt(w2[3]); err != nil {
		t.Fatalf("new-chain skipped key: %v", err)
	}
}

// One message that sets aside MaxSkip old-chain and MaxSkip new-chain keys evicts,
// at its commit, every old-chain key it set aside (SPEC.md §11.4, skipped-key store).
func TestOneMessageEvictsItsOwnKeys(t *testing.T) {
	alice, bob := pairAcked(t, 71)
	var old [][]byte
	for range MaxSkip + 1 { // bob gets the first only: PN − Nr = MaxSkip at the step below
		w, err := alice.Encrypt([]byte("o"))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, w)
	}
	if _, err := bob.Decrypt(old[0]); err != nil {
		t.Fatal(err)
	}
	r, _ := bob.Encrypt([]byte("r"))
	if _, err := alice.Decrypt(r); err != nil {
		t.Fatal(err)
	}
	var next [][]byte
	for range MaxSkip + 1 {
		w, _ := alice.Encrypt([]byte("n"))
		next = append(next, w)
	}
	if _, err := bob.Decrypt(next[MaxSkip]); err != nil { // PN and N both MaxSkip ahead
		t.Fatal(err)
	}
	if len(bob.skipped) != MaxSkippedKeys || bob.skipped[0].n != 0 || bob.skipped[0].dh != bob.dhr {
		t.Fatalf("%d skipped keys, oldest %d: want the new chain's %d", len(bob.skipped), bob.skipped[0].n, MaxSkippedKeys)
	}
	if _, err := bob.Decrypt(old[MaxSkip]); !errors.Is(err, ErrReplay) {
		t.Fatalf("an old-chain key the message set aside: %v, want ErrReplay (evicted)", err)
	}
	if _, err := bob.Decrypt(next[0]); err != nil {
		t.Fatalf("a new-chain key: %v", err)
	}
}

func TestPaddingAndLimits(t *testing.T) {
	alice, bob, _, _ := pair(t, 80)
	if err := alice.SetPadding(MaxPaddingBlock + 1); !errors.Is(err, ErrOversize) {
		t.Fatal(err)
	}
	if err := alice.SetPadding(160); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 158, 159, 160, 1000, MaxPlaintext} {
		msg := bytes.Repeat([]byte{0}, n) // zeros: the padding marker must still be found
		w, err := alice.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := DecodeEnvelope(w)
		if (len(env.Ciphertext)-aeadOverhead)%160 != 0 {
			t.Fatalf("%d bytes padded to %d", n, len(env.Ciphertext)-aeadOverhead)
		}
		pt, err := bob.Decrypt(w)
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	before := mustMarshal(t, alice)
	if _, err := alice.Encrypt(make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrPlaintextTooLarge) {
		t.Fatal(err)
	}
	if !bytes.Equal(before, mustMarshal(t, alice)) {
		t.Fatal("failed encrypt changed state")
	}
	a2, _ := ParseSession(before)
	if a2.Padding() != 160 {
		t.Fatal("padding not persisted")
	}
}

func TestHandshakeRefusesBadBundles(t *testing.T) {
	relay := newRelay(t, 90)
	a := newParty(t, "alice", 91, relay)
	b := newParty(t, "bob", 92, relay)
	mallory := newParty(t, "mallory", 93, relay)
	start := func(bundle *Bundle) error {
		_, err := StartSession(seeded(94), a.key, a.card, b.card, relay.pub, bundle)
		return err
	}
	good := func() *Bundle { return b.bundle(true, true) }
	cases := []struct {
		name   string
		mutate func(*Bundle)
		want   error
	}{
		{"signed prekey signature", func(x *Bundle) { x.SignedPreKey.Signature[3] ^= 1 }, ErrBadSignature},
		{"signed prekey key", func(x *Bundle) { x.SignedPreKey.Key[3] ^= 1 }, ErrBadSignature},
		{"signed prekey id", func(x *Bundle) { x.SignedPreKey.ID++ }, ErrBadSignature},
		{"KEM prekey signature", func(x *Bundle) { x.KEMPreKey.Signature[0] ^= 1 }, ErrBadSignature},
		{"KEM key size", func(x *Bundle) { x.KEMPreKey.Key = x.KEMPreKey.Key[:100] }, ErrMalformed},
		{"KEM missing", func(x *Bundle) { x.KEMPreKey = PublicPreKey{} }, ErrMissingPreKey},
		{"signed prekey missing", func(x *Bundle) { x.SignedPreKey = PublicPreKey{} }, ErrMissingPreKey},
		{"X25519 in KEM slot", func(x *Bundle) { x.KEMPreKey = b.spk.Public() }, ErrMissingPreKey},
		{"prekey of another card", func(x *Bundle) { x.SignedPreKey = mallory.spk.Public() }, ErrBadSignature},
		{"another card", func(x *Bundle) { x.Card = mallory.card }, ErrWrongCard},
		{"relay signature missing", func(x *Bundle) { c := *x.Card; c.RelaySignature = nil; x.Card = &c }, ErrBadSignature},
		{"one-time key with signature field", func(x *Bundle) { x.OneTimePreKey.Signature = make([]byte, 64) }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := good()
			tc.mutate(x)
			if err := start(x); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	otherRelay := newRelay(t, 95)
	if _, err := StartSession(seeded(1), a.key, a.card, b.card, otherRelay.pub, good()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other relay key: %v", err)
	}
	if _, err := StartSession(seeded(1), a.key, b.card, b.card, relay.pub, good()); !errors.Is(err, ErrWrongCard) {
		t.Fatalf("own card mismatch: %v", err)
	}
	if err := start(good()); err != nil {
		t.Fatal(err)
	}
}

func TestCards(t *testing.T) {
	relay := newRelay(t, 200)
	p := newParty(t, "carol.w_2-x", 201, relay)
	c := p.card
	if len(c.ID()) != 64 || c.CheckID(c.ID()) != nil || !errors.Is(c.CheckID(strings.Repeat("0", 64)), ErrCardIDMismatch) {
		t.Fatal("ID / CheckID")
	}
	if err := c.VerifyWithRelay(relay.pub); err != nil {
		t.Fatal(err)
	}
	s := c.Export()
	if !strings.HasPrefix(s, CardExportPrefix) {
		t.Fatal(s)
	}
	c2, err := ImportCard("  " + s[:30] + "\n" + s[30:70] + " \r\n\t" + s[70:] + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if c2.ID() != c.ID() || c2.VerifyWithRelay(relay.pub) != nil || c2.Export() != s {
		t.Fatal("round trip")
	}
	// Every field is covered by the self signature.
	mutations := map[string]func(*Card){
		"identity":  func(c *Card) { c.Identity = "mallory" },
		"type":      func(c *Card) { c.IdentityType = "email" },
		"device":    func(c *Card) { c.Device = "phone" },
		"agreement": func(c *Card) { c.AgreementKey = bytes.Repeat([]byte{9}, 32) },
		"created":   func(c *Card) { c.CreatedAt = c.CreatedAt.Add(time.Second) },
		"data":      func(c *Card) { c.Data = map[string]string{"app": "evil"} },
		"signature": func(c *Card) { c.SelfSignature = bytes.Clone(c.SelfSignature); c.SelfSignature[0] ^= 1 },
	}
	for name, m := range mutations {
		x, _ := ImportCard(s)
		m(x)
		if err := x.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v", name, err)
		}
		if x.ID() == c.ID() && name != "signature" {
			t.Errorf("%s: ID unchanged", name)
		}
	}
	x, _ := ImportCard(s)
	x.RelaySignature[5] ^= 1
	if err := x.VerifyWithRelay(relay.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatal(err)
	}
	for in, want := range map[string]error{
		"":                           ErrMalformed,
		"hello":                      ErrMalformed,
		"pfscard2:AAAA":              ErrUnknownVersion,
		CardExportPrefix + "!!!":     ErrMalformed,
		CardExportPrefix + "AA":      ErrUnknownVersion, // format version 0
		s + "*":                      ErrMalformed,
		strings.Repeat("x", 1000000): ErrOversize,
	} {
		if _, err := ImportCard(in); !errors.Is(err, want) {
			t.Errorf("ImportCard(%.20q) = %v, want %v", in, err, want)
		}
	}
	for _, bad := range []string{"", "Alice", "a b", strings.Repeat("a", 33), "ä"} {
		if !errors.Is(ValidateName(bad), ErrInvalidName) {
			t.Errorf("ValidateName(%q) passed", bad)
		}
	}
	if _, err := NewCard(p.key, "Bad Name", "username", "", testNow, nil); !errors.Is(err, ErrInvalidName) {
		t.Fatal(err)
	}
	if fp := Fingerprint(c.SigningKey); len(fp) != 24 {
		t.Fatalf("fingerprint %q", fp)
	}
}

func TestKeyCodecs(t *testing.T) {
	relay := newRelay(t, 300)
	p := newParty(t, "dave", 301, relay)
	kb, _ := p.key.MarshalBinary()
	k2, err := ParseIdentityKey(kb)
	if err != nil || !bytes.Equal(k2.AgreementPublicKey(), p.key.AgreementPublicKey()) || !bytes.Equal(k2.SigningPublicKey(), p.key.SigningPublicKey()) {
		t.Fatal("identity key round trip", err)
	}
	if _, err := ParseIdentityKey(append(kb, 0)); !errors.Is(err, ErrTrailingBytes) {
		t.Fatal(err)
	}
	if _, err := ParseIdentityKey(kb[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	kb[0] = 9
	if _, err := ParseIdentityKey(kb); !errors.Is(err, ErrUnknownVersion) {
		t.Fatal(err)
	}
	sig := p.key.Sign("test/domain", []byte("m"))
	if VerifySignature(p.key.SigningPublicKey(), "test/domain", []byte("m"), sig) != nil ||
		!errors.Is(VerifySignature(p.key.SigningPublicKey(), "test/domaim", []byte("m"), sig), ErrBadSignature) {
		t.Fatal("domain separation")
	}
	for _, pk := range []*PrivatePreKey{p.spk, p.opk, p.kem, p.lr} {
		b, _ := pk.MarshalBinary()
		q, err := ParsePrivatePreKey(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := q.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("private prekey round trip")
		}
		if err := q.Public().Verify(p.card); err != nil {
			t.Fatal(err)
		}
		pub, _ := pk.Public().MarshalBinary()
		pp, err := ParsePublicPreKey(pub)
		if err != nil || pp.Verify(p.card) != nil {
			t.Fatal(err)
		}
		if _, err := ParsePublicPreKey(append(pub, 1)); !errors.Is(err, ErrTrailingBytes) {
			t.Fatal(err)
		}
		// A secret that does not match the public half.
		bad := bytes.Clone(b)
		secretLen := 32
		if pk.pub.Kind.isKEM() {
			secretLen = 64
		}
		bad[len(bad)-secretLen] ^= 0x10 // d of an ML-KEM seed, or an unclamped scalar bit
		if _, err := ParsePrivatePreKey(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("mismatched secret: %v", err)
		}
	}
	bundle := p.bundle(true, true)
	bb, err := bundle.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle(bb)
	if err != nil || b2.Verify(p.card, relay.pub) != nil {
		t.Fatal("bundle round trip", err)
	}
	if _, err := ParseBundle(append(bb, 0)); !errors.Is(err, ErrTrailingBytes) {
		t.Fatal(err)
	}
	nb := p.bundle(false, false)
	bb, _ = nb.MarshalBinary()
	if b3, err := ParseBundle(bb); err != nil || b3.OneTimePreKey != nil || b3.Verify(p.card, relay.pub) != nil {
		t.Fatal("bundle without one-time key", err)
	}
}

func TestEnvelopeDecoder(t *testing.T) {
	alice, _, _, _ := pair(t, 400)
	w, _ := alice.Encrypt([]byte("x"))
	env, err := DecodeEnvelope(w)
	if err != nil || env.Initial == nil || env.Initial.SessionID() != alice.ID() {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":    {nil, ErrMalformed},
		"version":  {append([]byte{2}, w[1:]...), ErrUnknownVersion},
		"type":     {append([]byte{1, 3}, w[2:]...), ErrMalformed},
		"trailing": {append(bytes.Clone(w), 0), ErrTrailingBytes},
		"huge":     {make([]byte, MaxMessageSize+1), ErrOversize},
	} {
		if _, err := DecodeEnvelope(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// A ciphertext length field beyond the limit.
	normal := []byte{1, 2}
	normal = append(normal, make([]byte, 40)...)
	normal = appendU32(normal, maxCiphertext+1)
	if _, err := DecodeEnvelope(normal); !errors.Is(err, ErrOversize) {
		t.Errorf("oversize ciphertext: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestEncryptFailureLeavesStateUnchanged(t *testing.T) {
	_, bob, _, _ := pair(t, 600)
	bob.SetRand(failingReader{}) // bob's first reply needs a new ratchet key
	before := mustMarshal(t, bob)
	if _, err := bob.Encrypt([]byte("x")); err == nil {
		t.Fatal("encrypt without randomness succeeded")
	}
	if !bytes.Equal(before, mustMarshal(t, bob)) {
		t.Fatal("state changed")
	}
	bob.SetRand(nil)
	if _, err := bob.Encrypt([]byte("x")); err != nil {
		t.Fatal(err)
	}
}
