package ratchet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The rules SPEC.md gives one error each where two rules overlap (§4, §6.1, §6.5, §8.3),
// the numeric limits of §2, and where the ML-KEM encapsulation-key check happens (§10.1).

func TestSpecLimits(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"card snapshot", maxSnapshotLen, 18298},
		{"card binary", maxCardLen, 18431},
		{"card export", maxExportLen, 24584},
		{"public prekey", maxPublicPreKeyLen, 1265},
		{"bundle", maxBundleLen, 22236},
	} {
		if c.got != c.want {
			t.Errorf("%s limit %d, SPEC.md §2 says %d", c.name, c.got, c.want)
		}
	}
}

func TestSpecOneErrorPerRule(t *testing.T) {
	k, err := GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := NewCard(k, "alice", "username", "d", testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := card.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	snapEnd := 3 + (int(bin[1])<<8 | int(bin[2]))
	withSelfSig := func(n int) []byte {
		b := append([]byte{}, bin[:snapEnd]...)
		b = append(b, byte(n))
		b = append(b, bytes.Repeat([]byte{1}, n)...)
		return append(b, 0)
	}
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err = ParseCard(withSelfSig(63))
	check("card self signature of 63 bytes", err, ErrMalformed)
	_, err = ParseCard(withSelfSig(65))
	check("card self signature of 65 bytes", err, ErrOversize)

	// The identity: too long in a snapshot is the decoder's ErrOversize; a bad name of a
	// valid length, or any name checked on its own, is ErrInvalidName.
	long := *card
	long.Identity = strings.Repeat("a", 33)
	_, err = parseSnapshot(long.Snapshot())
	check("snapshot identity of 33 bytes", err, ErrOversize)
	upper := *card
	upper.Identity = "Alice"
	_, err = parseSnapshot(upper.Snapshot())
	check("snapshot identity with upper case", err, ErrInvalidName)
	check("ValidateName of 33 bytes", ValidateName(strings.Repeat("a", 33)), ErrInvalidName)

	// The export prefix grammar and length.
	_, err = ImportCard("pfscard2:AAAA")
	check("pfscard2: prefix", err, ErrUnknownVersion)
	_, err = ImportCard("pfscardx")
	check("pfscard without version", err, ErrUnknownVersion)
	_, err = ImportCard("card1:AAAA")
	check("no prefix", err, ErrMalformed)
	_, err = ImportCard(CardExportPrefix + strings.Repeat("A", 24584-len(CardExportPrefix)+1))
	check("export over 24584 characters", err, ErrOversize)

	// A prekey of a signed kind: a short signature is ErrBadSignature, a long one the
	// decoder's ErrOversize.
	pk, err := GeneratePreKey(rand.Reader, k, SignedPreKey, 1, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    int
		want error
	}{{63, ErrBadSignature}, {0, ErrBadSignature}, {65, ErrOversize}} {
		enc, err := pk.Public().MarshalBinary() // ends with u8 64 ‖ the signature
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc[:len(enc)-65:len(enc)-65], byte(c.n))
		enc = append(enc, bytes.Repeat([]byte{1}, c.n)...)
		_, err = ParsePublicPreKey(enc)
		check(fmt.Sprintf("prekey signature of %d bytes", c.n), err, c.want)
	}
}

// The ML-KEM encapsulation-key check (FIPS 203 §7.2) happens when the initiator
// encapsulates (§10.1 step 5): a properly signed KEM prekey whose coefficients are out
// of range verifies as part of the bundle, and the handshake refuses it.
func TestSpecEncapsulationKeyCheck(t *testing.T) {
	relay := newRelay(t, 1)
	alice, bob := newParty(t, "alice", 2, relay), newParty(t, "bob", 3, relay)
	bad := bob.lr.Public()
	bad.Key = bytes.Repeat([]byte{0xff}, len(bad.Key)) // every 12-bit coefficient 4095 ≥ q
	bad.Signature = bob.key.Sign(DomainPreKey, bad.signedBytes())
	b := bob.bundle(true, false)
	b.KEMPreKey = bad
	if err := b.Verify(bob.card, relay.pub); err != nil {
		t.Fatalf("bundle verification checked the encapsulation key: %v", err)
	}
	_, err := StartSession(rand.Reader, alice.key, alice.card, bob.card, relay.pub, b)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("handshake with an invalid encapsulation key: %v, want ErrMalformed", err)
	}
}

// §6.5: import removes exactly space, tab, CR and LF. Any other white space (a vertical
// tab, a form feed, a no-break space) is not part of base64url and fails, whether or not
// the line also holds one of the four.
func TestSpecImportWhiteSpace(t *testing.T) {
	k, err := GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := NewCard(k, "alice", "username", "d", testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := card.Export()
	mid := len(line) / 2
	if c, err := ImportCard(" \t" + line[:mid] + "\r\n" + line[mid:] + "\n"); err != nil || c.ID() != card.ID() {
		t.Fatalf("export wrapped with space, tab, CR, LF: %v", err)
	}
	for _, ws := range []string{"\v", "\f", "\u00a0", "\u2028", "\u0085"} {
		for _, also := range []string{"", " ", "\n"} {
			in := line[:mid] + ws + line[mid:] + also
			if _, err := ImportCard(in); !errors.Is(err, ErrMalformed) {
				t.Errorf("export with %q inside (and %q at the end): %v, want ErrMalformed", ws, also, err)
			}
		}
	}
}
