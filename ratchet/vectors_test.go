package ratchet

// Deterministic test vectors: fixed seeds → identity keys, cards, prekeys, a bundle, the
// PQXDH handshake (every DH, the KEM secret, SK, AD, session ID) and a 20-message
// transcript in both directions with out-of-order delivery. Another implementation can
// check itself against testdata/vectors.json without running Go; SPEC.md says how.
//
//	go test ./ratchet -run TestVectors -update   # rewrite testdata/vectors.json
//	go test ./ratchet -run TestVectors           # regenerate and compare, byte for byte
//
// TestVectors also replays the recorded transcript from the keys in the file (so a
// change of encoding fails with a precise message, not only "the JSON differs"), and
// TestVectorsFollowSpec recomputes the handshake from the spec with the standard
// library alone.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateVectors = flag.Bool("update", false, "rewrite ratchet/testdata/vectors.json from the current code")

const vectorsPath = "testdata/vectors.json"

// vectorRNGLabel separates the vector DRBG from every other use of SHA-256.
const vectorRNGLabel = "pfschat/v1/test-vectors"

// vectorRNG is the deterministic random source of the vectors, simple to rebuild in any
// language: the stream is block(0) ‖ block(1) ‖ …, with
//
//	block(i) = SHA-256(vectorRNGLabel ‖ 0x00 ‖ seed ‖ u64be(i))
//
// It records every Read, so the vectors can list the exact random inputs in order.
type vectorRNG struct {
	seed  []byte
	block uint64
	buf   []byte
	reads []hexBytes
}

func newVectorRNG(seed string) *vectorRNG { return &vectorRNG{seed: []byte(seed)} }

func (r *vectorRNG) Read(p []byte) (int, error) {
	out := p
	for len(out) > 0 {
		if len(r.buf) == 0 {
			h := sha256.New()
			h.Write([]byte(vectorRNGLabel))
			h.Write([]byte{0})
			h.Write(r.seed)
			h.Write(binary.BigEndian.AppendUint64(nil, r.block))
			r.block++
			r.buf = h.Sum(nil)
		}
		n := copy(out, r.buf)
		r.buf = r.buf[n:]
		out = out[n:]
	}
	r.reads = append(r.reads, slices.Clone(p))
	return len(p), nil
}

