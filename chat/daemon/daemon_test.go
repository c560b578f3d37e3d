package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// owned is bob's profile held by a daemon server in this process, serving its socket.
type owned struct {
	bob  *chattest.User
	srv  *daemon.Server
	hub  *daemon.Hub
	sock string
}

// watchedOwner is alice and bob after a conversation, bob's owner on a real relay, a
// client of it, and a second client subscribed to its notifications.
func watchedOwner(t *testing.T) (r *relaytest.Relay, alice, bob *chattest.User, o *owned, cl, watcher *daemon.Client) {
	t.Helper()
	r = relaytest.Start(t)
	alice, bob = chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o = startOwner(t, r, bob)
	cl, watcher = dial(t, o.sock), dial(t, o.sock)
	if err := watcher.Call(t.Context(), "subscribe", nil, new(daemon.SubscribeResult)); err != nil {
		t.Fatal(err)
	}
	return r, alice, bob, o, cl, watcher
}

func startOwner(t *testing.T, r *relaytest.Relay, u *chattest.User) *owned {
	t.Helper()
	hub := daemon.NewHub(u.Controller.Events())
	srv := daemon.New(daemon.Config{Controller: u.Controller, Hub: hub, Owner: profile.OwnerDaemon, Version: "test", ReadReceipts: true})
	sock, err := daemon.SocketPath(u.Profile.Dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := daemon.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &owned{bob: u, srv: srv, hub: hub, sock: sock}
}

func dial(t *testing.T, sock string) *daemon.Client {
	t.Helper()
	cl, err := daemon.Dial(t.Context(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// nextMessage waits for the next "message" notification.
func nextMessage(t *testing.T, cl *daemon.Client) daemon.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		n, err := cl.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a message notification: %v", err)
		}
		if n.Method != daemon.NotifyMessage {
			continue
		}
		var ev daemon.Event
		if err := json.Unmarshal(n.Params, &ev); err != nil || ev.Message == nil {
			t.Fatalf("bad message notification %s: %v", n.Params, err)
		}
		return *ev.Message
	}
}

// Over the socket: send answers with the committed message's id (accepted once the
// relay holds it); two subscribers both get the unread backlog and then every new
// message, with the store's ids; markRead by one is the read state of both (a new
// subscription starts after it).
func TestSocketSendSubscribeSharedReadState(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	early := chattest.Send(t, alice, bob, "before anyone subscribed")
	_ = early
	o := startOwner(t, r, bob)

	c1, c2 := dial(t, o.sock), dial(t, o.sock)
	var sr daemon.SubscribeResult
	for _, c := range []*daemon.Client{c1, c2} {
		if err := c.Call(t.Context(), "subscribe", nil, &sr); err != nil {
			t.Fatal(err)
		}
	}
	// the backlog: bob never marked "hi" or the early message read
	var backlog1, backlog2 []string
	for range 2 {
		backlog1 = append(backlog1, nextMessage(t, c1).Text)
		backlog2 = append(backlog2, nextMessage(t, c2).Text)
	}
	if fmt.Sprint(backlog1) != fmt.Sprint(backlog2) || backlog1[1] != "before anyone subscribed" {
		t.Fatalf("backlogs %q and %q", backlog1, backlog2)
	}
	if _, err := alice.Send(t.Context(), "bob", "live"); err != nil {
		t.Fatal(err)
	}
	m1, m2 := nextMessage(t, c1), nextMessage(t, c2)
	if m1.Text != "live" || m1 != m2 || m1.ID == 0 || m1.Contact != "alice" {
		t.Fatalf("live message: %+v and %+v", m1, m2)
	}
	if err := c1.Call(t.Context(), "markRead", daemon.MarkReadParams{Contact: "alice", Through: m1.ID}, nil); err != nil {
		t.Fatal(err)
	}
	var rr daemon.ReceiveResult
	if err := c2.Call(t.Context(), "receive", nil, &rr); err != nil {
		t.Fatal(err)
	}
	if len(rr.Messages) != 0 {
		t.Fatalf("after markRead through %d, receive still returns %d unread", m1.ID, len(rr.Messages))
	}

	// send through the owner: accepted by the relay, received by alice with that text
	var res daemon.SendResult
	if err := c2.Call(t.Context(), "send", daemon.SendParams{To: "alice", Text: "from the daemon", WaitMs: 10000}, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != "accepted" || res.ID == 0 {
		t.Fatalf("send result %+v", res)
	}
	chattest.WaitReceived(t, alice, "bob", "from the daemon")
	// without waitMs: answered once committed
	if err := c2.Call(t.Context(), "send", daemon.SendParams{To: "alice", Text: "no wait"}, &res); err != nil || res.State != "queued" {
		t.Fatalf("send without wait: %+v, %v", res, err)
	}
	chattest.WaitReceived(t, alice, "bob", "no wait")
	// an unknown contact is a stable error code naming the contact
	err := c2.Call(t.Context(), "send", daemon.SendParams{To: "carol", Text: "x"}, nil)
	var re *daemon.Error
	if !errors.As(err, &re) || re.Code != daemon.CodeUnknownContact || re.Data.Contact != "carol" || re.Data.Name != "unknown_contact" {
		t.Fatalf("send to a stranger: %#v", err)
	}
	if !errors.Is(daemon.ChatError(err), chat.ErrUnknownContact) {
		t.Fatalf("ChatError(%v) is not chat.ErrUnknownContact", err)
	}
}

// Bad input on the socket gets a JSON-RPC error with the request's id where it could be
// read, and the connection and the daemon stay up.
func TestSocketBadRequestsKeepTheConnection(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	o := startOwner(t, r, bob)
	nc, rd := rawSocket(t, o)
	for _, tc := range []struct {
		line string
		code int
		id   string
	}{
		{`{"jsonrpc":"2.0","method":"version"`, daemon.CodeParseError, "null"},
		{`not json at all`, daemon.CodeParseError, "null"},
		{`[{"jsonrpc":"2.0","method":"version","id":1}]`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"1.0","method":"version","id":7}`, daemon.CodeInvalidRequest, "7"},
		{`{"jsonrpc":"2.0","id":"x"}`, daemon.CodeInvalidRequest, `"x"`},
		// a member of the wrong type leaves the id readable: it is answered with it
		{`{"jsonrpc":2,"method":"version","id":9}`, daemon.CodeInvalidRequest, "9"},
		{`{"jsonrpc":"2.0","method":5,"id":"m"}`, daemon.CodeInvalidRequest, `"m"`},
		{`{"jsonrpc":2,"method":"version","id":9,"extra":1}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"version","id":{"a":1}}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"version","id":2,"extra":1}`, daemon.CodeInvalidRequest, "null"},
		// Member names are exact and appear once (encoding/json alone folds case and
		// takes the last copy).
		{`{"jsonrpc":"2.0","Method":"version","id":2}`, daemon.CodeInvalidRequest, "null"},
		{`{"JSONRPC":"2.0","method":"version","id":2}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"version","ID":2}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"version","Params":{},"id":2}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"nope","method":"version","id":2}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"version","id":2,"id":3}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"noSuchMethod","id":3}`, daemon.CodeMethodNotFound, "3"},
		// any JSON number is an id, also one beyond a float64: it is echoed as sent
		{`{"jsonrpc":"2.0","method":"noSuchMethod","id":1e400}`, daemon.CodeMethodNotFound, "1e400"},
		{`{"jsonrpc":"2.0","method":"version","id":true}`, daemon.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"2.0","method":"send","params":[1,2],"id":4}`, daemon.CodeInvalidParams, "4"},
		{`{"jsonrpc":"2.0","method":"send","params":{"to":"x","bogus":1},"id":5}`, daemon.CodeInvalidParams, "5"},
		{`{"jsonrpc":"2.0","method":"verify","params":{},"id":6}`, daemon.CodeInvalidParams, "6"},
		// the owner's own name is no contact to add (it was internal_error)
		{`{"jsonrpc":"2.0","method":"addContact","params":{"name":"bob"},"id":7}`, daemon.CodeInvalidParams, "7"},
	} {
		if _, err := io.WriteString(nc, tc.line+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s: connection closed: %v", tc.line, err)
		}
		var resp struct {
			JSONRPC string          `json:"jsonrpc"`
			Error   *daemon.Error   `json:"error"`
			ID      json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(line, &resp); err != nil || resp.Error == nil || resp.JSONRPC != "2.0" {
			t.Fatalf("%s: answer %s (%v)", tc.line, line, err)
		}
		if resp.Error.Code != tc.code || string(resp.ID) != tc.id || resp.Error.Data == nil || resp.Error.Data.Name == "" {
			t.Errorf("%s: answer %s; want code %d id %s", tc.line, line, tc.code, tc.id)
		}
	}
	// The words of an error: a member named as the API names it, not as Go does; a
	// missing subscription named as missing; a request that is not UTF-8 refused, not
	// read with U+FFFD in place of its bytes.
	for req, want := range map[string]string{
		`{"jsonrpc":"2.0","method":"send","params":{"to":"x","text":"e","waitMs":10.0},"id":11}`:                `invalid params: \"waitMs\" must be an integer (no fraction or exponent), not number 10.0`,
		`{"jsonrpc":"2.0","method":"unsubscribe","params":{},"id":12}`:                                          `\"subscription\" is required`,
		`{"jsonrpc":"2.0","method":"markRead","params":{"contact":"x","through":99999999999999999999},"id":14}`: `invalid params: \"through\" must be an integer from -9223372036854775808 to 9223372036854775807, not number 99999999999999999999`,
		`{"jsonrpc":"2.0","method":"version","params":{"x":1},"id":15}`:                                         `invalid params: unknown member \"x\": not one this method takes`,
		`{"jsonrpc":2,"method":"version","id":16}`:                                                              `malformed request: \"jsonrpc\" must be a string, not number`,
		"{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"x\",\"text\":\"\xff\xfe\"},\"id\":13}":   "the request is not valid UTF-8",
	} {
		io.WriteString(nc, req+"\n")
		line, err := rd.ReadBytes('\n')
		if err != nil || !strings.Contains(string(line), want) || strings.Contains(string(line), "Go struct") {
			t.Errorf("%q: answer %s (%v), want %q", req, line, err, want)
		}
	}
	// A notification (no id) is run and not answered, nor is one whose params a method
	// refuses (params that are not an object were answered, with "id":null); the next
	// request still is.
	io.WriteString(nc, `{"jsonrpc":"2.0","method":"version"}`+"\n"+`{"jsonrpc":"2.0","method":"contacts","params":[]}`+"\n"+
		`{"jsonrpc":"2.0","method":"contacts","params":{"x":1}}`+"\n"+`{"jsonrpc":"2.0","method":"version","id":"v"}`+"\n")
	line, err := rd.ReadBytes('\n')
	if err != nil || !strings.Contains(string(line), `"id":"v"`) || !strings.Contains(string(line), `"me":"bob"`) {
		t.Fatalf("after the errors: %s, %v", line, err)
	}
	// a line over the limit closes that connection only
	nc.Write([]byte(strings.Repeat("x", daemon.MaxRequestBytes+10) + "\n"))
	line, _ = rd.ReadBytes('\n')
	if !strings.Contains(string(line), fmt.Sprint(daemon.CodeInvalidRequest)) {
		t.Fatalf("oversized line: %s", line)
	}
	var v daemon.VersionResult
	if err := dial(t, o.sock).Call(t.Context(), "version", nil, &v); err != nil || v.Me != "bob" || v.API != daemon.APIVersion {
		t.Fatalf("the daemon after bad input: %+v, %v", v, err)
	}
}

