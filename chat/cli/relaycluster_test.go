package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"pfschat/chat/chattest"
	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/cluster/natstest"
)

// TestRelayClusterFlagErrors: bad or contradictory cluster flags are refused before
// anything is dialled or made, with a message naming the flag and what to do.
func TestRelayClusterFlagErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.creds")
	if err := os.WriteFile(loose, []byte("creds"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "relay.db")
	nats := "nats://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--nats", nats, "--db", db}, "--db is for the single-node SQLite relay"},
		{[]string{"--nats", nats, "--synchronous", "NORMAL"}, "--synchronous is for the single-node SQLite relay"},
		{[]string{"--nats", nats, "--min-free-mib", "1"}, "--min-free-mib is for the single-node SQLite relay"},
		{[]string{"--db", db, "--nats-replicas", "3"}, "--nats-replicas is for a relay cluster node"},
		{[]string{"--db", db, "--relay-key-file", loose}, "chmod 600"},
		{[]string{"--db", db, "--nats", ""}, "--nats is empty"},
		{[]string{"--nats", nats + ",,nats://127.0.0.1:2"}, "empty entry"},
		{[]string{"--nats", "http://127.0.0.1:4222"}, "scheme must be nats://"},
		{[]string{"--nats", "127.0.0.1:4222"}, "not a NATS server URL"},
		{[]string{"--nats", "nats://user:secret@127.0.0.1:4222"}, "use --nats-creds FILE"},
		{[]string{"--nats", "nats://s3cr3t@127.0.0.1:4222"}, "use --nats-creds FILE"}, // a token alone
		{[]string{"--nats", "nats://user:s3cr3t@127.0.0.1:port"}, "not a NATS server URL"},
		{[]string{"--nats", "http://user:s3cr3t@127.0.0.1:4222"}, "scheme must be nats://"},
		{[]string{"--nats", "nats://127.0.0.1:2,,nats://user:s3cr3t@127.0.0.1:4222"}, "empty entry"},
		{[]string{"--nats", nats, "--nats-replicas", "2"}, "use 1, 3 or 5"},
		{[]string{"--nats", nats, "--nats-replicas", "0"}, "use 1, 3 or 5"},
		{[]string{"--nats", nats, "--nats-creds", filepath.Join(dir, "missing.creds")}, "--nats-creds"},
		{[]string{"--nats", nats, "--nats-creds", loose}, "chmod 600"},
	} {
		args := append([]string{"--addr", "127.0.0.1:0", "--admin-addr", ""}, tc.args...)
		// Cancelled: a start that got past the checks would stop at once, not hang.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := cli.RunRelay(ctx, args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("pfschat relay %q: %v, want an error saying %q", tc.args, err, tc.says)
			continue
		}
		if strings.Contains(err.Error(), "secret@") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("pfschat relay %q: the error shows the password: %v", tc.args, err)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a refused start made %s (%v)", db, err)
	}
}

// relayCmd is a `pfschat relay` running in the test.
type relayCmd struct {
	url, fingerprint, admin string
	cancel                  context.CancelFunc
	done                    chan error
	once                    sync.Once
}

