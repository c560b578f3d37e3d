package ratchet_test

// The decoders and verifiers of SPEC.md §6 (cards), §8.3 (prekeys) and §9 (bundles),
// written from the document's words for TestVectorsFollowSpec, with §1.1's rules in the
// order §1.1 gives them. Like the rest of that test they use only the standard library:
// nothing here calls package ratchet. Each returns the name of the §14 error, or "" for
// an accepted input.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"maps"
	"testing"
	"unicode/utf8"
)

// specReader reads §1.1's primitives front to back; the first error sticks.
type specReader struct {
	b   []byte
	err string
}

func (r *specReader) fail(e string) {
	if r.err == "" {
		r.err = e
	}
}

// take is fixed[n]: input that ends early is ErrMalformed (§1.1 rule 2).
func (r *specReader) take(n int) []byte {
	if r.err != "" {
		return nil
	}
	if len(r.b) < n {
		r.fail("ErrMalformed")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *specReader) uint(n int) uint64 {
	var v uint64
	for _, c := range r.take(n) {
		v = v<<8 | uint64(c)
	}
	return v
}

// version is §1.1 rule 1.
func (r *specReader) version(want byte) {
	if v := r.take(1); v != nil && v[0] != want {
		r.fail("ErrUnknownVersion")
	}
}

// lengthPrefixed is bytes8/bytes16/bytes32 with §1.1 rule 2: the length against the
// field's limit before the bytes are read.
func (r *specReader) lengthPrefixed(size int, limit uint64) []byte {
	n := r.uint(size)
	if r.err != "" {
		return nil
	}
	if n > limit {
		r.fail("ErrOversize")
		return nil
	}
	return r.take(int(n))
}

// end is §1.1 rule 3.
func (r *specReader) end() string {
	if r.err == "" && len(r.b) != 0 {
		return "ErrTrailingBytes"
	}
	return r.err
}

// specCard is a card decoded by §6.4 and §6.2.
type specCard struct {
	snapshot, self, relay    []byte
	identity, typ, device    string
	signingKey, agreementKey []byte
	createdAt                int64
	data                     map[string]string
}

// Limits of SPEC.md §2 and §6.
const (
	specMaxSnapshot   = 18298
	specMaxCardBinary = 18431
	specMaxExport     = 24584
	specMaxPreKey     = 1265
	specMaxBundle     = 22236
)

// specImportCard is §6.5.
func specImportCard(in []byte) (*specCard, string) {
	if len(in) > 2*specMaxExport {
		return nil, "ErrOversize"
	}
	var line []byte
	for _, c := range in {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			line = append(line, c)
		}
	}
	if len(line) > specMaxExport {
		return nil, "ErrOversize"
	}
	rest, ok := bytes.CutPrefix(line, []byte(specExportPrefix))
	if !ok {
		if bytes.HasPrefix(line, []byte("pfscard")) {
			return nil, "ErrUnknownVersion"
		}
		return nil, "ErrMalformed"
	}
	bin, err := base64.RawURLEncoding.Strict().DecodeString(string(rest))
	if err != nil {
		return nil, "ErrMalformed"
	}
	return specParseCard(bin)
}

// specParseCard is §6.4: the outer structure, its signature sizes (§4), then the
// snapshot (§6.2).
func specParseCard(b []byte) (*specCard, string) {
	r := &specReader{b: b}
	r.version(1)
	snap := r.lengthPrefixed(2, specMaxSnapshot)
	self := r.lengthPrefixed(1, 64)
	relay := r.lengthPrefixed(1, 64)
	if e := r.end(); e != "" {
		return nil, e
	}
	if len(self) != 64 || len(relay) != 0 && len(relay) != 64 {
		return nil, "ErrMalformed"
	}
	c, e := specParseSnapshot(snap)
	if e != "" {
		return nil, e
	}
	c.self, c.relay = self, relay
	return c, ""
}

// specControl is §1's control character: general category Cc.
func specControl(r rune) bool { return r <= 0x1F || r >= 0x7F && r <= 0x9F }

// specLabel is §6.1's "valid UTF-8, no control characters".
func specLabel(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if specControl(r) {
			return false
		}
	}
	return true
}