// hexBytes marshals as a lowercase hex string.
type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }
func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// The vector file's structure. Field names are the JSON keys SPEC.md refers to.
type (
	vectorFile struct {
		About       string            `json:"about"`
		RNG         string            `json:"rng"`
		CreatedAt   string            `json:"created_at"`
		Relay       vectorRelay       `json:"relay"`
		Alice       vectorParty       `json:"alice"`
		Bob         vectorParty       `json:"bob"`
		Bundle      hexBytes          `json:"bundle"`
		Handshake   vectorHandshake   `json:"handshake"`
		HandshakeLR vectorHandshake   `json:"handshake_without_one_time_prekey"`
		KDF         vectorKDF         `json:"kdf"`
		Transcript  vectorTranscript  `json:"transcript"`
		Rejections  []vectorRejection `json:"rejections"`
	}
	// vectorKDF is one step of each KDF of SPEC §11.1, on Alice's first sending chain:
	// KDF_RK(SK, X25519(her first ratchet key, SPK_B)), KDF_CK of the chain key it
	// gives, and the message-key expansion of A1's message key.
	vectorKDF struct {
		RK        hexBytes `json:"rk"`
		DH        hexBytes `json:"dh"`
		RKNext    hexBytes `json:"rk_next"`
		CK        hexBytes `json:"ck"`
		MK        hexBytes `json:"mk"`
		CKNext    hexBytes `json:"ck_next"`
		AEADKey   hexBytes `json:"aead_key"`
		AEADNonce hexBytes `json:"aead_nonce"`
	}
	// vectorRejection is an input that must be refused with the named error. "decrypt"
	// cases are tried on the named side's session at the transcript's "reject" point
	// (after A11 is sent, before it is delivered) and must leave that session unchanged;
	// "card" cases are ImportCard + VerifyWithRelay; "bundle" cases are ParseBundle +
	// Verify against the named card.
	vectorRejection struct {
		Name  string   `json:"name"`
		Check string   `json:"check"`
		Side  string   `json:"side"`
		Input hexBytes `json:"input"`
		Error string   `json:"error"`
	}
	vectorRelay struct {
		Seed      string   `json:"rng_seed"`
		Ed25519   hexBytes `json:"ed25519_seed"`
		PublicKey hexBytes `json:"public_key"`
		// Fingerprint is SPEC §7's fingerprint of PublicKey.
		Fingerprint string `json:"fingerprint"`
	}
	vectorParty struct {
		Seed            string         `json:"rng_seed"`
		IdentityKey     hexBytes       `json:"identity_key"`
		SigningPublic   hexBytes       `json:"signing_public_key"`
		AgreementPublic hexBytes       `json:"agreement_public_key"`
		Fingerprint     string         `json:"fingerprint"` // SPEC §7, of the signing key
		Card            vectorCard     `json:"card"`
		PreKeys         []vectorPreKey `json:"prekeys,omitempty"`
	}
	vectorCard struct {
		Identity       string            `json:"identity"`
		IdentityType   string            `json:"identity_type"`
		Device         string            `json:"device"`
		CreatedAt      int64             `json:"created_at"`
		Data           map[string]string `json:"data,omitempty"`
		Snapshot       hexBytes          `json:"snapshot"`
		ID             string            `json:"id"`
		SelfSignature  hexBytes          `json:"self_signature"`
		RelaySignature hexBytes          `json:"relay_signature"`
		Binary         hexBytes          `json:"binary"`
		Export         string            `json:"export"`
	}
	vectorPreKey struct {
		Kind        PreKeyKind `json:"kind"`
		ID          uint32     `json:"id"`
		CreatedAt   int64      `json:"created_at"`
		Secret      hexBytes   `json:"secret"`
		PublicKey   hexBytes   `json:"public_key"`
		SignedBytes hexBytes   `json:"signed_message,omitempty"`
		Signature   hexBytes   `json:"signature,omitempty"`
		Public      hexBytes   `json:"public_binary"`
		Private     hexBytes   `json:"private_binary"`
	}
	vectorHandshake struct {
		Seed             string     `json:"initiator_rng_seed"`
		Bundle           hexBytes   `json:"bundle"`
		RandomReads      []hexBytes `json:"initiator_random_reads"`
		EphemeralPrivate hexBytes   `json:"ephemeral_private"`
		EphemeralPublic  hexBytes   `json:"ephemeral_public"`
		KEMRandomness    hexBytes   `json:"kem_randomness"`
		KEMCiphertext    hexBytes   `json:"kem_ciphertext"`
		DH1              hexBytes   `json:"dh1"`
		DH2              hexBytes   `json:"dh2"`
		DH3              hexBytes   `json:"dh3"`
		DH4              hexBytes   `json:"dh4,omitempty"`
		KEMSharedSecret  hexBytes   `json:"kem_shared_secret"`
		SK               hexBytes   `json:"sk"`
		AD               hexBytes   `json:"ad"`
		SessionID        string     `json:"session_id"`
		InitialHeader    hexBytes   `json:"initial_header"`
		FirstPlaintext   hexBytes   `json:"first_plaintext"`
		FirstMessage     hexBytes   `json:"first_message"`
	}
	vectorTranscript struct {
		AliceSeed        string          `json:"alice_rng_seed"`
		BobSeed          string          `json:"bob_rng_seed"`
		Messages         []vectorMessage `json:"messages"`
		Events           []vectorEvent   `json:"events"`
		AliceRandomReads []hexBytes      `json:"alice_random_reads"`
		BobRandomReads   []hexBytes      `json:"bob_random_reads"`
	}
	vectorMessage struct {
		Label     string   `json:"label"`
		From      string   `json:"from"`
		Padding   int      `json:"padding"`
		Plaintext hexBytes `json:"plaintext"`
		Type      uint8    `json:"type"`
		DH        hexBytes `json:"dh"`
		PN        uint32   `json:"pn"`
		N         uint32   `json:"n"`
		Wire      hexBytes `json:"wire"`
	}
	vectorEvent struct {
		Op    string `json:"op"` // "send" or "deliver"
		Label string `json:"label"`
		// StateSHA256 is SHA-256 of the acting side's Session.MarshalBinary after the event.
		StateSHA256 hexBytes `json:"state_sha256"`
	}
)

// vectorTime is the creation time of every card and prekey in the vectors.
var vectorTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// vectorWorld is the generated material, kept as live objects for the checks.
type vectorWorld struct {
	file                   vectorFile
	relayPub               ed25519.PublicKey
	aliceKey, bobKey       *IdentityKey
	aliceCard, bobCard     *Card
	spk, opk, kemOT, kemLR *PrivatePreKey
}

// The transcript script: "A3" is Alice's third message, "B2" Bob's second. "send X"
// encrypts it; "deliver X" decrypts it on the other side (AcceptSession for the first
// message Bob receives). Delivery is out of order in both directions, across DH ratchet
// steps, includes repeats of the initiator's initial messages, and one empty message.
var vectorScript = []string{
	"send A1", "send A2", "send A3",
	"deliver A2", // Bob starts the session from Alice's second initial message
	"deliver A1", "deliver A3",
	"send B1", "send B2", "send B3",
	"send A4", // still an initial message: Alice has not seen a reply
	"deliver B3", "deliver B1",
	"send A5", "send A6",
	"deliver A6", // Bob's DH step: PN = 4 sets A4 aside from the old chain, N = 1 sets A5 aside
	"send B4",
	"deliver B4", // Alice's DH step; B2 stays stored from the older chain
	"deliver B2", // a key of an older chain, after the DH step
	"deliver A5", // a skipped key of the current chain
	"deliver A4", // an initial message, by the key PN set aside, after the DH step
	"send A7", "send A8", "send A9",
	"deliver A9", "deliver A7", "deliver A8",
	"padding B 64",
	"send B5", "send B6",
	"deliver B6", "deliver B5",
	"send A10", "deliver A10",
	"send B7", "send B8", "send B9", "send B10",
	"deliver B7", "deliver B10", "deliver B9", "deliver B8",
	"send A11", // the probe: the rejection vectors are variations of it
	"reject",
	"deliver A11",
}

func vectorPlaintext(label string) []byte {
	if label == "A8" {
		return []byte{} // an empty message
	}
	return []byte(fmt.Sprintf("message %s of the pfschat test vectors", label))
}

