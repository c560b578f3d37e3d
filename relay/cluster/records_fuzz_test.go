package cluster

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRecords: every decoder of the directory's records refuses bad input with
// ErrDamaged and never panics; what decodes encodes back to the same bytes.
func FuzzRecords(f *testing.F) {
	acc := accountRec{Name: "bob", CardID: "c1", Card: []byte("card"), CreatedAt: 1, LastLogin: 2, Recovery: []byte("v"), Replaced: []string{"c0"}}
	rep := replacedRec{Name: "bob", CardID: "c0", Card: []byte("old"), ReplacedAt: 3}
	inv := inviteRec{UsesLeft: 2, ExpiresAt: 4, CreatedAt: 5}
	bl := blobRec{Owner: "bob", Size: 10, Recipients: 1, Received: 4, Chunks: 1, Object: "o", CreatedAt: 6, ExpiresAt: 7}
	for _, seed := range [][]byte{
		acc.encode(), rep.encode(), encodeCard("bob"), encodePreKeys([]preKey{{1, []byte("a")}, {2, nil}}),
		inv.encode(), encodeBlocks([]string{"eve", "mallory"}), encodeBucket(123), bl.encode(), (&usageRec{Bytes: 99, IDs: []string{"00ff"}}).encode(),
		{}, {tagAccount}, {tagPreKeys, recordVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(err error, re func() []byte) {
			if err != nil {
				if !errors.Is(err, ErrDamaged) {
					t.Fatalf("error %v is not ErrDamaged", err)
				}
				return
			}
			if got := re(); !bytes.Equal(got, b) {
				t.Fatalf("re-encoded %x, decoded from %x", got, b)
			}
		}
		a, err := decodeAccount(b)
		check(err, a.encode)
		r, err := decodeReplaced(b)
		check(err, r.encode)
		name, err := decodeCard(b)
		check(err, func() []byte { return encodeCard(name) })
		keys, err := decodePreKeys(b)
		check(err, func() []byte { return encodePreKeys(keys) })
		i, err := decodeInvite(b)
		check(err, i.encode)
		names, err := decodeBlocks(b)
		check(err, func() []byte { return encodeBlocks(names) })
		tat, err := decodeBucket(b)
		check(err, func() []byte { return encodeBucket(tat) })
		o, err := decodeBlob(b)
		check(err, o.encode)
		u, err := decodeUsage(b)
		check(err, u.encode)
		if _, err := (sealer{key: testSealKey, bucket: "b"}).open("k", b); err == nil {
			t.Fatal("a random value opened")
		}
	})
}
