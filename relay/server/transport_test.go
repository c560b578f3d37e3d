package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// TestV1ClientGetsUpgradeError: a protocol-1 client at /v1/ws reads one error frame
// unsupported_version saying to upgrade, then a close frame.
func TestV1ClientGetsUpgradeError(t *testing.T) { eachStore(t, testV1ClientGetsUpgradeError) }

func testV1ClientGetsUpgradeError(t *testing.T, bk store) {
	r := bk.Start(t)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.Addr+relay.V1WSPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := relay.DecodeServerFrame(data)
	if err != nil || f.Type != relay.TypeError || f.Code != relay.CodeUnsupportedVersion {
		t.Fatalf("first frame %s (%v), want error unsupported_version", data, err)
	}
	if want := "upgrade pfschat"; !contains(f.Message, want) {
		t.Fatalf("message %q does not say %q", f.Message, want)
	}
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("after the error: %v, want a close frame 1008", err)
	}
}

// TestMissingNonceRefused: a connection without a nonce gets bad_field and a close.
func TestMissingNonceRefused(t *testing.T) { eachStore(t, testMissingNonceRefused) }

func testMissingNonceRefused(t *testing.T, bk store) {
	r := bk.Start(t)
	for _, q := range []string{"", "?nonce=", "?nonce=AAAA", "?nonce=" + relay.EncodeNonce(make([]byte, 31))} {
		ws, _, err := websocket.DefaultDialer.Dial(r.URL+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := relay.DecodeServerFrame(data); f.Type != relay.TypeError || f.Code != relay.CodeBadField {
			t.Fatalf("%q: first frame %s, want error bad_field", q, data)
		}
		if _, _, err = ws.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Fatalf("%q: %v, want a close frame 1008", q, err)
		}
		ws.Close()
	}
}

// TestV1ClientAgainstV2URL: the v2 client names the v1 error clearly.
func TestClientAtV1PathGetsUpgradeError(t *testing.T) {
	eachStore(t, testClientAtV1PathGetsUpgradeError)
}

func testClientAtV1PathGetsUpgradeError(t *testing.T, bk store) {
	r := bk.Start(t)
	c := client.New(client.Config{URL: "ws://" + r.Addr + relay.V1WSPath})
	defer c.Close()
	err := c.Connect(testCtx(t))
	if !errorsIs(err, client.ErrUnsupportedVersion) || !contains(err.Error(), "upgrade pfschat") {
		t.Fatalf("connect at /v1/ws: %v", err)
	}
}

// TestLogoutAll: logout_all closes every other connection of the name with
// logged_out (their Run stops), and keeps the caller's.
func TestLogoutAll(t *testing.T) { eachStore(t, testLogoutAll) }

func testLogoutAll(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	keep := alice.c
	other1 := alice.login(t, r)
	other2 := alice.login(t, r)
	runErr := make(chan error, 2)
	go func() { runErr <- other1.Run(context.Background()) }()
	go func() { runErr <- other2.Run(context.Background()) }()

	if err := keep.LogoutAll(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-runErr:
			if !errorsIs(err, &relay.ProtocolError{Code: relay.CodeLoggedOut}) {
				t.Fatalf("Run of a logged-out client ended with %v, want logged_out", err)
			}
		case <-time.After(waitFor):
			t.Fatal("Run of a logged-out client kept running")
		}
	}
	if err := other2.Ping(ctx); err == nil {
		t.Fatal("a logged-out connection still answers")
	}
	// The caller keeps working, and so does everyone else.
	if _, err := bob.c.Send(ctx, "alice", []byte("still here"), "lo-1"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, keep); string(m.Body) != "still here" {
		t.Fatalf("got %q", m.Body)
	}
	if m := r.Get(t, "/metrics"); !contains(m, `pfschat_relay_errors_total{code="logged_out"} 2`) {
		t.Fatalf("metrics do not count two logged_out:\n%s", grepLines(m, "logged_out"))
	}
}

