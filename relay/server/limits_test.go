package server_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// Each abuse limit (PROTOCOL.md "Limits and abuse"): the attacker is limited with the
// named error, an honest pair keeps completing round trips during the attack, and
// pfschat_relay_limited_total counts it.

// honestPair is two logged-in users who message each other.
type honestPair struct {
	a, b *user
	n    int
}

func newHonestPair(t testing.TB, r *relaytest.Relay) *honestPair {
	t.Helper()
	return &honestPair{a: newUser(t, r, "honest-a"), b: newUser(t, r, "honest-b")}
}

// roundTrip sends a message each way and waits for both: progress, not time.
func (p *honestPair) roundTrip(t testing.TB) {
	t.Helper()
	ctx := testCtx(t)
	for _, dir := range [][2]*user{{p.a, p.b}, {p.b, p.a}} {
		p.n++
		body := []byte("honest " + strconv.Itoa(p.n))
		if _, err := dir[0].c.Send(ctx, dir[1].name, body, "rt-"+strconv.Itoa(p.n)); err != nil {
			t.Fatalf("honest send %d: %v", p.n, err)
		}
		m := nextMessage(t, dir[1].c)
		if string(m.Body) != string(body) {
			t.Fatalf("honest message %d: got %q", p.n, m.Body)
		}
		if err := dir[1].c.Ack(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// limited reads pfschat_relay_limited_total{limit=name}.
func limited(t testing.TB, r *relaytest.Relay, name string) int {
	t.Helper()
	want := `pfschat_relay_limited_total{limit="` + name + `"} `
	rec := httptest.NewRecorder() // not over the network: behind a PROXY listener that needs a header
	r.Server.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	return 0
}

// wantLimited fails unless pfschat_relay_limited_total{limit=name} is n.
func wantLimited(t testing.TB, r *relaytest.Relay, name string, n int) {
	t.Helper()
	if got := limited(t, r, name); got != n {
		t.Errorf("pfschat_relay_limited_total{limit=%q} is %d, want %d", name, got, n)
	}
}

// expectClosed reads until an error frame with code, then expects a close frame 1008
// (not a reset, not EOF without one).
func (rc *raw) expectClosed(code string) relay.Frame {
	rc.t.Helper()
	var errFrame relay.Frame
	for errFrame.Code == "" {
		rc.ws.SetReadDeadline(time.Now().Add(waitFor))
		_, data, err := rc.ws.ReadMessage()
		if err != nil {
			rc.t.Fatalf("connection ended before the %s error frame: %v", code, err)
		}
		f, _ := relay.DecodeServerFrame(data)
		if f.Type == relay.TypeError {
			if f.Code != code {
				rc.t.Fatalf("error frame %q (%s), want %q", f.Code, f.Message, code)
			}
			errFrame = f
		}
	}
	for {
		rc.ws.SetReadDeadline(time.Now().Add(waitFor))
		_, _, err := rc.ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			rc.t.Fatalf("after %s: want a close frame 1008, got %v", code, err)
		}
		// PROTOCOL.md "Limits and abuse": the close frame has the code and the limit's
		// name in its reason.
		var ce *websocket.CloseError
		errorsAs(err, &ce)
		if !strings.HasPrefix(ce.Text, code+": ") || !strings.Contains(ce.Text, errFrame.Limit) {
			rc.t.Fatalf("close frame reason %q: want the code %q and the limit %q", ce.Text, code, errFrame.Limit)
		}
		return errFrame
	}
}

func TestLimitLoginDeadline(t *testing.T) { eachStore(t, testLimitLoginDeadline) }

func testLimitLoginDeadline(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{LoginTimeout: 300 * time.Millisecond, PingInterval: 20 * time.Millisecond}})
	pair := newHonestPair(t, r)
	attacker := dialRaw(t, r) // never logs in; gorilla answers every ping while reading
	pair.roundTrip(t)
	if f := attacker.expectClosed(relay.CodeLoginTimeout); f.Limit != server.LimitLoginDeadline {
		t.Fatalf("login_timeout names limit %q, want %q", f.Limit, server.LimitLoginDeadline)
	}
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitLoginDeadline); n < 1 {
		t.Fatalf("login_deadline counted %d times", n)
	}
}

func TestLimitConnectionsPerAddress(t *testing.T) { eachStore(t, testLimitConnectionsPerAddress) }