func generateVectors(t *testing.T) *vectorWorld {
	t.Helper()
	w := &vectorWorld{}
	f := &w.file
	f.About = "pfschat ratchet test vectors; see ratchet/SPEC.md, section Test vectors. All byte strings are hex."
	f.RNG = "stream(seed) = block(0) ‖ block(1) ‖ …, block(i) = SHA-256(\"" + vectorRNGLabel + "\" ‖ 0x00 ‖ seed ‖ u64be(i)); seed = the UTF-8 bytes of the rng_seed string"
	f.CreatedAt = vectorTime.Format(time.RFC3339)

	// Relay.
	rr := newVectorRNG("relay")
	relaySeed := make([]byte, ed25519.SeedSize)
	rr.Read(relaySeed)
	relayPriv := ed25519.NewKeyFromSeed(relaySeed)
	w.relayPub = relayPriv.Public().(ed25519.PublicKey)
	f.Relay = vectorRelay{Seed: "relay", Ed25519: relaySeed, PublicKey: hexBytes(w.relayPub), Fingerprint: Fingerprint(w.relayPub)}

	// Parties.
	party := func(seed, name, device string, data map[string]string) (*IdentityKey, *Card, *vectorRNG, vectorParty) {
		r := newVectorRNG(seed)
		k, err := GenerateIdentityKey(r)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCard(k, name, "username", device, vectorTime, data)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SignAsRelay(relayPriv); err != nil {
			t.Fatal(err)
		}
		kb, _ := k.MarshalBinary()
		cb, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return k, c, r, vectorParty{
			Seed: seed, IdentityKey: kb,
			SigningPublic: hexBytes(k.SigningPublicKey()), AgreementPublic: k.AgreementPublicKey(),
			Fingerprint: Fingerprint(k.SigningPublicKey()),
			Card: vectorCard{
				Identity: c.Identity, IdentityType: c.IdentityType, Device: c.Device,
				CreatedAt: c.CreatedAt.Unix(), Data: c.Data,
				Snapshot: c.Snapshot(), ID: c.ID(),
				SelfSignature: c.SelfSignature, RelaySignature: c.RelaySignature,
				Binary: cb, Export: c.Export(),
			},
		}
	}
	var bobRNG *vectorRNG
	w.aliceKey, w.aliceCard, _, f.Alice = party("alice", "alice", "laptop", nil)
	w.bobKey, w.bobCard, bobRNG, f.Bob = party("bob", "bob", "phone", map[string]string{"lang": "en", "app": "pfschat"})

	gen := func(kind PreKeyKind, id uint32) *PrivatePreKey {
		before := len(bobRNG.reads)
		p, err := GeneratePreKey(bobRNG, w.bobKey, kind, id, vectorTime)
		if err != nil {
			t.Fatal(err)
		}
		pub := p.Public()
		pb, err := pub.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		priv, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		vp := vectorPreKey{Kind: kind, ID: id, CreatedAt: pub.CreatedAt.Unix(),
			Secret: slices.Concat(bobRNG.reads[before:]...), PublicKey: pub.Key,
			Signature: pub.Signature, Public: pb, Private: priv}
		if kind != OneTimePreKey {
			// SPEC §8.2: u8 kind ‖ u32 id ‖ i64 created at ‖ public key.
			vp.SignedBytes = slices.Concat([]byte{byte(kind)}, binary.BigEndian.AppendUint32(nil, id),
				binary.BigEndian.AppendUint64(nil, uint64(pub.CreatedAt.Unix())), pub.Key)
		}
		f.Bob.PreKeys = append(f.Bob.PreKeys, vp)
		return p
	}
	w.spk = gen(SignedPreKey, 11)
	w.opk = gen(OneTimePreKey, 21)
	w.kemOT = gen(KEMOneTime, 31)
	w.kemLR = gen(KEMLastResort, 41)

	opkPub := w.opk.Public()
	bundle := &Bundle{Card: w.bobCard, SignedPreKey: w.spk.Public(), OneTimePreKey: &opkPub, KEMPreKey: w.kemOT.Public()}
	var err error
	if f.Bundle, err = bundle.MarshalBinary(); err != nil {
		t.Fatal(err)
	}

	// The handshake without a one-time prekey, against the last-resort KEM key.
	lrBundle := &Bundle{Card: w.bobCard, SignedPreKey: w.spk.Public(), KEMPreKey: w.kemLR.Public()}
	f.HandshakeLR = w.handshake(t, "alice-session-lr", lrBundle)

	// The main handshake and the transcript.
	aliceRNG := newVectorRNG("alice-session")
	bobSessRNG := newVectorRNG("bob-session")
	sessions := map[byte]*Session{}
	f.Handshake = w.handshake(t, "alice-session", bundle)
	f.Handshake.FirstPlaintext, f.Handshake.FirstMessage = nil, nil // the transcript holds A1

	alice, err := StartSession(aliceRNG, w.aliceKey, w.aliceCard, w.bobCard, w.relayPub, bundle)
	if err != nil {
		t.Fatal(err)
	}
	sessions['A'] = alice
	wires := map[string][]byte{}
	tr := &f.Transcript
	tr.AliceSeed, tr.BobSeed = "alice-session", "bob-session"
	for _, line := range vectorScript {
		var op, label string
		var block int
		if n, _ := fmt.Sscanf(line, "padding %s %d", &label, &block); n == 2 {
			if err := sessions[label[0]].SetPadding(block); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if line == "reject" {
			f.Rejections = w.rejections(t, sessions['A'], sessions['B'], wires)
			continue
		}
		fmt.Sscanf(line, "%s %s", &op, &label)
		sender := label[0]
		receiver := byte('B')
		if sender == 'B' {
			receiver = 'A'
		}
		var actor *Session
		switch op {
		case "send":
			actor = sessions[sender]
			pt := vectorPlaintext(label)
			wire, err := actor.Encrypt(pt)
			if err != nil {
				t.Fatalf("send %s: %v", label, err)
			}
			env, err := DecodeEnvelope(wire)
			if err != nil {
				t.Fatalf("send %s: decode: %v", label, err)
			}
			wires[label] = wire
			if env.Type == MessageInitial && !bytes.Equal(wire[2:2+len(f.Handshake.InitialHeader)], f.Handshake.InitialHeader) {
				t.Fatalf("send %s: initial header differs from the recorded handshake", label)
			}
			from := "alice"
			if sender == 'B' {
				from = "bob"
			}
			tr.Messages = append(tr.Messages, vectorMessage{Label: label, From: from,
				Padding: actor.Padding(), Plaintext: pt, Type: uint8(env.Type),
				DH: env.Header.DH, PN: env.Header.PN, N: env.Header.N, Wire: wire})
		case "deliver":
			wire := wires[label]
			var pt []byte
			if sessions[receiver] == nil {
				env, err := DecodeEnvelope(wire)
				if err != nil {
					t.Fatal(err)
				}
				keys := ResponderKeys{SignedPreKey: w.spk, OneTimePreKey: w.opk, KEMPreKey: w.kemOT}
				s, p, err := AcceptSession(w.bobKey, w.bobCard, w.aliceCard, keys, env)
				if err != nil {
					t.Fatalf("deliver %s: accept: %v", label, err)
				}
				s.SetRand(bobSessRNG)
				sessions[receiver], pt = s, p
			} else if pt, err = sessions[receiver].Decrypt(wire); err != nil {
				t.Fatalf("deliver %s: %v", label, err)
			}
			if !bytes.Equal(pt, vectorPlaintext(label)) {
				t.Fatalf("deliver %s: got %q", label, pt)
			}
			actor = sessions[receiver]
		default:
			t.Fatalf("bad script line %q", line)
		}
		st, err := actor.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(st)
		tr.Events = append(tr.Events, vectorEvent{Op: op, Label: label, StateSHA256: sum[:]})
	}
	tr.AliceRandomReads = aliceRNG.reads
	tr.BobRandomReads = bobSessRNG.reads
	f.KDF = vectorKDFStep(t, f.Handshake.SK, tr.AliceRandomReads[2], w.spk.Public().Key)
	return w
}

// vectorKDFStep runs the package's KDFs (kdf.go) once each from root key rk and the
// DH of ratchet private key dhs with peer public key dhr.
func vectorKDFStep(t *testing.T, rk, dhs, dhr []byte) vectorKDF {
	t.Helper()
	priv, err := ecdh.X25519().NewPrivateKey(dhs)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdh.X25519().NewPublicKey(dhr)
	if err != nil {
		t.Fatal(err)
	}
	dh, err := priv.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	k := newKDF()
	rkNext, ck := k.kdfRK((*[32]byte)(rk), (*[32]byte)(dh))
	mk, ckNext := k.kdfCK(&ck)
	key, nonce := k.messageKeys(&mk)
	return vectorKDF{RK: rk, DH: dh, RKNext: rkNext[:], CK: ck[:], MK: mk[:], CKNext: ckNext[:],
		AEADKey: key[:], AEADNonce: nonce[:]}
}

// handshake runs StartSession on bundle with a fresh recording source named seed and
// records every intermediate value, recomputed from the recorded random inputs with the
// standard library, and checks that the responder agrees.
func (w *vectorWorld) handshake(t *testing.T, seed string, bundle *Bundle) vectorHandshake {
	t.Helper()
	r := newVectorRNG(seed)
	s, err := StartSession(r, w.aliceKey, w.aliceCard, w.bobCard, w.relayPub, bundle)
	if err != nil {
		t.Fatal(err)
	}
	first := []byte("first message, " + seed)
	wire, err := s.Encrypt(first)
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(wire)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.reads) < 3 {
		t.Fatalf("StartSession+Encrypt read %d times from the source, want ≥ 3 (EK, KEM m, ratchet key)", len(r.reads))
	}
	bb, err := bundle.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v := vectorHandshake{Seed: seed, Bundle: bb, RandomReads: r.reads,
		EphemeralPrivate: r.reads[0], EphemeralPublic: env.Initial.EphemeralKey,
		KEMRandomness: r.reads[1], KEMCiphertext: env.Initial.KEMCiphertext,
		SessionID: s.ID(), FirstPlaintext: first, FirstMessage: wire}
	v.InitialHeader = wire[2 : len(wire)-(40+4+len(env.Ciphertext))] // SPEC §12.1: ratchet header 40, length 4

	// Recompute from the spec with the standard library only.
	ek, err := ecdh.X25519().NewPrivateKey(v.EphemeralPrivate)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ek.PublicKey().Bytes(), v.EphemeralPublic) {
		t.Fatal("the ephemeral key is not the first 32 random bytes")
	}
	x := func(priv, pub []byte) hexBytes {
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
	aliceKeyBytes, _ := w.aliceKey.MarshalBinary()
	aliceIK := aliceKeyBytes[1+32:] // SPEC §5: u8 1 ‖ Ed25519 seed ‖ X25519 private key
	v.DH1 = x(aliceIK, bundle.SignedPreKey.Key)
	v.DH2 = x(v.EphemeralPrivate, w.bobCard.AgreementKey)
	v.DH3 = x(v.EphemeralPrivate, bundle.SignedPreKey.Key)
	ikm := slices.Concat(bytes.Repeat([]byte{0xFF}, 32), v.DH1, v.DH2, v.DH3)
	if bundle.OneTimePreKey != nil {
		v.DH4 = x(v.EphemeralPrivate, bundle.OneTimePreKey.Key)
		ikm = append(ikm, v.DH4...)
	}
	kemKey := w.kemOT
	if bundle.KEMPreKey.Kind == KEMLastResort {
		kemKey = w.kemLR
	}
	kemPriv, _ := kemKey.MarshalBinary()
	dk, err := mlkem.NewDecapsulationKey768(kemPriv[len(kemPriv)-mlkem.SeedSize:]) // SPEC §8.3: … ‖ bytes8 secret
	if err != nil {
		t.Fatal(err)
	}
	if v.KEMSharedSecret, err = dk.Decapsulate(v.KEMCiphertext); err != nil {
		t.Fatal(err)
	}
	ikm = append(ikm, v.KEMSharedSecret...)
	if v.SK, err = hkdf.Key(sha256.New, ikm, make([]byte, 32), LabelPQXDH, 32); err != nil {
		t.Fatal(err)
	}
	ini, _ := hex.DecodeString(w.aliceCard.ID())
	resp, _ := hex.DecodeString(w.bobCard.ID())
	v.AD = slices.Concat(ini, resp)
	sid := sha256.Sum256(slices.Concat([]byte(LabelSessionID), []byte{0}, ini, resp, v.EphemeralPublic))
	if hex.EncodeToString(sid[:]) != v.SessionID || env.Initial.SessionID() != v.SessionID {
		t.Fatalf("session ID: spec gives %x, session %s, header %s", sid, v.SessionID, env.Initial.SessionID())
	}

	// The responder must agree, from the initial message alone.
	keys := ResponderKeys{SignedPreKey: w.spk, KEMPreKey: kemKey}
	if bundle.OneTimePreKey != nil {
		keys.OneTimePreKey = w.opk
	}
	bob, pt, err := AcceptSession(w.bobKey, w.bobCard, w.aliceCard, keys, env)
	if err != nil {
		t.Fatalf("responder: %v", err)
	}
	if !bytes.Equal(pt, first) || bob.ID() != v.SessionID {
		t.Fatalf("responder disagrees: plaintext %q, session %s", pt, bob.ID())
	}
	return v
}

