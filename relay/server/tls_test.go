package server_test

// Real TLS over loopback with a CA made in the test: the wss:// path, and the men in
// the middle protocol 2 stops.

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// TestTLSRoundTrip: register, login, send, receive over wss://, the logins bound to
// the TLS exporter.
func TestTLSRoundTrip(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{TLS: true})
	if !strings.HasPrefix(r.URL, "wss://") {
		t.Fatalf("URL %s", r.URL)
	}
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)
	if got := alice.c.ChannelBinding(); got != relay.BindingTLSExporter {
		t.Fatalf("channel binding %q, want tls-exporter", got)
	}
	id, err := alice.c.Send(ctx, "bob", []byte("over TLS"), "tls-1")
	if err != nil {
		t.Fatal(err)
	}
	m := nextMessage(t, bob.c)
	if m.ID != id || string(m.Body) != "over TLS" || m.From != "alice" {
		t.Fatalf("bob got %+v", m)
	}
	if err := bob.c.Ack(ctx, m.ID); err != nil {
		t.Fatal(err)
	}

	// Without the test CA in its pool, the client refuses the relay's certificate.
	stranger := client.New(client.Config{URL: r.URL})
	defer stranger.Close()
	if err := stranger.Connect(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connect without the CA: %v, want a certificate error", err)
	}
	// TLS 1.2 is refused by the relay.
	cfg := r.CA.ClientTLS()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	d := websocket.Dialer{TLSClientConfig: cfg}
	if _, _, err := d.Dial(withNonce(r.URL), nil); err == nil {
		t.Fatal("the relay accepted TLS 1.2")
	}
}

// TestTLSTerminatedUpstream: behind a TLS-terminating proxy the relay binds to zeros
// and says so in its hello; clients still log in.
func TestTLSTerminatedUpstream(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{TLSTerminatedUpstream: true})
	alice := newUser(t, r, "alice")
	if got := alice.c.ChannelBinding(); got != relay.BindingTLSTerminatedUpstream {
		t.Fatalf("channel binding %q", got)
	}
	rc := dialRaw(t, r)
	if rc.hello.ChannelBinding != relay.BindingTLSTerminatedUpstream {
		t.Fatalf("hello says %q", rc.hello.ChannelBinding)
	}
}

// wsEndpoint serves one WebSocket handler over TLS with a certificate from ca.
func wsEndpoint(t *testing.T, ca *relaytest.CA, h func(ws *websocket.Conn, r *http.Request)) string {
	t.Helper()
	up := websocket.Upgrader{}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		h(ws, r)
	}))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.TLS = ca.ServerTLS(t)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return "wss://" + hs.Listener.Addr().String() + relay.WSPath
}

// TestMITMImpostorReplaysHello: an impostor names the pinned key and replays a hello
// the real relay signed for another client's nonce. The client refuses it before it
// sends anything: the impostor reads no frame at all.
func TestMITMImpostorReplaysHello(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{TLS: true})
	alice := register(t, r, "alice")
	captured := dialRaw(t, r) // someone else's connection: its hello, its nonce
	replay := relay.EncodeFrame(&captured.hello)

	sessions := make(chan []string, 4) // per connection: the frames the client sent
	url := wsEndpoint(t, r.CA, func(ws *websocket.Conn, _ *http.Request) {
		var got []string
		defer func() { sessions <- got }()
		ws.WriteMessage(websocket.TextMessage, replay)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return // the client closed the connection
			}
			got = append(got, string(data))
		}
	})
	c := client.New(client.Config{URL: url, RootCAs: r.CA.Pool, Identity: alice.key, Card: alice.card, PinnedRelayKey: r.Server.RelayKey()})
	defer c.Close()
	err := c.Connect(testCtx(t))
	if !errorsIs(err, client.ErrRelayProof) {
		t.Fatalf("connect to the impostor: %v, want ErrRelayProof", err)
	}
	if got := <-sessions; len(got) != 0 {
		t.Fatalf("the client sent %d frames to the impostor: %q", len(got), got)
	}
	// Run gives up at once: retrying cannot fix an impostor.
	if err := c.Run(testCtx(t)); !errorsIs(err, client.ErrRelayProof) {
		t.Fatalf("Run: %v", err)
	}
	if got := <-sessions; len(got) != 0 {
		t.Fatalf("Run sent %d frames to the impostor: %q", len(got), got)
	}
}