func testLimitConnectionsPerAddress(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{ConnectionsPerAddress: 4}})
	pair := newHonestPair(t, r)                     // two of the four connections from 127.0.0.1
	waitMetric(t, r, "pfschat_relay_connections 2") // the registering connections are gone
	var attackers []*raw
	for range 2 {
		attackers = append(attackers, dialRaw(t, r))
	}
	ws, _, err := websocket.DefaultDialer.Dial(withNonce(r.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	refused := &raw{t: t, ws: ws}
	f := refused.expectClosed(relay.CodeTooManyConnections)
	if f.Limit != server.LimitConnectionsPerAddress {
		t.Fatalf("limit %q", f.Limit)
	}
	pair.roundTrip(t)
	// Closing one frees a place.
	attackers[0].ws.Close()
	waitMetric(t, r, "pfschat_relay_connections 3")
	dialRaw(t, r)
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitConnectionsPerAddress); n != 1 {
		t.Fatalf("connections_per_address counted %d times", n)
	}
}

func TestLimitConnectionsTotal(t *testing.T) { eachStore(t, testLimitConnectionsTotal) }

func testLimitConnectionsTotal(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{MaxConnections: 3}})
	pair := newHonestPair(t, r)
	waitMetric(t, r, "pfschat_relay_connections 2")
	dialRaw(t, r)
	ws, _, err := websocket.DefaultDialer.Dial(withNonce(r.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	f := (&raw{t: t, ws: ws}).expectClosed(relay.CodeTooManyConnections)
	if f.Limit != server.LimitConnectionsTotal {
		t.Fatalf("limit %q", f.Limit)
	}
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitConnectionsTotal); n != 1 {
		t.Fatalf("connections_total counted %d times", n)
	}
}

// waitMetric polls /metrics until it has the line (the relay counts a closed
// connection when its teardown finishes).
func waitMetric(t testing.TB, r *relaytest.Relay, line string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(r.Get(t, "/metrics"), line+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q", line)
		}
		time.Sleep(5 * time.Millisecond) // polling an observable state, not synchronising
	}
}

// frozenClock is a relay clock that moves only when told.
type frozenClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *frozenClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *frozenClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func publishBundle(t testing.TB, u *user, oneTime int) {
	t.Helper()
	var keys []ratchet.PublicPreKey
	keys = append(keys, makePreKeys(t, u, ratchet.SignedPreKey, 1, 1)...)
	keys = append(keys, makePreKeys(t, u, ratchet.KEMLastResort, 1, 1)...)
	keys = append(keys, makePreKeys(t, u, ratchet.OneTimePreKey, 1, oneTime)...)
	if err := u.c.UploadPreKeys(testCtx(t), keys); err != nil {
		t.Fatal(err)
	}
}

func TestLimitFetchBundlePerRequester(t *testing.T) { eachStore(t, testLimitFetchBundlePerRequester) }

func testLimitFetchBundlePerRequester(t *testing.T, bk store) {
	clock := &frozenClock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now})
	pair := newHonestPair(t, r)
	victim := newUser(t, r, "victim")
	publishBundle(t, victim, 100)
	attacker := newUser(t, r, "mallory")
	ctx := testCtx(t)
	var err error
	fetched := 0
	for err == nil {
		if _, err = attacker.c.FetchBundle(ctx, "victim"); err == nil {
			fetched++
		}
		if fetched > 100 {
			t.Fatal("fetch_bundle never limited")
		}
	}
	wantCode(t, err, relay.CodeRateLimited)
	if fetched != server.DefaultLimits.FetchBundleBurst {
		t.Fatalf("%d fetches before the limit, want the burst %d", fetched, server.DefaultLimits.FetchBundleBurst)
	}
	pair.roundTrip(t)
	// Another requester is not limited by mallory's fetches.
	if _, err := pair.a.c.FetchBundle(ctx, "victim"); err != nil {
		t.Fatalf("honest fetch: %v", err)
	}
	// 30 a minute: two seconds later one more.
	clock.add(2 * time.Second)
	if _, err := attacker.c.FetchBundle(ctx, "victim"); err != nil {
		t.Fatalf("after 2 s: %v", err)
	}
	if n := limited(t, r, server.LimitFetchBundlePerRequester); n != 1 {
		t.Fatalf("fetch_bundle_per_requester counted %d times", n)
	}
}

func TestLimitFetchBundlePerTarget(t *testing.T) { eachStore(t, testLimitFetchBundlePerTarget) }

