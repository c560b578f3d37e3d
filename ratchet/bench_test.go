package ratchet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkPrimAESGCM is here to show why the AEAD is ChaCha20-Poly1305: with a
// fresh key per message, AES-GCM's key setup dominates.
func BenchmarkPrimAESGCM(b *testing.B) {
	for _, n := range benchSizes {
		key, nonce := make32(6), make([]byte, 12)
		pt := make([]byte, n)
		ad := make([]byte, 64+50)
		b.Run(fmt.Sprintf("seal/%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			out := make([]byte, 0, n+16)
			for b.Loop() {
				blk, _ := aes.NewCipher(key)
				g, _ := cipher.NewGCM(blk)
				g.Seal(out[:0], nonce, pt, ad)
			}
		})
	}
}

// Benchmarks come in pairs: the protocol operation, and its "floor": the same
// standard-library primitives the operation cannot avoid, composed naively in
// the same run. Compare BenchmarkSameChain/64B with BenchmarkFloorSameChain/64B
// and so on. Run:
//
//	go test ./ratchet -run '^$' -bench . -benchmem
//
// Floors:
//   - FloorSameChain: one message on an existing chain, both sides: per side
//     KDF_CK (2 HMAC-SHA256), the message-key HKDF (44 bytes) and ChaCha20-Poly1305
//     setup; then seal (sender) and open (receiver).
//   - FloorPingPong: FloorSameChain plus a DH ratchet step: a new X25519 key
//     pair, one X25519 on each side, one KDF_RK (HKDF, 64 bytes) on each side.
//   - FloorHandshake: bundle verification (card self + relay signature, signed
//     prekey and KEM prekey signatures: 4 Ed25519 verifies), parsing the ML-KEM
//     key, the ephemeral key pair, DH1-DH4 on both sides, ML-KEM-768
//     encapsulate + decapsulate, the SK HKDF on both sides, and the first
//     message (FloorPingPong): what StartSession + Encrypt + AcceptSession do.

var benchSizes = []int{64, 1024}

// --- primitives -----------------------------------------------------------

func BenchmarkPrimX25519(b *testing.B) {
	k1, _ := ecdh.X25519().NewPrivateKey(make32(1))
	k2, _ := ecdh.X25519().NewPrivateKey(make32(2))
	pub := k2.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		k1.ECDH(pub)
	}
}

func BenchmarkPrimX25519KeyGen(b *testing.B) {
	seed := make32(3)
	b.ReportAllocs()
	for b.Loop() {
		k, _ := ecdh.X25519().NewPrivateKey(seed)
		k.PublicKey()
	}
}

func BenchmarkPrimHMACSHA256(b *testing.B) {
	key := make32(4)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write([]byte{1})
		m.Sum(nil)
	}
}

func BenchmarkPrimHKDF(b *testing.B) {
	ikm := make32(5)
	b.ReportAllocs()
	for b.Loop() {
		hkdf.Key(sha256.New, ikm, nil, LabelMessageKeys, 44)
	}
}

func BenchmarkPrimAEAD(b *testing.B) {
	for _, n := range benchSizes {
		key, nonce := make32(6), make([]byte, 12)
		pt := make([]byte, n)
		ad := make([]byte, 64+50)
		b.Run(fmt.Sprintf("seal/%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			out := make([]byte, 0, n+16)
			for b.Loop() {
				g, _ := chacha20poly1305.New(key)
				g.Seal(out[:0], nonce, pt, ad)
			}
		})
		b.Run(fmt.Sprintf("open/%dB", n), func(b *testing.B) {
			g, _ := chacha20poly1305.New(key)
			ct := g.Seal(nil, nonce, pt, ad)
			out := make([]byte, 0, n)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				g, _ := chacha20poly1305.New(key)
				if _, err := g.Open(out[:0], nonce, ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPrimMLKEM768(b *testing.B) {
	dk, _ := mlkem.NewDecapsulationKey768(make([]byte, 64))
	ekBytes := dk.EncapsulationKey().Bytes()
	b.ReportAllocs()
	for b.Loop() {
		ek, _ := mlkem.NewEncapsulationKey768(ekBytes)
		_, ct := ek.Encapsulate()
		dk.Decapsulate(ct)
	}
}

func BenchmarkPrimEd25519Verify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make32(7))
	msg := make([]byte, 200)
	sig := ed25519.Sign(priv, msg)
	pub := priv.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

func make32(v byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = v + byte(i)
	}
	return b
}

// --- floors ---------------------------------------------------------------

// floorMessage is one message's unavoidable work on one side: KDF_CK, the key
// expansion, AEAD setup and seal or open.
func floorMessage(ck, pt, ct, ad []byte, seal bool) []byte {
	m := hmac.New(sha256.New, ck)
	m.Write([]byte{1})
	mk := m.Sum(nil)
	m = hmac.New(sha256.New, ck)
	m.Write([]byte{2})
	m.Sum(nil)
	keys, _ := hkdf.Key(sha256.New, mk, nil, LabelMessageKeys, 44)
	g, _ := chacha20poly1305.New(keys[:32])
	if seal {
		return g.Seal(ct[:0], keys[32:], pt, ad)
	}
	out, err := g.Open(pt[:0], keys[32:], ct, ad)
	if err != nil {
		panic(err)
	}
	return out
}

func BenchmarkFloorSameChain(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			ck := make32(8)
			pt := make([]byte, n+1)
			ct := make([]byte, 0, n+1+16)
			ad := make([]byte, 64+50)
			b.ReportAllocs()
			for b.Loop() {
				ct = floorMessage(ck, pt, ct, ad, true)
				floorMessage(ck, pt, ct, ad, false)
			}
		})
	}
}