// interceptor terminates TLS with its own certificate (from a CA the client trusts)
// and forwards every frame to the real relay over a second TLS connection, passing the
// client's nonce through. It counts the frames it forwards to the relay.
type interceptor struct {
	url     string
	mu      sync.Mutex
	toRelay []string
}

func newInterceptor(t *testing.T, r *relaytest.Relay, ca *relaytest.CA) *interceptor {
	ic := &interceptor{}
	ic.url = wsEndpoint(t, ca, func(down *websocket.Conn, req *http.Request) {
		d := websocket.Dialer{TLSClientConfig: r.CA.ClientTLS()}
		up, _, err := d.Dial(r.URL+"?"+req.URL.RawQuery, nil)
		if err != nil {
			t.Errorf("interceptor: dialing the relay: %v", err)
			return
		}
		defer up.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				mt, data, err := up.ReadMessage()
				if err != nil {
					down.Close()
					return
				}
				down.WriteMessage(mt, data)
			}
		}()
		for {
			mt, data, err := down.ReadMessage()
			if err != nil {
				up.Close()
				break
			}
			ic.mu.Lock()
			ic.toRelay = append(ic.toRelay, string(data))
			ic.mu.Unlock()
			up.WriteMessage(mt, data)
		}
		<-done
	})
	return ic
}

// TestMITMTerminatingProxy: a proxy with a trusted certificate of its own, forwarding
// to the real relay, cannot get a client through: the client refuses the relay's
// hello (signed over the other TLS connection's exporter), and a login signed over
// the client's side of the proxy fails at the relay (login_failed).
func TestMITMTerminatingProxy(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{TLS: true})
	alice := register(t, r, "alice")
	ic := newInterceptor(t, r, r.CA) // the client trusts the proxy's certificate

	c := client.New(client.Config{URL: ic.url, RootCAs: r.CA.Pool, Identity: alice.key, Card: alice.card, PinnedRelayKey: r.Server.RelayKey()})
	defer c.Close()
	if err := c.Connect(testCtx(t)); !errorsIs(err, client.ErrRelayProof) {
		t.Fatalf("connect through the interceptor: %v, want ErrRelayProof", err)
	}
	ic.mu.Lock()
	if len(ic.toRelay) != 0 {
		t.Fatalf("the client sent frames through the interceptor: %q", ic.toRelay)
	}
	ic.mu.Unlock()

	// A client that skipped the hello check and signed its login over its own TLS
	// connection (the one to the proxy) is refused by the relay.
	rc := dialRawURL(t, ic.url, r.CA.Pool)
	expectErr(t, rc.login(alice), relay.CodeLoginFailed)
	// So is one that signs with no binding at all.
	rc.binding = make([]byte, relay.BindingSize)
	expectErr(t, rc.request(map[string]any{"type": "login", "id": 2, "card_id": alice.card.ID(), "signature": rc.loginSignature(alice)}), relay.CodeLoginFailed)
}

// TestCapturedLoginFailsElsewhere: a login frame captured from one connection (TLS or
// not) logs in on no other connection.
func TestCapturedLoginFailsElsewhere(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		r := relaytest.StartWith(t, relaytest.Options{TLS: useTLS})
		alice := register(t, r, "alice")
		victim := dialRaw(t, r)
		login := map[string]any{"type": "login", "id": 1, "card_id": alice.card.ID(), "signature": victim.loginSignature(alice)}
		if f := victim.request(login); f.Type != relay.TypeOK {
			t.Fatalf("tls=%v: the victim's own login: %+v", useTLS, f)
		}
		attacker := dialRaw(t, r)
		expectErr(t, attacker.request(login), relay.CodeLoginFailed)
	}
}