// The HTTP API: without the secret, with a wrong one, with a foreign Host or with any
// Origin the request is refused before anything runs; with them, rpc answers and the
// event stream pushes the backlog and new messages as SSE.
func TestHTTPAuthAndEvents(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	o := startOwner(t, r, bob)
	addr, secret := serveHTTP(t, o)
	base := "http://" + addr
	rpc := `{"jsonrpc":"2.0","method":"version","id":1}`
	do := func(method, path, body string, mod func(*http.Request)) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		if mod != nil {
			mod(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for name, tc := range map[string]struct {
		mod  func(*http.Request)
		want int
	}{
		"no secret":    {func(r *http.Request) { r.Header.Del("Authorization") }, http.StatusUnauthorized},
		"wrong secret": {func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret[:len(secret)-1]+"x") }, http.StatusUnauthorized},
		"foreign Host": {func(r *http.Request) { r.Host = "evil.example:80" }, http.StatusMisdirectedRequest},
		"an Origin":    {func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1") }, http.StatusForbidden},
	} {
		for _, path := range []string{"/api/v1/rpc", "/api/v1/events", "/api/v1/check"} {
			m := "GET"
			if path == "/api/v1/rpc" {
				m = "POST"
			}
			resp := do(m, path, rpc, tc.mod)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || strings.Contains(string(b), "bob") {
				t.Errorf("%s %s: %d %q, want %d and nothing about the profile", name, path, resp.StatusCode, b, tc.want)
			}
		}
	}
	resp := do("POST", "/api/v1/rpc", rpc, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"me":"bob"`) {
		t.Fatalf("rpc with the secret: %d %s", resp.StatusCode, b)
	}
	// The scheme's name and the host are case-insensitive (both were refused).
	for name, mod := range map[string]func(*http.Request){
		"bearer in lower case": func(r *http.Request) { r.Header.Set("Authorization", "bearer "+secret) },
		"the Host in capitals": func(r *http.Request) { r.Host = strings.ToUpper(r.Host) },
	} {
		resp := do("POST", "/api/v1/rpc", rpc, mod)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"me":"bob"`) {
			t.Errorf("rpc with %s: %d %s", name, resp.StatusCode, b)
		}
	}
	resp = do("POST", "/api/v1/rpc", `{"jsonrpc":"2.0","method":"subscribe","id":2}`, nil)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), fmt.Sprint(daemon.CodeNotOverHTTP)) {
		t.Fatalf("subscribe over POST: %s", b)
	}
	resp = do("GET", "/api/v1/check", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("check: %d", resp.StatusCode)
	}
	// events: the backlog ("hi") then a live message
	resp = do("GET", "/api/v1/events", "", nil)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	nextSSE := func() daemon.Message {
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var n daemon.Notification
			var ev daemon.Event
			if json.Unmarshal([]byte(data), &n) != nil || json.Unmarshal(n.Params, &ev) != nil {
				t.Fatalf("bad SSE data %q", data)
			}
			if n.Method == daemon.NotifyMessage {
				return *ev.Message
			}
		}
		t.Fatalf("event stream ended: %v", sc.Err())
		return daemon.Message{}
	}
	if m := nextSSE(); m.Text != "hi" {
		t.Fatalf("first SSE message %+v, want the unread \"hi\"", m)
	}
	if _, err := alice.Send(t.Context(), "bob", "over sse"); err != nil {
		t.Fatal(err)
	}
	if m := nextSSE(); m.Text != "over sse" || m.ID == 0 {
		t.Fatalf("live SSE message %+v", m)
	}
}

