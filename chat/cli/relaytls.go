package cli

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// relayTLSOptions are the TLS flags of `pfschat relay`.
type relayTLSOptions struct {
	CertFile, KeyFile string // --tls-cert, --tls-key: PEM files
	ACMEDomain        string // --acme-domain: get a certificate for this name from Let's Encrypt
	ACMEEmail         string // --acme-email: the ACME account's contact (optional)
	DataDir           string // the relay's data directory; the ACME cache goes in DataDir/acme

	// acmeDirectory overrides the ACME directory URL (tests); "" is Let's Encrypt.
	acmeDirectory string
}

// ACMECacheDir is where the relay keeps its ACME account key and certificates.
func (o relayTLSOptions) ACMECacheDir() string { return filepath.Join(o.DataDir, "acme") }

// relayTLS makes the relay's TLS configuration: TLS 1.3 only, HTTP/1.1 (WebSockets),
// and with ACME the TLS-ALPN-01 protocol on the same port. It returns nil without TLS
// flags. With ACME it also returns the manager, whose HTTPHandler answers HTTP-01
// challenges on --acme-http-addr.
func relayTLS(o relayTLSOptions) (*tls.Config, *autocert.Manager, error) {
	switch {
	case (o.CertFile == "") != (o.KeyFile == ""):
		return nil, nil, usagef("--tls-cert and --tls-key go together: give both PEM files")
	case o.CertFile != "" && o.ACMEDomain != "":
		return nil, nil, usagef("--tls-cert/--tls-key and --acme-domain exclude each other: use certificate files or ACME")
	case o.ACMEDomain == "" && o.ACMEEmail != "":
		return nil, nil, usagef("--acme-email needs --acme-domain")
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", o.CertFile, o.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
		return conf, nil, nil
	}
	if o.ACMEDomain == "" {
		return nil, nil, nil
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(o.ACMECacheDir()),
		HostPolicy: autocert.HostWhitelist(o.ACMEDomain),
		Email:      o.ACMEEmail,
	}
	if o.acmeDirectory != "" {
		m.Client = &acme.Client{DirectoryURL: o.acmeDirectory}
	}
	conf.GetCertificate = m.GetCertificate
	conf.NextProtos = append(conf.NextProtos, acme.ALPNProto) // TLS-ALPN-01 on the TLS port
	return conf, m, nil
}

// acmeHTTPHandler answers ACME HTTP-01 challenges and redirects everything else to
// https://.
func acmeHTTPHandler(m *autocert.Manager) http.Handler { return m.HTTPHandler(nil) }