// vectorErrors are the sentinels a rejection can name.
var vectorErrors = []struct {
	name string
	err  error
}{
	{"ErrMalformed", ErrMalformed}, {"ErrTrailingBytes", ErrTrailingBytes},
	{"ErrOversize", ErrOversize}, {"ErrUnknownVersion", ErrUnknownVersion},
	{"ErrBadSignature", ErrBadSignature}, {"ErrCardIDMismatch", ErrCardIDMismatch},
	{"ErrInvalidName", ErrInvalidName}, {"ErrWrongCard", ErrWrongCard},
	{"ErrMissingPreKey", ErrMissingPreKey}, {"ErrDecrypt", ErrDecrypt},
	{"ErrReplay", ErrReplay}, {"ErrTooManySkipped", ErrTooManySkipped},
	{"ErrPlaintextTooLarge", ErrPlaintextTooLarge}, {"ErrNotInitial", ErrNotInitial},
	{"ErrWrongSession", ErrWrongSession}, {"ErrNoSendingChain", ErrNoSendingChain},
}

func vectorErrorName(err error) string {
	if err == nil {
		return "accepted"
	}
	for _, e := range vectorErrors {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "unclassified: " + err.Error()
}

// rejections builds the negative vectors from the transcript's state at the "reject"
// point, checking each against the live sessions.
func (w *vectorWorld) rejections(t *testing.T, alice, bob *Session, wires map[string][]byte) []vectorRejection {
	t.Helper()
	probe := wires["A11"]
	if probe == nil {
		t.Fatal("rejections need A11 sent first")
	}
	mod := func(f func(b []byte) []byte) []byte { return f(slices.Clone(probe)) }
	const hdr = 2 // normal message: version, type, then DH at 2, PN at 34, N at 38, length at 42
	var out []vectorRejection
	dec := func(name, side string, input []byte, want string) {
		s := bob
		if side == "alice" {
			s = alice
		}
		before, _ := s.MarshalBinary()
		_, err := s.Decrypt(input)
		after, _ := s.MarshalBinary()
		if got := vectorErrorName(err); got != want {
			t.Fatalf("rejection %q: got %s, want %s", name, got, want)
		}
		if !bytes.Equal(before, after) {
			t.Fatalf("rejection %q changed the session", name)
		}
		out = append(out, vectorRejection{Name: name, Check: "decrypt", Side: side, Input: input, Error: want})
	}
	dec("replayed message of the current chain (A10)", "bob", wires["A10"], "ErrReplay")
	dec("replayed message of an older chain after Bob sent again (A9)", "bob", wires["A9"], "ErrReplay") // recognised: its ratchet key is in the previous-chains list
	dec("probe with the last ciphertext byte flipped", "bob", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "ErrDecrypt")
	dec("probe with the first byte of the ratchet key flipped", "bob", mod(func(b []byte) []byte { b[hdr] ^= 1; return b }), "ErrDecrypt")
	dec("probe with PN changed", "bob", mod(func(b []byte) []byte { b[hdr+35] ^= 1; return b }), "ErrDecrypt")
	dec("probe with N changed", "bob", mod(func(b []byte) []byte { b[hdr+39] ^= 1; return b }), "ErrDecrypt")
	dec("probe with N = MaxSkip+1", "bob", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[hdr+36:], MaxSkip+1); return b }), "ErrTooManySkipped")
	dec("probe truncated by one byte", "bob", probe[:len(probe)-1], "ErrMalformed")
	dec("probe with a trailing byte", "bob", append(slices.Clone(probe), 0), "ErrTrailingBytes")
	dec("probe with version 2", "bob", mod(func(b []byte) []byte { b[0] = 2; return b }), "ErrUnknownVersion")
	dec("probe with type 3", "bob", mod(func(b []byte) []byte { b[1] = 3; return b }), "ErrMalformed")
	dec("probe with a ciphertext length of 16", "bob", mod(func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[hdr+40:], 16)
		return b[:hdr+44+16]
	}), "ErrMalformed")
	dec("initial message A1 sent to the initiator", "alice", wires["A1"], "ErrWrongSession")
	dec("probe sent back to its sender", "alice", probe, "ErrDecrypt")

	check := func(name, kind, side string, input []byte, err error, want string) {
		if got := vectorErrorName(err); got != want {
			t.Fatalf("rejection %q: got %s, want %s", name, got, want)
		}
		out = append(out, vectorRejection{Name: name, Check: kind, Side: side, Input: input, Error: want})
	}
	cardCase := func(name string, export string, want string) {
		c, err := ImportCard(export)
		if err == nil {
			err = c.VerifyWithRelay(w.relayPub)
		}
		check(name, "card", "", []byte(export), err, want)
	}
	bobBin, _ := w.bobCard.MarshalBinary()
	flip := func(b []byte, i int) []byte { b = slices.Clone(b); b[i] ^= 1; return b }
	exp := func(b []byte) string { return CardExportPrefix + base64.RawURLEncoding.EncodeToString(b) }
	// Card binary: u8 ‖ u16 len ‖ snapshot ‖ u8 64 ‖ self ‖ u8 64 ‖ relay.
	snapLen := len(w.bobCard.Snapshot())
	cardCase("card with a flipped self-signature byte", exp(flip(bobBin, 3+snapLen+1)), "ErrBadSignature")
	cardCase("card with a flipped relay-signature byte", exp(flip(bobBin, len(bobBin)-1)), "ErrBadSignature")
	cardCase("card with a changed device label (signatures no longer match)", exp(flip(bobBin, 3+1+1+3+1+8+1)), "ErrBadSignature")
	cardCase("card without a relay signature", exp(append(slices.Clone(bobBin[:len(bobBin)-65]), 0)), "ErrBadSignature")
	cardCase("card export with prefix pfscard2:", "pfscard2:"+strings.TrimPrefix(w.bobCard.Export(), CardExportPrefix), "ErrUnknownVersion")
	cardCase("card with a trailing byte", exp(append(slices.Clone(bobBin), 0)), "ErrTrailingBytes")
	cardCase("card with an upper-case name", exp(func() []byte {
		b := slices.Clone(bobBin)
		b[3+2] = 'B' // snapshot: u8 version, u8 len, "bob"
		return b
	}()), "ErrInvalidName")

	bundleCase := func(name, expected string, input []byte, want string) {
		b, err := ParseBundle(input)
		if err == nil {
			card := w.bobCard
			if expected == "alice" {
				card = w.aliceCard
			}
			err = b.Verify(card, w.relayPub)
		}
		check(name, "bundle", expected, input, err, want)
	}
	opk := w.opk.Public()
	good, _ := (&Bundle{Card: w.bobCard, SignedPreKey: w.spk.Public(), OneTimePreKey: &opk, KEMPreKey: w.kemOT.Public()}).MarshalBinary()
	bundleCase("bundle checked against another card", "alice", good, "ErrWrongCard")
	spkBad := w.spk.Public()
	spkBad.Signature = flip(spkBad.Signature, 0)
	b1, _ := (&Bundle{Card: w.bobCard, SignedPreKey: spkBad, OneTimePreKey: &opk, KEMPreKey: w.kemOT.Public()}).MarshalBinary()
	bundleCase("bundle with a flipped signed-prekey signature byte", "bob", b1, "ErrBadSignature")
	kemBad := w.kemOT.Public()
	kemBad.Signature = flip(kemBad.Signature, 63)
	b2, _ := (&Bundle{Card: w.bobCard, SignedPreKey: w.spk.Public(), OneTimePreKey: &opk, KEMPreKey: kemBad}).MarshalBinary()
	bundleCase("bundle with a flipped KEM-prekey signature byte", "bob", b2, "ErrBadSignature")
	b3, _ := (&Bundle{Card: w.bobCard, SignedPreKey: w.spk.Public(), OneTimePreKey: &opk, KEMPreKey: w.kemLR.Public()}).MarshalBinary()
	b3 = flip(b3, len(b3)-100) // inside the last-resort KEM key: its signature no longer holds
	bundleCase("bundle with a changed KEM key byte", "bob", b3, "ErrBadSignature")
	spkInKEM, _ := (&Bundle{Card: w.bobCard, SignedPreKey: w.spk.Public(), OneTimePreKey: &opk, KEMPreKey: w.spk.Public()}).MarshalBinary()
	bundleCase("bundle with the signed prekey in the KEM slot", "bob", spkInKEM, "ErrMissingPreKey")
	bundleCase("bundle with a trailing byte", "bob", append(slices.Clone(good), 0), "ErrTrailingBytes")
	return out
}

