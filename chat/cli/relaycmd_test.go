package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pfschat/chat/cli"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

func TestRunRelayServesAndDrains(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	db := filepath.Join(t.TempDir(), "relay.db")
	done := make(chan error, 1)
	go func() {
		done <- cli.RunRelay(ctx, []string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--db", db, "--log", filepath.Join(t.TempDir(), "relay.log")}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url, fp string
	for lines.Scan() {
		l := lines.Text()
		if u, ok := strings.CutPrefix(l, "pfschat relay listening on "); ok {
			url = u
		}
		if f, ok := strings.CutPrefix(l, "relay key fingerprint: "); ok {
			fp = f
			break
		}
	}
	if url == "" || fp == "" {
		t.Fatal("relay did not print its address and fingerprint")
	}
	go io.Copy(io.Discard, pr)
	c := client.New(client.Config{URL: url})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay exited with %v", err)
	}
	// The database holds the relay key: owner-only.
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

func TestRunRelayBadFlags(t *testing.T) {
	if err := cli.RunRelay(t.Context(), []string{"--nope"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if err := cli.RunRelay(t.Context(), []string{"extra"}, io.Discard, io.Discard); err == nil {
		t.Fatal("stray argument accepted")
	}
}

// TestRunRelayTLS: `pfschat relay --tls-cert --tls-key` serves wss:// (TLS 1.3) with
// the channel binding, /healthz on the public port, /metrics only on the admin port.
func TestRunRelayTLS(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dir := t.TempDir()
	ca := relaytest.NewCA(t)
	leaf := ca.Leaf(t, "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var certPEM bytes.Buffer
	pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	os.WriteFile(certFile, certPEM.Bytes(), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- cli.RunRelay(ctx, []string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--db", filepath.Join(dir, "relay.db"),
			"--tls-cert", certFile, "--tls-key", keyFile, "--log", filepath.Join(dir, "relay.log")}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url, admin string
	for lines.Scan() {
		l := lines.Text()
		if u, ok := strings.CutPrefix(l, "pfschat relay listening on "); ok {
			url = u
		}
		if a, ok := strings.CutPrefix(l, "admin (metrics) on "); ok {
			admin = a
		}
		if strings.HasPrefix(l, "relay key fingerprint: ") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(url, "wss://") || admin == "" {
		t.Fatalf("relay printed url %q admin %q", url, admin)
	}
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, _ := ratchet.NewCard(k, "alice", "username", "test", time.Now(), nil)
	anon := client.New(client.Config{URL: url, RootCAs: ca.Pool})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := anon.Register(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Config{URL: url, RootCAs: ca.Pool, Identity: k, Card: signed, PinnedRelayKey: anon.RelayKey()})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if c.ChannelBinding() != relay.BindingTLSExporter {
		t.Fatalf("channel binding %q", c.ChannelBinding())
	}
	if _, err := c.Send(ctx, "alice", []byte("note to self"), "n1"); err != nil {
		t.Fatal(err)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLS()}}
	base := "https://" + strings.TrimSuffix(strings.TrimPrefix(url, "wss://"), relay.WSPath)
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 404} {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("public %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(strings.TrimSuffix(admin, "/metrics") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "pfschat_relay_messages_accepted_total 1") {
		t.Fatalf("admin /metrics:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay exited with %v", err)
	}
}

func TestRunRelayTLSFlagConflicts(t *testing.T) {
	db := filepath.Join(t.TempDir(), "relay.db")
	for _, args := range [][]string{
		{"--tls-cert", "c.pem"},
		{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--acme-domain", "x.example"},
		{"--acme-domain", "x.example", "--tls-terminated-upstream"},
	} {
		if err := cli.RunRelay(t.Context(), append(args, "--db", db, "--addr", "127.0.0.1:0", "--admin-addr", ""), io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestRunRelayBadValuesChangeNothing: a flag value the relay cannot use is refused,
// naming the flag, before the database (a new relay key) or its directory is made, and
// a value the help does not allow is not quietly replaced by a default.
func TestRunRelayBadValuesChangeNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--synchronous", "sometimes"}, "--synchronous"},
		{[]string{"--max-queue-count", "0"}, "--max-queue-count"},
		{[]string{"--max-queue-count", "-1"}, "--max-queue-count"},
		{[]string{"--max-queue-bytes", "-1"}, "--max-queue-bytes"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--rate", "-5"}, "--rate"},
		{[]string{"--burst", "0"}, "--burst"},
		{[]string{"--addr", "nohost"}, "--addr"},
		{[]string{"--addr", busy.Addr().String()}, "--addr"},
		{[]string{"--admin-addr", busy.Addr().String()}, "--admin-addr"},
		{[]string{"--acme-http-addr", ":8080"}, "--acme-domain"},
	} {
		dir := filepath.Join(t.TempDir(), "state")
		args := append([]string{"--db", filepath.Join(dir, "relay.db"), "--addr", "127.0.0.1:0", "--admin-addr", ""}, tc.args...)
		// A relay that starts serves until the context ends: then it returns nil.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := cli.RunRelay(ctx, args, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.says)
		}
		if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%v: the database directory was made (%v) before the flag was refused", tc.args, serr)
		}
	}
}

// TestRelayNewKeyFileMakesItsDirectory: the README's `pfschat relay new-key-file
// /etc/pfschat/relay.key` works on a machine without /etc/pfschat: the directory is
// made, owner-only.
func TestRelayNewKeyFileMakesItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "pfschat")
	key := filepath.Join(dir, "relay.key")
	if err := cli.RunRelay(t.Context(), []string{"new-key-file", key}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, key: 0o600} {
		if st, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if st.Mode() != want {
			t.Errorf("%s: %v, want %v", path, st.Mode(), want)
		}
	}
}

// TestRelayLeavesAForeignFileAlone: a --db file that is not a relay's is refused
// with its content and its mode as they were (README: "never touched").
func TestRelayLeavesAForeignFileAlone(t *testing.T) {
	db := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(db, []byte("not a database\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, init := range []bool{false, true} {
		args := []string{"--db", db, "--addr", "127.0.0.1:0", "--admin-addr", ""}
		if init {
			args = append(args, "--init")
		}
		err := cli.RunRelay(t.Context(), args, io.Discard, io.Discard)
		if err == nil {
			t.Fatalf("init=%v: a text file was accepted as the relay database", init)
		}
		st, err := os.Stat(db)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("init=%v: the refused file's mode became %04o", init, st.Mode().Perm())
		}
		if b, _ := os.ReadFile(db); string(b) != "not a database\n" {
			t.Errorf("init=%v: the refused file now holds %q", init, b)
		}
	}
}

// TestSendToRelayRefusingSendsSaysSo: a relay that is reachable but refuses sends for
// now (storage_full below --min-free-mib) keeps the message in the outbox (exit 3), and
// send says the relay answered and did not accept it, not that it is unreachable.
func TestSendToRelayRefusingSendsSaysSo(t *testing.T) {
	t.Setenv("PFSCHAT_PASSPHRASE", "pw-secret")
	r := startRelayCmd(t, "--db", filepath.Join(t.TempDir(), "relay.db"), "--min-free-mib", "900000000", "--disk-reserve-mib", "0")
	relayURL := strings.TrimSuffix(r.url, "/v2/ws")
	dir := t.TempDir()
	for _, name := range []string{"alice", "bob"} {
		var errb bytes.Buffer
		if code := cli.Main(t.Context(), []string{"init", "--home", filepath.Join(dir, name), "--relay", relayURL, "--name", name}, strings.NewReader(""), io.Discard, &errb); code != 0 {
			t.Fatalf("init %s: exit %d: %s", name, code, errb.String())
		}
	}
	var errb bytes.Buffer
	code := cli.Main(t.Context(), []string{"send", "--home", filepath.Join(dir, "alice"), "--wait", "1s", "bob", "hello"}, strings.NewReader(""), io.Discard, &errb)
	if code != 3 {
		t.Fatalf("send: exit %d, want 3 (kept in the outbox); stderr %q", code, errb.String())
	}
	for _, want := range []string{"has not accepted the message within 1s", "kept in the outbox", "Do not send it again"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("send's stderr does not say %q: %q", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "unreachable") {
		t.Errorf("send says the relay is unreachable, and it answered: %q", errb.String())
	}
}

// TestInitAgainstUntrustedCertificateSaysSo: a relay on wss:// whose certificate the
// client does not trust (self-signed, another CA) answered, so init says the
// certificate does not verify and how to trust it, not "is it running?".
func TestInitAgainstUntrustedCertificateSaysSo(t *testing.T) {
	t.Setenv("PFSCHAT_PASSPHRASE", "pw-secret")
	dir := t.TempDir()
	leaf := relaytest.NewCA(t).Leaf(t, "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	r := startRelayCmd(t, "--db", filepath.Join(dir, "relay.db"), "--tls-cert", certFile, "--tls-key", keyFile)
	var errb bytes.Buffer
	code := cli.Main(t.Context(), []string{"init", "--home", filepath.Join(dir, "alice"), "--relay", r.url, "--name", "alice"}, strings.NewReader(""), io.Discard, &errb)
	if code != 1 {
		t.Fatalf("init: exit %d, want 1; stderr %q", code, errb.String())
	}
	for _, want := range []string{"certificate does not verify", "SSL_CERT_FILE"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("init's stderr does not say %q: %q", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "is it running") {
		t.Errorf("init asks whether a relay that answered is running: %q", errb.String())
	}
}