func TestSocketPathStaysShort(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	p, err := daemon.SocketPath(long)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > 103 || strings.HasPrefix(p, long) {
		t.Fatalf("socket path %q (%d bytes) for a long profile path", p, len(p))
	}
	if again, _ := daemon.SocketPath(long + "/"); again != p {
		t.Fatalf("the same profile gives %q and %q", p, again)
	}
	if daemon.SecretPath(p) == p || !strings.HasSuffix(daemon.SecretPath(p), ".http-secret") {
		t.Fatalf("secret path %q", daemon.SecretPath(p))
	}
	short, _ := daemon.SocketPath("/tmp/p")
	if short != "/tmp/p/pfschat.sock" || daemon.SecretPath(short) != "/tmp/p/pfschat.http-secret" {
		t.Fatalf("short profile: %q, %q", short, daemon.SecretPath(short))
	}
}

// rotateKeys through the owner, then oneTimeKeys reports what the relay holds: the real
// count `pfschat rotate-keys` prints through a daemon, as it does without one.
func TestSocketRotateKeysReportsRelayCount(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	o := startOwner(t, r, bob)
	c := dial(t, o.sock)
	if err := c.Call(t.Context(), "rotateKeys", daemon.RotateKeysParams{Count: 30}, nil); err != nil {
		t.Fatal(err)
	}
	var got daemon.OneTimeKeysResult
	if err := c.Call(t.Context(), "oneTimeKeys", nil, &got); err != nil {
		t.Fatal(err)
	}
	x, m, err := bob.OneTimeKeysOnRelay(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.X25519 != x || got.MLKEM != m || x < 30 {
		t.Fatalf("oneTimeKeys = %+v, the relay holds %d and %d (want at least 30)", got, x, m)
	}
}

// dropRelay loses the next `drop` sends after "accepting" them, as a relay that drops
// messages would.
type dropRelay struct {
	chat.RelayClient
	mu   sync.Mutex
	drop int
}

func (d *dropRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	d.mu.Lock()
	drop := d.drop > 0
	if drop {
		d.drop--
	}
	d.mu.Unlock()
	if drop {
		return 1 << 40, nil
	}
	return d.RelayClient.Send(ctx, to, body, clientID)
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// gaps over the socket: a message the relay lost shows as a hole in the sender's
// sequence a minute after a later one arrived (not before), for the contact named and
// for every contact; an unknown name is unknown_contact.
func TestSocketGaps(t *testing.T) {
	r := relaytest.Start(t)
	dr := &dropRelay{}
	alice := chattest.NewUser(t, r, "alice", func(p *chat.Profile) {
		p.Prefs.Dial = func(cfg client.Config) chat.RelayClient { dr.RelayClient = client.New(cfg); return dr }
	})
	clock := &testClock{now: time.Now().UTC()}
	bob := chattest.NewUser(t, r, "bob", func(p *chat.Profile) { p.Prefs.Clock = clock.Now })
	ctx := t.Context()
	if _, err := alice.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	chattest.Send(t, alice, bob, "one")
	dr.mu.Lock()
	dr.drop = 1
	dr.mu.Unlock()
	if _, err := alice.Send(ctx, "bob", "two, lost"); err != nil {
		t.Fatal(err)
	}
	chattest.Send(t, alice, bob, "three")
	hist, err := bob.History(ctx, "alice", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var threeID int64 // bob's store id of "three"
	for _, m := range hist {
		if m.Text == "three" {
			threeID = m.ID
		}
	}
	o := startOwner(t, r, bob)
	c := dial(t, o.sock)

	var got daemon.GapsResult
	if err := c.Call(ctx, "gaps", daemon.GapsParams{Name: "alice"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Gaps == nil || len(got.Gaps) != 0 {
		t.Fatalf("gaps before a minute passed: %+v, want an empty list", got)
	}
	clock.Add(chat.GapWait + time.Second)
	for _, p := range []daemon.GapsParams{{Name: "alice"}, {}} {
		got = daemon.GapsResult{}
		if err := c.Call(ctx, "gaps", p, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Gaps) != 1 {
			t.Fatalf("gaps %+v: %+v, want the lost message", p, got)
		}
		g := got.Gaps[0]
		if g.Contact != "alice" || g.From != 2 || g.To != 2 || g.Before != threeID || g.Since.IsZero() {
			t.Fatalf("gap %+v, want alice's 2..2 before message %d", g, threeID)
		}
	}
	// The wire form is the documented one.
	raw, err := json.Marshal(got.Gaps[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"contact":"alice"`, `"from":2`, `"to":2`, `"before":`, `"since":"`} {
		if !strings.Contains(string(raw), k) {
			t.Fatalf("gap on the wire %s lacks %s", raw, k)
		}
	}
	err = c.Call(ctx, "gaps", daemon.GapsParams{Name: "carol"}, nil)
	var re *daemon.Error
	if !errors.As(err, &re) || re.Code != daemon.CodeUnknownContact || re.Data.Contact != "carol" {
		t.Fatalf("gaps of a stranger: %#v", err)
	}
}

// rawSocket is a plain connection to the owner's socket, closed with the test, and a
// reader of its lines: for tests that write the wire's bytes themselves.
// A line over the limit is answered, and the answer can be read even by a client that
// goes on writing: the owner drains the connection before it closes it (closed with the
// client's bytes unread, the socket was reset and the answer could be lost).
func TestSocketOversizedLineAnswerIsReadable(t *testing.T) {
	r := relaytest.Start(t)
	bob := chattest.NewUser(t, r, "bob")
	o := startOwner(t, r, bob)
	for range 3 {
		nc, rd := rawSocket(t, o)
		written := make(chan error, 1)
		go func() {
			_, err := nc.Write([]byte(strings.Repeat("x", daemon.MaxRequestBytes+10) + "\n" + strings.Repeat("y", 2*daemon.MaxRequestBytes)))
			written <- err
		}()
		line, err := rd.ReadBytes('\n')
		if err != nil || !strings.Contains(string(line), fmt.Sprint(daemon.CodeInvalidRequest)) {
			t.Fatalf("oversized line: answer %q, %v", line, err)
		}
		if _, err := rd.ReadBytes('\n'); err != io.EOF {
			t.Fatalf("after the answer: %v, want EOF", err)
		}
		if err := <-written; err != nil {
			t.Fatalf("the client's write was cut short: %v", err)
		}
	}
}

func rawSocket(t *testing.T, o *owned) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("unix", o.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc, bufio.NewReader(nc)
}

// The calls that need the relay, made while the owner cannot reach it, are refused
// with "offline" (code 4), as API.md says, not "internal_error": addContact,
// rotateKeys and oneTimeKeys answered -32603 with the relay client's "not connected".
func TestSocketCallsNeedingTheRelayAreOfflineWhileItIsDown(t *testing.T) {
	r, _, _, _, cl, watcher := watchedOwner(t)
	r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		n, err := watcher.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for the owner to lose its relay: %v", err)
		}
		var ev daemon.Event
		if n.Method == daemon.NotifyConnection && json.Unmarshal(n.Params, &ev) == nil && ev.Status != "online" && ev.Status != "connecting" {
			break
		}
	}
	for _, call := range []struct {
		method string
		params any
	}{{"addContact", daemon.NameParams{Name: "dave"}}, {"rotateKeys", nil}, {"oneTimeKeys", nil}} {
		err := cl.Call(t.Context(), call.method, call.params, nil)
		var de *daemon.Error
		if !errors.As(err, &de) || de.Code != daemon.CodeOffline || de.Data == nil || de.Data.Name != "offline" {
			t.Errorf("%s with the relay down: %v; want code %d, offline", call.method, err, daemon.CodeOffline)
		}
	}
}
