package relay_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"pfschat/relay"
)

// recoveryVectors is testdata/recovery_vectors.json, the PROTOCOL.md examples of
// "Identity replacement and recovery": regenerate with PFSCHAT_WRITE_VECTORS=1 only
// on purpose.
type recoveryVectors struct {
	Secret    string   `json:"secret"`    // hex, 16 bytes
	Code      string   `json:"code"`      // the formatted code
	Name      string   `json:"name"`      //
	Proof     string   `json:"proof"`     // hex, 32 bytes
	RelayKey  string   `json:"relay_key"` // hex, the relay's 32-byte HMAC key
	Verifier  string   `json:"verifier"`  // hex, 32 bytes
	Accepted  []string `json:"accepted"`  // other spellings of Code that parse to Secret
	Checksum  []string `json:"checksum"`  // well-formed, wrong checksum: ErrRecoveryCodeChecksum
	Malformed []string `json:"malformed"` // ErrRecoveryCodeMalformed
}

func TestRecoveryVectors(t *testing.T) {
	var code relay.RecoveryCode
	copy(code[:], seq(0, 16))
	key := seq(0x20, 32)
	s := code.String()
	typo := []byte(s)
	if typo[0] == '0' {
		typo[0] = '1'
	} else {
		typo[0] = '0'
	}
	got := recoveryVectors{
		Secret: hex.EncodeToString(code[:]), Code: s, Name: "alice",
		Proof: hex.EncodeToString(code.Proof("alice")), RelayKey: hex.EncodeToString(key),
		Verifier: hex.EncodeToString(relay.RecoveryVerifier(key, "alice", code.Proof("alice"))),
		Accepted: []string{
			strings.ToLower(s),
			strings.ReplaceAll(s, "-", ""),
			strings.ReplaceAll(s, "-", " "),
			" " + strings.NewReplacer("0", "O", "1", "l").Replace(s) + "\n",
		},
		Checksum:  []string{string(typo)},
		Malformed: []string{"", s[:len(s)-1], s + "0", strings.Replace(s, s[:1], "U", 1), s + "_", strings.Repeat("0", 129)},
	}
	const path = "testdata/recovery_vectors.json"
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
	var want recoveryVectors
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("vectors changed:\n got %s\nwant %s", gb, wb)
	}
	// The file, read back, is what the parser does.
	secret, _ := hex.DecodeString(want.Secret)
	for _, c := range append([]string{want.Code}, want.Accepted...) {
		p, err := relay.ParseRecoveryCode(c)
		if err != nil || !bytes.Equal(p[:], secret) {
			t.Errorf("ParseRecoveryCode(%q) = %x, %v; want %s", c, p, err, want.Secret)
		}
	}
	for _, c := range want.Checksum {
		if _, err := relay.ParseRecoveryCode(c); !errors.Is(err, relay.ErrRecoveryCodeChecksum) {
			t.Errorf("ParseRecoveryCode(%q): %v, want ErrRecoveryCodeChecksum", c, err)
		}
	}
	for _, c := range want.Malformed {
		if _, err := relay.ParseRecoveryCode(c); !errors.Is(err, relay.ErrRecoveryCodeMalformed) {
			t.Errorf("ParseRecoveryCode(%q): %v, want ErrRecoveryCodeMalformed", c, err)
		}
	}
	spec, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{want.Code, want.Proof, want.Verifier} {
		if !bytes.Contains(spec, []byte(v)) {
			t.Errorf("PROTOCOL.md does not show the vector %s", v)
		}
	}
	if len(want.Code) != relay.RecoveryCodeLen {
		t.Errorf("code %q is %d characters, want %d", want.Code, len(want.Code), relay.RecoveryCodeLen)
	}
}

// Every single-symbol typo is caught by the checksum or the alphabet.
func TestRecoveryCodeCatchesTypos(t *testing.T) {
	var code relay.RecoveryCode
	copy(code[:], seq(7, 16))
	s := code.String()
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for i := range s {
		if s[i] == '-' {
			continue
		}
		for _, r := range alphabet {
			if byte(r) == s[i] {
				continue
			}
			typo := s[:i] + string(r) + s[i+1:]
			if _, err := relay.ParseRecoveryCode(typo); err == nil {
				t.Fatalf("typo %q (of %q) parsed", typo, s)
			}
		}
	}
}

func FuzzParseRecoveryCode(f *testing.F) {
	var code relay.RecoveryCode
	f.Add(code.String())
	f.Add("")
	f.Add("oooo-iiii-llll-0000-1111-2222-3333-4444")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := relay.ParseRecoveryCode(s)
		if err != nil {
			if !errors.Is(err, relay.ErrRecoveryCodeMalformed) && !errors.Is(err, relay.ErrRecoveryCodeChecksum) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// A code that parses formats to a canonical form that parses to the same code.
		again, err := relay.ParseRecoveryCode(c.String())
		if err != nil || again != c {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

// The strict decoder: recovery proofs are exactly 32 bytes, recover needs all three
// fields, set_recovery only its one, and neither belongs to other frames.
func TestRecoveryFramesStrict(t *testing.T) {
	p32 := `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`
	for _, c := range []struct{ frame, field string }{
		{`{"type":"recover","id":1,"card":"pfscard1:x","recovery":"AAAA","new_recovery":` + p32 + `}`, "recovery"},
		{`{"type":"recover","id":1,"card":"pfscard1:x","recovery":` + p32 + `,"new_recovery":"AAAA"}`, "new_recovery"},
		{`{"type":"recover","id":1,"card":"pfscard1:x","recovery":` + p32 + `}`, "new_recovery"},
		{`{"type":"set_recovery","id":1,"recovery":` + p32 + `,"card":"pfscard1:x"}`, "card"},
		{`{"type":"register","id":1,"card":"pfscard1:x","recovery":"AAAA"}`, "recovery"},
		{`{"type":"register","id":1,"card":"pfscard1:x","recovery":` + p32 + `,"new_recovery":` + p32 + `}`, "new_recovery"},
		{`{"type":"lookup","id":1,"name":"bob","recovery":` + p32 + `}`, "recovery"},
	} {
		_, err := relay.DecodeFrame([]byte(c.frame))
		var fe *relay.FrameError
		if !errors.As(err, &fe) || fe.Code != relay.CodeBadField || fe.Field != c.field {
			t.Errorf("%s: %v, want bad_field on %q", c.frame, err, c.field)
		}
	}
	for _, ok := range []string{
		`{"type":"recover","id":1,"card":"pfscard1:x","recovery":` + p32 + `,"new_recovery":` + p32 + `}`,
		`{"type":"set_recovery","id":1,"recovery":` + p32 + `}`,
		`{"type":"register","id":1,"card":"pfscard1:x","recovery":` + p32 + `}`,
	} {
		if _, err := relay.DecodeFrame([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