func testLimitFetchBundlePerTarget(t *testing.T, bk store) {
	clock := &frozenClock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{FetchBundlePerTargetPerHour: 5, FetchBundlePerMinute: 1000, FetchBundleBurst: 1000}})
	pair := newHonestPair(t, r)
	victim := newUser(t, r, "victim")
	publishBundle(t, victim, 100)
	ctx := testCtx(t)
	var attackers []*user
	for i := range 3 {
		attackers = append(attackers, newUser(t, r, fmt.Sprint("mallory", i)))
	}
	withKey := 0
	for i := range 12 {
		b, err := attackers[i%3].c.FetchBundle(ctx, "victim")
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if b.OneTimePreKey != nil {
			withKey++
		}
		if err := b.Verify(victim.card, r.Server.RelayKey()); err != nil {
			t.Fatalf("bundle %d without one-time key does not verify: %v", i, err)
		}
	}
	if withKey != 5 {
		t.Fatalf("%d of 12 bundles carried a one-time key, want 5", withKey)
	}
	st, err := victim.c.PreKeyStatus(ctx)
	if err != nil || st.Counts[ratchet.OneTimePreKey] != 95 {
		t.Fatalf("victim has %v one-time keys left (%v), want 95", st.Counts, err)
	}
	pair.roundTrip(t)
	// The victim is told once.
	notices := 0
	drain := func() {
		for {
			p, ok := victim.c.Pushes().Pop()
			if !ok {
				return
			}
			if p.LimitNotice == server.LimitFetchBundlePerTarget {
				notices++
			}
		}
	}
	waitPush(t, victim, func(p pushView) bool { return p.LimitNotice == server.LimitFetchBundlePerTarget })
	notices++
	drain()
	if notices != 1 {
		t.Fatalf("victim told %d times, want once", notices)
	}
	// An hour later one-time keys are handed out again.
	clock.add(time.Hour)
	if b, err := pair.a.c.FetchBundle(ctx, "victim"); err != nil || b.OneTimePreKey == nil {
		t.Fatalf("an hour later: %v, one-time key %v", err, b != nil && b.OneTimePreKey != nil)
	}
	if n := limited(t, r, server.LimitFetchBundlePerTarget); n != 7 {
		t.Fatalf("fetch_bundle_per_target counted %d times, want 7", n)
	}
}

func TestLimitLowPreKeysNotice(t *testing.T) { eachStore(t, testLimitLowPreKeysNotice) }

func testLimitLowPreKeysNotice(t *testing.T, bk store) {
	clock := &frozenClock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now})
	victim := newUser(t, r, "victim")
	publishBundle(t, victim, 5) // below the threshold from the start
	attacker := newUser(t, r, "mallory")
	ctx := testCtx(t)
	for range 4 {
		if _, err := attacker.c.FetchBundle(ctx, "victim"); err != nil {
			t.Fatal(err)
		}
	}
	waitPush(t, victim, func(p pushView) bool { return p.LowPreKeys })
	if n := limited(t, r, server.LimitLowPreKeysNotice); n != 3 {
		t.Fatalf("low_prekeys_notice counted %d times, want 3", n)
	}
	// Ten minutes later the next fetch notifies again.
	clock.add(10 * time.Minute)
	if _, err := attacker.c.FetchBundle(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	waitPush(t, victim, func(p pushView) bool { return p.LowPreKeys })
	if n := limited(t, r, server.LimitLowPreKeysNotice); n != 3 {
		t.Fatalf("low_prekeys_notice counted %d times after the window, want still 3", n)
	}
}

func TestLimitLookupPerRequester(t *testing.T) { eachStore(t, testLimitLookupPerRequester) }

func testLimitLookupPerRequester(t *testing.T, bk store) {
	clock := &frozenClock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now})
	pair := newHonestPair(t, r)
	attacker := newUser(t, r, "mallory")
	ctx := testCtx(t)
	var err error
	n := 0
	for ; err == nil; n++ {
		if n > 1000 {
			t.Fatal("lookups never limited")
		}
		_, err = attacker.c.LookupCard(ctx, "name"+strconv.Itoa(n)) // walking the name space
		if wantNotFound := err != nil && strings.Contains(err.Error(), relay.CodeNotFound); wantNotFound {
			err = nil
		}
	}
	wantCode(t, err, relay.CodeRateLimited)
	if n-1 != server.DefaultLimits.LookupBurst {
		t.Fatalf("%d lookups before the limit, want the burst %d", n-1, server.DefaultLimits.LookupBurst)
	}
	if _, err := pair.a.c.LookupCard(ctx, "honest-b"); err != nil {
		t.Fatalf("honest lookup: %v", err)
	}
	pair.roundTrip(t)
	if got := limited(t, r, server.LimitLookupPerRequester); got != 1 {
		t.Fatalf("lookup_per_requester counted %d times", got)
	}
}

