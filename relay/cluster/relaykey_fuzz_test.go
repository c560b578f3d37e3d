package cluster

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// FuzzParseSealKey: a key file or PFSCHAT_RELAY_KEY parses only as 64 hex digits
// (white space around them aside); a refusal is ErrSealKey.
func FuzzParseSealKey(f *testing.F) {
	f.Add(GenerateSealKey())
	f.Add(" " + strings.ToUpper(GenerateSealKey()) + "\n")
	f.Add(GenerateSealKey()[:63])
	f.Add(GenerateSealKey() + "00")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseSealKey(text)
		if err != nil {
			if !errors.Is(err, ErrSealKey) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(k) != SealKeySize {
			t.Fatalf("%d-byte key from %q", len(k), text)
		}
		again, err := ParseSealKey(hex.EncodeToString(k))
		if err != nil || string(again) != string(k) {
			t.Fatalf("round trip of %q: %v", text, err)
		}
	})
}
