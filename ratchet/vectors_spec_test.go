package ratchet_test

// TestVectorsFollowSpec is a second, deliberately separate implementation of SPEC.md: it
// lives outside package ratchet, uses only the standard library and x/crypto, and rebuilds
// everything in testdata/vectors.json from the spec's text — card snapshots and IDs,
// signatures, prekey and bundle encodings, the PQXDH secret, every wire message of the
// transcript and the §13 session state after every event, byte for byte, with a Double
// Ratchet written from §11. Labels and domains come from SPEC.md's §3 table itself. If
// SPEC.md and the code drift apart, this test says where. The decrypt rejection vectors
// are refused by the spec's ratchet with the errors §11.4 and §12 name; the card and
// bundle ones by decoders and verifiers written from §6, §8.3 and §9
// (vectors_spec_cards_test.go), which also read back every card, prekey and bundle.
// Bob's sessions come from §10.2 run on the initial headers he receives, with the
// prekeys and cards those decoders read.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The spec's constants are read from SPEC.md's tables (§3), so this test checks the
// document itself: a label changed in the code but not in SPEC.md fails here.
var (
	specDomainCardSelf, specDomainCardRelay, specDomainPreKey string
	specLabelPQXDH, specLabelRoot, specLabelMsgKeys           string
	specLabelSessionID, specExportPrefix                      string
	specLabelFingerprint                                      string
)

const (
	specCreatedAt = 1767225600 // §15.1: 2026-01-01T00:00:00Z
	specMaxSkip   = 2000
	specRNGLabel  = "pfschat/v1/test-vectors" // §15.1
)

var specTableRow = regexp.MustCompile("^\\| `(\\w+)` \\| `([^`]+)` \\|")

func loadSpecConstants(t *testing.T) {
	t.Helper()
	doc, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if m := specTableRow.FindStringSubmatch(line); m != nil {
			found[m[1]] = m[2]
		}
	}
	for name, dst := range map[string]*string{
		"DomainCardSelf": &specDomainCardSelf, "DomainCardRelay": &specDomainCardRelay,
		"DomainPreKey": &specDomainPreKey, "LabelPQXDH": &specLabelPQXDH,
		"LabelRootKDF": &specLabelRoot, "LabelMessageKeys": &specLabelMsgKeys,
		"LabelSessionID": &specLabelSessionID, "CardExportPrefix": &specExportPrefix,
		"LabelFingerprint": &specLabelFingerprint,
	} {
		v, ok := found[name]
		if !ok {
			t.Fatalf("SPEC.md §3 has no row for %s", name)
		}
		*dst = v
	}
}

// hx is a hex string in the vector file.
type hx string

func (h hx) b(t *testing.T) []byte {
	t.Helper()
	v, err := hex.DecodeString(string(h))
	if err != nil {
		t.Fatalf("vector hex %q: %v", h, err)
	}
	return v
}

type specFile struct {
	CreatedAt string `json:"created_at"`
	Relay     struct {
		Seed        string `json:"rng_seed"`
		Ed25519     hx     `json:"ed25519_seed"`
		PublicKey   hx     `json:"public_key"`
		Fingerprint string `json:"fingerprint"`
	} `json:"relay"`
	Alice       specParty     `json:"alice"`
	Bob         specParty     `json:"bob"`
	Bundle      hx            `json:"bundle"`
	Handshake   specHandshake `json:"handshake"`
	HandshakeLR specHandshake `json:"handshake_without_one_time_prekey"`
	KDF         struct {
		RK        hx `json:"rk"`
		DH        hx `json:"dh"`
		RKNext    hx `json:"rk_next"`
		CK        hx `json:"ck"`
		MK        hx `json:"mk"`
		CKNext    hx `json:"ck_next"`
		AEADKey   hx `json:"aead_key"`
		AEADNonce hx `json:"aead_nonce"`
	} `json:"kdf"`
	Transcript struct {
		AliceSeed  string        `json:"alice_rng_seed"`
		BobSeed    string        `json:"bob_rng_seed"`
		Messages   []specMessage `json:"messages"`
		Events     []specEvent   `json:"events"`
		AliceReads []hx          `json:"alice_random_reads"`
		BobReads   []hx          `json:"bob_random_reads"`
	} `json:"transcript"`
	Rejections []struct {
		Name  string `json:"name"`
		Check string `json:"check"`
		Side  string `json:"side"`
		Input hx     `json:"input"`
		Error string `json:"error"`
	} `json:"rejections"`
}

type specParty struct {
	Seed            string `json:"rng_seed"`
	IdentityKey     hx     `json:"identity_key"`
	SigningPublic   hx     `json:"signing_public_key"`
	AgreementPublic hx     `json:"agreement_public_key"`
	Fingerprint     string `json:"fingerprint"`
	Card            struct {
		Identity       string            `json:"identity"`
		IdentityType   string            `json:"identity_type"`
		Device         string            `json:"device"`
		CreatedAt      int64             `json:"created_at"`
		Data           map[string]string `json:"data"`
		Snapshot       hx                `json:"snapshot"`
		ID             string            `json:"id"`
		SelfSignature  hx                `json:"self_signature"`
		RelaySignature hx                `json:"relay_signature"`
		Binary         hx                `json:"binary"`
		Export         string            `json:"export"`
	} `json:"card"`
	PreKeys []specPreKey `json:"prekeys"`
}

type specPreKey struct {
	Kind          uint8  `json:"kind"`
	ID            uint32 `json:"id"`
	CreatedAt     int64  `json:"created_at"`
	Secret        hx     `json:"secret"`
	PublicKey     hx     `json:"public_key"`
	SignedMessage hx     `json:"signed_message"`
	Signature     hx     `json:"signature"`
	Public        hx     `json:"public_binary"`
	Private       hx     `json:"private_binary"`
}

