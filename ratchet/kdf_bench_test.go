package ratchet

import "testing"

func BenchmarkKDFChainStep(b *testing.B) {
	var ck [32]byte
	k := newKDF()
	b.ReportAllocs()
	for b.Loop() {
		_, ck = k.kdfCK(&ck)
	}
}

func BenchmarkKDFMessageKeys(b *testing.B) {
	var mk [32]byte
	k := newKDF()
	b.ReportAllocs()
	for b.Loop() {
		k.messageKeys(&mk)
	}
}

func BenchmarkKDFRoot(b *testing.B) {
	var rk, dh [32]byte
	k := newKDF()
	b.ReportAllocs()
	for b.Loop() {
		rk, _ = k.kdfRK(&rk, &dh)
	}
}

func TestLabelsFitTwoBlocks(t *testing.T) {
	for _, l := range []string{LabelRootKDF, LabelMessageKeys} {
		if len(l) > 22 {
			t.Errorf("label %q is %d bytes; the hot-path HKDF needs ≤ 22", l, len(l))
		}
	}
}
