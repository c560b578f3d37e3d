package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	"pfschat/relay/relaytest"
)

// TestRelayTLSACMEWiring tests the ACME wiring and certificate selection without an
// ACME server: a certificate for the domain is put in the relay's ACME cache (as
// autocert stores one after an order), and the TLS configuration must serve it for
// the domain, refuse other names by the host policy, offer TLS-ALPN-01 on the TLS
// port, speak only TLS 1.3, and answer HTTP-01 challenges on its HTTP handler.
func TestRelayTLSACMEWiring(t *testing.T) {
	dir := t.TempDir()
	const domain = "relay.example.org"
	o := relayTLSOptions{ACMEDomain: domain, ACMEEmail: "ops@example.org", DataDir: dir}
	ca := relaytest.NewCA(t)
	leaf := ca.Leaf(t, domain)
	var cached bytes.Buffer
	keyDER, err := x509.MarshalECPrivateKey(leaf.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	pem.Encode(&cached, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	for _, der := range leaf.Certificate {
		pem.Encode(&cached, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if err := os.MkdirAll(o.ACMECacheDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.ACMECacheDir(), domain), cached.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	conf, m, err := relayTLS(o)
	if err != nil || conf == nil || m == nil {
		t.Fatalf("relayTLS: %v %v %v", conf, m, err)
	}
	if conf.MinVersion != tls.VersionTLS13 {
		t.Fatalf("MinVersion %#x", conf.MinVersion)
	}
	if !slices.Contains(conf.NextProtos, acme.ALPNProto) || !slices.Contains(conf.NextProtos, "http/1.1") || slices.Contains(conf.NextProtos, "h2") {
		t.Fatalf("NextProtos %v: want http/1.1 and acme-tls/1, no h2", conf.NextProtos)
	}
	if m.Email != o.ACMEEmail || m.Cache == nil {
		t.Fatalf("manager email %q cache %v", m.Email, m.Cache)
	}
	got, err := conf.GetCertificate(&tls.ClientHelloInfo{ServerName: domain, SupportedVersions: []uint16{tls.VersionTLS13},
		CipherSuites: []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves: []tls.CurveID{tls.CurveP256}})
	if err != nil {
		t.Fatalf("certificate for %s: %v", domain, err)
	}
	if !bytes.Equal(got.Certificate[0], leaf.Certificate[0]) {
		t.Fatal("the manager served another certificate than the cached one")
	}
	// Another name: refused by the host policy, without asking any ACME server.
	o.acmeDirectory = "http://127.0.0.1:1/unreachable"
	conf2, _, _ := relayTLS(o)
	if _, err := conf2.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.org"}); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("a name outside --acme-domain: %v, want the host policy's refusal", err)
	}
}

func TestRelayTLSFlagErrors(t *testing.T) {
	for _, o := range []relayTLSOptions{
		{CertFile: "a.pem"},
		{KeyFile: "k.pem"},
		{CertFile: "a.pem", KeyFile: "k.pem", ACMEDomain: "x.example"},
		{ACMEEmail: "a@example.org"},
		{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"},
	} {
		if _, _, err := relayTLS(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if conf, m, err := relayTLS(relayTLSOptions{}); conf != nil || m != nil || err != nil {
		t.Fatal("no TLS flags must mean plain ws://")
	}
}
