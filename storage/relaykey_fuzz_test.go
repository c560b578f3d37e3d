package storage

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// FuzzParseRelayKey: a key file or PFSCHAT_RELAY_KEY parses only as 64 hex digits
// (white space around them aside); a refusal is ErrRelayKey.
func FuzzParseRelayKey(f *testing.F) {
	f.Add(GenerateRelayKey())
	f.Add(" " + strings.ToUpper(GenerateRelayKey()) + "\n")
	f.Add(GenerateRelayKey()[:63])
	f.Add(GenerateRelayKey() + "00")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseRelayKey(text)
		if err != nil {
			if !errors.Is(err, ErrRelayKey) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(k) != RelayKeySize {
			t.Fatalf("%d-byte key from %q", len(k), text)
		}
		again, err := ParseRelayKey(hex.EncodeToString(k))
		if err != nil || string(again) != string(k) {
			t.Fatalf("round trip of %q: %v", text, err)
		}
	})
}