// startRelayCmd runs `pfschat relay args...` until the test stops it, and reads its
// banner (address, fingerprint, admin port).
func startRelayCmd(t *testing.T, args ...string) *relayCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	r := &relayCmd{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- cli.RunRelay(ctx, append([]string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log", filepath.Join(t.TempDir(), "relay.log")}, args...), pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		l := lines.Text()
		if u, ok := strings.CutPrefix(l, "pfschat relay listening on "); ok {
			r.url = u
		}
		if a, ok := strings.CutPrefix(l, "admin (metrics) on "); ok {
			r.admin = strings.TrimSuffix(a, "/metrics")
		}
		if f, ok := strings.CutPrefix(l, "relay key fingerprint: "); ok {
			r.fingerprint = f
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if r.url == "" || r.fingerprint == "" {
		cancel()
		t.Fatalf("relay did not start: %v", <-r.done)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *relayCmd) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("relay: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("relay did not stop within 20 s")
		}
	})
}

// TestRunRelayOnNATS: `pfschat relay --nats` runs a relay node on JetStream. It makes
// the relay's key only with --init, keeps it across restarts (sealed under the key
// file: another key refuses to start), says what to do when JetStream cannot place
// the replicas, serves clients, and reports the JetStream connection in /healthz and
// /metrics.
func TestRunRelayOnNATS(t *testing.T) {
	ns := natstest.Single(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	if err := cli.RunRelay(t.Context(), []string{"new-cluster-key", keyFile}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := cli.RunRelay(t.Context(), []string{"new-cluster-key", keyFile}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("new-cluster-key over an existing file: %v", err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	base := []string{"--nats", ns.URL(), "--relay-key-file", keyFile}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	run := func(args ...string) error {
		return cli.RunRelay(ctx, append([]string{"--addr", "127.0.0.1:0", "--admin-addr", ""}, args...), io.Discard, io.Discard)
	}
	if err := run(append(base, "--init")...); err == nil || !strings.Contains(err.Error(), "--nats-replicas 1") {
		t.Errorf("R3 on one NATS server: %v, want a hint to pass --nats-replicas 1", err)
	}
	base = append(base, "--nats-replicas", "1")
	if err := run(base...); err == nil || !strings.Contains(err.Error(), "pass --init") {
		t.Errorf("a JetStream without a relay key, without --init: %v", err)
	}

	r := startRelayCmd(t, append(base, "--init")...)
	c := client.New(client.Config{URL: r.url})
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(k, "alice", "username", "test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, card); err != nil {
		t.Fatalf("registering on the JetStream relay: %v", err)
	}
	c.Close()
	for path, want := range map[string]string{"/healthz": "ok\n", "/metrics": "pfschat_jetstream_connected 1\n"} {
		resp, err := http.Get(r.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %q lacks %q", path, b, want)
		}
	}
	fp := r.fingerprint
	r.stop(t)

	// Restarted without --init: the same relay, alice still registered.
	r = startRelayCmd(t, base...)
	if r.fingerprint != fp {
		t.Errorf("fingerprint after restart %s, want %s", r.fingerprint, fp)
	}
	c = client.New(client.Config{URL: r.url})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LookupCard(ctx, "alice"); err != nil {
		t.Errorf("alice after the restart: %v", err)
	}
	r.stop(t)

	// Invites of a relay cluster are made in JetStream, by any machine with the key.
	var out strings.Builder
	if err := cli.RunRelay(ctx, append([]string{"invite", "--uses", "2"}, base...), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "pfsinv-") {
		t.Errorf("relay invite --nats: %q, %v", out.String(), err)
	}
	if err := cli.RunRelay(ctx, append([]string{"invite", "--nats-prefix", "ELSEWHERE"}, base...), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "holds no relay") {
		t.Errorf("relay invite on a prefix without a relay: %v", err)
	}

	other := filepath.Join(dir, "other.key")
	if err := cli.RunRelay(t.Context(), []string{"new-cluster-key", other}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run("--nats", ns.URL(), "--nats-replicas", "1", "--relay-key-file", other); err == nil || !strings.Contains(err.Error(), "same --relay-key-file") {
		t.Errorf("another cluster key: %v, want a refusal naming the key file", err)
	}
}

// TestRelayNATSLoginRefusedNamesCreds: NATS servers that want a login (operator mode,
// README "Run a relay cluster") refuse a relay node or an invite without --nats-creds
// with a message that names the flag, not a bare "Authorization Violation".
func TestRelayNATSLoginRefusedNamesCreds(t *testing.T) {
	s := natstest.WithOptions(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		Username: "relay", Password: "not-given"})
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := cli.RunRelay(t.Context(), []string{"new-key-file", key}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--addr", "127.0.0.1:0", "--admin-addr", "", "--nats", s.URL(), "--relay-key-file", key},
		{"invite", "--nats", s.URL(), "--relay-key-file", key},
	} {
		err := cli.RunRelay(t.Context(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "give the relay user's with --nats-creds FILE") {
			t.Errorf("pfschat relay %q: %v, want an error naming --nats-creds", args, err)
		}
	}
}

// TestRelayNodeWaitsForJetStream: a relay node started while its NATS cluster has no
// JetStream quorum yet (servers restarted together after a power cut, the relay first)
// says on stderr that it waits for JetStream, and starts once the quorum is back,
// instead of exiting with JetStream's "temporarily unavailable".
func TestRelayNodeWaitsForJetStream(t *testing.T) {
	nc := natstest.Cluster(t, 3)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	if err := cli.RunRelay(t.Context(), []string{"new-cluster-key", keyFile}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	nc.Stop(1)
	nc.Stop(2)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- cli.RunRelay(ctx, []string{"--addr", "127.0.0.1:0", "--admin-addr", "", "--log", filepath.Join(dir, "relay.log"),
			"--nats", strings.Join(nc.URLs(), ","), "--relay-key-file", keyFile, "--init"}, outW, errW)
		outW.Close()
		errW.Close()
	}()
	started := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(outR)
		ok := false
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "relay key fingerprint: ") && !ok {
				ok = true
				started <- true
			}
		}
		if !ok {
			started <- false
		}
	}()
	waiting := make(chan string, 1)
	var stderrMu sync.Mutex
	var stderrLines []string
	go func() {
		s := bufio.NewScanner(errR)
		for s.Scan() {
			stderrMu.Lock()
			stderrLines = append(stderrLines, s.Text())
			stderrMu.Unlock()
			if strings.Contains(s.Text(), "waiting for JetStream") {
				select {
				case waiting <- s.Text():
				default: // the first is enough; the rest are drained
				}
			}
		}
		close(waiting)
	}()
	// On a failure, all the relay said and logged tells which step it waited on.
	defer func() {
		if !t.Failed() {
			return
		}
		stderrMu.Lock()
		t.Logf("relay stderr:\n%s", strings.Join(stderrLines, "\n"))
		stderrMu.Unlock()
		if b, err := os.ReadFile(filepath.Join(dir, "relay.log")); err == nil {
			t.Logf("relay log:\n%s", b)
		}
	}()
	select {
	case l, ok := <-waiting:
		if !ok {
			t.Fatalf("the relay ended without saying it waits for JetStream: %v", <-done)
		}
		t.Logf("stderr: %s", l)
	case err := <-done:
		t.Fatalf("the relay ended without a JetStream quorum: %v", err)
	}
	// Both back: with one of three still down the quorum is there, but a new stream of
	// three replicas (--init makes them) is placed only while NATS has not yet marked
	// the third server offline — under load it had, and the relay waited on "no
	// suitable peers for placement" for good (as it should: it said so on stderr).
	nc.Restart(1)
	nc.Restart(2)
	// How long the two servers take to elect a leader is NATS's Raft (4–9 s rounds,
	// more than one when the server that stayed has campaigned alone); what is the
	// relay's is to start soon after: it tries every 2 s, and a try that began before
	// the election may run out its 30 s first (its requests dropped by a server that
	// was not serving yet: seen once in CI, the relay silent 35 s after the election).
	back := time.Now()
	nc.WaitLeader()
	t.Logf("JetStream leader %v after the restart", time.Since(back).Round(time.Millisecond))
	select {
	case ok := <-started:
		if !ok {
			t.Fatalf("the relay did not start once the quorum was back: %v", <-done)
		}
	case <-time.After(45 * time.Second): // one try's 30 s, the 2 s pause, the next try
		t.Fatal("the relay did not start within 45 s of JetStream's leader election")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("relay: %v", err)
	}
}

// A send to a relay node whose JetStream is gone is kept in the outbox (exit 3), and
// the command says the relay answered and refused for now — not that it is
// unreachable, which would send its operator looking for a relay that runs.
func TestSendToANodeWithoutItsStoreSaysItAnswers(t *testing.T) {
	ns := natstest.Single(t)
	keyFile := filepath.Join(t.TempDir(), "cluster.key")
	if err := cli.RunRelay(t.Context(), []string{"new-cluster-key", keyFile}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	r := startRelayCmd(t, "--nats", ns.URL(), "--nats-replicas", "1", "--relay-key-file", keyFile, "--init")
	defer r.stop(t)
	alice, bob := chattest.NewUserAt(t, r.url, "alice"), chattest.NewUserAt(t, r.url, "bob")
	chattest.Converse(t, alice, bob)
	bob.Close()

	ns.Stop()
	t.Setenv(profile.EnvPassphrase, string(chattest.Passphrase))
	var out, errb bytes.Buffer
	code := cli.Main(t.Context(), []string{"--home", bob.Profile.Dir, "--relay", r.url, "send", "--wait", "3s", "alice", "while the store is down"},
		strings.NewReader(""), &out, &errb)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (kept in the outbox); stderr %q", code, errb.String())
	}
	if said := errb.String(); strings.Contains(said, "unreachable") || !strings.Contains(said, "answers") {
		t.Fatalf("the command said %q; want that the relay answers but refuses for now", said)
	}
}
