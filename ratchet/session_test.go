package ratchet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

func TestConversation(t *testing.T) {
	alice, bob, _, _ := pair(t, 1)
	if alice.ID() != bob.ID() {
		t.Fatalf("session IDs differ")
	}
	if !alice.UsedOneTimePreKey() || !bob.UsedOneTimePreKey() {
		t.Fatal("one-time prekey not reported")
	}
	for i := 0; i < 10; i++ {
		from, to := alice, bob
		if i%3 == 1 {
			from, to = bob, alice
		}
		msg := []byte(fmt.Sprintf("message %d", i))
		wire, err := from.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := to.Decrypt(wire)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("got %q want %q", got, msg)
		}
		// Round-trip both sessions through the codec mid-conversation.
		if i%4 == 0 {
			a2, err := ParseSession(mustMarshal(t, alice))
			if err != nil {
				t.Fatal(err)
			}
			a2.SetRand(seeded(uint64(100 + i)))
			if !bytes.Equal(mustMarshal(t, a2), mustMarshal(t, alice)) {
				t.Fatal("session codec round trip changed bytes")
			}
			alice = a2
		}
	}
	if !alice.Acknowledged() {
		t.Fatal("alice not acknowledged after a reply")
	}
}

func TestReplayLeavesStateUnchanged(t *testing.T) {
	alice, bob, _, _ := pair(t, 2)
	wire, _ := alice.Encrypt([]byte("x"))
	if _, err := bob.Decrypt(wire); err != nil {
		t.Fatal(err)
	}
	before := mustMarshal(t, bob)
	_, err := bob.Decrypt(wire)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if !bytes.Equal(before, mustMarshal(t, bob)) {
		t.Fatal("state changed")
	}
}

// A sending chain at Ns = 2³²−1 refuses to send rather than wrap its counter (SPEC.md
// §11.3 step 1), and leaves the session as it was; the message before it still goes.
func TestEncryptRefusesAnExhaustedSendingChain(t *testing.T) {
	alice, bob := pairAcked(t, 77)
	ct, err := alice.Encrypt([]byte("to start a sending chain"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Decrypt(ct); err != nil {
		t.Fatal(err)
	}
	alice.ns = ^uint32(0) - 1
	if _, err := alice.Encrypt([]byte("the last of the chain")); err != nil {
		t.Fatalf("message number 2^32-2: %v", err)
	}
	before := mustMarshal(t, alice)
	if _, err := alice.Encrypt([]byte("one too many")); !errors.Is(err, ErrTooManySkipped) {
		t.Fatalf("message number 2^32-1: %v, want ErrTooManySkipped", err)
	}
	if after := mustMarshal(t, alice); !bytes.Equal(before, after) {
		t.Fatal("a refused Encrypt changed the session")
	}
}

// The messages sent and received counters wrap modulo 2³² (SPEC.md §13), unlike Ns.
func TestMessageCountersWrap(t *testing.T) {
	alice, bob := pairAcked(t, 78)
	alice.sendCount, bob.recvCount = ^uint32(0), ^uint32(0)
	ct, err := alice.Encrypt([]byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Decrypt(ct); err != nil {
		t.Fatal(err)
	}
	if alice.SendCount() != 0 || bob.ReceiveCount() != 0 {
		t.Fatalf("sent %d, received %d after 2^32-1; want both 0", alice.SendCount(), bob.ReceiveCount())
	}
}

// KnowsRatchetKey is true for the chains a session has received on — the current one,
// the previous ones, one it holds skipped keys of — and false for any other key, so a
// client can tell "its key is gone" from "never this session's" after ErrReplay.
func TestKnowsRatchetKey(t *testing.T) {
	alice, bob := pairAcked(t, 91)
	dhOf := func(wire []byte) []byte {
		t.Helper()
		env, err := DecodeEnvelope(wire)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(env.Header.DH)
	}
	enc := func(s *Session, text string) []byte {
		t.Helper()
		w, err := s.Encrypt([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w1 := enc(alice, "one")
	late := enc(alice, "late") // skipped at bob
	w3 := enc(alice, "three")
	if _, err := bob.Decrypt(w1); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Decrypt(w3); err != nil {
		t.Fatal(err)
	}
	first := dhOf(w1)
	if !bob.KnowsRatchetKey(first) {
		t.Fatal("bob does not know the chain he receives on")
	}
	// A step each way: alice's first chain becomes one of bob's previous ones, its
	// skipped key kept.
	if _, err := alice.Decrypt(enc(bob, "back")); err != nil {
		t.Fatal(err)
	}
	next := enc(alice, "next chain")
	if _, err := bob.Decrypt(next); err != nil {
		t.Fatal(err)
	}
	if !bob.KnowsRatchetKey(first) || !bob.KnowsRatchetKey(dhOf(next)) {
		t.Fatal("bob forgot a previous chain or does not know the current one")
	}
	bob.DropSkippedChain([32]byte(first))
	if !bob.KnowsRatchetKey(first) {
		t.Fatal("a previous chain without skipped keys is still one bob received on")
	}
	if _, err := bob.Decrypt(late); !errors.Is(err, ErrReplay) {
		t.Fatalf("the late message after its key was dropped: %v, want ErrReplay", err)
	}
	random := make([]byte, 32)
	rand.Read(random)
	if bob.KnowsRatchetKey(random) || bob.KnowsRatchetKey(first[:31]) || bob.KnowsRatchetKey(nil) {
		t.Fatal("bob knows a key he never received on")
	}
	if fresh, _, _, _ := pair(t, 1000); fresh.KnowsRatchetKey(first) {
		t.Fatal("an initiator that has received nothing knows a key")
	}
}