// upload_prekeys_per_card: an account that uploads prekeys in a loop (each frame a
// store write and up to one Ed25519 verification per key) is refused after the burst,
// by name and with retry_after_ms, until its bucket refills; a frame refused for its
// content takes nothing from the bucket, and other cards upload as before.
func TestLimitUploadPreKeysPerCard(t *testing.T) { eachStore(t, testLimitUploadPreKeysPerCard) }

func testLimitUploadPreKeysPerCard(t *testing.T, bk store) {
	clock := &frozenClock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now})
	pair := newHonestPair(t, r)
	attacker, rc := registerLoggedIn(t, r, "mallory")
	upload := func(id int, keys ...ratchet.PublicPreKey) relay.Frame {
		t.Helper()
		raws := make([][]byte, len(keys))
		for i, k := range keys {
			b, err := k.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			raws[i] = b
		}
		return rc.request(map[string]any{"type": "upload_prekeys", "id": id, "prekeys": raws})
	}
	signedPreKey := func(id int) ratchet.PublicPreKey { return makePreKeys(t, attacker, ratchet.SignedPreKey, id, 1)[0] }

	repeated := signedPreKey(1)
	for i := range 5 {
		expectErr(t, upload(10+i, repeated, repeated), relay.CodeBadPreKey)
	}
	burst := server.DefaultLimits.UploadPreKeysBurst
	for i := range burst {
		if f := upload(100+i, signedPreKey(1+i)); f.Type != relay.TypePreKeyStatus {
			t.Fatalf("upload %d of the burst %d: %+v", i+1, burst, f)
		}
	}
	f := upload(200, signedPreKey(500))
	expectErr(t, f, relay.CodeRateLimited)
	if f.Limit != server.LimitUploadPreKeysPerCard {
		t.Fatalf("limit %q, want %q", f.Limit, server.LimitUploadPreKeysPerCard)
	}
	// 60 an hour: the next token comes a minute after the burst.
	if wait := time.Duration(f.RetryAfterMS) * time.Millisecond; wait < 59*time.Second || wait > 61*time.Second {
		t.Fatalf("retry_after_ms %d, want about a minute", f.RetryAfterMS)
	}
	if err := pair.a.c.UploadPreKeys(testCtx(t), makePreKeys(t, pair.a, ratchet.SignedPreKey, 1, 1)); err != nil {
		t.Fatalf("another card's upload: %v", err)
	}
	pair.roundTrip(t)
	clock.add(time.Minute)
	if f := upload(201, signedPreKey(501)); f.Type != relay.TypePreKeyStatus {
		t.Fatalf("a minute later: %+v", f)
	}
	expectErr(t, upload(202, signedPreKey(502)), relay.CodeRateLimited)
	if n := limited(t, r, server.LimitUploadPreKeysPerCard); n != 2 {
		t.Fatalf("upload_prekeys_per_card counted %d times, want 2", n)
	}
}

// upload_prekeys_per_card counts per name: a card that replace_card puts in place of
// another shares its allowance, so a loop of replace_card and upload_prekeys gets no
// fresh burst per replacement.
func TestUploadPreKeysLimitSurvivesReplaceCard(t *testing.T) {
	eachStore(t, testUploadPreKeysLimitSurvivesReplaceCard)
}

func testUploadPreKeysLimitSurvivesReplaceCard(t *testing.T, bk store) {
	const burst = 3
	clock := &frozenClock{t: time.Now()} // no token comes back during the test
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{UploadPreKeysPerHour: 60, UploadPreKeysBurst: burst}})
	attacker, rc := registerLoggedIn(t, r, "mallory")
	upload := func(id int, signer *user) relay.Frame {
		t.Helper()
		raw, err := makePreKeys(t, signer, ratchet.SignedPreKey, id, 1)[0].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return rc.request(map[string]any{"type": "upload_prekeys", "id": id, "prekeys": [][]byte{raw}})
	}
	for i := range burst {
		if f := upload(10+i, attacker); f.Type != relay.TypePreKeyStatus {
			t.Fatalf("upload %d of the burst %d: %+v", i+1, burst, f)
		}
	}
	expectErr(t, upload(20, attacker), relay.CodeRateLimited)

	key, card := newIdentity(t, "mallory")
	f := rc.request(map[string]any{"type": "replace_card", "id": 30, "card": card.Export()})
	if f.Type != relay.TypeCard {
		t.Fatalf("replace_card: %+v", f)
	}
	successor := &user{name: "mallory", key: key, card: card}
	f = upload(40, successor)
	expectErr(t, f, relay.CodeRateLimited)
	if f.Limit != server.LimitUploadPreKeysPerCard {
		t.Fatalf("limit %q, want %q", f.Limit, server.LimitUploadPreKeysPerCard)
	}
	if n := limited(t, r, server.LimitUploadPreKeysPerCard); n != 2 {
		t.Fatalf("upload_prekeys_per_card counted %d times, want 2", n)
	}
}