// BenchmarkLogin is the cost of one login: the client's Ed25519 signature and the
// relay's verification (with its card lookup), as a login round trip does them minus
// the network: why protocol 2 has no resume tokens.
func BenchmarkLogin(b *testing.B) {
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	relayPub, _, _ := ed25519.GenerateKey(rand.Reader)
	challenge, binding := make([]byte, 32), make([]byte, 32)
	rand.Read(challenge)
	rand.Read(binding)
	pub := k.SigningPublicKey()
	b.Run("sign+verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sig := k.Sign(relay.LoginDomain, relay.LoginMessage(relayPub, challenge, binding))
			if err := ratchet.VerifySignature(pub, relay.LoginDomain, relay.LoginMessage(relayPub, challenge, binding), sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The relay's hello proof, once per connection.
	relayPub2, relayPriv, _ := ed25519.GenerateKey(rand.Reader)
	nonce := make([]byte, 32)
	b.Run("hello-sign+verify", func(b *testing.B) {
		for b.Loop() {
			if !relay.VerifyHello(relayPub2, nonce, challenge, binding, relay.SignHello(relayPriv, nonce, challenge, binding)) {
				b.Fatal("hello")
			}
		}
	})
}

// BenchmarkLoginRoundTrip is a whole connection start over loopback: dial with a nonce,
// verify the relay's hello, log in, synced.
func BenchmarkLoginRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"ws", false}, {"wss", true}} {
		b.Run(tc.name, func(b *testing.B) {
			r := relaytest.StartWith(b, relaytest.Options{TLS: tc.tls})
			u, err := relaytest.NewLoadUser("bench")
			if err != nil {
				b.Fatal(err)
			}
			reg, err := relaytest.DialLoadTLS(b.Context(), r.URL, clientTLS(r))
			if err != nil {
				b.Fatal(err)
			}
			if err := reg.Register(u); err != nil {
				b.Fatal(err)
			}
			reg.Close()
			for b.Loop() {
				c, err := relaytest.DialLoadTLS(b.Context(), r.URL, clientTLS(r))
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Login(u); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// TestRunAfterLogoutAll: a connection made by Connect and logged out by logout_all
// before Run began still stops Run with logged_out; Run used to find no connection and
// log in again, and a test waiting for it hung.
func TestRunAfterLogoutAll(t *testing.T) { eachStore(t, testRunAfterLogoutAll) }

func testRunAfterLogoutAll(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	keep := alice.c
	other := alice.login(t, r)
	if err := keep.LogoutAll(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait until other's connection has ended (its read loop has let it go).
	for {
		err := other.Ping(ctx)
		if errorsIs(err, client.ErrNotConnected) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the logged-out connection never ended")
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if err := other.Run(runCtx); !errorsIs(err, &relay.ProtocolError{Code: relay.CodeLoggedOut}) {
		t.Fatalf("Run after the connection was logged out: %v, want logged_out", err)
	}
}

// TestLogoutAllRightAfterLogin: a connection whose login was just answered is already
// one logout_all reaches. The relay used to answer the login before subscribing the
// connection to its name's notices, so a logout_all sent in that gap missed it.
func TestLogoutAllRightAfterLogin(t *testing.T) { eachStore(t, testLogoutAllRightAfterLogin) }

func testLogoutAllRightAfterLogin(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	keep := alice.c
	answered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	r.Server.SetTestHookLoggedIn(func() {
		once.Do(func() { // the next login: hold its reader right after the answer
			close(answered)
			<-release
		})
	})
	other := client.New(client.Config{URL: r.URL, Identity: alice.key, Card: alice.card, PinnedRelayKey: r.Server.RelayKey()})
	t.Cleanup(func() { other.Close() })
	connected := make(chan error, 1)
	go func() { connected <- other.Connect(ctx) }()
	select {
	case <-answered:
	case <-time.After(waitFor):
		t.Fatal("the second login was never answered")
	}
	// The client has its answer (the relay's writer sent it) while the relay's reader
	// of that connection is still held right after answering.
	if err := <-connected; err != nil {
		t.Fatal(err)
	}
	if err := keep.LogoutAll(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	runCtx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if err := other.Run(runCtx); !errorsIs(err, &relay.ProtocolError{Code: relay.CodeLoggedOut}) {
		t.Fatalf("Run of the connection logged in just before logout_all: %v, want logged_out", err)
	}
}
