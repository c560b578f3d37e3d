package ratchet_test

// TestSpecDecodersAgree feeds the same damaged inputs to the package's decoders and to
// the ones TestVectorsFollowSpec wrote from SPEC.md, and wants the same verdict: every
// single-byte change, truncation and extension of the vectors' cards, prekeys, bundle and
// messages, and inputs with two defects at once, where the order of §1.1's rules decides
// which error is named.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"pfschat/ratchet"
)

func specErrorName(err error) string {
	if err == nil {
		return ""
	}
	for _, e := range []struct {
		name string
		err  error
	}{
		{"ErrMalformed", ratchet.ErrMalformed}, {"ErrTrailingBytes", ratchet.ErrTrailingBytes},
		{"ErrOversize", ratchet.ErrOversize}, {"ErrUnknownVersion", ratchet.ErrUnknownVersion},
		{"ErrBadSignature", ratchet.ErrBadSignature}, {"ErrInvalidName", ratchet.ErrInvalidName},
		{"ErrWrongCard", ratchet.ErrWrongCard}, {"ErrMissingPreKey", ratchet.ErrMissingPreKey},
	} {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "unclassified: " + err.Error()
}

// damaged returns in with every byte changed (four ways), every truncation, one byte
// appended, and n inputs with two of those defects, drawn with a fixed seed.
func damaged(in []byte, n int) [][]byte {
	one := func(b []byte, i, how int) []byte {
		b = slices.Clone(b)
		switch how {
		case 0:
			b[i] = 0
		case 1:
			b[i] = 0xff
		case 2:
			b[i] ^= 1
		case 3:
			b[i]++
		}
		return b
	}
	var out [][]byte
	for i := range in {
		for how := range 4 {
			out = append(out, one(in, i, how))
		}
		out = append(out, in[:i])
	}
	out = append(out, append(slices.Clone(in), 0))
	r := rand.New(rand.NewPCG(1, 2))
	for range n {
		b := one(in, r.IntN(len(in)), r.IntN(4))
		switch r.IntN(3) {
		case 0:
			b = one(b, r.IntN(len(b)), r.IntN(4))
		case 1:
			b = b[:r.IntN(len(b))]
		case 2:
			b = append(b, byte(r.IntN(256)))
		}
		out = append(out, b)
	}
	return out
}

func TestSpecDecodersAgree(t *testing.T) {
	loadSpecConstants(t)
	f := readSpecFile(t)
	relayKey := ed25519.PublicKey(f.Relay.PublicKey.b(t))
	bobCard, err := ratchet.ParseCard(f.Bob.Card.Binary.b(t))
	if err != nil {
		t.Fatal(err)
	}
	specBob, e := specParseCard(f.Bob.Card.Binary.b(t))
	if e != "" {
		t.Fatal(e)
	}
	disagree := 0
	// Signatures are verified on every sixteenth input both sides decode: ed25519.Verify is
	// what this test would spend its time on, and the decoders are where the order of
	// the rules matters.
	decoded := 0
	verify := func(pkgErr error, spec string) bool {
		if pkgErr != nil || spec != "" {
			return false
		}
		decoded++
		return decoded%16 == 0
	}
	compare := func(what string, in []byte, pkg error, spec string) {
		t.Helper()
		if got := specErrorName(pkg); got != spec {
			disagree++
			if disagree <= 20 {
				sum := sha256.Sum256(in)
				t.Errorf("%s (%d bytes, SHA-256 %x…): the package says %q, the spec %q", what, len(in), sum[:6], got, spec)
			}
		}
	}

	for _, in := range damaged(f.Bob.Card.Binary.b(t), 300) {
		c, err := ratchet.ParseCard(in)
		sc, e := specParseCard(in)
		if verify(err, e) {
			err, e = c.VerifyWithRelay(relayKey), specVerifyWithRelay(sc, relayKey)
		}
		compare("card", in, err, e)
	}
	for _, in := range damaged([]byte(f.Bob.Card.Export), 300) {
		_, err := ratchet.ImportCard(string(in))
		_, e := specImportCard(in)
		compare("card export", in, err, e)
	}
	derive := func(kind byte, secret []byte) []byte {
		if kind >= 3 {
			return nil // not compared: see below
		}
		return x25519Pub(t, secret)
	}
	for _, pk := range f.Bob.PreKeys {
		for _, in := range damaged(pk.Public.b(t), 300) {
			p, err := ratchet.ParsePublicPreKey(in)
			sp, e := specParsePublicPreKey(in)
			if verify(err, e) {
				err, e = p.Verify(bobCard), specVerifyPreKey(sp, specBob.signingKey)
			}
			compare(fmt.Sprintf("prekey %d", pk.ID), in, err, e)
		}
		if pk.Kind >= 3 {
			continue // an ML-KEM KeyGen per input is too slow for this loop
		}
		for _, in := range damaged(pk.Private.b(t), 300) {
			_, err := ratchet.ParsePrivatePreKey(in)
			_, _, e := specParsePrivatePreKey(in, derive)
			compare(fmt.Sprintf("private prekey %d", pk.ID), in, err, e)
		}
	}
	for _, in := range damaged(f.Bundle.b(t), 1000) {
		b, err := ratchet.ParseBundle(in)
		sb, e := specParseBundle(in)
		if verify(err, e) {
			err, e = b.Verify(bobCard, relayKey), specVerifyBundle(sb, specBob, relayKey)
		}
		compare("bundle", in, err, e)
	}
	for _, m := range []specMessage{f.Transcript.Messages[0], f.Transcript.Messages[len(f.Transcript.Messages)-1]} {
		for _, in := range damaged(m.Wire.b(t), 1000) {
			_, err := ratchet.DecodeEnvelope(in)
			_, e := specDecodeWire(in)
			compare("message "+m.Label, in, err, e)
		}
	}
	if decoded < 100 {
		t.Fatalf("only %d damaged inputs decoded", decoded)
	}
	if disagree > 0 {
		t.Errorf("%d inputs judged differently", disagree)
	}
}

// TestSpecRuleOrder pins §1.1's order of rules on inputs with two defects, each with the
// error that order gives; the package's decoders and the spec's must both name it.
func TestSpecRuleOrder(t *testing.T) {
	f := readSpecFile(t)
	set := func(b []byte, at int, v ...byte) []byte { b = slices.Clone(b); copy(b[at:], v); return b }
	plus := func(b []byte) []byte { return append(slices.Clone(b), 0) }
	type check struct {
		name string
		in   []byte
		want string
	}
	var messages, cards, prekeys, privates, bundles, sessions []check

	// §12.1, §12.2.
	normal := func(typ byte, ctLen uint32, ct int) []byte {
		return slices.Concat([]byte{1, typ}, make([]byte, 40), be32(ctLen), make([]byte, ct))
	}
	a1 := f.Transcript.Messages[0].Wire.b(t)
	const h = 2 // the initial header's offset
	messages = append(messages,
		check{"ciphertext of 16 bytes with a trailing byte", plus(normal(2, 16, 16)), "ErrTrailingBytes"},
		check{"ciphertext of 0 bytes with a trailing byte", plus(normal(2, 0, 0)), "ErrTrailingBytes"},
		check{"ciphertext of 16 bytes", normal(2, 16, 16), "ErrMalformed"},
		check{"type 3 with a trailing byte", plus(normal(3, 17, 17)), "ErrMalformed"},
		check{"version 2 and over MaxMessageSize", set(make([]byte, 70894), 0, 2), "ErrOversize"},
		check{"initial: KEM prekey kind 5 with a trailing byte", plus(set(a1, h+108, 5)), "ErrMalformed"},
		check{"initial: SPK id 0 with a trailing byte", plus(set(a1, h+96, 0, 0, 0, 0)), "ErrMalformed"},
		check{"initial: SPK id 0 and a KEM ciphertext length of 1089", set(a1, h+96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0x41), "ErrOversize"},
		check{"initial: KEM prekey kind 5 and a KEM ciphertext length of 1089", set(a1, h+108, 5, 4, 0x41), "ErrMalformed"},
		check{"initial: SPK id 0 and a ciphertext of 16 bytes", slices.Concat(set(a1, h+96, 0, 0, 0, 0)[:h+1199+40], be32(16), make([]byte, 16)), "ErrMalformed"},
	)

	// §6.2, §6.4.
	snapshot := func(version byte, identity, typ string, data ...string) []byte {
		return specSnapshot(version, identity, typ, "laptop", data...)
	}
	card := func(snap []byte, self, relay int) []byte {
		return slices.Concat([]byte{1}, be16(len(snap)), snap, []byte{byte(self)}, make([]byte, self), []byte{byte(relay)}, make([]byte, relay))
	}
	good := snapshot(1, "bob", "username")
	var many []string
	for i := range 17 {
		many = append(many, string(rune('a'+i)), "")
	}
	cards = append(cards,
		check{"a well-formed card", card(good, 64, 0), ""},
		check{"self signature of 63 bytes with a trailing byte", plus(card(good, 63, 0)), "ErrTrailingBytes"},
		check{"self signature of 63 bytes and a snapshot of version 2", card(snapshot(2, "bob", "username"), 63, 0), "ErrMalformed"},
		check{"relay signature of 32 bytes and an upper-case name", card(snapshot(1, "Bob", "username"), 64, 32), "ErrMalformed"},
		check{"snapshot with a trailing byte and an upper-case name", card(plus(snapshot(1, "Bob", "username")), 64, 0), "ErrTrailingBytes"},
		check{"data keys descending and an upper-case name", card(snapshot(1, "Bob", "username", "b", "", "a", ""), 64, 0), "ErrMalformed"},
		check{"data keys descending with a trailing byte", card(plus(snapshot(1, "bob", "username", "b", "", "a", "")), 64, 0), "ErrMalformed"},
		check{"empty identity and empty identity type", card(snapshot(1, "", ""), 64, 0), "ErrInvalidName"},
		check{"empty identity type and 17 data entries", card(snapshot(1, "bob", "", many...), 64, 0), "ErrOversize"},
		check{"snapshot of version 2 and an identity of 33 bytes", card(snapshot(2, "bobbobbobbobbobbobbobbobbobbobbob", "username"), 64, 0), "ErrUnknownVersion"},
	)

	// §8.3. Bob's prekeys in the file: SPK 11, OPK 21, ….
	spk, opk := f.Bob.PreKeys[0], f.Bob.PreKeys[1]
	head := spk.Public.b(t)[:14] // u8 1 ‖ u8 kind ‖ u32 id ‖ i64 created at
	sig := spk.Signature.b(t)
	prekeys = append(prekeys,
		check{"kind 5 with a trailing byte", plus(set(spk.Public.b(t), 1, 5)), "ErrTrailingBytes"},
		check{"id 0 and a key of 1185 bytes", slices.Concat(set(head, 2, 0, 0, 0, 0), be16(1185), make([]byte, 1185), []byte{64}, sig), "ErrOversize"},
		check{"kind 5 and a signature of 65 bytes", slices.Concat(set(head, 1, 5), be16(32), make([]byte, 32), []byte{65}, make([]byte, 65)), "ErrOversize"},
		check{"a signed prekey with a key of 33 bytes and a signature of 63", slices.Concat(head, be16(33), make([]byte, 33), []byte{63}, sig[:63]), "ErrMalformed"},
		check{"a one-time prekey of kind 1 without a signature", set(opk.Public.b(t), 1, 1), "ErrBadSignature"},
	)
	pub := spk.Public.b(t)
	privates = append(privates,
		check{"a secret of 65 bytes and a public part of kind 5", slices.Concat([]byte{1}, be16(len(pub)), set(pub, 1, 5), []byte{65}, make([]byte, 65)), "ErrOversize"},
		check{"a secret of 31 bytes and a public part with a trailing byte", slices.Concat([]byte{1}, be16(len(pub)+1), plus(pub), []byte{31}, make([]byte, 31)), "ErrTrailingBytes"},
		check{"a secret of 31 bytes and a public part of kind 5", slices.Concat([]byte{1}, be16(len(pub)), set(pub, 1, 5), []byte{31}, make([]byte, 31)), "ErrMalformed"},
	)

	// §9: the vector bundle is u8 1 ‖ bytes16 card ‖ bytes16 SPK ‖ u8 1 ‖ bytes16 OPK ‖ bytes16 KEM.
	bundle := f.Bundle.b(t)
	cardLen := int(bundle[1])<<8 | int(bundle[2])
	spkAt := 3 + cardLen + 2
	flag := spkAt + len(pub)
	bundles = append(bundles,
		check{"has_opk 2 with a trailing byte", plus(set(bundle, flag, 2)), "ErrMalformed"},
		check{"version 2 and 22237 bytes", set(make([]byte, 22237), 0, 2), "ErrOversize"},
		check{"a card of version 2 with a trailing byte", plus(set(bundle, 3, 2)), "ErrTrailingBytes"},
		check{"a card of version 2 and an SPK of kind 5", set(set(bundle, 3, 2), spkAt+1, 5), "ErrUnknownVersion"},
		check{"an SPK of kind 5 and a bad OPK flag", set(set(bundle, spkAt+1, 5), flag, 2), "ErrMalformed"},
		check{"an SPK of kind 5 and a KEM prekey of version 2", set(set(bundle, spkAt+1, 5), len(bundle)-1265, 2), "ErrMalformed"},
	)

	// §13, against the package only (TestVectorsFollowSpec encodes states, never decodes one).
	state := func(flags byte, padding int) []byte {
		b := slices.Concat([]byte{1, flags}, make([]byte, 4*32))
		if flags&8 != 0 {
			b = append(b, make([]byte, 64)...)
		}
		return slices.Concat(b, make([]byte, 5*4), be16(padding), be16(0), be16(0), []byte{0})
	}
	sessions = append(sessions,
		check{"flag 128 with a trailing byte", plus(state(8|128, 0)), "ErrMalformed"},
		check{"padding block 4097 with a trailing byte", plus(state(8, 4097)), "ErrOversize"},
		check{"an acknowledged responder with a trailing byte", plus(state(2|8, 0)), "ErrTrailingBytes"},
	)

	judge := func(kind string, cs []check, pkg func([]byte) error, spec func([]byte) string) {
		for _, c := range cs {
			if got := specErrorName(pkg(c.in)); got != c.want {
				t.Errorf("%s, %s: the package says %q, SPEC §1.1's order %q", kind, c.name, got, c.want)
			}
			if spec == nil {
				continue
			}
			if got := spec(c.in); got != c.want {
				t.Errorf("%s, %s: the spec's decoder says %q, SPEC §1.1's order %q", kind, c.name, got, c.want)
			}
		}
	}
	judge("message", messages, func(b []byte) error { _, err := ratchet.DecodeEnvelope(b); return err },
		func(b []byte) string { _, e := specDecodeWire(b); return e })
	judge("card", cards, func(b []byte) error { _, err := ratchet.ParseCard(b); return err },
		func(b []byte) string { _, e := specParseCard(b); return e })
	judge("prekey", prekeys, func(b []byte) error { _, err := ratchet.ParsePublicPreKey(b); return err },
		func(b []byte) string { _, e := specParsePublicPreKey(b); return e })
	judge("private prekey", privates, func(b []byte) error { _, err := ratchet.ParsePrivatePreKey(b); return err },
		func(b []byte) string {
			_, _, e := specParsePrivatePreKey(b, func(byte, []byte) []byte { return nil })
			return e
		})
	judge("bundle", bundles, func(b []byte) error { _, err := ratchet.ParseBundle(b); return err },
		func(b []byte) string { _, e := specParseBundle(b); return e })
	judge("session state", sessions, func(b []byte) error { _, err := ratchet.ParseSession(b); return err }, nil)
}