// max_one_time_prekeys: an upload that would take a card past 100 one-time prekeys of a
// kind, in the frame alone or with those stored, is refused with too_many_prekeys
// naming the limit, and counted like every other limit.
func TestLimitMaxOneTimePreKeys(t *testing.T) { eachStore(t, testLimitMaxOneTimePreKeys) }

func testLimitMaxOneTimePreKeys(t *testing.T, bk store) {
	r := bk.Start(t)
	pair := newHonestPair(t, r)
	attacker := newUser(t, r, "mallory")
	ctx := testCtx(t)
	tooMany := func(err error, says string) {
		t.Helper()
		wantCode(t, err, relay.CodeTooManyPreKeys)
		pe := (*relay.ProtocolError)(nil)
		if !errorsAs(err, &pe) || pe.Limit != server.LimitMaxOneTimePreKeys || !strings.Contains(pe.Message, says) {
			t.Fatalf("%v, want limit %s and a message saying %q", err, server.LimitMaxOneTimePreKeys, says)
		}
	}
	max := server.DefaultLimits.MaxOneTimePreKeys
	oneTime := makePreKeys(t, attacker, ratchet.OneTimePreKey, 1, max+1)
	tooMany(attacker.c.UploadPreKeys(ctx, oneTime), "in one frame")
	if err := attacker.c.UploadPreKeys(ctx, oneTime[:max]); err != nil {
		t.Fatal(err)
	}
	tooMany(attacker.c.UploadPreKeys(ctx, oneTime[max:]), "prekeys stored")
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitMaxOneTimePreKeys); n != 2 {
		t.Fatalf("max_one_time_prekeys counted %d times, want 2", n)
	}
}

// block, unblock, replace_card and set_recovery each make a synced write on the relay's
// one writer: a logged-in account toggling a block at the frame rate kept it busy for
// everyone. account_writes_per_name bounds them per name (so a new card from
// replace_card starts no fresh allowance), and other accounts are not touched.
func TestLimitAccountWritesPerName(t *testing.T) { eachStore(t, testLimitAccountWritesPerName) }

func testLimitAccountWritesPerName(t *testing.T, bk store) {
	clock := &frozenClock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{AccountWritesPerHour: 60, AccountWritesBurst: 3}})
	pair := newHonestPair(t, r)
	_, rc := registerLoggedIn(t, r, "mallory")
	toggle := func(id int) relay.Frame {
		typ := "block"
		if id%2 == 1 {
			typ = "unblock"
		}
		return rc.request(map[string]any{"type": typ, "id": 10 + id, "name": "eve"}) // pushes have id 0
	}
	for id := range 3 {
		if f := toggle(id); f.Type != relay.TypeOK {
			t.Fatalf("write %d of the burst of 3: %+v", id+1, f)
		}
	}
	f := toggle(3)
	expectErr(t, f, relay.CodeRateLimited)
	if f.Limit != server.LimitAccountWritesPerName {
		t.Fatalf("limit %q, want %q", f.Limit, server.LimitAccountWritesPerName)
	}
	// 60 an hour: the next write a minute after the burst.
	if wait := time.Duration(f.RetryAfterMS) * time.Millisecond; wait < 59*time.Second || wait > 61*time.Second {
		t.Fatalf("retry_after_ms %d, want about a minute", f.RetryAfterMS)
	}
	if err := pair.a.c.Block(testCtx(t), "mallory"); err != nil {
		t.Fatalf("another account's block: %v", err)
	}
	clock.add(time.Minute)
	if f := toggle(4); f.Type != relay.TypeOK {
		t.Fatalf("a minute later: %+v", f)
	}
	expectErr(t, toggle(5), relay.CodeRateLimited)
	if n := limited(t, r, server.LimitAccountWritesPerName); n != 2 {
		t.Fatalf("account_writes_per_name counted %d times, want 2", n)
	}
}

func TestLimitRegistrationsPerAddress(t *testing.T) { eachStore(t, testLimitRegistrationsPerAddress) }

