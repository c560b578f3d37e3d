package ratchet

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
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

// §6.4/§6.5: the longest valid card is shorter than the structural limits, and import
// judges length by the structural export limit (24584), not the valid maximum (23735).
func TestSpecLongestValidCard(t *testing.T) {
	k, err := GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{}
	for i := range MaxCardDataEntries {
		data[strings.Repeat(string(rune('a'+i)), MaxCardDataKeyLen)] = strings.Repeat("v", MaxCardDataValLen)
	}
	card, err := NewCard(k, strings.Repeat("a", 32), strings.Repeat("t", 32), strings.Repeat("d", 64), testNow, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := card.SignAsRelay(newRelay(t, 5).priv); err != nil {
		t.Fatal(err)
	}
	bin, err := card.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if n, b, e := len(card.Snapshot()), len(bin), len(card.Export()); n != 17661 || b != 17794 || e != 23735 {
		t.Errorf("longest valid card: snapshot %d, binary %d, export %d; SPEC.md §6.4 says 17661, 17794, 23735", n, b, e)
	}
	for _, c := range []struct {
		n    int
		want error
	}{{23736, ErrMalformed}, {24584, ErrMalformed}, {24585, ErrOversize}} {
		_, err := ImportCard(CardExportPrefix + strings.Repeat("!", c.n-len(CardExportPrefix)))
		if !errors.Is(err, c.want) {
			t.Errorf("export of %d bytes that is not base64url: %v, want %v", c.n, err, c.want)
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

	// A card built in code has no decoder in front: §6.1's rules alone decide.
	built := func(identity, typ, device string, data map[string]string) error {
		_, err := NewCard(k, identity, typ, device, testNow, data)
		return err
	}
	check("built card, identity of 33 bytes", built(strings.Repeat("a", 33), "username", "", nil), ErrInvalidName)
	check("built card, identity type of 33 bytes", built("alice", strings.Repeat("t", 33), "", nil), ErrMalformed)
	check("built card, device of 65 bytes", built("alice", "username", strings.Repeat("d", 65), nil), ErrMalformed)
	check("built card, data key of 65 bytes", built("alice", "username", "", map[string]string{strings.Repeat("k", 65): ""}), ErrMalformed)
	check("built card, data value of 1025 bytes", built("alice", "username", "", map[string]string{"k": strings.Repeat("v", 1025)}), ErrMalformed)
	many := map[string]string{}
	for i := range 17 {
		many[string(rune('a'+i))] = ""
	}
	check("built card, 17 data entries", built("alice", "username", "", many), ErrOversize)
	long2 := *card
	long2.IdentityType = strings.Repeat("t", 33)
	check("Verify of a card with an identity type of 33 bytes", long2.Verify(), ErrMalformed)

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

// §4's strictness rules, which another implementation must match to accept and refuse
// the same signatures. The signatures are built by hand from small-order points, where
// [S]B − [k]A is computed without a curve library: A = (√−1, 0) has order 4, so [k]A
// depends on k mod 4 only. Each case names the words of SPEC.md §4 it checks.
func TestSpecEd25519Strictness(t *testing.T) {
	raw, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(raw)), " ") // the words, whatever the line breaks
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	order, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10) // L
	// enc is the 32-byte encoding of y (any value below 2²⁵⁵) with the sign bit of x.
	enc := func(y *big.Int, sign bool) []byte {
		b := make([]byte, 32)
		y.FillBytes(b)
		slices.Reverse(b)
		if sign {
			b[31] |= 0x80
		}
		return b
	}
	sqrtM1 := new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(p, big.NewInt(1)), 2), p)
	odd := sqrtM1.Bit(0) == 1
	one, minusOne := big.NewInt(1), new(big.Int).Sub(p, big.NewInt(1))
	// The multiples of A = (√−1, 0): identity (0, 1), A, (0, −1), −A = (−√−1, 0).
	mult := [4][]byte{enc(one, false), enc(big.NewInt(0), odd), enc(minusOne, false), enc(big.NewInt(0), !odd)}
	identity := mult[0]
	zero := make([]byte, 32)
	const domain = "pfschat/test/strictness"

	// signSmallOrder finds a message whose signature (R, S = 0) under the order-4 key
	// given by aBytes holds: R = −[k]A with k = SHA-512(R ‖ aBytes ‖ signed bytes) mod L.
	signSmallOrder := func(aBytes []byte) (msg, sig []byte) {
		for m := 0; m < 256; m++ {
			msg = []byte{byte(m)}
			for r, R := range mult {
				h := sha512.Sum512(slices.Concat(R, aBytes, []byte(domain), []byte{0}, msg))
				slices.Reverse(h[:])
				k := new(big.Int).Mod(new(big.Int).SetBytes(h[:]), order)
				if (4-int(new(big.Int).And(k, big.NewInt(3)).Int64()))%4 == r {
					return msg, slices.Concat(R, zero)
				}
			}
		}
		t.Fatal("no message found")
		return nil, nil
	}
	ncMsg, ncSig := signSmallOrder(enc(p, odd)) // A with y = p, a non-canonical 0

	for _, c := range []struct {
		spec   string // words of SPEC.md §4
		a, sig []byte
		msg    []byte
		ok     bool
	}{
		{"small-order `A` and `R` are not rejected", identity, slices.Concat(identity, zero), []byte("m"), true},
		{"non-canonical encodings of `y` (`y ≥ p`)", enc(new(big.Int).Add(p, one), false), slices.Concat(identity, zero), []byte("m"), true},
		{"an `x` of 0 with the sign bit set", enc(one, true), slices.Concat(identity, zero), []byte("m"), true},
		{"over `A`'s 32 bytes as given", enc(p, odd), ncSig, ncMsg, true},
		{"over `A`'s 32 bytes as given", mult[1], ncSig, ncMsg, false}, // the same point, canonical: another k
		{"non-canonically encoded `R` fails", identity, slices.Concat(enc(new(big.Int).Add(p, one), false), zero), []byte("m"), false},
		{"non-canonically encoded `R` fails", identity, slices.Concat(enc(one, true), zero), []byte("m"), false},
		{"`S` must be below the group order `L`", identity, slices.Concat(identity, enc(order, false)), []byte("m"), false}, // [L]B is the identity
	} {
		if !strings.Contains(doc, c.spec) {
			t.Errorf("SPEC.md §4 does not say %q", c.spec)
		}
		err := VerifySignature(c.a, domain, c.msg, c.sig)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrBadSignature)) {
			t.Errorf("%s: A %x, signature %x: %v, want accepted %v", c.spec, c.a, c.sig, err, c.ok)
		}
	}
}

// §8.3 and §14: a prekey checked against another card than its owner's fails its
// signature (ErrBadSignature); ErrWrongCard is for bundles, initial messages and one's
// own card, never a prekey.
func TestSpecPreKeyOfAnotherCard(t *testing.T) {
	relay := newRelay(t, 7)
	alice, bob := newParty(t, "alice", 8, relay), newParty(t, "bob", 9, relay)
	for _, k := range []*PrivatePreKey{bob.spk, bob.kem, bob.lr} {
		if err := k.Public().Verify(alice.card); !errors.Is(err, ErrBadSignature) || errors.Is(err, ErrWrongCard) {
			t.Errorf("bob's %s verified against alice's card: %v, want ErrBadSignature", k.pub.Kind, err)
		}
	}
	raw, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "| `ErrWrongCard` |") && strings.Contains(line, "prekey") {
			t.Errorf("SPEC.md §14 says a prekey of another card is ErrWrongCard: %s", line)
		}
	}
}
