package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"pfschat/relay"
)

func seedKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

// The vectors in testdata/ops_vectors.json are the PROTOCOL.md examples ("Accounts
// and relay keys"): regenerate with PFSCHAT_WRITE_VECTORS=1 only on purpose.
type opsVectors struct {
	OldSeed, NewSeed, CardSeed string
	Time                       int64
	KeyRotation                string // hex of KeyRotation.MarshalBinary
	CardID                     string
	DeleteAccountSignature     string // hex, by the card seed's key
}

func TestOpsVectors(t *testing.T) {
	oldK, newK, cardK := seedKey(1), seedKey(2), seedKey(3)
	const at = 1767225600
	kr, err := relay.SignKeyRotation(oldK, newK.Public().(ed25519.PublicKey), time.Unix(at, 0)).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cardID := "9f" + string(bytes.Repeat([]byte("0"), 62))
	delMsg := append([]byte(relay.DeleteAccountDomain+"\x00"), relay.DeleteAccountMessage(oldK.Public().(ed25519.PublicKey), cardID, at)...)
	got := opsVectors{OldSeed: hex.EncodeToString(bytes.Repeat([]byte{1}, 32)), NewSeed: hex.EncodeToString(bytes.Repeat([]byte{2}, 32)),
		CardSeed: hex.EncodeToString(bytes.Repeat([]byte{3}, 32)), Time: at, KeyRotation: hex.EncodeToString(kr), CardID: cardID,
		DeleteAccountSignature: hex.EncodeToString(ed25519.Sign(cardK, delMsg))}
	const path = "testdata/ops_vectors.json"
	if os.Getenv("PFSCHAT_WRITE_VECTORS") != "" {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want opsVectors
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("vectors changed:\n got %+v\nwant %+v", got, want)
	}
	if _, err := relay.ParseKeyRotation(kr); err != nil {
		t.Fatal(err)
	}
}

func TestKeyRotationRefusals(t *testing.T) {
	oldK, newK := seedKey(1), seedKey(2)
	good, _ := relay.SignKeyRotation(oldK, newK.Public().(ed25519.PublicKey), time.Unix(1767225600, 0)).MarshalBinary()
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"short":         good[:len(good)-1],
		"long":          append(bytes.Clone(good), 0),
		"version":       mut(func(b []byte) []byte { b[0] = 2; return b }),
		"new key":       mut(func(b []byte) []byte { b[40] ^= 1; return b }),
		"time":          mut(func(b []byte) []byte { b[72] ^= 1; return b }),
		"signature":     mut(func(b []byte) []byte { b[100] ^= 1; return b }),
		"time too high": mut(func(b []byte) []byte { b[65] = 0xff; return b }),
	} {
		if _, err := relay.ParseKeyRotation(b); !errors.Is(err, relay.ErrBadKeyRotation) {
			t.Errorf("%s: %v, want ErrBadKeyRotation", name, err)
		}
	}
	// A chain must start at the pinned key.
	k0, k1, k2 := seedKey(1), seedKey(2), seedKey(3)
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	s1, _ := relay.SignKeyRotation(k0, pub(k1), time.Now()).MarshalBinary()
	s2, _ := relay.SignKeyRotation(k1, pub(k2), time.Now()).MarshalBinary()
	if chain, err := relay.FollowKeyRotations(pub(k0), pub(k2), [][]byte{s2, s1}); err != nil || len(chain) != 2 {
		t.Fatalf("chain k0→k2: %v %v", chain, err)
	}
	if _, err := relay.FollowKeyRotations(pub(k1), pub(k0), [][]byte{s1, s2}); !errors.Is(err, relay.ErrBadKeyRotation) {
		t.Fatalf("backwards chain: %v", err)
	}
	if _, err := relay.FollowKeyRotations(pub(seedKey(9)), pub(k2), [][]byte{s1, s2}); !errors.Is(err, relay.ErrBadKeyRotation) {
		t.Fatalf("chain from an unrelated pin: %v", err)
	}
}