type specHandshake struct {
	Seed             string `json:"initiator_rng_seed"`
	Bundle           hx     `json:"bundle"`
	Reads            []hx   `json:"initiator_random_reads"`
	EphemeralPrivate hx     `json:"ephemeral_private"`
	EphemeralPublic  hx     `json:"ephemeral_public"`
	KEMRandomness    hx     `json:"kem_randomness"`
	KEMCiphertext    hx     `json:"kem_ciphertext"`
	DH1              hx     `json:"dh1"`
	DH2              hx     `json:"dh2"`
	DH3              hx     `json:"dh3"`
	DH4              hx     `json:"dh4"`
	KEMSharedSecret  hx     `json:"kem_shared_secret"`
	SK               hx     `json:"sk"`
	AD               hx     `json:"ad"`
	SessionID        string `json:"session_id"`
	InitialHeader    hx     `json:"initial_header"`
	FirstPlaintext   hx     `json:"first_plaintext"`
	FirstMessage     hx     `json:"first_message"`
}

type specMessage struct {
	Label     string `json:"label"`
	From      string `json:"from"`
	Padding   int    `json:"padding"`
	Plaintext hx     `json:"plaintext"`
	Type      uint8  `json:"type"`
	DH        hx     `json:"dh"`
	PN        uint32 `json:"pn"`
	N         uint32 `json:"n"`
	Wire      hx     `json:"wire"`
}

type specEvent struct {
	Op          string `json:"op"`
	Label       string `json:"label"`
	StateSHA256 hx     `json:"state_sha256"`
}

// specStream is §15.1's random stream.
func specStream(seed string, n int) []byte {
	var out []byte
	for i := uint64(0); len(out) < n; i++ {
		h := sha256.New()
		h.Write([]byte(specRNGLabel))
		h.Write([]byte{0})
		h.Write([]byte(seed))
		h.Write(binary.BigEndian.AppendUint64(nil, i))
		out = h.Sum(out)
	}
	return out[:n]
}

// specFingerprint is §7.
func specFingerprint(pub []byte) string {
	sum := sha256.Sum256(slices.Concat([]byte(specLabelFingerprint), []byte{0}, pub))
	x := hex.EncodeToString(sum[:10])
	return strings.Join([]string{x[0:4], x[4:8], x[8:12], x[12:16], x[16:20]}, " ")
}

func specSigned(domain string, msg []byte) []byte {
	return slices.Concat([]byte(domain), []byte{0}, msg)
}

