package ratchet_test

// TestSpecDecoderRules checks every rejection rule SPEC.md states for a decoder (§1.1,
// §5, §6, §8.3, §9, §12, §13) on inputs built from the spec's words and the vector
// file's bytes, not from the package's encoders: each must be refused with the error
// the spec names.

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"pfschat/ratchet"
)

func TestSpecDecoderRules(t *testing.T) {
	f := readSpecFile(t)
	type rule struct {
		name string
		err  error
		want error // nil: accepted
	}
	var rules []rule
	add := func(name string, err, want error) { rules = append(rules, rule{name, err, want}) }
	set := func(b []byte, at int, v ...byte) []byte { b = slices.Clone(b); copy(b[at:], v); return b }

	// §5: the identity key.
	ik := f.Alice.IdentityKey.b(t)
	_, err := ratchet.ParseIdentityKey(set(ik, 0, 2))
	add("§5 identity key of version 2", err, ratchet.ErrUnknownVersion)
	_, err = ratchet.ParseIdentityKey(ik[:64])
	add("§5 identity key of 64 bytes", err, ratchet.ErrMalformed)

	// §6: cards, from a snapshot built here (§6.2) in a binary (§6.4) with a dummy
	// self signature: decoders do not verify (§1.1 rule 5).
	snapshot := specSnapshot
	card := func(snap []byte, self, relay int) error {
		_, err := ratchet.ParseCard(slices.Concat([]byte{1}, be16(len(snap)), snap,
			[]byte{byte(self)}, make([]byte, self), []byte{byte(relay)}, make([]byte, relay)))
		return err
	}
	ok := snapshot(1, "bob", "username", "laptop", "a", "1", "b", "2")
	add("§6 a well-formed card", card(ok, 64, 0), nil)
	add("§6.4 card binary of version 2", func() error {
		_, err := ratchet.ParseCard(set(f.Bob.Card.Binary.b(t), 0, 2))
		return err
	}(), ratchet.ErrUnknownVersion)
	add("§6.1 snapshot of version 2", card(snapshot(2, "bob", "username", ""), 64, 0), ratchet.ErrUnknownVersion)
	add("§6.1 identity of 33 bytes", card(snapshot(1, strings.Repeat("a", 33), "username", ""), 64, 0), ratchet.ErrOversize)
	add("§6.1 empty identity", card(snapshot(1, "", "username", ""), 64, 0), ratchet.ErrInvalidName)
	add("§6.1 identity with a space", card(snapshot(1, "b b", "username", ""), 64, 0), ratchet.ErrInvalidName)
	add("§6.1 empty identity type", card(snapshot(1, "bob", "", ""), 64, 0), ratchet.ErrMalformed)
	add("§6.1 identity type of 33 bytes", card(snapshot(1, "bob", strings.Repeat("t", 33), ""), 64, 0), ratchet.ErrOversize)
	add("§6.1 device of 65 bytes", card(snapshot(1, "bob", "username", strings.Repeat("d", 65)), 64, 0), ratchet.ErrOversize)
	add("§6.1 device with U+0085 (Cc)", card(snapshot(1, "bob", "username", "a\u0085"), 64, 0), ratchet.ErrMalformed)
	add("§6.1 device with U+200D (Cf) is allowed", card(snapshot(1, "bob", "username", "a\u200db"), 64, 0), nil)
	add("§6.1 device of invalid UTF-8", card(snapshot(1, "bob", "username", "\xff"), 64, 0), ratchet.ErrMalformed)
	add("§6.2 data keys descending", card(snapshot(1, "bob", "username", "", "b", "1", "a", "2"), 64, 0), ratchet.ErrMalformed)
	add("§6.2 data key twice", card(snapshot(1, "bob", "username", "", "a", "1", "a", "2"), 64, 0), ratchet.ErrMalformed)
	add("§6.1 empty data key", card(snapshot(1, "bob", "username", "", "", "1"), 64, 0), ratchet.ErrMalformed)
	add("§6.1 data key of 65 bytes", card(snapshot(1, "bob", "username", "", strings.Repeat("k", 65), ""), 64, 0), ratchet.ErrOversize)
	add("§6.1 data key with a control character", card(snapshot(1, "bob", "username", "", "k\n", ""), 64, 0), ratchet.ErrMalformed)
	add("§6.1 data value of 1025 bytes", card(snapshot(1, "bob", "username", "", "k", strings.Repeat("v", 1025)), 64, 0), ratchet.ErrOversize)
	add("§6.1 data value of invalid UTF-8", card(snapshot(1, "bob", "username", "", "k", "\xc0"), 64, 0), ratchet.ErrMalformed)
	add("§6.1 data value with a control character is allowed", card(snapshot(1, "bob", "username", "", "k", "a\nb"), 64, 0), nil)
	var many []string
	for i := range 17 {
		many = append(many, string(rune('a'+i)), "")
	}
	add("§6.2 17 data entries", card(snapshot(1, "bob", "username", "", many...), 64, 0), ratchet.ErrOversize)
	add("§6.4 self signature of 63 bytes", card(ok, 63, 0), ratchet.ErrMalformed)
	add("§6.4 self signature of 65 bytes", card(ok, 65, 0), ratchet.ErrOversize)
	add("§6.4 relay signature of 32 bytes", card(ok, 64, 32), ratchet.ErrMalformed)
	add("§6.4 relay signature of 64 bytes", card(ok, 64, 64), nil)
	add("§6.4 snapshot length over 18298", func() error {
		_, err := ratchet.ParseCard(slices.Concat([]byte{1}, be16(18299), make([]byte, 18299)))
		return err
	}(), ratchet.ErrOversize)
	add("§1.1 card with a trailing byte", func() error {
		_, err := ratchet.ParseCard(append(f.Bob.Card.Binary.b(t), 0))
		return err
	}(), ratchet.ErrTrailingBytes)
	_, err = ratchet.ImportCard(strings.Repeat(" ", 49169))
	add("§6.5 export of 49169 bytes", err, ratchet.ErrOversize)
	_, err = ratchet.ImportCard(f.Bob.Card.Export + "=")
	add("§6.5 export with base64 padding", err, ratchet.ErrMalformed)
	for _, c := range []struct {
		b64  string
		want error
	}{
		{"AAAA", ratchet.ErrUnknownVersion}, // 3 zero bytes: base64url passes, the binary's version does not
		{"AA", ratchet.ErrUnknownVersion},
		{"AA+A", ratchet.ErrMalformed},
		{"AA/A", ratchet.ErrMalformed},
		{"AA==", ratchet.ErrMalformed},
		{"AAAAA", ratchet.ErrMalformed}, // length ≡ 1 mod 4
		{"AE", ratchet.ErrMalformed},    // unused bits 0100
		{"AAB", ratchet.ErrMalformed},   // unused bits 01
		{"", ratchet.ErrMalformed},
	} {
		_, err = ratchet.ImportCard("pfscard1:" + c.b64)
		add("§6.5 base64url "+c.b64, err, c.want)
	}

	// §8.3: prekeys.
	for _, pk := range f.Bob.PreKeys {
		pub, priv, secret := pk.Public.b(t), pk.Private.b(t), pk.Secret.b(t)
		_, err = ratchet.ParsePublicPreKey(set(pub, 0, 2))
		add("§8.3 prekey of version 2", err, ratchet.ErrUnknownVersion)
		for _, kind := range []byte{0, 5} {
			_, err = ratchet.ParsePublicPreKey(set(pub, 1, kind))
			add("§8.3 prekey kind 0 or 5", err, ratchet.ErrMalformed)
		}
		_, err = ratchet.ParsePublicPreKey(set(pub, 2, 0, 0, 0, 0))
		add("§8.3 prekey id 0", err, ratchet.ErrMalformed)
		head := pub[:14] // u8 1 ‖ u8 kind ‖ u32 id ‖ i64 created at
		sig := pub[14+2+len(pk.PublicKey.b(t)):]
		_, err = ratchet.ParsePublicPreKey(slices.Concat(head, be16(1185), make([]byte, 1185), sig))
		add("§8.3 prekey key of 1185 bytes", err, ratchet.ErrOversize)
		_, err = ratchet.ParsePublicPreKey(slices.Concat(head, be16(33), make([]byte, 33), sig))
		add("§8.3 prekey key of another size", err, ratchet.ErrMalformed)
		if pk.Kind == 2 {
			_, err = ratchet.ParsePublicPreKey(slices.Concat(pub[:len(pub)-1], []byte{64}, make([]byte, 64)))
			add("§8.3 one-time prekey with a signature", err, ratchet.ErrMalformed)
		}
		pre := priv[:len(priv)-1-len(secret)] // u8 1 ‖ bytes16 public
		_, err = ratchet.ParsePrivatePreKey(slices.Concat(pre, []byte{65}, make([]byte, 65)))
		add("§8.3 private prekey secret of 65 bytes", err, ratchet.ErrOversize)
		_, err = ratchet.ParsePrivatePreKey(slices.Concat(pre, []byte{31}, make([]byte, 31)))
		add("§8.3 private prekey secret of 31 bytes", err, ratchet.ErrMalformed)
		_, err = ratchet.ParsePrivatePreKey(slices.Concat(pre, []byte{byte(len(secret))}, make([]byte, len(secret))))
		add("§8.3 private prekey whose secret is not the public key's", err, ratchet.ErrMalformed)
		_, err = ratchet.ParsePrivatePreKey(slices.Concat([]byte{1}, be16(1266), make([]byte, 1266), []byte{0}))
		add("§8.3 private prekey public part of 1266 bytes", err, ratchet.ErrOversize)
	}

	// §9: the bundle.
	bundle := f.Bundle.b(t)
	cardLen := int(bundle[1])<<8 | int(bundle[2])
	spkLen := int(bundle[3+cardLen])<<8 | int(bundle[4+cardLen])
	flag := 5 + cardLen + spkLen
	if bundle[flag] != 1 {
		t.Fatalf("vector bundle: has_opk %d, want 1", bundle[flag])
	}
	for _, v := range []byte{2, 0xff} {
		_, err = ratchet.ParseBundle(set(bundle, flag, v))
		add("§9 has_opk not 0 or 1", err, ratchet.ErrMalformed)
	}
	_, err = ratchet.ParseBundle(set(bundle, 0, 2))
	add("§9 bundle of version 2", err, ratchet.ErrUnknownVersion)
	_, err = ratchet.ParseBundle(make([]byte, 22237))
	add("§9 bundle of 22237 bytes", err, ratchet.ErrOversize)

	// §12: messages. A1 is an initial message: u8 1 ‖ u8 1 ‖ the 1199-byte header ‖ …
	a1 := f.Transcript.Messages[0].Wire.b(t)
	const h = 2
	for _, c := range []struct {
		name string
		at   int
		v    []byte
		want error
	}{
		{"§12.2 SPK id 0", h + 96, []byte{0, 0, 0, 0}, ratchet.ErrMalformed},
		{"§12.2 OPK id 0 (none) is allowed by the decoder", h + 100, []byte{0, 0, 0, 0}, nil},
		{"§12.2 KEM prekey id 0", h + 104, []byte{0, 0, 0, 0}, ratchet.ErrMalformed},
		{"§12.2 KEM prekey kind 2", h + 108, []byte{2}, ratchet.ErrMalformed},
		{"§12.2 KEM prekey kind 5", h + 108, []byte{5}, ratchet.ErrMalformed},
		{"§12.2 KEM ciphertext of 1089 bytes", h + 109, be16(1089), ratchet.ErrOversize},
		{"§12.2 KEM ciphertext of 1087 bytes", h + 109, be16(1087), ratchet.ErrMalformed},
		{"§12.1 type 0", 1, []byte{0}, ratchet.ErrMalformed},
		{"§12.1 version 0", 0, []byte{0}, ratchet.ErrUnknownVersion},
	} {
		_, err = ratchet.DecodeEnvelope(set(a1, c.at, c.v...))
		add(c.name, err, c.want)
	}
	normal := func(ctLen uint32, ct int) []byte {
		return slices.Concat([]byte{1, 2}, make([]byte, 40), be32(ctLen), make([]byte, ct))
	}
	_, err = ratchet.DecodeEnvelope(normal(17, 17))
	add("§12.1 ciphertext of 17 bytes", err, nil)
	_, err = ratchet.DecodeEnvelope(normal(16, 16))
	add("§12.1 ciphertext of 16 bytes", err, ratchet.ErrMalformed)
	_, err = ratchet.DecodeEnvelope(normal(65536+4096+16, 65536+4096+16))
	add("§12.1 ciphertext of 65536 + 4096 + 16 bytes", err, nil)
	_, err = ratchet.DecodeEnvelope(normal(65536+4096+17, 0))
	add("§12.1 ciphertext length over 65536 + 4096 + 16", err, ratchet.ErrOversize)
	_, err = ratchet.DecodeEnvelope(normal(100, 99))
	add("§12.1 ciphertext shorter than its length", err, ratchet.ErrMalformed)
	_, err = ratchet.DecodeEnvelope(make([]byte, 70894))
	add("§12.1 message of 70894 bytes", err, ratchet.ErrOversize)

	// §13: session states, built field by field.
	state := func(flags byte, padding int, hdr []byte, skipped, previous int) []byte {
		b := slices.Concat([]byte{1, flags}, make([]byte, 4*32))
		for _, bit := range []byte{8, 8, 16, 32, 64} { // DHs is two fields
			if flags&bit != 0 {
				b = append(b, make([]byte, 32)...)
			}
		}
		return slices.Concat(b, make([]byte, 5*4), be16(padding), be16(len(hdr)), hdr,
			be16(skipped), make([]byte, 68*skipped), []byte{byte(previous)}, make([]byte, 32*previous))
	}
	hdr := a1[2 : 2+1199]
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"§13 a responder with DHs", state(8, 0, nil, 0, 0), nil},
		{"§13 an unacknowledged initiator with its header", state(1|16, 4096, hdr, 2000, 5), nil},
		{"§13 state of version 2", set(state(8, 0, nil, 0, 0), 0, 2), ratchet.ErrUnknownVersion},
		{"§13 flag 128", state(8|128, 0, nil, 0, 0), ratchet.ErrMalformed},
		{"§13 padding block 4097", state(8, 4097, nil, 0, 0), ratchet.ErrOversize},
		{"§13 2001 skipped keys", state(8, 0, nil, 2001, 0), ratchet.ErrOversize},
		{"§13 6 previous ratchet keys", state(8, 0, nil, 0, 6), ratchet.ErrOversize},
		{"§13 an acknowledged responder", state(2|8, 0, nil, 0, 0), ratchet.ErrMalformed},
		{"§13 CKs without DHs", state(32, 0, nil, 0, 0), ratchet.ErrMalformed},
		{"§13 CKr without DHr", state(8|64, 0, nil, 0, 0), ratchet.ErrMalformed},
		{"§13 an unacknowledged initiator without its header", state(1|16, 0, nil, 0, 0), ratchet.ErrMalformed},
		{"§13 an acknowledged initiator with a header", state(1|2|16, 0, hdr, 0, 0), ratchet.ErrMalformed},
		{"§13 a responder with a header", state(8, 0, hdr, 0, 0), ratchet.ErrMalformed},
		{"§13 a header of 1198 bytes", state(1|16, 0, hdr[:1198], 0, 0), ratchet.ErrMalformed},
		{"§13 a header of 1200 bytes", state(1|16, 0, append(slices.Clone(hdr), 0), 0, 0), ratchet.ErrOversize},
		{"§13 a trailing byte", append(state(8, 0, nil, 0, 0), 0), ratchet.ErrTrailingBytes},
		{"§13 flag 128 and a trailing byte", append(state(8|128, 0, nil, 0, 0), 0), ratchet.ErrMalformed},
		{"§13 an acknowledged responder and a trailing byte", append(state(2|8, 0, nil, 0, 0), 0), ratchet.ErrTrailingBytes},
		{"§13 CKr without DHr and a trailing byte", append(state(8|64, 0, nil, 0, 0), 0), ratchet.ErrTrailingBytes},
		{"§13 a header that does not match and a trailing byte", append(state(8, 0, hdr, 0, 0), 0), ratchet.ErrTrailingBytes},
		{"§13 2001 skipped keys and a trailing byte", append(state(8, 0, nil, 2001, 0), 0), ratchet.ErrOversize},
		{"§13 a header of 1199 zero bytes is not decoded on load", state(1|16, 0, make([]byte, 1199), 0, 0), nil},
	} {
		_, err = ratchet.ParseSession(c.b)
		add(c.name, err, c.want)
	}

	sentinels := []error{ratchet.ErrMalformed, ratchet.ErrTrailingBytes, ratchet.ErrOversize,
		ratchet.ErrUnknownVersion, ratchet.ErrInvalidName, ratchet.ErrBadSignature}
	for _, r := range rules {
		switch {
		case r.want == nil && r.err != nil:
			t.Errorf("%s: %v, SPEC.md accepts it", r.name, r.err)
		case r.want == nil:
		case !errors.Is(r.err, r.want):
			t.Errorf("%s: %v, SPEC.md says %v", r.name, r.err, r.want)
		default:
			n := 0 // §14: exactly one sentinel
			for _, s := range sentinels {
				if errors.Is(r.err, s) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %v wraps %d of the §14 errors", r.name, r.err, n)
			}
		}
	}
	if !bytes.Equal(hdr, f.Handshake.InitialHeader.b(t)) {
		t.Fatal("A1 does not carry the handshake's initial header")
	}
}

// specSnapshot builds a card snapshot by SPEC §6.2 (a zero identity key, created at
// 2026-01-01), data given as key, value pairs, without checking any rule.
func specSnapshot(version byte, identity, typ, device string, data ...string) []byte {
	b := []byte{version}
	for _, s := range []string{identity, typ, device} {
		b = append(append(b, byte(len(s))), s...)
	}
	b = slices.Concat(b, make([]byte, 64), be64(1767225600), []byte{byte(len(data) / 2)})
	for i := 0; i+1 < len(data); i += 2 {
		b = append(append(b, byte(len(data[i]))), data[i]...)
		b = append(append(b, be16(len(data[i+1]))...), data[i+1]...)
	}
	return b
}
