package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"

	"pfschat/relay"
)

var updateHandshake = flag.Bool("update", false, "rewrite relay/testdata/handshake_v2.json from the current code")

// handshakeVector is one connection start of protocol 2 with fixed inputs: every
// byte a second implementation must produce (PROTOCOL.md, "Connection start").
type handshakeVector struct {
	Name           string `json:"name"`
	RelaySeed      string `json:"relay_seed"`      // Ed25519 seed of the relay key
	RelayKey       string `json:"relay_key"`       // its public key
	ClientSeed     string `json:"client_seed"`     // Ed25519 seed of the card's signing key
	ClientKey      string `json:"client_key"`      // its public key
	Nonce          string `json:"nonce"`           // the client's nonce
	NonceParam     string `json:"nonce_param"`     // as it travels: ?nonce=<this>
	Challenge      string `json:"challenge"`       // the relay's challenge
	ChannelBinding string `json:"channel_binding"` // the hello's channel_binding field
	Binding        string `json:"binding"`         // the 32 binding bytes (exporter or zeros)
	HelloSigned    string `json:"hello_signed"`    // the exact bytes the relay signs
	HelloSignature string `json:"hello_signature"` // Ed25519, relay key
	LoginSigned    string `json:"login_signed"`    // the exact bytes the client signs
	LoginSignature string `json:"login_signature"` // Ed25519, the card's signing key
}

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func makeVector(name string, binding []byte, mode string) handshakeVector {
	relayPriv := ed25519.NewKeyFromSeed(seq(0x00, 32))
	clientPriv := ed25519.NewKeyFromSeed(seq(0x20, 32))
	nonce, challenge := seq(0x40, 32), seq(0x60, 32)
	relayPub := relayPriv.Public().(ed25519.PublicKey)
	helloSigned := append([]byte(relay.HelloDomain+"\x00"), relay.HelloMessage(nonce, challenge, binding)...)
	loginSigned := append([]byte(relay.LoginDomain+"\x00"), relay.LoginMessage(relayPub, challenge, binding)...)
	return handshakeVector{
		Name: name, RelaySeed: hex.EncodeToString(relayPriv.Seed()), RelayKey: hex.EncodeToString(relayPub),
		ClientSeed: hex.EncodeToString(clientPriv.Seed()), ClientKey: hex.EncodeToString(clientPriv.Public().(ed25519.PublicKey)),
		Nonce: hex.EncodeToString(nonce), NonceParam: relay.EncodeNonce(nonce), Challenge: hex.EncodeToString(challenge),
		ChannelBinding: mode, Binding: hex.EncodeToString(binding),
		HelloSigned: hex.EncodeToString(helloSigned), HelloSignature: hex.EncodeToString(relay.SignHello(relayPriv, nonce, challenge, binding)),
		LoginSigned: hex.EncodeToString(loginSigned), LoginSignature: hex.EncodeToString(ed25519.Sign(clientPriv, loginSigned)),
	}
}

func currentVectors() []handshakeVector {
	return []handshakeVector{
		makeVector("tls-exporter", seq(0x80, 32), relay.BindingTLSExporter),
		makeVector("plain-ws", make([]byte, 32), relay.BindingNone),
	}
}

const vectorFile = "testdata/handshake_v2.json"

// TestHandshakeVectors checks the code against the stored vectors, and the vectors'
// signatures against their keys (so the file is self-checking for other
// implementations).
func TestHandshakeVectors(t *testing.T) {
	cur := currentVectors()
	if *updateHandshake {
		b, _ := json.MarshalIndent(cur, "", "  ")
		if err := os.WriteFile(vectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var stored []handshakeVector
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(cur) {
		t.Fatalf("%d stored vectors, code makes %d", len(stored), len(cur))
	}
	for i, v := range stored {
		if v != cur[i] {
			t.Errorf("vector %q: the code now makes\n%+v\nthe file says\n%+v", v.Name, cur[i], v)
		}
		h := func(s string) []byte {
			b, err := hex.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		nonce, err := relay.ParseNonce(v.NonceParam)
		if err != nil || !bytes.Equal(nonce, h(v.Nonce)) {
			t.Errorf("vector %q: nonce_param does not decode to nonce (%v)", v.Name, err)
		}
		if !relay.VerifyHello(h(v.RelayKey), h(v.Nonce), h(v.Challenge), h(v.Binding), h(v.HelloSignature)) {
			t.Errorf("vector %q: hello signature does not verify", v.Name)
		}
		if !ed25519.Verify(h(v.RelayKey), h(v.HelloSigned), h(v.HelloSignature)) {
			t.Errorf("vector %q: hello signature is not over hello_signed", v.Name)
		}
		if !ed25519.Verify(h(v.ClientKey), h(v.LoginSigned), h(v.LoginSignature)) {
			t.Errorf("vector %q: login signature is not over login_signed", v.Name)
		}
		// A different binding (another TLS connection) fails the hello.
		other := h(v.Binding)
		other[0] ^= 1
		if relay.VerifyHello(h(v.RelayKey), h(v.Nonce), h(v.Challenge), other, h(v.HelloSignature)) {
			t.Errorf("vector %q: hello verifies under another channel binding", v.Name)
		}
	}
}

func TestParseNonce(t *testing.T) {
	good := relay.EncodeNonce(seq(1, 32))
	if _, err := relay.ParseNonce(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", good[:42], good + "A", good[:42] + "=", "+" + good[1:], relay.EncodeNonce(seq(1, 31))} {
		if _, err := relay.ParseNonce(bad); err != relay.ErrBadNonce {
			t.Errorf("ParseNonce(%q) = %v, want ErrBadNonce", bad, err)
		}
	}
}

func FuzzParseNonce(f *testing.F) {
	f.Add(relay.EncodeNonce(seq(1, 32)))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := relay.ParseNonce(s)
		if err != nil {
			if !errors.Is(err, relay.ErrBadNonce) {
				t.Fatalf("ParseNonce(%q) refused it with an untyped error: %v", s, err)
			}
			return
		}
		if len(b) != relay.NonceSize || relay.EncodeNonce(b) != s {
			t.Fatalf("ParseNonce(%q) accepted a non-canonical nonce", s)
		}
	})
}