func x25519(t *testing.T, priv, pub []byte) []byte {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.ECDH(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func x25519Pub(t *testing.T, priv []byte) []byte {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

func be16(v int) []byte    { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v int64) []byte  { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: the spec gives\n\t%x\nthe vectors hold\n\t%x", what, got, want)
	}
}

// specID is a party rebuilt from the spec.
type specID struct {
	edPriv      ed25519.PrivateKey
	xPriv, xPub []byte
	rawID       [32]byte
	cardBinary  []byte
}

// rebuildParty checks §5 and §6 for one party.
func rebuildParty(t *testing.T, who string, stream []byte, p *specParty, relayPriv ed25519.PrivateKey) specID {
	t.Helper()
	seed, x := stream[:32], stream[32:64]
	mustEqual(t, who+" identity key encoding", slices.Concat([]byte{1}, seed, x), p.IdentityKey.b(t))
	edPriv := ed25519.NewKeyFromSeed(seed)
	edPub := edPriv.Public().(ed25519.PublicKey)
	xPub := x25519Pub(t, x)
	mustEqual(t, who+" signing key", edPub, p.SigningPublic.b(t))
	mustEqual(t, who+" agreement key", xPub, p.AgreementPublic.b(t))
	if fp := specFingerprint(edPub); fp != p.Fingerprint {
		t.Fatalf("%s fingerprint: the spec gives %q, the vectors hold %q", who, fp, p.Fingerprint)
	}

	c := &p.Card
	if c.CreatedAt != specCreatedAt {
		t.Fatalf("%s card created at %d, §15.1 says %d", who, c.CreatedAt, specCreatedAt)
	}
	snap := []byte{1}
	for _, s := range []string{c.Identity, c.IdentityType, c.Device} {
		snap = append(append(snap, byte(len(s))), s...)
	}
	snap = slices.Concat(snap, edPub, xPub, be64(c.CreatedAt))
	keys := make([]string, 0, len(c.Data))
	for k := range c.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	snap = append(snap, byte(len(keys)))
	for _, k := range keys {
		snap = append(append(snap, byte(len(k))), k...)
		snap = append(append(snap, be16(len(c.Data[k]))...), c.Data[k]...)
	}
	mustEqual(t, who+" card snapshot", snap, c.Snapshot.b(t))
	id := sha256.Sum256(snap)
	if hex.EncodeToString(id[:]) != c.ID {
		t.Fatalf("%s card ID: the spec gives %x, the vectors hold %s", who, id, c.ID)
	}
	// Ed25519 is deterministic, so signatures compare byte for byte.
	self := ed25519.Sign(edPriv, specSigned(specDomainCardSelf, snap))
	mustEqual(t, who+" card self signature", self, c.SelfSignature.b(t))
	relaySig := ed25519.Sign(relayPriv, specSigned(specDomainCardRelay, slices.Concat(snap, self)))
	mustEqual(t, who+" card relay signature", relaySig, c.RelaySignature.b(t))
	bin := slices.Concat([]byte{1}, be16(len(snap)), snap, []byte{64}, self, []byte{64}, relaySig)
	mustEqual(t, who+" card binary", bin, c.Binary.b(t))
	if exp := specExportPrefix + base64.RawURLEncoding.EncodeToString(bin); exp != c.Export {
		t.Fatalf("%s card export: the spec gives %s", who, exp)
	}
	return specID{edPriv: edPriv, xPriv: x, xPub: xPub, rawID: id, cardBinary: bin}
}

// specPre is a prekey rebuilt from the spec: kind → (id, secret, public binary).
type specPre struct {
	id     uint32
	secret []byte
	pubBin []byte
	pub    []byte
}

func rebuildPreKeys(t *testing.T, stream []byte, p *specParty, owner ed25519.PrivateKey) map[uint8]specPre {
	t.Helper()
	out := map[uint8]specPre{}
	// §15.1: Bob's reads after his identity key, in order.
	var order []string
	for _, v := range p.PreKeys {
		order = append(order, fmt.Sprintf("kind %d id %d", v.Kind, v.ID))
		if v.CreatedAt != specCreatedAt {
			t.Fatalf("prekey %d created at %d, §15.1 says %d", v.ID, v.CreatedAt, specCreatedAt)
		}
	}
	if want := []string{"kind 1 id 11", "kind 2 id 21", "kind 4 id 31", "kind 3 id 41"}; !slices.Equal(order, want) {
		t.Fatalf("prekeys %q, §15.1 reads %q", order, want)
	}
	for _, v := range p.PreKeys {
		n := 32
		if v.Kind >= 3 {
			n = 64
		}
		secret := stream[:n]
		stream = stream[n:]
		mustEqual(t, fmt.Sprintf("prekey %d secret", v.ID), secret, v.Secret.b(t))
		var pub []byte
		if v.Kind >= 3 {
			dk, err := mlkem.NewDecapsulationKey768(secret)
			if err != nil {
				t.Fatal(err)
			}
			pub = dk.EncapsulationKey().Bytes()
		} else {
			pub = x25519Pub(t, secret)
		}
		mustEqual(t, fmt.Sprintf("prekey %d public key", v.ID), pub, v.PublicKey.b(t))
		var sig []byte
		if v.Kind != 2 {
			msg := slices.Concat([]byte{v.Kind}, be32(v.ID), be64(v.CreatedAt), pub)
			mustEqual(t, fmt.Sprintf("prekey %d signed message", v.ID), msg, v.SignedMessage.b(t))
			sig = ed25519.Sign(owner, specSigned(specDomainPreKey, msg))
			mustEqual(t, fmt.Sprintf("prekey %d signature", v.ID), sig, v.Signature.b(t))
		}
		pubBin := slices.Concat([]byte{1, v.Kind}, be32(v.ID), be64(v.CreatedAt), be16(len(pub)), pub, []byte{byte(len(sig))}, sig)
		mustEqual(t, fmt.Sprintf("prekey %d public encoding", v.ID), pubBin, v.Public.b(t))
		priv := slices.Concat([]byte{1}, be16(len(pubBin)), pubBin, []byte{byte(len(secret))}, secret)
		mustEqual(t, fmt.Sprintf("prekey %d private encoding", v.ID), priv, v.Private.b(t))
		out[v.Kind] = specPre{id: v.ID, secret: secret, pubBin: pubBin, pub: pub}
	}
	return out
}

// specSession is a Double Ratchet from SPEC.md §11, both directions.
type specSession struct {
	t             *testing.T
	initiator     bool
	acked         bool
	ad            []byte
	sessionID     []byte
	initialHeader []byte
	rk            []byte
	dhs, dhsPub   []byte // nil: absent
	dhr           []byte
	cks, ckr      []byte
	ns, nr, pn    uint32
	skipped       []specSkipped
	reads         [][]byte
	padding       int
	// §13 bookkeeping, for the persisted-state hashes.
	self, peer  [32]byte
	usedOPK     bool
	sent, recvd uint32
	previous    [][]byte
	// What the transcript exercised (§15.2 promises both): keys set aside by PN in a DH
	// step, and stored keys of a chain older than the current receiving one used.
	setAsideByPN, olderChainKeysUsed int
}

// marshal is §13.
func (s *specSession) marshal() []byte {
	var flags byte
	for bit, on := range []bool{s.initiator, s.acked, s.usedOPK, s.dhs != nil, s.dhr != nil, s.cks != nil, s.ckr != nil} {
		if on {
			flags |= 1 << bit
		}
	}
	b := slices.Concat([]byte{1, flags}, s.sessionID, s.self[:], s.peer[:], s.rk)
	for _, v := range [][]byte{slices.Concat(s.dhs, s.dhsPub), s.dhr, s.cks, s.ckr} {
		b = append(b, v...) // absent values are nil: nothing appended
	}
	b = slices.Concat(b, be32(s.ns), be32(s.nr), be32(s.pn), be32(s.sent), be32(s.recvd), be16(s.padding))
	var hdr []byte
	if s.initiator && !s.acked {
		hdr = s.initialHeader
	}
	b = slices.Concat(b, be16(len(hdr)), hdr, be16(len(s.skipped)))
	for _, k := range s.skipped {
		b = slices.Concat(b, k.dh, be32(k.n), k.mk)
	}
	b = append(b, byte(len(s.previous)))
	for _, k := range s.previous {
		b = append(b, k...)
	}
	return b
}

type specSkipped struct {
	dh []byte
	n  uint32
	mk []byte
}

func specHMAC(key []byte, b byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte{b})
	return m.Sum(nil)
}

func specKDFRK(t *testing.T, rk, dh []byte) (newRK, ck []byte) {
	out, err := hkdf.Key(sha256.New, dh, rk, specLabelRoot, 64)
	if err != nil {
		t.Fatal(err)
	}
	return out[:32], out[32:]
}

func specKDFCK(ck []byte) (mk, next []byte) { return specHMAC(ck, 0x01), specHMAC(ck, 0x02) }

func specAEAD(t *testing.T, mk []byte) (aead interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, nonce []byte) {
	out, err := hkdf.Key(sha256.New, mk, make([]byte, 32), specLabelMsgKeys, 44)
	if err != nil {
		t.Fatal(err)
	}
	a, err := chacha20poly1305.New(out[:32])
	if err != nil {
		t.Fatal(err)
	}
	return a, out[32:44]
}

func (s *specSession) rng() []byte {
	if len(s.reads) == 0 {
		s.t.Fatal("spec session: random reads exhausted")
	}
	r := s.reads[0]
	s.reads = s.reads[1:]
	return r
}

// encrypt is §11.3 and §12.
func (s *specSession) encrypt(pt []byte) []byte {
	t := s.t
	if s.dhs == nil || s.cks == nil {
		s.dhs = s.rng()
		s.dhsPub = x25519Pub(t, s.dhs)
		s.rk, s.cks = specKDFRK(t, s.rk, x25519(t, s.dhs, s.dhr))
	}
	mk, next := specKDFCK(s.cks)
	padded := append(slices.Clone(pt), 0x80)
	if s.padding > 1 {
		for len(padded)%s.padding != 0 {
			padded = append(padded, 0)
		}
	}
	typ := byte(2)
	if s.initiator && !s.acked {
		typ = 1
	}
	wire := []byte{1, typ}
	if typ == 1 {
		wire = append(wire, s.initialHeader...)
	}
	wire = slices.Concat(wire, s.dhsPub, be32(s.pn), be32(s.ns), be32(uint32(len(padded)+16)))
	aead, nonce := specAEAD(t, mk)
	wire = aead.Seal(wire, nonce, padded, slices.Concat(s.ad, wire))
	s.cks = next
	s.ns++
	s.sent++
	return wire
}

// decrypt is §11.4 for a message of the transcript, which must open.
func (s *specSession) decrypt(wire []byte) []byte {
	p, err := s.attempt(wire)
	if err != "" {
		s.t.Fatalf("spec: a transcript message fails with %s", err)
	}
	return p
}

// specWire is a message decoded by §12.1 and §12.2.
type specWire struct {
	initial    []byte // the 1199-byte initial header; type 1 only
	dh         []byte
	pn, n      uint32
	prefix, ct []byte // the wire bytes before the ciphertext, and the ciphertext
}

// specDecodeWire is §12.1 and §12.2 with §1.1's errors, field by field in order.
func specDecodeWire(w []byte) (m specWire, err string) {
	switch {
	case len(w) > 70893:
		return m, "ErrOversize"
	case len(w) < 1:
		return m, "ErrMalformed"
	case w[0] != 1:
		return m, "ErrUnknownVersion"
	case len(w) < 2:
		return m, "ErrMalformed"
	}
	off := 2
	switch w[1] {
	case 1:
		h := w[2:]
		if len(h) < 109 {
			return m, "ErrMalformed"
		}
		if h[108] != 3 && h[108] != 4 {
			return m, "ErrMalformed"
		}
		if len(h) < 111 {
			return m, "ErrMalformed"
		}
		if n := binary.BigEndian.Uint16(h[109:]); n > 1088 {
			return m, "ErrOversize"
		} else if n < 1088 || len(h) < 1199 {
			return m, "ErrMalformed"
		}
		if binary.BigEndian.Uint32(h[96:]) == 0 || binary.BigEndian.Uint32(h[104:]) == 0 {
			return m, "ErrMalformed"
		}
		m.initial = h[:1199]
		off += 1199
	case 2:
	default:
		return m, "ErrMalformed"
	}
	if len(w) < off+44 {
		return m, "ErrMalformed"
	}
	m.dh = w[off : off+32]
	m.pn = binary.BigEndian.Uint32(w[off+32:])
	m.n = binary.BigEndian.Uint32(w[off+36:])
	ctLen := uint64(binary.BigEndian.Uint32(w[off+40:]))
	rest := uint64(len(w) - off - 44)
	switch {
	case ctLen > 65536+4096+16:
		return m, "ErrOversize"
	case rest < ctLen:
		return m, "ErrMalformed"
	case rest > ctLen:
		return m, "ErrTrailingBytes"
	case ctLen < 17:
		return m, "ErrMalformed"
	}
	m.prefix, m.ct = w[:off+44], w[off+44:]
	return m, ""
}

// attempt is §11.4: the plaintext, or the name of the §14 error. State changes only
// when it returns a plaintext (the commit rule).
func (s *specSession) attempt(wire []byte) ([]byte, string) {
	t := s.t
	m, e := specDecodeWire(wire)
	if e != "" {
		return nil, e
	}
	dh, pn, n := m.dh, m.pn, m.n
	// 0. Initial messages.
	if m.initial != nil {
		id := sha256.Sum256(slices.Concat([]byte(specLabelSessionID), []byte{0}, m.initial[:96]))
		if s.initiator || !bytes.Equal(id[:], s.sessionID) {
			return nil, "ErrWrongSession"
		}
	}
	ad := slices.Concat(s.ad, m.prefix)
	// 4. Open.
	open := func(mk []byte) ([]byte, string) {
		aead, nonce := specAEAD(t, mk)
		p, err := aead.Open(nil, nonce, m.ct, ad)
		if err != nil {
			return nil, "ErrDecrypt"
		}
		i := len(p) - 1
		for i >= 0 && p[i] == 0 {
			i--
		}
		if i < 0 || p[i] != 0x80 {
			return nil, "ErrDecrypt"
		}
		return p[:i], ""
	}
	// 5. Count; acknowledge.
	done := func(p []byte) ([]byte, string) {
		if s.initiator {
			s.acked = true
		}
		s.recvd++
		return p, ""
	}
	store := func(keys []specSkipped) {
		s.skipped = append(s.skipped, keys...)
		if over := len(s.skipped) - 2000; over > 0 {
			s.skipped = s.skipped[over:]
		}
	}
	// 1. Skipped key.
	if !(s.ckr != nil && bytes.Equal(dh, s.dhr) && n >= s.nr) {
		for i, k := range s.skipped {
			if k.n == n && bytes.Equal(k.dh, dh) {
				p, e := open(k.mk)
				if e != "" {
					return nil, e
				}
				if !bytes.Equal(dh, s.dhr) {
					s.olderChainKeysUsed++
				}
				s.skipped = slices.Delete(s.skipped, i, i+1)
				return done(p)
			}
		}
	}
	skip := func(ck, dh []byte, from, until uint32) ([]byte, []specSkipped) {
		var keys []specSkipped
		for i := from; i < until; i++ {
			var mk []byte
			mk, ck = specKDFCK(ck)
			keys = append(keys, specSkipped{dh: slices.Clone(dh), n: i, mk: mk})
		}
		return ck, keys
	}
	// 2. Current chain.
	if s.ckr != nil && bytes.Equal(dh, s.dhr) {
		if n < s.nr {
			return nil, "ErrReplay"
		}
		if n-s.nr > specMaxSkip {
			return nil, "ErrTooManySkipped"
		}
		ck, keys := skip(s.ckr, s.dhr, s.nr, n)
		mk, next := specKDFCK(ck)
		p, e := open(mk)
		if e != "" {
			return nil, e
		}
		s.ckr, s.nr = next, n+1
		store(keys)
		return done(p)
	}
	// 3. New ratchet key.
	for _, k := range s.previous {
		if bytes.Equal(k, dh) {
			return nil, "ErrReplay"
		}
	}
	if s.dhs == nil {
		return nil, "ErrReplay"
	}
	var old []specSkipped
	if s.ckr != nil && pn >= s.nr {
		if pn-s.nr > specMaxSkip {
			return nil, "ErrTooManySkipped"
		}
		_, old = skip(s.ckr, s.dhr, s.nr, pn)
	}
	if n > specMaxSkip {
		return nil, "ErrTooManySkipped"
	}
	priv, err := ecdh.X25519().NewPrivateKey(s.dhs)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdh.X25519().NewPublicKey(dh)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, "ErrDecrypt" // §1.2: an all-zero DH in the ratchet
	}
	rk, ckr := specKDFRK(t, s.rk, shared)
	ck, keys := skip(ckr, dh, 0, n)
	mk, next := specKDFCK(ck)
	p, e := open(mk)
	if e != "" {
		return nil, e
	}
	s.setAsideByPN += len(old)
	if s.dhr != nil {
		s.previous = append(s.previous, s.dhr)
		if len(s.previous) > 5 {
			s.previous = s.previous[1:]
		}
	}
	s.pn, s.ns = s.ns, 0
	s.dhr, s.rk, s.ckr, s.nr = slices.Clone(dh), rk, next, n+1
	s.dhs, s.dhsPub, s.cks = nil, nil, nil
	store(append(old, keys...))
	return done(p)
}