// checkRejections replays the file's rejection vectors against live sessions.
func checkRejections(t *testing.T, rs []vectorRejection, alice, bob *Session, relayPub ed25519.PublicKey, aliceCard, bobCard *Card) {
	t.Helper()
	if len(rs) == 0 {
		t.Fatal("the file has no rejection vectors")
	}
	for _, r := range rs {
		var err error
		switch r.Check {
		case "decrypt":
			s := bob
			if r.Side == "alice" {
				s = alice
			}
			before, _ := s.MarshalBinary()
			_, err = s.Decrypt(r.Input)
			if after, _ := s.MarshalBinary(); !bytes.Equal(before, after) {
				t.Fatalf("rejection %q changed the session", r.Name)
			}
		case "card":
			var c *Card
			if c, err = ImportCard(string(r.Input)); err == nil {
				err = c.VerifyWithRelay(relayPub)
			}
		case "bundle":
			var b *Bundle
			if b, err = ParseBundle(r.Input); err == nil {
				card := bobCard
				if r.Side == "alice" {
					card = aliceCard
				}
				err = b.Verify(card, relayPub)
			}
		default:
			t.Fatalf("rejection %q: unknown check %q", r.Name, r.Check)
		}
		if got := vectorErrorName(err); got != r.Error {
			t.Errorf("rejection %q: got %s, want %s", r.Name, got, r.Error)
		}
	}
}

