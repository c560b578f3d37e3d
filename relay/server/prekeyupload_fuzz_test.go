package server

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"pfschat/ratchet"
)

// FuzzParsePreKeyUpload: an upload's prekeys (the client's frame, untrusted) are
// accepted only without a repeated kind and id, a repeated key, a second signed or
// last-resort KEM prekey, or more one-time keys of a kind than the limit — and then the
// counts are the one-time keys of each kind, in the frame's order; else refused with a
// message that names a prekey or the limit. The fuzzer picks prekeys from a fixed set
// (by index bytes, so repeats and orders come easily) and may spoil one byte of one.
func FuzzParsePreKeyUpload(f *testing.F) {
	id, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	var pool [][]byte
	for i, kind := range []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.SignedPreKey, ratchet.OneTimePreKey,
		ratchet.OneTimePreKey, ratchet.OneTimePreKey, ratchet.KEMLastResort, ratchet.KEMLastResort, ratchet.KEMOneTime, ratchet.KEMOneTime} {
		pk, err := ratchet.GeneratePreKey(rand.Reader, id, kind, uint32(1+i%2), time.Unix(1767225600, 0))
		if err != nil {
			f.Fatal(err)
		}
		b, err := pk.Public().MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		pool = append(pool, b)
	}
	f.Add([]byte{0, 2, 5, 7}, uint8(3), -1, byte(0))
	f.Add([]byte{2, 3, 4}, uint8(2), -1, byte(0))
	f.Add([]byte{0, 1}, uint8(3), -1, byte(0))
	f.Add([]byte{2, 2}, uint8(3), -1, byte(0))
	f.Add([]byte{3, 4}, uint8(3), 1, byte(0x40))
	f.Fuzz(func(t *testing.T, picks []byte, max uint8, spoil int, flip byte) {
		if len(picks) > 64 {
			return
		}
		raws := make([][]byte, len(picks))
		for i, p := range picks {
			raws[i] = bytes.Clone(pool[int(p)%len(pool)])
		}
		if spoil >= 0 && spoil < len(raws) && len(raws[spoil]) > 0 {
			raws[spoil][int(flip)%len(raws[spoil])] ^= flip | 1
		}
		parsed, counts, refused := parsePreKeyUpload(raws, int(max))
		if refused != nil {
			if refused.msg == "" || parsed != nil || counts != nil {
				t.Fatalf("refused without a message, or with keys: %+v %v %v", refused, parsed, counts)
			}
			return
		}
		if len(parsed) != len(raws) {
			t.Fatalf("%d prekeys accepted of %d", len(parsed), len(raws))
		}
		type kindID struct {
			kind ratchet.PreKeyKind
			id   uint32
		}
		ids, keys, want := map[kindID]bool{}, map[string]bool{}, map[ratchet.PreKeyKind]int{}
		replacing := map[ratchet.PreKeyKind]bool{}
		for i, pk := range parsed {
			if again, err := pk.MarshalBinary(); err != nil || !bytes.Equal(again, raws[i]) {
				t.Fatalf("prekey %d accepted is not the one sent", i)
			}
			if ids[kindID{pk.Kind, pk.ID}] || keys[string(pk.Key)] {
				t.Fatalf("prekey %d repeats another and was accepted", i)
			}
			ids[kindID{pk.Kind, pk.ID}], keys[string(pk.Key)] = true, true
			if pk.Kind == ratchet.SignedPreKey || pk.Kind == ratchet.KEMLastResort {
				if replacing[pk.Kind] {
					t.Fatalf("a second %s accepted", pk.Kind)
				}
				replacing[pk.Kind] = true
			} else {
				want[pk.Kind]++
			}
		}
		for kind, n := range want {
			if n > int(max) || counts[kind] != n {
				t.Fatalf("%s: %d one-time keys counted %d, limit %d", kind, n, counts[kind], max)
			}
		}
		if len(counts) != len(want) {
			t.Fatalf("counts %v, want %v", counts, want)
		}
	})
}