// specParseSnapshot is §6.2: lengths limited while reading, keys strictly ascending,
// then every field validated (§6.1) in the table's order.
func specParseSnapshot(b []byte) (*specCard, string) {
	r := &specReader{b: b}
	r.version(1)
	c := &specCard{snapshot: b, data: map[string]string{}}
	c.identity = string(r.lengthPrefixed(1, 32))
	c.typ = string(r.lengthPrefixed(1, 32))
	c.device = string(r.lengthPrefixed(1, 64))
	c.signingKey = r.take(32)
	c.agreementKey = r.take(32)
	c.createdAt = int64(r.uint(8))
	n := r.uint(1)
	if r.err == "" && n > 16 {
		return nil, "ErrOversize"
	}
	var keys []string
	for i := uint64(0); i < n && r.err == ""; i++ {
		k := string(r.lengthPrefixed(1, 64))
		v := string(r.lengthPrefixed(2, 1024))
		if r.err != "" {
			break
		}
		if len(keys) > 0 && k <= keys[len(keys)-1] {
			return nil, "ErrMalformed"
		}
		keys = append(keys, k)
		c.data[k] = v
	}
	if e := r.end(); e != "" {
		return nil, e
	}
	if c.identity == "" {
		return nil, "ErrInvalidName"
	}
	for _, ch := range []byte(c.identity) {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return nil, "ErrInvalidName"
		}
	}
	if c.typ == "" || !specLabel(c.typ) || !specLabel(c.device) {
		return nil, "ErrMalformed"
	}
	for _, k := range keys {
		if k == "" || !specLabel(k) || !utf8.ValidString(c.data[k]) {
			return nil, "ErrMalformed"
		}
	}
	return c, ""
}

// specVerifySig is §4.
func specVerifySig(pub []byte, domain string, msg, sig []byte) bool {
	return len(pub) == 32 && len(sig) == 64 && ed25519.Verify(pub, specSigned(domain, msg), sig)
}

// specVerifyWithRelay is §6.3 on a decoded card (whose fields §6.2 has validated).
func specVerifyWithRelay(c *specCard, relayKey []byte) string {
	if !specVerifySig(c.signingKey, specDomainCardSelf, c.snapshot, c.self) {
		return "ErrBadSignature"
	}
	if len(c.relay) == 0 || !specVerifySig(relayKey, specDomainCardRelay, append(c.snapshot[:len(c.snapshot):len(c.snapshot)], c.self...), c.relay) {
		return "ErrBadSignature"
	}
	return ""
}

// specPublicPreKey is a public prekey decoded by §8.3.
type specPublicPreKey struct {
	kind      byte
	id        uint32
	createdAt int64
	key, sig  []byte
}

// specParsePublicPreKey is §8.3's public encoding and its decoding checks.
func specParsePublicPreKey(b []byte) (*specPublicPreKey, string) {
	r := &specReader{b: b}
	r.version(1)
	p := &specPublicPreKey{}
	p.kind = byte(r.uint(1))
	p.id = uint32(r.uint(4))
	p.createdAt = int64(r.uint(8))
	p.key = r.lengthPrefixed(2, 1184)
	p.sig = r.lengthPrefixed(1, 64)
	if e := r.end(); e != "" {
		return nil, e
	}
	switch {
	case p.kind < 1 || p.kind > 4, p.id == 0:
		return nil, "ErrMalformed"
	case p.kind <= 2 && len(p.key) != 32, p.kind >= 3 && len(p.key) != 1184:
		return nil, "ErrMalformed"
	case p.kind == 2 && len(p.sig) != 0:
		return nil, "ErrMalformed"
	case p.kind != 2 && len(p.sig) != 64:
		return nil, "ErrBadSignature"
	}
	return p, ""
}

// specVerifyPreKey is §8.3's Verify(card) on a decoded prekey: the signature of §8.2.
func specVerifyPreKey(p *specPublicPreKey, signingKey []byte) string {
	if p.kind == 2 {
		return ""
	}
	msg := binary.BigEndian.AppendUint32([]byte{p.kind}, p.id)
	msg = binary.BigEndian.AppendUint64(msg, uint64(p.createdAt))
	if !specVerifySig(signingKey, specDomainPreKey, append(msg, p.key...), p.sig) {
		return "ErrBadSignature"
	}
	return ""
}

// specBundle is a bundle decoded by §9.
type specBundle struct {
	card          *specCard
	spk, opk, kem *specPublicPreKey // opk nil when has_opk = 0
}