func marshalVectors(t *testing.T, f *vectorFile) []byte {
	t.Helper()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestVectors(t *testing.T) {
	derandomizeEncapsulation(t)
	w := generateVectors(t)
	got := marshalVectors(t, &w.file)
	if *updateVectors {
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", vectorsPath, len(got))
		return
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./ratchet -run TestVectors -update)", err)
	}
	var wantFile vectorFile
	if err := json.Unmarshal(want, &wantFile); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	t.Run("replay", func(t *testing.T) { replayVectors(t, &wantFile) })
	if !bytes.Equal(got, want) {
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal(want, &b)
		t.Fatalf("the code no longer produces %s: first difference at %s\n"+
			"If the protocol changed on purpose, bump the format version, update SPEC.md and run\n"+
			"\tgo test ./ratchet -run TestVectors -update", vectorsPath, firstDifference("$", a, b))
	}
}

// firstDifference names the first JSON path where got and want differ.
func firstDifference(path string, got, want any) string {
	switch g := got.(type) {
	case map[string]any:
		w, ok := want.(map[string]any)
		if !ok {
			return path + " (type)"
		}
		keys := make([]string, 0, len(g)+len(w))
		for k := range g {
			keys = append(keys, k)
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !reflect.DeepEqual(g[k], w[k]) {
				return firstDifference(path+"."+k, g[k], w[k])
			}
		}
	case []any:
		w, ok := want.([]any)
		if !ok {
			return path + " (type)"
		}
		for i := 0; i < len(g) && i < len(w); i++ {
			if !reflect.DeepEqual(g[i], w[i]) {
				return firstDifference(fmt.Sprintf("%s[%d]", path, i), g[i], w[i])
			}
		}
		if len(g) != len(w) {
			return fmt.Sprintf("%s (length %d, want %d)", path, len(g), len(w))
		}
	default:
		return fmt.Sprintf("%s (got %s, want %s)", path, abbreviate(got), abbreviate(want))
	}
	return path
}