// BenchmarkFloorSameChainTight is the same work as FloorSameChain with this
// package's allocation-free HMAC/HKDF (reused SHA-256 midstates) instead of
// crypto/hmac and crypto/hkdf: the cryptographic cost of a message with no
// envelope, header, padding or state handling. SameChain minus this is the
// protocol's own overhead.
func BenchmarkFloorSameChainTight(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			var ck [32]byte
			var nonce [12]byte
			k := newKDF()
			pt := make([]byte, n+1)
			ct := make([]byte, 0, n+1+16)
			ad := make([]byte, 64+50)
			b.ReportAllocs()
			for b.Loop() {
				mk, _ := k.kdfCK(&ck)
				ct = sealMessage(k, &mk, &nonce, ct[:0], pt, ad)
				mk, _ = k.kdfCK(&ck)
				if _, err := openMessage(k, &mk, &nonce, pt[:0], ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func floorDHStep(seed []byte, peer *ecdh.PublicKey, receiver *ecdh.PrivateKey, rk []byte) {
	k, _ := ecdh.X25519().NewPrivateKey(seed)
	s1, _ := k.ECDH(peer)
	hkdf.Key(sha256.New, s1, rk, LabelRootKDF, 64)
	s2, _ := receiver.ECDH(k.PublicKey())
	hkdf.Key(sha256.New, s2, rk, LabelRootKDF, 64)
}

func BenchmarkFloorPingPong(b *testing.B) {
	for _, n := range benchSizes[:1] {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			ck, rk, seed := make32(8), make32(9), make32(10)
			recv, _ := ecdh.X25519().NewPrivateKey(make32(11))
			peer := recv.PublicKey()
			pt := make([]byte, n+1)
			ct := make([]byte, 0, n+1+16)
			ad := make([]byte, 64+50)
			b.ReportAllocs()
			for b.Loop() {
				floorDHStep(seed, peer, recv, rk)
				ct = floorMessage(ck, pt, ct, ad, true)
				floorMessage(ck, pt, ct, ad, false)
			}
		})
	}
}

func BenchmarkFloorHandshake(b *testing.B) {
	relay := newRelay(b, 900)
	a := newParty(b, "alice", 901, relay)
	p := newParty(b, "bob", 902, relay)
	bundle := p.bundle(true, true)
	snap := p.card.Snapshot()
	relayMsg := signedBytes(DomainCardRelay, p.card.relaySignedBytes())
	selfMsg := signedBytes(DomainCardSelf, snap)
	spkMsg := signedBytes(DomainPreKey, bundle.SignedPreKey.signedBytes())
	kemMsg := signedBytes(DomainPreKey, bundle.KEMPreKey.signedBytes())
	ikB, _ := ecdh.X25519().NewPublicKey(p.card.AgreementKey)
	ikA, _ := ecdh.X25519().NewPublicKey(a.card.AgreementKey)
	spk, _ := ecdh.X25519().NewPublicKey(bundle.SignedPreKey.Key)
	opk, _ := ecdh.X25519().NewPublicKey(bundle.OneTimePreKey.Key)
	seed, rk, ck := make32(12), make32(13), make32(14)
	pt := make([]byte, 65)
	ct := make([]byte, 0, 65+16)
	ad := make([]byte, 64+1300)
	b.ReportAllocs()
	for b.Loop() {
		// Bundle verification: 4 signatures.
		ed25519.Verify(p.card.SigningKey, selfMsg, p.card.SelfSignature)
		ed25519.Verify(relay.pub, relayMsg, p.card.RelaySignature)
		ed25519.Verify(p.card.SigningKey, spkMsg, bundle.SignedPreKey.Signature)
		ed25519.Verify(p.card.SigningKey, kemMsg, bundle.KEMPreKey.Signature)
		// Initiator.
		ek, _ := ecdh.X25519().NewPrivateKey(seed)
		d1, _ := a.key.agreement.ECDH(spk)
		d2, _ := ek.ECDH(ikB)
		d3, _ := ek.ECDH(spk)
		d4, _ := ek.ECDH(opk)
		kemKey, _ := mlkem.NewEncapsulationKey768(bundle.KEMPreKey.Key)
		ss, kct := kemKey.Encapsulate()
		hkdf.Key(sha256.New, append(append(append(append(append(append([]byte(nil), d1...), d1...), d2...), d3...), d4...), ss...), nil, LabelPQXDH, 32)
		// Responder.
		ekPub := ek.PublicKey()
		e1, _ := p.spk.x.ECDH(ikA)
		e2, _ := p.key.agreement.ECDH(ekPub)
		e3, _ := p.spk.x.ECDH(ekPub)
		e4, _ := p.opk.x.ECDH(ekPub)
		ss2, _ := p.kem.kem.Decapsulate(kct)
		hkdf.Key(sha256.New, append(append(append(append(append(append([]byte(nil), e1...), e1...), e2...), e3...), e4...), ss2...), nil, LabelPQXDH, 32)
		// First message with its DH ratchet step.
		floorDHStep(seed, spk, p.spk.x, rk)
		ct = floorMessage(ck, pt, ct, ad, true)
		floorMessage(ck, pt, ct, ad, false)
	}
}

// --- protocol -------------------------------------------------------------

func BenchmarkSameChain(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			alice, bob := pairAcked(b, 1000)
			msg := make([]byte, n)
			b.ReportAllocs()
			for b.Loop() {
				w, err := alice.Encrypt(msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bob.Decrypt(w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPingPong(b *testing.B) {
	for _, n := range benchSizes[:1] {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			alice, bob := pairAcked(b, 1001)
			msg := make([]byte, n)
			from, to := bob, alice
			b.ReportAllocs()
			for b.Loop() {
				w, err := from.Encrypt(msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := to.Decrypt(w); err != nil {
					b.Fatal(err)
				}
				from, to = to, from
			}
		})
	}
}

func BenchmarkHandshake(b *testing.B) {
	relay := newRelay(b, 1002)
	a := newParty(b, "alice", 1003, relay)
	p := newParty(b, "bob", 1004, relay)
	bundle := p.bundle(true, true)
	msg := make([]byte, 64)
	rnd := rand.Reader // as in production
	b.ReportAllocs()
	for b.Loop() {
		alice, err := StartSession(rnd, a.key, a.card, p.card, relay.pub, bundle)
		if err != nil {
			b.Fatal(err)
		}
		w, err := alice.Encrypt(msg)
		if err != nil {
			b.Fatal(err)
		}
		env, err := DecodeEnvelope(w)
		if err != nil {
			b.Fatal(err)
		}
		keys := ResponderKeys{SignedPreKey: p.spk, OneTimePreKey: p.opk, KEMPreKey: p.kem}
		if _, _, err := AcceptSession(p.key, p.card, a.card, keys, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionMarshal measures MarshalBinary + ParseSession of a state
// that holds a sending chain (as after every Encrypt) and 0 or 100 stored
// skipped keys.
func BenchmarkSessionMarshal(b *testing.B) {
	for _, skipped := range []int{0, 100} {
		b.Run(fmt.Sprintf("skipped=%d", skipped), func(b *testing.B) {
			alice, bob, _, _ := pair(b, 1006)
			var last []byte
			for i := 0; i <= skipped; i++ {
				last, _ = alice.Encrypt([]byte("x"))
			}
			bob.Decrypt(last)
			bob.Encrypt([]byte("reply")) // bob now has a sending ratchet key
			b.ReportAllocs()
			for b.Loop() {
				data, err := bob.MarshalBinary()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ParseSession(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPingPongPersisted is PingPong as a store-backed client runs it when
// it does not keep sessions in memory: each side loads its state, encrypts or
// decrypts, and marshals the new state. The receiver's DH ratchet step then
// parses its private ratchet key once more (an extra X25519 base
// multiplication), so keep hot sessions in memory when you can.
func BenchmarkPingPongPersisted(b *testing.B) {
	alice, bob := pairAcked(b, 1007)
	states := [2][]byte{mustMarshal(b, bob), mustMarshal(b, alice)}
	msg := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		from, err := ParseSession(states[0])
		if err != nil {
			b.Fatal(err)
		}
		w, err := from.Encrypt(msg)
		if err != nil {
			b.Fatal(err)
		}
		states[0], _ = from.MarshalBinary()
		to, err := ParseSession(states[1])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.Decrypt(w); err != nil {
			b.Fatal(err)
		}
		states[1], _ = to.MarshalBinary()
		states[0], states[1] = states[1], states[0]
	}
}