func testLimitRegistrationsPerAddress(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{RegistrationsPerHour: 3}})
	pair := newHonestPair(t, r) // two registrations
	register(t, r, "third")
	rc := dialRaw(t, r)
	_, card := newIdentity(t, "fourth")
	f := rc.request(map[string]any{"type": "register", "id": 2, "card": card.Export()})
	expectErr(t, f, relay.CodeRateLimited)
	if f.Limit != server.LimitRegistrationsPerAddress || f.RetryAfterMS <= 0 {
		t.Fatalf("refusal %+v", f)
	}
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitRegistrationsPerAddress); n != 1 {
		t.Fatalf("registrations_per_address counted %d times", n)
	}
}

func TestLimitRegistrationPolicy(t *testing.T) { eachStore(t, testLimitRegistrationPolicy) }

func testLimitRegistrationPolicy(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Registration: server.RegistrationClosed})
	rc := dialRaw(t, r)
	_, card := newIdentity(t, "someone")
	expectErr(t, rc.request(map[string]any{"type": "register", "id": 2, "card": card.Export()}), relay.CodeRegistrationClosed)

	r = bk.StartWith(t, relaytest.Options{Registration: server.RegistrationInvite})
	rc = dialRaw(t, r)
	expectErr(t, rc.request(map[string]any{"type": "register", "id": 2, "card": card.Export()}), relay.CodeInviteRequired)
	expectErr(t, rc.request(map[string]any{"type": "register", "id": 3, "card": card.Export(), "invite": "made-up"}), relay.CodeInviteRequired)
	code, err := server.CreateInvite(testCtx(t), invitesOf(r), 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if f := rc.request(map[string]any{"type": "register", "id": 4, "card": card.Export(), "invite": code}); f.Type != relay.TypeCard {
		t.Fatalf("register with the invite: %+v", f)
	}
	_, card2 := newIdentity(t, "another")
	expectErr(t, rc.request(map[string]any{"type": "register", "id": 5, "card": card2.Export(), "invite": code}), relay.CodeInviteRequired)
	if n := limited(t, r, server.LimitRegistrationPolicy); n != 3 {
		t.Fatalf("registration_policy counted %d times, want 3", n)
	}
}

// invitesOf is where r keeps its invite codes: its directory (SQLite, or JetStream).
func invitesOf(r *relaytest.Relay) interface {
	CreateInvite(ctx context.Context, inv storage.Invite) error
} {
	return dirOf(r).(interface {
		CreateInvite(ctx context.Context, inv storage.Invite) error
	})
}

func TestLimitSenderQuota(t *testing.T) { eachStore(t, testLimitSenderQuota) }

func testLimitSenderQuota(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{MaxQueueCount: 80}})
	pair := newHonestPair(t, r)
	attacker := newUser(t, r, "mallory")
	register(t, r, "victim") // offline: the queue fills
	ctx := testCtx(t)
	var err error
	sent := 0
	for err == nil {
		if _, err = attacker.c.Send(ctx, "victim", []byte("spam"), "s"+strconv.Itoa(sent)); err == nil {
			sent++
		}
		if sent > 80 {
			t.Fatal("sender quota never applied")
		}
	}
	wantCode(t, err, relay.CodeQueueFull)
	if pe := protoErr(err); pe.Limit != server.LimitSenderQuota {
		t.Fatalf("limit %q", pe.Limit)
	}
	if sent != 10 {
		t.Fatalf("mallory queued %d, want 80/8 = 10", sent)
	}
	if _, err := pair.a.c.Send(ctx, "victim", []byte("hello"), "h1"); err != nil {
		t.Fatalf("an honest sender to the same victim: %v", err)
	}
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitSenderQuota); n != 1 {
		t.Fatalf("sender_quota counted %d times", n)
	}
}

func protoErr(err error) *relay.ProtocolError {
	var pe *relay.ProtocolError
	errorsAs(err, &pe)
	return pe
}

// A ping flood is answered with rate_limited and a close frame 1008, not a TCP
// reset. Before the limit applied to pings, the relay answered every ping (and a
// flooder that did not read was cut by a write timeout and a reset).
func TestLimitPingFlood(t *testing.T) { eachStore(t, testLimitPingFlood) }

func testLimitPingFlood(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 10, FrameBurst: 10}})
	pair := newHonestPair(t, r)
	attacker := dialRaw(t, r)
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if attacker.ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(waitFor)) != nil {
				return
			}
		}
	}()
	f := attacker.expectClosed(relay.CodeRateLimited)
	close(stop)
	<-flooded
	if f.Limit != server.LimitFramesPerSecond {
		t.Fatalf("limit %q", f.Limit)
	}
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitFramesPerSecond); n <= 4*10 {
		t.Fatalf("frames_per_second counted %d times, want every ping over the rate (over 40)", n)
	}
}