// specParseBundle is §9's encoding: the whole-bundle limit, the outer structure, then
// the card (§6.4) and the prekeys (§8.3) it carries, in order.
func specParseBundle(b []byte) (*specBundle, string) {
	if len(b) > specMaxBundle {
		return nil, "ErrOversize"
	}
	r := &specReader{b: b}
	r.version(1)
	cardBin := r.lengthPrefixed(2, specMaxCardBinary)
	spk := r.lengthPrefixed(2, specMaxPreKey)
	var opk []byte
	switch has := r.uint(1); {
	case r.err != "":
	case has == 1:
		opk = r.lengthPrefixed(2, specMaxPreKey)
	case has != 0:
		r.fail("ErrMalformed")
	}
	kem := r.lengthPrefixed(2, specMaxPreKey)
	if e := r.end(); e != "" {
		return nil, e
	}
	out := &specBundle{}
	var e string
	if out.card, e = specParseCard(cardBin); e != "" {
		return nil, e
	}
	if out.spk, e = specParsePublicPreKey(spk); e != "" {
		return nil, e
	}
	if opk != nil {
		if out.opk, e = specParsePublicPreKey(opk); e != "" {
			return nil, e
		}
	}
	if out.kem, e = specParsePublicPreKey(kem); e != "" {
		return nil, e
	}
	return out, ""
}

// specVerifyBundle is §9's Verify, steps 1–5 in order.
func specVerifyBundle(b *specBundle, expected *specCard, relayKey []byte) string {
	got, want := sha256.Sum256(b.card.snapshot), sha256.Sum256(expected.snapshot)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return "ErrWrongCard"
	}
	if e := specVerifyWithRelay(b.card, relayKey); e != "" {
		return e
	}
	if b.spk.kind != 1 {
		return "ErrMissingPreKey"
	}
	if e := specVerifyPreKey(b.spk, b.card.signingKey); e != "" {
		return e
	}
	if b.opk != nil {
		if b.opk.kind != 2 {
			return "ErrMalformed"
		}
		if e := specVerifyPreKey(b.opk, b.card.signingKey); e != "" {
			return e
		}
	}
	if b.kem.kind != 3 && b.kem.kind != 4 {
		return "ErrMissingPreKey"
	}
	return specVerifyPreKey(b.kem, b.card.signingKey)
}

// specCheckCard is a "card" rejection (§15.2): import, then VerifyWithRelay.
func specCheckCard(export, relayKey []byte) (*specCard, string) {
	c, e := specImportCard(export)
	if e == "" {
		e = specVerifyWithRelay(c, relayKey)
	}
	return c, e
}

// specCheckBundle is a "bundle" rejection (§15.2): decode, then Verify against the card.
func specCheckBundle(in []byte, expected *specCard, relayKey []byte) (*specBundle, string) {
	b, e := specParseBundle(in)
	if e == "" {
		e = specVerifyBundle(b, expected, relayKey)
	}
	return b, e
}

// specParsePrivatePreKey is §8.3's private encoding: the limits, the public encoding,
// the secret's size for the kind, and the public key re-derived from the secret by
// derive (X25519 or ML-KEM-768 KeyGen, supplied by the caller).
func specParsePrivatePreKey(b []byte, derive func(kind byte, secret []byte) []byte) (*specPublicPreKey, []byte, string) {
	r := &specReader{b: b}
	r.version(1)
	pub := r.lengthPrefixed(2, specMaxPreKey)
	secret := r.lengthPrefixed(1, 64)
	if e := r.end(); e != "" {
		return nil, nil, e
	}
	p, e := specParsePublicPreKey(pub)
	if e != "" {
		return nil, nil, e
	}
	if want := map[bool]int{true: 64, false: 32}[p.kind >= 3]; len(secret) != want {
		return nil, nil, "ErrMalformed"
	}
	if !bytes.Equal(derive(p.kind, secret), p.key) {
		return nil, nil, "ErrMalformed"
	}
	return p, secret, ""
}