// specHandshakeRun is §10 from Alice's random reads and Bob's bundle; it returns the
// checked values and Alice's initial state.
func specHandshakeRun(t *testing.T, name string, h *specHandshake, alice, bob specID, pre map[uint8]specPre, wantBundle []byte) (sk, ad, sid, hdr []byte) {
	t.Helper()
	// §9: the bundle.
	var opkPart []byte
	kemKind := uint8(4)
	if len(h.DH4) == 0 {
		opkPart = []byte{0}
		kemKind = 3
	} else {
		opkPart = slices.Concat([]byte{1}, be16(len(pre[2].pubBin)), pre[2].pubBin)
	}
	bundle := slices.Concat([]byte{1}, be16(len(bob.cardBinary)), bob.cardBinary,
		be16(len(pre[1].pubBin)), pre[1].pubBin, opkPart, be16(len(pre[kemKind].pubBin)), pre[kemKind].pubBin)
	mustEqual(t, name+" bundle", bundle, h.Bundle.b(t))
	if wantBundle != nil {
		mustEqual(t, name+" bundle (top level)", bundle, wantBundle)
	}
	// §10.1.
	ek, m := h.Reads[0].b(t), h.Reads[1].b(t)
	mustEqual(t, name+" ephemeral public key", x25519Pub(t, ek), h.EphemeralPublic.b(t))
	dh1 := x25519(t, alice.xPriv, pre[1].pub)
	dh2 := x25519(t, ek, bob.xPub)
	dh3 := x25519(t, ek, pre[1].pub)
	mustEqual(t, name+" DH1", dh1, h.DH1.b(t))
	mustEqual(t, name+" DH2", dh2, h.DH2.b(t))
	mustEqual(t, name+" DH3", dh3, h.DH3.b(t))
	ikm := slices.Concat(bytes.Repeat([]byte{0xFF}, 32), dh1, dh2, dh3)
	opkID := uint32(0)
	if len(h.DH4) != 0 {
		dh4 := x25519(t, ek, pre[2].pub)
		mustEqual(t, name+" DH4", dh4, h.DH4.b(t))
		ikm = append(ikm, dh4...)
		opkID = pre[2].id
	}
	encKey, err := mlkem.NewEncapsulationKey768(pre[kemKind].pub)
	if err != nil {
		t.Fatal(err)
	}
	ss, ct, err := mlkemtest.Encapsulate768(encKey, m)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, name+" KEM ciphertext", ct, h.KEMCiphertext.b(t))
	mustEqual(t, name+" KEM shared secret", ss, h.KEMSharedSecret.b(t))
	// The responder's view: decapsulation and the mirrored DHs give the same secret.
	dk, err := mlkem.NewDecapsulationKey768(pre[kemKind].secret)
	if err != nil {
		t.Fatal(err)
	}
	if ss2, err := dk.Decapsulate(ct); err != nil || !bytes.Equal(ss2, ss) {
		t.Fatalf("%s: decapsulation disagrees", name)
	}
	mustEqual(t, name+" responder DH1", x25519(t, pre[1].secret, alice.xPub), dh1)
	ikm = append(ikm, ss...)
	sk, err = hkdf.Key(sha256.New, ikm, make([]byte, 32), specLabelPQXDH, 32)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, name+" SK", sk, h.SK.b(t))
	ad = slices.Concat(alice.rawID[:], bob.rawID[:])
	mustEqual(t, name+" AD", ad, h.AD.b(t))
	id := sha256.Sum256(slices.Concat([]byte(specLabelSessionID), []byte{0}, alice.rawID[:], bob.rawID[:], x25519Pub(t, ek)))
	if hex.EncodeToString(id[:]) != h.SessionID {
		t.Fatalf("%s session ID: the spec gives %x, the vectors hold %s", name, id, h.SessionID)
	}
	// §12.2.
	hdr = slices.Concat(alice.rawID[:], bob.rawID[:], x25519Pub(t, ek), be32(pre[1].id), be32(opkID),
		be32(pre[kemKind].id), []byte{kemKind}, be16(len(ct)), ct)
	mustEqual(t, name+" initial header", hdr, h.InitialHeader.b(t))
	return sk, ad, id[:], hdr
}