// A frame flood ends the same way: rate_limited, then a close frame 1008.
func TestLimitFrameFlood(t *testing.T) { eachStore(t, testLimitFrameFlood) }

func testLimitFrameFlood(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 10, FrameBurst: 10}})
	pair := newHonestPair(t, r)
	attacker := dialRaw(t, r)
	go func() {
		for i := 1; ; i++ {
			if attacker.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":`+strconv.Itoa(i)+`}`)) != nil {
				return
			}
		}
	}()
	attacker.expectClosedAfterRateLimited()
	pair.roundTrip(t)
	if n := limited(t, r, server.LimitFramesPerSecond); n <= 4*10 {
		t.Fatalf("frames_per_second counted %d times, want every frame over the rate (over 40)", n)
	}
}

// expectClosedAfterRateLimited skips the per-frame rate_limited answers until the
// close frame 1008.
func (rc *raw) expectClosedAfterRateLimited() {
	rc.t.Helper()
	for {
		rc.ws.SetReadDeadline(time.Now().Add(waitFor))
		_, _, err := rc.ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			rc.t.Fatalf("want a close frame 1008, got %v", err)
		}
		var ce *websocket.CloseError
		errorsAs(err, &ce)
		if want := relay.CodeRateLimited + ": " + server.LimitFramesPerSecond + ": "; !strings.HasPrefix(ce.Text, want) {
			rc.t.Fatalf("close frame reason %q, want it to start %q", ce.Text, want)
		}
		return
	}
}

// pushView is what waitPush looks at.
type pushView struct {
	LowPreKeys  bool
	LimitNotice string
}

func waitPush(t testing.TB, u *user, match func(pushView) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		p, err := u.c.Pushes().Wait(ctx)
		if err != nil {
			t.Fatalf("no matching push: %v", err)
		}
		if match(pushView{LowPreKeys: p.LowPreKeys != nil, LimitNotice: p.LimitNotice}) {
			return
		}
	}
}

// proxyDial connects through a PROXY v2 header naming src as the client.
func proxyDial(t testing.TB, r *relaytest.Relay, src netip.AddrPort) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		h := []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21}
		a := src.Addr()
		if a.Is4() {
			h = append(h, 0x11, 0, 12)
		} else {
			h = append(h, 0x21, 0, 36)
		}
		h = append(h, a.AsSlice()...)
		h = append(h, a.AsSlice()...) // destination: any address of the family
		h = binary.BigEndian.AppendUint16(h, src.Port())
		h = binary.BigEndian.AppendUint16(h, 443)
		if _, err := c.Write(h); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	ws, _, err := d.Dial(withNonce(r.URL), nil)
	if err != nil {
		t.Fatalf("dial through PROXY v2: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// Behind a trusted proxy the connection caps count the address the PROXY v2 header
// names: IPv4 per address, IPv6 per /64.
func TestLimitConnectionsPerAddressBehindProxy(t *testing.T) {
	eachStore(t, testLimitConnectionsPerAddressBehindProxy)
}

func testLimitConnectionsPerAddressBehindProxy(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{ConnectionsPerAddress: 1},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ok := func(src string) {
		t.Helper()
		rc := &raw{t: t, ws: proxyDial(t, r, netip.MustParseAddrPort(src))}
		if f := rc.read(); f.Type != relay.TypeHello {
			t.Fatalf("%s: first frame %+v", src, f)
		}
	}
	refused := func(src string) {
		t.Helper()
		rc := &raw{t: t, ws: proxyDial(t, r, netip.MustParseAddrPort(src))}
		if f := rc.expectClosed(relay.CodeTooManyConnections); f.Limit != server.LimitConnectionsPerAddress {
			t.Fatalf("%s: limit %q", src, f.Limit)
		}
	}
	ok("203.0.113.9:1000")
	ok("203.0.113.10:1000")
	refused("203.0.113.9:2000")
	ok("[2001:db8:1:2::7]:1000")
	refused("[2001:db8:1:2::8]:1000") // same /64
	ok("[2001:db8:1:3::7]:1000")
	if n := limited(t, r, server.LimitConnectionsPerAddress); n != 2 {
		t.Fatalf("connections_per_address counted %d times", n)
	}
}

// A frame dropped by the frame rate is answered with its request id wherever the
// frame puts it and however it spaces its JSON (PROTOCOL.md, Frames: keys in any
// order, white space between tokens), so a client can match the answer.
func TestLimitFrameRateAnswersByID(t *testing.T) {
	clock := &frozenClock{t: time.Now()} // no refill: the burst is all there is
	r := relaytest.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{FramesPerSecond: 1, FrameBurst: 2}})
	rc := dialRaw(t, r)
	for n, c := range []struct {
		frame string
		id    uint64
	}{
		{`{"type":"ping","id":1}`, 1},
		{`{"type":"ping","id":2}`, 2},
		{`{"type": "ping", "id": 3}`, 3},
		{"{\n  \"type\": \"ping\",\n  \"note\": \"\\\"id\\\":9\",\n  \"id\": 4\n}", 4},
		{`{"type":"lookup","name":"bob","id":18446744073709551615}`, 1<<64 - 1},
	} {
		rc.sendText([]byte(c.frame))
		f := rc.read()
		if n < 2 {
			if f.Type != relay.TypePong || f.ID != c.id {
				t.Fatalf("frame %d within the burst: %+v", n+1, f)
			}
			continue
		}
		if f.Type != relay.TypeError || f.Code != relay.CodeRateLimited || f.Limit != server.LimitFramesPerSecond {
			t.Fatalf("frame %q over the rate: %+v, want rate_limited", c.frame, f)
		}
		if f.ID != c.id {
			t.Fatalf("frame %q over the rate answered with id %d, want %d", c.frame, f.ID, c.id)
		}
	}
}