func FuzzParseKeyRotation(f *testing.F) {
	good, _ := relay.SignKeyRotation(seedKey(1), seedKey(2).Public().(ed25519.PublicKey), time.Unix(1767225600, 0)).MarshalBinary()
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := relay.ParseKeyRotation(b)
		if err != nil {
			if !errors.Is(err, relay.ErrBadKeyRotation) {
				t.Fatalf("ParseKeyRotation(%x) refused it with an untyped error: %v", b, err)
			}
			return
		}
		again, err := k.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x → %x (%v)", b, again, err)
		}
	})
}

// FuzzFollowKeyRotations: the statements of a relay's hello (untrusted: whatever the
// relay, or whoever answers in its place, sends) either give a chain from the pinned
// key to the presented one, each statement's new key the next one's old key, or are
// refused with ErrBadKeyRotation. steps picks statements signed among four keys (a
// byte at or above 0x80 spoils its signature); raw is one more statement as sent.
func FuzzFollowKeyRotations(f *testing.F) {
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	var keys [4]ed25519.PrivateKey
	for i := range keys {
		keys[i] = seedKey(byte(i + 1))
	}
	type pair struct{ old, new int }
	var pairs []pair
	var signed [][]byte
	for i := range keys {
		for j := range keys {
			if i != j {
				b, _ := relay.SignKeyRotation(keys[i], pub(keys[j]), time.Unix(1767225600+int64(len(pairs)), 0)).MarshalBinary()
				pairs, signed = append(pairs, pair{i, j}), append(signed, b)
			}
		}
	}
	f.Add([]byte{0}, []byte(nil), uint8(0), uint8(1), []byte(nil))    // 1 → 2
	f.Add([]byte{0, 4}, []byte(nil), uint8(0), uint8(2), []byte(nil)) // 1 → 2 → 3
	f.Add([]byte{4, 0}, []byte(nil), uint8(0), uint8(2), []byte(nil)) // out of order
	f.Add([]byte{0x80}, []byte(nil), uint8(0), uint8(1), []byte(nil)) // spoiled
	f.Add([]byte{0, 3}, []byte(nil), uint8(0), uint8(0), []byte(nil)) // a cycle back to the pin
	f.Add([]byte{0}, signed[4][:40], uint8(0), uint8(1), []byte(nil))
	f.Add([]byte{0}, []byte(nil), uint8(0), uint8(1), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, steps, raw []byte, pin, present uint8, presentedRaw []byte) {
		var encoded [][]byte
		for _, s := range steps {
			b := bytes.Clone(signed[int(s&0x7f)%len(signed)])
			if s >= 0x80 {
				b[len(b)-1-int(s&0x3f)] ^= 1
			}
			encoded = append(encoded, b)
		}
		if raw != nil {
			encoded = append(encoded, raw)
		}
		pinned := pub(keys[int(pin)%len(keys)])
		presented := pub(keys[int(present)%len(keys)])
		if presentedRaw != nil {
			presented = presentedRaw
		}
		chain, err := relay.FollowKeyRotations(pinned, presented, encoded)
		if err != nil {
			if !errors.Is(err, relay.ErrBadKeyRotation) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		cur := pinned
		for i, k := range chain {
			if !k.Old.Equal(cur) {
				t.Fatalf("statement %d of the chain starts at %x, not %x", i, k.Old, cur)
			}
			enc, err := k.MarshalBinary()
			if err != nil || !slices.ContainsFunc(encoded[max(0, len(encoded)-relay.MaxKeyRotations):], func(e []byte) bool { return bytes.Equal(e, enc) }) {
				t.Fatalf("statement %d of the chain is not among the last %d sent (%v)", i, relay.MaxKeyRotations, err)
			}
			cur = k.New
		}
		if !cur.Equal(presented) || len(chain) > relay.MaxKeyRotations {
			t.Fatalf("a chain of %d statements from %x ends at %x, not at the presented %x", len(chain), pinned, cur, presented)
		}
	})
}