// specRespond is §10.2 on an initial header (§12.2): Bob's checks, his DHs and
// decapsulation, and his initial state (§11.2). pre holds his private prekeys' secrets
// by kind and id; bob's card and Alice's are the ones the spec decoded.
func specRespond(t *testing.T, hdr []byte, bob specID, bobCard, aliceCard *specCard, pre map[[2]uint32][]byte) (*specSession, string) {
	t.Helper()
	ini, resp, ek := hdr[:32], hdr[32:64], hdr[64:96]
	spkID, opkID, kemID := binary.BigEndian.Uint32(hdr[96:]), binary.BigEndian.Uint32(hdr[100:]), binary.BigEndian.Uint32(hdr[104:])
	kemKind, ct := uint32(hdr[108]), hdr[111:1199]
	// 1.
	bobID, aliceID := sha256.Sum256(bobCard.snapshot), sha256.Sum256(aliceCard.snapshot)
	if !bytes.Equal(x25519Pub(t, bob.xPriv), bobCard.agreementKey) ||
		subtle.ConstantTimeCompare(resp, bobID[:]) != 1 || subtle.ConstantTimeCompare(ini, aliceID[:]) != 1 {
		return nil, "ErrWrongCard"
	}
	// 2.
	spk, okSPK := pre[[2]uint32{1, spkID}]
	opk, okOPK := pre[[2]uint32{2, opkID}]
	kem, okKEM := pre[[2]uint32{kemKind, kemID}]
	if !okSPK || opkID != 0 && !okOPK || !okKEM {
		return nil, "ErrMissingPreKey"
	}
	// 3.
	ikm := slices.Concat(bytes.Repeat([]byte{0xFF}, 32), x25519(t, spk, aliceCard.agreementKey), x25519(t, bob.xPriv, ek), x25519(t, spk, ek))
	if opkID != 0 {
		ikm = append(ikm, x25519(t, opk, ek)...)
	}
	dk, err := mlkem.NewDecapsulationKey768(kem)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := dk.Decapsulate(ct)
	if err != nil {
		return nil, "ErrMalformed"
	}
	// 4.
	sk, err := hkdf.Key(sha256.New, append(ikm, ss...), make([]byte, 32), specLabelPQXDH, 32)
	if err != nil {
		t.Fatal(err)
	}
	sid := sha256.Sum256(slices.Concat([]byte(specLabelSessionID), []byte{0}, ini, resp, ek))
	// 5.
	return &specSession{t: t, ad: slices.Concat(ini, resp), sessionID: sid[:], rk: sk,
		dhs: spk, dhsPub: x25519Pub(t, spk), self: bobID, peer: aliceID, usedOPK: opkID != 0}, ""
}

