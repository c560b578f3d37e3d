package relay

import (
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
)

// The connection start of protocol version 2 (PROTOCOL.md, "Connection start"): the
// client puts a fresh nonce in the WebSocket URL, the relay answers with a hello
// signed by its key over the nonce, its challenge and the channel binding, and the
// client's login signature covers the relay key, the challenge and the same channel
// binding. A man in the middle can neither pass the client's pin (it cannot sign a
// fresh nonce) nor relay a login over TLS (its two TLS connections export different
// values).

// WSPath is the WebSocket path of this protocol version; V1WSPath is the old one,
// where the relay now only says to upgrade.
const (
	WSPath   = "/v2/ws"
	V1WSPath = "/v1/ws"
)

// NonceParam is the query parameter of the WebSocket URL that carries the client's
// nonce: NonceSize bytes, unpadded base64url (RFC 4648 §5).
const NonceParam = "nonce"

// Sizes of the handshake's parts, in bytes.
const (
	NonceSize     = 32 // the client's nonce
	ChallengeSize = 32 // the relay's challenge
	BindingSize   = 32 // the channel binding (TLS exporter, or zeros)
)

// HelloDomain is the domain string of the relay's signature in its hello:
// ed25519.Sign(relay key, HelloDomain ‖ 0x00 ‖ HelloMessage(nonce, challenge, binding)).
const HelloDomain = "pfschat/v2/relay/hello"

// LoginDomain is the domain string of the login key proof: the client signs
// LoginDomain ‖ 0x00 ‖ LoginMessage(relay key, challenge, binding) with its identity
// key (ratchet.IdentityKey.Sign(LoginDomain, LoginMessage(...))).
const LoginDomain = "pfschat/v2/relay/login"

// ExporterLabel is the RFC 9266 tls-exporter label; the binding over TLS is
// ExportKeyingMaterial(ExporterLabel, nil, BindingSize).
const ExporterLabel = "EXPORTER-Channel-Binding"

// Channel binding modes, announced in the relay's hello (field channel_binding).
const (
	// BindingTLSExporter: the relay terminates TLS itself; the binding is the RFC 9266
	// tls-exporter value of the connection.
	BindingTLSExporter = "tls-exporter"
	// BindingNone: plain ws:// (loopback, or --insecure-ws); the binding is 32 zero bytes.
	BindingNone = "none"
	// BindingTLSTerminatedUpstream: a trusted proxy terminates TLS in front of the relay
	// (--tls-terminated-upstream); the binding is 32 zero bytes.
	BindingTLSTerminatedUpstream = "tls-terminated-upstream"
)

// ErrBadNonce is what ParseNonce returns for a nonce that is not NonceSize bytes of
// unpadded base64url.
var ErrBadNonce = errors.New("relay: the nonce must be 32 bytes of unpadded base64url")

// EncodeNonce is the nonce as it travels in the URL's query.
func EncodeNonce(nonce []byte) string { return base64.RawURLEncoding.EncodeToString(nonce) }

// ParseNonce decodes the URL's nonce parameter; anything but exactly NonceSize bytes
// of unpadded base64url is ErrBadNonce.
func ParseNonce(s string) ([]byte, error) {
	if len(s) != base64.RawURLEncoding.EncodedLen(NonceSize) {
		return nil, ErrBadNonce
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != NonceSize {
		return nil, ErrBadNonce
	}
	return b, nil
}

// TLSExporter is the RFC 9266 tls-exporter channel binding of a TLS 1.3 connection.
func TLSExporter(cs *tls.ConnectionState) ([]byte, error) {
	if cs == nil {
		return nil, errors.New("relay: no TLS connection state")
	}
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("relay: TLS version %#04x: the channel binding needs TLS 1.3", cs.Version)
	}
	b, err := cs.ExportKeyingMaterial(ExporterLabel, nil, BindingSize)
	if err != nil {
		return nil, fmt.Errorf("relay: exporting the channel binding: %w", err)
	}
	return b, nil
}

// HelloMessage is what the relay signs (under HelloDomain) in its hello:
// client nonce (32) ‖ challenge (32) ‖ channel binding (32).
func HelloMessage(nonce, challenge, binding []byte) []byte {
	b := make([]byte, 0, NonceSize+ChallengeSize+BindingSize)
	b = append(b, nonce...)
	b = append(b, challenge...)
	return append(b, binding...)
}

// SignHello is the relay's hello signature.
func SignHello(priv ed25519.PrivateKey, nonce, challenge, binding []byte) []byte {
	return ed25519.Sign(priv, domainMessage(HelloDomain, HelloMessage(nonce, challenge, binding)))
}

// VerifyHello checks the relay's hello signature; every part must have its size.
func VerifyHello(relayKey ed25519.PublicKey, nonce, challenge, binding, sig []byte) bool {
	if len(relayKey) != ed25519.PublicKeySize || len(nonce) != NonceSize || len(challenge) != ChallengeSize ||
		len(binding) != BindingSize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(relayKey, domainMessage(HelloDomain, HelloMessage(nonce, challenge, binding)), sig)
}

// LoginMessage is what a client signs (under LoginDomain) to prove its identity:
// relay key (32) ‖ challenge (32) ‖ channel binding (32).
func LoginMessage(relayKey ed25519.PublicKey, challenge, binding []byte) []byte {
	b := make([]byte, 0, len(relayKey)+len(challenge)+len(binding))
	b = append(b, relayKey...)
	b = append(b, challenge...)
	return append(b, binding...)
}

func domainMessage(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(domain)+1+len(msg))
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}
