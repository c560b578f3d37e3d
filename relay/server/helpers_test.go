package server_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

const waitFor = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// user is a registered identity with a logged-in client.
type user struct {
	name string
	key  *ratchet.IdentityKey
	card *ratchet.Card // relay-signed
	c    *client.Client
}

func newIdentity(t testing.TB, name string) (*ratchet.IdentityKey, *ratchet.Card) {
	t.Helper()
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ratchet.NewCard(k, name, "username", "test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, card
}

// register creates an identity and registers it through an anonymous client.
func register(t testing.TB, r *relaytest.Relay, name string) *user {
	t.Helper()
	k, card := newIdentity(t, name)
	anon := client.New(client.Config{URL: r.URL, RootCAs: r.RootCAs()})
	defer anon.Close()
	ctx := testCtx(t)
	if err := anon.Connect(ctx); err != nil {
		t.Fatalf("anonymous connect: %v", err)
	}
	signed, err := anon.Register(ctx, card)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return &user{name: name, key: k, card: signed}
}

// login connects a logged-in client for u (closed at cleanup).
func (u *user) login(t testing.TB, r *relaytest.Relay) *client.Client {
	t.Helper()
	c := client.New(client.Config{URL: r.URL, Identity: u.key, Card: u.card, PinnedRelayKey: r.Server.RelayKey(), RootCAs: r.RootCAs()})
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("login %s: %v", u.name, err)
	}
	u.c = c
	return c
}

func newUser(t testing.TB, r *relaytest.Relay, name string) *user {
	u := register(t, r, name)
	u.login(t, r)
	return u
}

// nextMessage waits for the next delivered message, skipping other pushes.
func nextMessage(t testing.TB, c *client.Client) *client.Incoming {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		p, err := c.Pushes().Wait(ctx)
		if err != nil {
			t.Fatalf("no message within the timeout%s: %v", connEnded(c), err)
		}
		if p.Message != nil {
			return p.Message
		}
	}
}

// connEnded says, for a failure message, whether c's connection had ended: a client
// that is not kept up by Run does not reconnect, so one the relay closed (as it does
// when it cannot read the connection's queue) waits out the timeout with nothing to
// come, which is not the same failure as a relay that holds back what it has.
func connEnded(c *client.Client) string {
	select {
	case <-c.Online():
		return ""
	default:
		return " (the connection had ended: the relay closed it or it broke)"
	}
}

// waitSynced waits for the end-of-backlog push, failing on any message before it.
func waitSynced(t testing.TB, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		p, err := c.Pushes().Wait(ctx)
		if err != nil {
			t.Fatalf("no synced push within the timeout%s: %v", connEnded(c), err)
		}
		if p.Message != nil {
			t.Fatalf("unexpected message %d before synced", p.Message.ID)
		}
		if p.Synced {
			return
		}
	}
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	var pe *relay.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("want error frame %q, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("want error frame %q, got %q (%s)", code, pe.Code, pe.Message)
	}
}

// raw is a bare WebSocket connection speaking frames by hand.
type raw struct {
	t       testing.TB
	ws      *websocket.Conn
	hello   relay.Frame
	nonce   []byte
	binding []byte // this connection's channel binding (TLS exporter or zeros)
	last    []byte // the last frame read, as sent
}

// dialRaw connects with a fresh nonce, reads the hello and checks its signature.
func dialRaw(t testing.TB, r *relaytest.Relay) *raw {
	t.Helper()
	return dialRawURL(t, r.URL, r.RootCAs())
}

func dialRawURL(t testing.TB, url string, roots *x509.CertPool) *raw {
	t.Helper()
	nonce := make([]byte, relay.NonceSize)
	rand.Read(nonce)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}}
	ws, _, err := d.Dial(url+"?"+relay.NonceParam+"="+relay.EncodeNonce(nonce), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	rc := &raw{t: t, ws: ws, nonce: nonce, binding: make([]byte, relay.BindingSize)}
	if tc, ok := ws.NetConn().(*tls.Conn); ok {
		cs := tc.ConnectionState()
		if rc.binding, err = relay.TLSExporter(&cs); err != nil {
			t.Fatal(err)
		}
	}
	rc.hello = rc.read()
	if rc.hello.Type != relay.TypeHello {
		t.Fatalf("first frame is %q, want hello", rc.hello.Type)
	}
	return rc
}

func (rc *raw) sendJSON(v any) {
	rc.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.sendText(b)
}

func (rc *raw) sendText(b []byte) {
	rc.t.Helper()
	if err := rc.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *raw) sendBinary(b []byte) {
	rc.t.Helper()
	if err := rc.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *raw) read() relay.Frame {
	rc.t.Helper()
	rc.ws.SetReadDeadline(time.Now().Add(waitFor))
	_, data, err := rc.ws.ReadMessage()
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	rc.last = data
	var f relay.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		rc.t.Fatalf("relay sent undecodable frame %q: %v", data, err)
	}
	return f
}

// answer reads frames until the one answering id (skipping pushes).
func (rc *raw) answer(id uint64) relay.Frame {
	rc.t.Helper()
	for {
		f := rc.read()
		if f.ID == id {
			return f
		}
	}
}

// request sends a frame and returns its answer.
func (rc *raw) request(f map[string]any) relay.Frame {
	rc.t.Helper()
	rc.sendJSON(f)
	id, _ := f["id"].(int)
	return rc.answer(uint64(id))
}

// registerLoggedIn registers name and logs it in on a raw connection.
func registerLoggedIn(t testing.TB, r *relaytest.Relay, name string) (*user, *raw) {
	t.Helper()
	u := register(t, r, name)
	rc := dialRaw(t, r)
	if f := rc.login(u); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	return u, rc
}

func (rc *raw) login(u *user) relay.Frame {
	return rc.request(map[string]any{"type": "login", "id": 1, "card_id": u.card.ID(), "signature": rc.loginSignature(u)})
}

// loginSignature is u's key proof for this connection.
func (rc *raw) loginSignature(u *user) []byte {
	return u.key.Sign(relay.LoginDomain, relay.LoginMessage(rc.hello.RelayKey, rc.hello.Challenge, rc.binding))
}

func expectErr(t testing.TB, f relay.Frame, code string) {
	t.Helper()
	if f.Type != relay.TypeError || f.Code != code {
		t.Fatalf("want error %q, got %s", code, fmt.Sprintf("%+v", f))
	}
}

func errorsIs(err, target error) bool     { return errors.Is(err, target) }
func errorsAs(err error, target any) bool { return errors.As(err, target) }

// withNonce adds a fresh nonce to a relay URL, as clients do.
func withNonce(url string) string {
	nonce := make([]byte, relay.NonceSize)
	rand.Read(nonce)
	return url + "?" + relay.NonceParam + "=" + relay.EncodeNonce(nonce)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// grepLines is the lines of s that contain sub, for failure messages.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// clientTLS trusts the test relay's CA (nil without TLS).
func clientTLS(r *relaytest.Relay) *tls.Config {
	if r.CA == nil {
		return nil
	}
	return r.CA.ClientTLS()
}

// deleteAccountFrame is u's delete_account request with id, signed for relay r now.
func deleteAccountFrame(r *relaytest.Relay, u *user, id int) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"type": "delete_account", "id": id, "card_id": u.card.ID(), "time": now,
		"signature": u.key.Sign(relay.DeleteAccountDomain, relay.DeleteAccountMessage(r.Server.RelayKey(), u.card.ID(), now))}
}