// specReadBack reads the vector file's cards, prekeys and bundles with the decoders
// above and judges its card and bundle rejections (§15.2, §15.3 step 4).
func specReadBack(t *testing.T, f *specFile, relayKey ed25519.PublicKey, pre map[uint8]specPre) map[string]*specCard {
	t.Helper()
	cards := map[string]*specCard{}
	for who, p := range map[string]*specParty{"alice": &f.Alice, "bob": &f.Bob} {
		v := &p.Card
		c, e := specCheckCard([]byte(v.Export), relayKey)
		if e != "" {
			t.Fatalf("%s card export: the spec refuses it with %s", who, e)
		}
		bin, e := specParseCard(v.Binary.b(t))
		if e != "" || !bytes.Equal(bin.snapshot, c.snapshot) {
			t.Fatalf("%s card binary: the spec reads %q, or another snapshot than the export's", who, e)
		}
		data := v.Data
		if data == nil {
			data = map[string]string{}
		}
		if c.identity != v.Identity || c.typ != v.IdentityType || c.device != v.Device || c.createdAt != v.CreatedAt ||
			!maps.Equal(c.data, data) || !bytes.Equal(c.signingKey, p.SigningPublic.b(t)) ||
			!bytes.Equal(c.agreementKey, p.AgreementPublic.b(t)) || !bytes.Equal(c.snapshot, v.Snapshot.b(t)) ||
			!bytes.Equal(c.self, v.SelfSignature.b(t)) || !bytes.Equal(c.relay, v.RelaySignature.b(t)) {
			t.Fatalf("%s card: the fields the spec decodes from its export differ from the file's", who)
		}
		cards[who] = c
	}
	derive := func(kind byte, secret []byte) []byte {
		if kind >= 3 {
			dk, err := mlkem.NewDecapsulationKey768(secret)
			if err != nil {
				t.Fatal(err)
			}
			return dk.EncapsulationKey().Bytes()
		}
		return x25519Pub(t, secret)
	}
	for _, v := range f.Bob.PreKeys {
		p, e := specParsePublicPreKey(v.Public.b(t))
		if e == "" {
			e = specVerifyPreKey(p, cards["bob"].signingKey)
		}
		if e != "" || p.kind != v.Kind || p.id != v.ID || p.createdAt != v.CreatedAt || !bytes.Equal(p.key, v.PublicKey.b(t)) {
			t.Fatalf("prekey %d: the spec reads %q or other fields than the file's", v.ID, e)
		}
		q, secret, e := specParsePrivatePreKey(v.Private.b(t), derive)
		if e != "" || !bytes.Equal(secret, v.Secret.b(t)) || !bytes.Equal(q.key, p.key) {
			t.Fatalf("prekey %d private encoding: the spec reads %q or another secret", v.ID, e)
		}
	}
	for name, in := range map[string][]byte{"bundle": f.Bundle.b(t), "handshake_without_one_time_prekey bundle": f.HandshakeLR.Bundle.b(t)} {
		b, e := specCheckBundle(in, cards["bob"], relayKey)
		if e != "" {
			t.Fatalf("%s: the spec refuses it with %s", name, e)
		}
		kem := uint8(4)
		if b.opk == nil {
			kem = 3
		} else if !bytes.Equal(b.opk.key, pre[2].pub) {
			t.Fatalf("%s: the OPK is not prekey %d", name, pre[2].id)
		}
		if !bytes.Equal(b.spk.key, pre[1].pub) || b.kem.kind != kem || !bytes.Equal(b.kem.key, pre[kem].pub) {
			t.Fatalf("%s: the spec reads other prekeys than §15.2 lists", name)
		}
	}

	judged := map[string]int{}
	for _, r := range f.Rejections {
		var e string
		switch r.Check {
		case "card":
			if r.Side != "" {
				t.Errorf("rejection %q: side %q, §15.2 says a card's is empty", r.Name, r.Side)
			}
			_, e = specCheckCard(r.Input.b(t), relayKey)
		case "bundle":
			expected := cards[r.Side]
			if expected == nil {
				t.Fatalf("rejection %q: side %q", r.Name, r.Side)
			}
			_, e = specCheckBundle(r.Input.b(t), expected, relayKey)
		default:
			continue
		}
		judged[r.Check]++
		if e == "" {
			e = "accepted"
		}
		if e != r.Error {
			t.Errorf("rejection %q: the spec gives %s, the vectors %s", r.Name, e, r.Error)
		}
	}
	if judged["card"] == 0 || judged["bundle"] == 0 {
		t.Fatalf("card and bundle rejections judged: %v; §15.2 promises both", judged)
	}
	return cards
}