// readSpecFile reads testdata/vectors.json as the spec's reader sees it.
func readSpecFile(t *testing.T) specFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f specFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestVectorsFollowSpec(t *testing.T) {
	loadSpecConstants(t)
	f := readSpecFile(t)

	// §15.2: the top-level created_at is §15.1's time as RFC 3339 text.
	if at, err := time.Parse(time.RFC3339, f.CreatedAt); err != nil || at.Unix() != specCreatedAt {
		t.Fatalf("created_at %q is not §15.1's 2026-01-01T00:00:00Z (%v)", f.CreatedAt, err)
	}

	// §15.1, §5–§8: keys, cards and prekeys from the seeds.
	relaySeed := specStream(f.Relay.Seed, 32)
	mustEqual(t, "relay seed", relaySeed, f.Relay.Ed25519.b(t))
	relayPriv := ed25519.NewKeyFromSeed(relaySeed)
	mustEqual(t, "relay public key", relayPriv.Public().(ed25519.PublicKey), f.Relay.PublicKey.b(t))
	if fp := specFingerprint(f.Relay.PublicKey.b(t)); fp != f.Relay.Fingerprint {
		t.Fatalf("relay fingerprint: the spec gives %q, the vectors hold %q", fp, f.Relay.Fingerprint)
	}
	alice := rebuildParty(t, "alice", specStream(f.Alice.Seed, 64), &f.Alice, relayPriv)
	bobStream := specStream(f.Bob.Seed, 64+32+32+64+64)
	bob := rebuildParty(t, "bob", bobStream, &f.Bob, relayPriv)
	pre := rebuildPreKeys(t, bobStream[64:], &f.Bob, bob.edPriv)
	if len(pre) != 4 {
		t.Fatalf("bob has %d prekey kinds, want 4", len(pre))
	}

	// §6, §8.3, §9 read back: the vectors' cards, prekeys and bundles are accepted by
	// the spec's decoders and verifiers, and the card and bundle rejections are refused
	// by them with the vectors' errors.
	cards := specReadBack(t, &f, relayPriv.Public().(ed25519.PublicKey), pre)
	// §10.2 looks Bob's private prekeys up by the kind and id an initial header names;
	// they come from the file's private encodings (§8.3), read by the spec.
	bobPre := map[[2]uint32][]byte{}
	for _, v := range f.Bob.PreKeys {
		p, secret, e := specParsePrivatePreKey(v.Private.b(t), func(kind byte, secret []byte) []byte { return pre[kind].pub })
		if e != "" {
			t.Fatalf("prekey %d: %s", v.ID, e)
		}
		bobPre[[2]uint32{uint32(p.kind), p.id}] = secret
	}
	respond := func(name string, wire []byte, sk, ad, sid []byte) *specSession {
		w, e := specDecodeWire(wire)
		if e != "" || w.initial == nil {
			t.Fatalf("%s: not an initial message (%s)", name, e)
		}
		s, e := specRespond(t, w.initial, bob, cards["bob"], cards["alice"], bobPre)
		if e != "" {
			t.Fatalf("%s: the spec's responder refuses it: %s", name, e)
		}
		mustEqual(t, name+": the responder's SK", s.rk, sk)
		mustEqual(t, name+": the responder's AD", s.ad, ad)
		mustEqual(t, name+": the responder's session ID", s.sessionID, sid)
		return s
	}

	// §9–§10: both handshakes; the one without a one-time prekey also decrypts its
	// first message on a responder built from the spec.
	for _, h := range []*specHandshake{&f.Handshake, &f.HandshakeLR} {
		if len(h.Reads) != 3 {
			t.Fatalf("%s: %d random reads, §15.2 lists three (EK_A, m, the first ratchet key)", h.Seed, len(h.Reads))
		}
		mustEqual(t, h.Seed+" ephemeral_private (the first read)", h.EphemeralPrivate.b(t), h.Reads[0].b(t))
		mustEqual(t, h.Seed+" kem_randomness (the second read)", h.KEMRandomness.b(t), h.Reads[1].b(t))
		mustEqual(t, h.Seed+" random reads", slices.Concat(h.Reads[0].b(t), h.Reads[1].b(t), h.Reads[2].b(t)), specStream(h.Seed, 96))
	}
	skLR, adLR, sidLR, hdrLR := specHandshakeRun(t, "handshake without OPK", &f.HandshakeLR, alice, bob, pre, nil)
	aliceLR := &specSession{t: t, initiator: true, ad: adLR, sessionID: sidLR, initialHeader: hdrLR, rk: skLR,
		dhr: pre[1].pub, reads: [][]byte{f.HandshakeLR.Reads[2].b(t)}}
	mustEqual(t, "handshake without OPK: first message", aliceLR.encrypt(f.HandshakeLR.FirstPlaintext.b(t)), f.HandshakeLR.FirstMessage.b(t))
	bobLR := respond("handshake without OPK", f.HandshakeLR.FirstMessage.b(t), skLR, adLR, sidLR)
	if bobLR.usedOPK {
		t.Fatal("handshake without OPK: the spec's responder used one")
	}
	mustEqual(t, "handshake without OPK: first plaintext", bobLR.decrypt(f.HandshakeLR.FirstMessage.b(t)), f.HandshakeLR.FirstPlaintext.b(t))
	sk, ad, sid, hdr := specHandshakeRun(t, "handshake", &f.Handshake, alice, bob, pre, f.Bundle.b(t))
	if len(f.Handshake.FirstPlaintext) != 0 || len(f.Handshake.FirstMessage) != 0 {
		t.Fatal("handshake: first_plaintext and first_message are not empty (§15.2)")
	}

	// §11.1, one step of each KDF: Alice's first sending chain and A1's message key.
	k := &f.KDF
	mustEqual(t, "kdf rk (SK)", k.RK.b(t), sk)
	mustEqual(t, "kdf dh", k.DH.b(t), x25519(t, f.Transcript.AliceReads[2].b(t), pre[1].pub))
	rkNext, ck := specKDFRK(t, k.RK.b(t), k.DH.b(t))
	mustEqual(t, "KDF_RK: RK'", rkNext, k.RKNext.b(t))
	mustEqual(t, "KDF_RK: CK", ck, k.CK.b(t))
	mk, ckNext := specKDFCK(ck)
	mustEqual(t, "KDF_CK: MK", mk, k.MK.b(t))
	mustEqual(t, "KDF_CK: CK'", ckNext, k.CKNext.b(t))
	keys, err := hkdf.Key(sha256.New, mk, make([]byte, 32), specLabelMsgKeys, 44)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "message keys: key", keys[:32], k.AEADKey.b(t))
	mustEqual(t, "message keys: nonce", keys[32:], k.AEADNonce.b(t))

	// §11–§12: the transcript, both sides, every wire byte.
	var aliceReads, bobReads [][]byte
	for _, r := range f.Transcript.AliceReads {
		aliceReads = append(aliceReads, r.b(t))
	}
	for _, r := range f.Transcript.BobReads {
		bobReads = append(bobReads, r.b(t))
	}
	mustEqual(t, "alice session stream", slices.Concat(aliceReads...), specStream(f.Transcript.AliceSeed, 32*len(aliceReads)))
	mustEqual(t, "bob session stream", slices.Concat(bobReads...), specStream(f.Transcript.BobSeed, 32*len(bobReads)))
	sessions := map[string]*specSession{
		"alice": {t: t, initiator: true, ad: ad, sessionID: sid, initialHeader: hdr, rk: sk,
			dhr: pre[1].pub, reads: aliceReads[2:], self: alice.rawID, peer: bob.rawID, usedOPK: true},
	}
	mustEqual(t, "the handshake's reads begin the transcript's", slices.Concat(aliceReads[:3]...),
		slices.Concat(f.Handshake.Reads[0].b(t), f.Handshake.Reads[1].b(t), f.Handshake.Reads[2].b(t)))
	msgs := map[string]specMessage{}
	for _, m := range f.Transcript.Messages {
		msgs[m.Label] = m
		// §15.2: type, dh, pn and n are the wire's header fields.
		w, ok := specDecodeWire(m.Wire.b(t))
		typ := uint8(2)
		if w.initial != nil {
			typ = 1
			mustEqual(t, m.Label+" initial header", w.initial, hdr)
		}
		if ok != "" || typ != m.Type || !bytes.Equal(w.dh, m.DH.b(t)) || w.pn != m.PN || w.n != m.N {
			t.Fatalf("%s: type %d, dh %s, pn %d, n %d do not describe its wire (%s)", m.Label, m.Type, m.DH, m.PN, m.N, ok)
		}
	}
	decryptRejections := 0
	for _, ev := range f.Transcript.Events {
		m := msgs[ev.Label]
		switch ev.Op {
		case "send":
			s := sessions[m.From]
			s.padding = m.Padding
			mustEqual(t, "send "+m.Label, s.encrypt(m.Plaintext.b(t)), m.Wire.b(t))
		case "deliver":
			to := "bob"
			if m.From == "bob" {
				to = "alice"
			}
			if m.Label == "A11" {
				// §15.3 step 4: at the probe point, every decrypt rejection is refused
				// with its error by the spec's ratchet, changing nothing.
				for _, r := range f.Rejections {
					switch r.Check {
					case "card", "bundle":
						continue // judged by specReadBack
					case "decrypt":
					default:
						t.Fatalf("rejection %q: unknown check %q (§15.2)", r.Name, r.Check)
					}
					s := sessions[r.Side]
					before := s.marshal()
					if _, e := s.attempt(r.Input.b(t)); e != r.Error {
						t.Errorf("rejection %q: the spec gives %q, the vectors %s", r.Name, e, r.Error)
					}
					if !bytes.Equal(before, s.marshal()) {
						t.Errorf("rejection %q changed the spec's %s session", r.Name, r.Side)
					}
					decryptRejections++
				}
			}
			if sessions[to] == nil {
				// §10.2 on the header of the first message Bob receives.
				sessions[to] = respond("deliver "+m.Label, m.Wire.b(t), sk, ad, sid)
				sessions[to].reads = bobReads
				if !sessions[to].usedOPK {
					t.Fatal("the transcript's handshake: the spec's responder used no OPK")
				}
			}
			mustEqual(t, "deliver "+m.Label, sessions[to].decrypt(m.Wire.b(t)), m.Plaintext.b(t))
		default:
			t.Fatalf("unknown op %q", ev.Op)
		}
		actor := sessions[m.From]
		if ev.Op == "deliver" {
			actor = sessions[map[string]string{"alice": "bob", "bob": "alice"}[m.From]]
		}
		sum := sha256.Sum256(actor.marshal())
		mustEqual(t, fmt.Sprintf("§13 state after %s %s", ev.Op, ev.Label), sum[:], ev.StateSHA256.b(t))
	}
	if decryptRejections == 0 {
		t.Fatal("no decrypt rejection was checked at the probe point (delivering A11)")
	}
	if n := len(sessions["alice"].reads) + len(sessions["bob"].reads); n != 0 {
		t.Fatalf("%d recorded random reads were not used by the spec's ratchet", n)
	}
	for who, s := range sessions {
		if s.setAsideByPN == 0 && s.olderChainKeysUsed == 0 {
			continue
		}
		t.Logf("%s: %d keys set aside by PN, %d keys of an older chain used", who, s.setAsideByPN, s.olderChainKeysUsed)
	}
	if a, b := sessions["alice"], sessions["bob"]; a.setAsideByPN+b.setAsideByPN == 0 || a.olderChainKeysUsed == 0 || b.olderChainKeysUsed == 0 {
		t.Fatalf("the transcript no longer covers what §15.2 says: keys set aside by PN %d (alice) + %d (bob), keys of an older chain used %d (alice), %d (bob)",
			a.setAsideByPN, b.setAsideByPN, a.olderChainKeysUsed, b.olderChainKeysUsed)
	}
}