func abbreviate(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 72 {
		return s[:32] + "…" + s[len(s)-32:] + fmt.Sprintf(" (%d chars)", len(s))
	}
	return s
}

// replayVectors rebuilds the parties from the keys in the file (not from the seeds) and
// decrypts every recorded message in the recorded order: what an interoperating
// implementation would do with the file.
func replayVectors(t *testing.T, f *vectorFile) {
	relayPub := ed25519.PublicKey(f.Relay.PublicKey)
	card := func(who string, v vectorCard) *Card {
		c, err := ImportCard(v.Export)
		if err != nil {
			t.Fatalf("%s card export: %v", who, err)
		}
		if err := c.VerifyWithRelay(relayPub); err != nil {
			t.Fatalf("%s card: %v", who, err)
		}
		if c.ID() != v.ID || !bytes.Equal(c.Snapshot(), v.Snapshot) {
			t.Fatalf("%s card: ID or snapshot differs from the file", who)
		}
		b, err := ParseCard(v.Binary)
		if err != nil || b.ID() != v.ID {
			t.Fatalf("%s card binary: %v", who, err)
		}
		return c
	}
	aliceCard, bobCard := card("alice", f.Alice.Card), card("bob", f.Bob.Card)
	bobKey, err := ParseIdentityKey(f.Bob.IdentityKey)
	if err != nil {
		t.Fatal(err)
	}
	pre := map[PreKeyKind]*PrivatePreKey{}
	for _, v := range f.Bob.PreKeys {
		p, err := ParsePrivatePreKey(v.Private)
		if err != nil {
			t.Fatalf("prekey %d/%d: %v", v.Kind, v.ID, err)
		}
		if err := p.Public().Verify(bobCard); err != nil {
			t.Fatalf("prekey %d/%d: %v", v.Kind, v.ID, err)
		}
		pre[v.Kind] = p
	}
	b, err := ParseBundle(f.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(bobCard, relayPub); err != nil {
		t.Fatal(err)
	}

	// Both handshakes' first messages.
	for _, h := range []vectorHandshake{f.HandshakeLR} {
		env, err := DecodeEnvelope(h.FirstMessage)
		if err != nil {
			t.Fatal(err)
		}
		keys := ResponderKeys{SignedPreKey: pre[SignedPreKey], KEMPreKey: pre[env.Initial.KEMPreKeyKind]}
		if env.Initial.OneTimePreKeyID != 0 {
			keys.OneTimePreKey = pre[OneTimePreKey]
		}
		s, pt, err := AcceptSession(bobKey, bobCard, aliceCard, keys, env)
		if err != nil {
			t.Fatalf("%s: accept: %v", h.Seed, err)
		}
		if !bytes.Equal(pt, h.FirstPlaintext) || s.ID() != h.SessionID {
			t.Fatalf("%s: plaintext or session ID differs", h.Seed)
		}
	}

	// The transcript, both sides, from the file's keys and recorded random inputs:
	// every send must reproduce the recorded wire bytes, every delivery (of the
	// recorded bytes) the plaintext, every event the recorded state hash.
	aliceKey, err := ParseIdentityKey(f.Alice.IdentityKey)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := StartSession(&replayRNG{reads: f.Transcript.AliceRandomReads}, aliceKey, aliceCard, bobCard, relayPub, b)
	if err != nil {
		t.Fatal(err)
	}
	bobRNG := &replayRNG{reads: f.Transcript.BobRandomReads}
	sessions := map[string]*Session{"alice": alice}
	msgs := map[string]vectorMessage{}
	for _, m := range f.Transcript.Messages {
		msgs[m.Label] = m
	}
	for i, ev := range f.Transcript.Events {
		m, ok := msgs[ev.Label]
		if !ok {
			t.Fatalf("event %d names unknown message %q", i, ev.Label)
		}
		var actor *Session
		switch ev.Op {
		case "send":
			actor = sessions[m.From]
			if err := actor.SetPadding(m.Padding); err != nil {
				t.Fatal(err)
			}
			wire, err := actor.Encrypt(m.Plaintext)
			if err != nil {
				t.Fatalf("send %s: %v", m.Label, err)
			}
			if !bytes.Equal(wire, m.Wire) {
				t.Fatalf("send %s: wire bytes differ from the file", m.Label)
			}
		case "deliver":
			to := "bob"
			if m.From == "bob" {
				to = "alice"
			}
			var pt []byte
			if sessions[to] == nil {
				env, err := DecodeEnvelope(m.Wire)
				if err != nil {
					t.Fatalf("deliver %s: %v", m.Label, err)
				}
				keys := ResponderKeys{SignedPreKey: pre[SignedPreKey], OneTimePreKey: pre[OneTimePreKey], KEMPreKey: pre[env.Initial.KEMPreKeyKind]}
				s, p, err := AcceptSession(bobKey, bobCard, aliceCard, keys, env)
				if err != nil {
					t.Fatalf("deliver %s: accept: %v", m.Label, err)
				}
				s.SetRand(bobRNG)
				sessions[to], pt = s, p
			} else if pt, err = sessions[to].Decrypt(m.Wire); err != nil {
				t.Fatalf("deliver %s: %v", m.Label, err)
			}
			if !bytes.Equal(pt, m.Plaintext) {
				t.Fatalf("deliver %s: plaintext differs", m.Label)
			}
			actor = sessions[to]
		default:
			t.Fatalf("event %d: unknown op %q", i, ev.Op)
		}
		st, err := actor.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(st); !bytes.Equal(sum[:], ev.StateSHA256) {
			t.Fatalf("event %d (%s %s): session state differs from the file", i, ev.Op, ev.Label)
		}
		if ev.Op == "send" && ev.Label == "A11" {
			checkRejections(t, f.Rejections, sessions["alice"], sessions["bob"], relayPub, aliceCard, bobCard)
		}
	}
}

// replayRNG returns recorded reads in order.
type replayRNG struct{ reads []hexBytes }

func (r *replayRNG) Read(p []byte) (int, error) {
	if len(r.reads) == 0 || len(r.reads[0]) != len(p) {
		return 0, fmt.Errorf("replay: unexpected read of %d bytes", len(p))
	}
	copy(p, r.reads[0])
	r.reads = r.reads[1:]
	return len(p), nil
}