// A flood paced to slip a frame in within the rate now and then is closed too: each
// frame within the rate takes one strike back, not all of them (PROTOCOL.md,
// frames_per_second). Rounds of 30 frames over the rate and one within it never
// reached the 40 strikes (4 × the burst) in a row that closed a connection before.
func TestLimitPacedFloodIsClosed(t *testing.T) {
	clock := &frozenClock{t: time.Now()}
	r := relaytest.StartWith(t, relaytest.Options{Clock: clock.now, Limits: server.Limits{FramesPerSecond: 10, FrameBurst: 10}})
	rc := dialRaw(t, r)
	id := 0
	ping := func() relay.Frame {
		id++
		rc.sendText([]byte(`{"type":"ping","id":` + strconv.Itoa(id) + `}`))
		return rc.read()
	}
	for range 10 { // the burst
		if f := ping(); f.Type != relay.TypePong {
			t.Fatalf("within the burst: %+v", f)
		}
	}
	for round := range 5 {
		for range 30 {
			f := ping()
			if f.Type != relay.TypeError || f.Code != relay.CodeRateLimited {
				t.Fatalf("round %d: over the rate: %+v", round, f)
			}
			if strings.Contains(f.Message, "closing the connection") {
				if round == 0 {
					t.Fatalf("closed in the first round, at %d strikes or fewer", 30)
				}
				return
			}
		}
		clock.add(100 * time.Millisecond) // one frame's worth of the rate
		if f := ping(); f.Type != relay.TypePong {
			t.Fatalf("round %d: the frame within the rate: %+v", round, f)
		}
	}
	t.Fatal("a flood paced to slip one frame in every 31 was never closed")
}

// Uploads of one card's one-time prekeys at the same instant are judged one after the
// other: one is stored, the others are refused too_many_prekeys (all four were answered
// as stored while only one frame's keys were kept — found by a red team).
func TestConcurrentPreKeyUploadsAreJudgedInTurn(t *testing.T) {
	eachStore(t, testConcurrentPreKeyUploadsAreJudgedInTurn)
}

func testConcurrentPreKeyUploadsAreJudgedInTurn(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	max := server.DefaultLimits.MaxOneTimePreKeys
	const uploads = 4
	conns := make([]*client.Client, uploads)
	for i := range conns {
		conns[i] = client.New(client.Config{URL: r.URL, Identity: bob.key, Card: bob.card, PinnedRelayKey: r.Server.RelayKey(), RootCAs: r.RootCAs()})
		if err := conns[i].Connect(ctx); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	start := make(chan struct{})
	errs := make(chan error, uploads)
	for i, c := range conns {
		keys := makePreKeys(t, bob, ratchet.OneTimePreKey, 1+i*max, max)
		go func() {
			<-start
			errs <- c.UploadPreKeys(ctx, keys)
		}()
	}
	close(start)
	stored := 0
	for range uploads {
		if err := <-errs; err == nil {
			stored++
		} else {
			wantCode(t, err, relay.CodeTooManyPreKeys)
		}
	}
	if n, err := dirOf(r).CountPreKeys(ctx, bob.card.ID(), uint8(ratchet.OneTimePreKey)); err != nil || stored != 1 || n != max {
		t.Fatalf("%d uploads answered as stored, %d keys stored (%v); want 1 and %d", stored, n, err, max)
	}
}
