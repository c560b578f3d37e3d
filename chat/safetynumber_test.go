package chat

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// libsignal's published vectors (rust/protocol/src/fingerprint.rs, fingerprint_test_v1;
// Java NumericFingerprintGeneratorTest.testVectorsVersion1): serialized Curve25519 identity
// keys (0x05 ‖ 32 bytes), phone-number stable ids, 5200 iterations.
const (
	libsignalAliceIdentity = "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868"
	libsignalBobIdentity   = "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b"
	libsignalAliceStableID = "+14152222222"
	libsignalBobStableID   = "+14153333333"
	libsignalDisplayableV1 = "300354477692869396892869876765458257569162576843440918079131"
)

func TestDisplayableFingerprintLibsignalVectors(t *testing.T) {
	alice, _ := hex.DecodeString(libsignalAliceIdentity)
	bob, _ := hex.DecodeString(libsignalBobIdentity)
	a, err := DisplayableFingerprint(5200, []byte(libsignalAliceStableID), alice, []byte(libsignalBobStableID), bob)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DisplayableFingerprint(5200, []byte(libsignalBobStableID), bob, []byte(libsignalAliceStableID), alice)
	if err != nil {
		t.Fatal(err)
	}
	if a != libsignalDisplayableV1 {
		t.Errorf("alice's view = %s, libsignal says %s", a, libsignalDisplayableV1)
	}
	if b != libsignalDisplayableV1 {
		t.Errorf("bob's view = %s, libsignal says %s", b, libsignalDisplayableV1)
	}
}

func TestDisplayableFingerprintDiffers(t *testing.T) {
	alice, _ := hex.DecodeString(libsignalAliceIdentity)
	bob, _ := hex.DecodeString(libsignalBobIdentity)
	want, _ := DisplayableFingerprint(1024, []byte("alice"), alice, []byte("bob"), bob)
	// A different stable id (name) or key must change the number.
	if got, _ := DisplayableFingerprint(1024, []byte("alicf"), alice, []byte("bob"), bob); got == want {
		t.Error("changing the name did not change the fingerprint")
	}
	mitm := append([]byte(nil), bob...)
	mitm[5] ^= 1
	if got, _ := DisplayableFingerprint(1024, []byte("alice"), alice, []byte("bob"), mitm); got == want {
		t.Error("changing a key bit did not change the fingerprint")
	}
	for _, it := range []int{0, 1, 1_000_001} {
		if _, err := DisplayableFingerprint(it, nil, alice, nil, bob); err == nil {
			t.Errorf("iterations %d accepted", it)
		}
	}
	if _, err := DisplayableFingerprint(5200, nil, nil, nil, bob); err == nil {
		t.Error("empty key accepted")
	}
}

func TestSafetyNumberFormatting(t *testing.T) {
	s := SafetyNumber{digits: libsignalDisplayableV1}
	want := "30035 44776 92869 39689 28698 76765 45825 75691 62576 84344 09180 79131"
	if s.Digits() != want {
		t.Fatalf("Digits = %q, want %q", s.Digits(), want)
	}
	if rows := s.Rows(); len(rows) != 3 || rows[0] != "30035 44776 92869 39689" {
		t.Fatalf("Rows = %q", rows)
	}
	if !s.Equal(want) || !s.Equal(libsignalDisplayableV1) || s.Equal(want[:len(want)-1]+"2") {
		t.Fatal("Equal misjudges")
	}
	if (SafetyNumber{}).Digits() != "" || (SafetyNumber{}).Equal("") {
		t.Fatal("zero value must show nothing and equal nothing")
	}
}

func BenchmarkSafetyNumber(b *testing.B) {
	alice, _ := hex.DecodeString(libsignalAliceIdentity)
	bob, _ := hex.DecodeString(libsignalBobIdentity)
	for b.Loop() {
		DisplayableFingerprint(SafetyNumberIterations, []byte("a"), alice, []byte("b"), bob)
	}
}

// The safety number vector of ratchet/SPEC.md §7.1, which says what an independent
// client hashes (an implementation written from the documents could not tell the
// inputs before).
func TestSafetyNumberSpecVector(t *testing.T) {
	spec, err := os.ReadFile("../ratchet/SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	as, aa := bytes.Repeat([]byte{0x11}, 32), bytes.Repeat([]byte{0x22}, 32)
	bs, ba := bytes.Repeat([]byte{0x33}, 32), bytes.Repeat([]byte{0x44}, 32)
	got, err := computeSafetyNumber("alice", as, aa, "bob", bs, ba)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(spec), "`"+got+"`") {
		t.Fatalf("SPEC.md §7.1 does not give the vector pfschat computes, %s", got)
	}
	if rev, _ := computeSafetyNumber("bob", bs, ba, "alice", as, aa); rev != got {
		t.Fatalf("bob's side %s, alice's %s", rev, got)
	}
}
