package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
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
)

func TestRegisterLookupLogin(t *testing.T) { eachStore(t, testRegisterLookupLogin) }

func testRegisterLookupLogin(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := register(t, r, "alice")
	if err := alice.card.VerifyWithRelay(r.Server.RelayKey()); err != nil {
		t.Fatalf("registered card does not carry the relay's signature: %v", err)
	}

	anon := client.New(client.Config{URL: r.URL})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := anon.LookupCard(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != alice.card.ID() {
		t.Fatalf("lookup returned card %s, want %s", got.ID(), alice.card.ID())
	}
	_, err = anon.LookupCard(ctx, "nobody")
	wantCode(t, err, relay.CodeNotFound)
	_, err = anon.LookupCard(ctx, "Not A Name")
	wantCode(t, err, relay.CodeInvalidName)

	// The same card again (its answer was lost) is fine; another card for the name is not.
	again, err := anon.Register(ctx, alice.card)
	if err != nil || again.ID() != alice.card.ID() {
		t.Fatalf("re-registering the same card: %v", err)
	}
	_, other := newIdentity(t, "alice")
	_, err = anon.Register(ctx, other)
	wantCode(t, err, relay.CodeNameTaken)

	// A card whose self signature is broken is refused.
	_, bad := newIdentity(t, "mallory")
	bad.SelfSignature[0] ^= 1
	_, err = anon.Register(ctx, bad)
	wantCode(t, err, relay.CodeBadCard)

	c := alice.login(t, r)
	if !bytes.Equal(c.RelayKey(), r.Server.RelayKey()) {
		t.Fatal("client reports another relay key")
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRelayKeyStableAndPinned(t *testing.T) { eachStore(t, testRelayKeyStableAndPinned) }

func testRelayKeyStableAndPinned(t *testing.T, bk store) {
	r := bk.Start(t)
	key := r.Server.RelayKey()
	r.Restart(t)
	if !bytes.Equal(key, r.Server.RelayKey()) {
		t.Fatal("relay key changed across a restart")
	}
	other := relaytest.Start(t)
	c := client.New(client.Config{URL: other.URL, PinnedRelayKey: key})
	defer c.Close()
	if err := c.Connect(testCtx(t)); !errorsIs(err, client.ErrRelayKeyMismatch) {
		t.Fatalf("connecting to another relay with a pinned key: %v, want ErrRelayKeyMismatch", err)
	}
}

func makePreKeys(t testing.TB, u *user, kind ratchet.PreKeyKind, first, n int) []ratchet.PublicPreKey {
	t.Helper()
	var out []ratchet.PublicPreKey
	for i := 0; i < n; i++ {
		p, err := ratchet.GeneratePreKey(rand.Reader, u.key, kind, uint32(first+i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Public())
	}
	return out
}

func TestPreKeysRoundTrip(t *testing.T) { eachStore(t, testPreKeysRoundTrip) }

func testPreKeysRoundTrip(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	alice := newUser(t, r, "alice")

	// Before anything is published there is no bundle.
	_, err := alice.c.FetchBundle(ctx, "bob")
	wantCode(t, err, relay.CodeNoPreKeys)

	var keys []ratchet.PublicPreKey
	keys = append(keys, makePreKeys(t, bob, ratchet.SignedPreKey, 1, 1)...)
	keys = append(keys, makePreKeys(t, bob, ratchet.KEMLastResort, 1, 1)...)
	keys = append(keys, makePreKeys(t, bob, ratchet.OneTimePreKey, 1, 3)...)
	keys = append(keys, makePreKeys(t, bob, ratchet.KEMOneTime, 1, 2)...)
	if err := bob.c.UploadPreKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	st, err := bob.c.PreKeyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts[ratchet.OneTimePreKey] != 3 || st.Counts[ratchet.KEMOneTime] != 2 || st.Counts[ratchet.SignedPreKey] != 1 || st.Counts[ratchet.KEMLastResort] != 1 {
		t.Fatalf("counts %v", st.Counts)
	}
	if fmt.Sprint(st.OneTimeIDs) != "[1 2 3]" || fmt.Sprint(st.KEMOneTimeIDs) != "[1 2]" {
		t.Fatalf("ids %v %v", st.OneTimeIDs, st.KEMOneTimeIDs)
	}

	seen := map[uint32]bool{}
	for i := 0; i < 4; i++ {
		b, err := alice.c.FetchBundle(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Verify(bob.card, r.Server.RelayKey()); err != nil {
			t.Fatalf("bundle %d does not verify: %v", i, err)
		}
		switch {
		case i < 3 && b.OneTimePreKey == nil:
			t.Fatalf("bundle %d has no one-time key while some are left", i)
		case i < 3:
			if seen[b.OneTimePreKey.ID] {
				t.Fatalf("one-time prekey %d handed out twice", b.OneTimePreKey.ID)
			}
			seen[b.OneTimePreKey.ID] = true
		case b.OneTimePreKey != nil:
			t.Fatal("one-time prekey handed out after they ran out")
		}
		wantKind := ratchet.KEMOneTime
		if i >= 2 {
			wantKind = ratchet.KEMLastResort
		}
		if b.KEMPreKey.Kind != wantKind {
			t.Fatalf("bundle %d KEM key kind %v, want %v", i, b.KEMPreKey.Kind, wantKind)
		}
	}
	// Bob, online, hears that his one-time keys are low.
	wctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for got := false; !got; {
		p, err := bob.c.Pushes().Wait(wctx)
		if err != nil {
			t.Fatalf("no low-prekeys notice: %v", err)
		}
		got = p.LowPreKeys != nil && p.LowPreKeys.Counts[ratchet.OneTimePreKey] == 0
	}
	st, _ = bob.c.PreKeyStatus(ctx)
	if len(st.OneTimeIDs) != 0 || st.Counts[ratchet.OneTimePreKey] != 0 {
		t.Fatalf("after handing all out: %+v", st)
	}

	// At most 100 one-time keys of a kind.
	if err := bob.c.UploadPreKeys(ctx, makePreKeys(t, bob, ratchet.OneTimePreKey, 10, 100)); err != nil {
		t.Fatal(err)
	}
	err = bob.c.UploadPreKeys(ctx, makePreKeys(t, bob, ratchet.OneTimePreKey, 200, 1))
	wantCode(t, err, relay.CodeTooManyPreKeys)

	// Prekeys signed by someone else's identity key are refused.
	err = alice.c.UploadPreKeys(ctx, makePreKeys(t, bob, ratchet.SignedPreKey, 5, 1))
	wantCode(t, err, relay.CodeBadPreKey)
}

func TestSendOnlineAndOffline(t *testing.T) { eachStore(t, testSendOnlineAndOffline) }

func testSendOnlineAndOffline(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	carol := register(t, r, "carol") // offline for now
	waitSynced(t, bob.c)

	id, err := alice.c.Send(ctx, "bob", []byte("hello bob"), "c1")
	if err != nil {
		t.Fatal(err)
	}
	m := nextMessage(t, bob.c)
	if m.ID != id || m.From != "alice" || m.FromCardID != alice.card.ID() || string(m.Body) != "hello bob" {
		t.Fatalf("got %+v, want id %d from alice", m, id)
	}

	// Offline recipient: messages wait, then arrive in order.
	var ids []int64
	for i := 0; i < 20; i++ {
		id, err := alice.c.Send(ctx, "carol", []byte(fmt.Sprintf("m%02d", i)), fmt.Sprintf("to-carol-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cc := carol.login(t, r)
	for i, want := range ids {
		m := nextMessage(t, cc)
		if m.ID != want || string(m.Body) != fmt.Sprintf("m%02d", i) {
			t.Fatalf("backlog message %d: got id %d %q, want id %d", i, m.ID, m.Body, want)
		}
	}
	waitSynced(t, cc)

	_, err = alice.c.Send(ctx, "nobody", []byte("x"), "c2")
	wantCode(t, err, relay.CodeNotFound)
}

func TestAckAndRedelivery(t *testing.T) { eachStore(t, testAckAndRedelivery) }

func testAckAndRedelivery(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := register(t, r, "bob")
	for i := 0; i < 3; i++ {
		if _, err := alice.c.Send(ctx, "bob", []byte{byte(i)}, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	c1 := bob.login(t, r)
	first := nextMessage(t, c1)
	nextMessage(t, c1)
	nextMessage(t, c1)
	if err := c1.Ack(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	c1.Close()

	// Unacked messages come again on the next connection; the acked one does not.
	c2 := bob.login(t, r)
	m2, m3 := nextMessage(t, c2), nextMessage(t, c2)
	if m2.ID == first.ID || m3.ID == first.ID || m2.ID >= m3.ID {
		t.Fatalf("redelivered %d, %d after acking %d", m2.ID, m3.ID, first.ID)
	}
	waitSynced(t, c2)
	if err := c2.Ack(ctx, m2.ID, m3.ID); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	c3 := bob.login(t, r)
	waitSynced(t, c3)
}

// A quiet ack (no id, or "id":0) deletes what it names and is never answered; a quiet
// ack the relay refuses is answered with an error without an id. The hello says the
// relay takes them.
func TestQuietAck(t *testing.T) { eachStore(t, testQuietAck) }

func testQuietAck(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob, rc := registerLoggedIn(t, r, "bob")
	if rc.hello.Limits == nil || !rc.hello.Limits.QuietAcks {
		t.Fatalf("the hello's limits do not announce quiet_acks: %+v", rc.hello.Limits)
	}
	// next skips the low_prekeys notices a fresh card gets.
	next := func(rc *raw) relay.Frame {
		t.Helper()
		for {
			if f := rc.read(); f.Type != relay.TypeLowPreKeys {
				return f
			}
		}
	}
	if f := next(rc); f.Type != relay.TypeSynced {
		t.Fatalf("after login: %q, want synced", f.Type)
	}
	var ids []int64
	for i := range 3 {
		id, err := alice.c.Send(ctx, "bob", []byte{byte(i)}, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if f := next(rc); f.Type != relay.TypeDeliver || f.MsgID != id {
			t.Fatalf("got %s, want the deliver of %d", rc.last, id)
		}
		ids = append(ids, id)
	}
	// The compact layout (the fast path), then "id":0 (the general decoder's), then a
	// refused one, then an ack with an id: its ok comes once everything before it is
	// committed, so an ok for a quiet ack would come before it.
	rc.sendText([]byte(fmt.Sprintf(`{"type":"ack","ids":[%d]}`, ids[0])))
	rc.sendText([]byte(fmt.Sprintf(`{"ids":[%d], "type":"ack", "id":0}`, ids[1])))
	rc.sendText([]byte(`{"type":"ack","ids":[0]}`))
	if f := next(rc); f.Type != relay.TypeError || f.Code != relay.CodeBadField || f.ID != 0 {
		t.Fatalf("a refused quiet ack: got %s, want bad_field without an id", rc.last)
	}
	rc.sendText([]byte(fmt.Sprintf(`{"type":"ack","id":9,"ids":[%d]}`, ids[2])))
	if f := next(rc); f.Type != relay.TypeOK || f.ID != 9 {
		t.Fatalf("got %s, want only the ok of the ack with id 9", rc.last)
	}
	rc.ws.Close()

	// Nothing comes again: all three are deleted.
	rc2 := dialRaw(t, r)
	if f := rc2.login(bob); f.Type != relay.TypeOK {
		t.Fatalf("login: %s", rc2.last)
	}
	if f := next(rc2); f.Type != relay.TypeSynced {
		t.Fatalf("after acking everything, the backlog brought %s", rc2.last)
	}
}

func TestDuplicateClientID(t *testing.T) { eachStore(t, testDuplicateClientID) }

func testDuplicateClientID(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)
	id1, err := alice.c.Send(ctx, "bob", []byte("once"), "same-id")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := alice.c.Send(ctx, "bob", []byte("once"), "same-id")
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("duplicate client id answered with id %d, first was %d", id2, id1)
	}
	// The same client id from another sender is a different message.
	carol := newUser(t, r, "carol")
	id3, err := carol.c.Send(ctx, "bob", []byte("other"), "same-id")
	if err != nil || id3 == id1 {
		t.Fatalf("carol's send: id %d err %v", id3, err)
	}
	if m := nextMessage(t, bob.c); m.ID != id1 {
		t.Fatalf("first delivery %d, want %d", m.ID, id1)
	}
	if m := nextMessage(t, bob.c); m.ID != id3 {
		t.Fatalf("second delivery %d, want carol's %d (the duplicate must not be delivered)", m.ID, id3)
	}
}

// TestDuplicateClientIDAcrossCardReplacement: the sender a client_id is remembered
// for is the name, not its card (PROTOCOL.md, send): a resend after replace_card of a
// send accepted before it is a duplicate on every store, never a second copy.
func TestDuplicateClientIDAcrossCardReplacement(t *testing.T) {
	eachStore(t, testDuplicateClientIDAcrossCardReplacement)
}

func testDuplicateClientIDAcrossCardReplacement(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)
	id1, err := alice.c.Send(ctx, "bob", []byte("before"), "kept-id")
	if err != nil {
		t.Fatal(err)
	}
	k2, card2 := newIdentity(t, "alice")
	signed, err := alice.c.ReplaceCard(ctx, card2)
	if err != nil {
		t.Fatal(err)
	}
	newer := &user{name: "alice", key: k2, card: signed}
	newer.login(t, r)
	id2, err := newer.c.Send(ctx, "bob", []byte("before"), "kept-id")
	if err != nil {
		t.Fatal(err)
	}
	if id2 != id1 {
		t.Fatalf("a resend under the new card was stored again as %d; want the duplicate of %d", id2, id1)
	}
	id3, err := newer.c.Send(ctx, "bob", []byte("after"), "new-id")
	if err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, bob.c); m.ID != id1 {
		t.Fatalf("first delivery %d, want %d", m.ID, id1)
	}
	if m := nextMessage(t, bob.c); m.ID != id3 {
		t.Fatalf("second delivery %d, want %d (the resend must not be delivered)", m.ID, id3)
	}
}

func TestQueueFull(t *testing.T) { eachStore(t, testQueueFull) }

func testQueueFull(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{MaxQueueCount: 3}})
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	register(t, r, "bob")
	for i := 0; i < 3; i++ {
		if _, err := alice.c.Send(ctx, "bob", []byte("x"), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := alice.c.Send(ctx, "bob", []byte("x"), "3")
	wantCode(t, err, relay.CodeQueueFull)
	var pe *relay.ProtocolError
	if errorsAs(err, &pe); pe.Limit != "count" {
		t.Fatalf("queue_full names limit %q, want count", pe.Limit)
	}
	wantLimited(t, r, server.LimitQueueCount, 1)
}

func TestTTLLimit(t *testing.T) { eachStore(t, testTTLLimit) }

func testTTLLimit(t *testing.T, bk store) {
	r := bk.Start(t)
	alice := newUser(t, r, "alice")
	register(t, r, "bob")
	rc := dialRaw(t, r)
	if f := rc.login(alice); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	f := rc.request(map[string]any{"type": "send", "id": 2, "to": "bob", "body": []byte("x"), "client_id": "t", "ttl": 31 * 24 * 3600})
	expectErr(t, f, relay.CodeTTLTooLong)
	wantLimited(t, r, server.LimitMaxTTL, 1)
	f = rc.request(map[string]any{"type": "send", "id": 3, "to": "bob", "body": []byte("x"), "client_id": "t", "ttl": 60})
	if f.Type != relay.TypeAccepted {
		t.Fatalf("send with a short ttl: %+v", f)
	}
}

func TestReplaceCard(t *testing.T) { eachStore(t, testReplaceCard) }

func testReplaceCard(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")

	k2, card2 := newIdentity(t, "alice")
	signed, err := alice.c.ReplaceCard(ctx, card2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bob.c.LookupCard(ctx, "alice")
	if err != nil || got.ID() != signed.ID() {
		t.Fatalf("lookup after replace: %v", err)
	}
	// Bob cannot replace alice's card.
	_, card3 := newIdentity(t, "alice")
	_, err = bob.c.ReplaceCard(ctx, card3)
	wantCode(t, err, relay.CodeForbidden)
	// The old key can no longer log in (it is told its card was replaced); the new one can.
	old := client.New(client.Config{URL: r.URL, Identity: alice.key, Card: alice.card})
	defer old.Close()
	wantCode(t, old.Connect(ctx), relay.CodeCardReplaced)
	newer := &user{name: "alice", key: k2, card: signed}
	newer.login(t, r)
}

// TestReplaceCardClosesOldConnections: a connection still logged in with the replaced
// card (another device, or a thief of the old key) is closed with card_replaced and
// receives none of the name's later messages; the new card's connection gets them.
func TestReplaceCardClosesOldConnections(t *testing.T) {
	eachStore(t, testReplaceCardClosesOldConnections)
}

// cardReplacedUnderAConnection starts a relay with alice and bob, logs alice's card
// in on a second, raw connection, then replaces alice's card from her first: the raw
// connection is the old card's (another device, or a thief of the old key), and
// newer is alice under her new card, not logged in yet.
func cardReplacedUnderAConnection(t *testing.T, bk store) (r *relaytest.Relay, alice, bob, newer *user, oldConn *raw) {
	t.Helper()
	r = bk.Start(t)
	alice, bob = newUser(t, r, "alice"), newUser(t, r, "bob")
	oldConn = dialRaw(t, r)
	if f := oldConn.login(alice); f.Type != relay.TypeOK {
		t.Fatalf("second login of the old card: %+v", f)
	}
	k2, card2 := newIdentity(t, "alice")
	signed, err := alice.c.ReplaceCard(testCtx(t), card2)
	if err != nil {
		t.Fatal(err)
	}
	return r, alice, bob, &user{name: "alice", key: k2, card: signed}, oldConn
}

func testReplaceCardClosesOldConnections(t *testing.T, bk store) {
	ctx := testCtx(t)
	r, alice, bob, newer, oldConn := cardReplacedUnderAConnection(t, bk)
	// The old connection hears why and is closed; nothing else reaches it.
	for {
		f := oldConn.read()
		if f.Type == relay.TypeDeliver {
			t.Fatalf("the old card's connection got a message after the replacement: %+v", f)
		}
		if f.Type == relay.TypeError {
			if f.Code != relay.CodeCardReplaced {
				t.Fatalf("old connection: error %q, want %q", f.Code, relay.CodeCardReplaced)
			}
			break
		}
	}
	oldConn.ws.SetReadDeadline(time.Now().Add(waitFor))
	if _, _, err := oldConn.ws.ReadMessage(); err == nil {
		t.Fatal("the old card's connection stayed open")
	}
	// The replacing connection stays, and the new card receives what bob sends next.
	if _, err := bob.c.Send(ctx, "alice", []byte("for the new card"), "after-replace"); err != nil {
		t.Fatal(err)
	}
	newer.login(t, r)
	if m := nextMessage(t, newer.c); string(m.Body) != "for the new card" {
		t.Fatalf("new card received %q", m.Body)
	}
	if _, err := alice.c.LookupCard(ctx, "bob"); err != nil {
		t.Fatalf("the replacing connection was closed too: %v", err)
	}
}

// TestNoResumeTokens: protocol 2 has no bearer tokens; the login answer carries none
// and a resume frame is an unknown type. Every connection logs in with a key proof.
func TestNoResumeTokens(t *testing.T) { eachStore(t, testNoResumeTokens) }

func testNoResumeTokens(t *testing.T, bk store) {
	r := bk.Start(t)
	alice := newUser(t, r, "alice")
	rc := dialRaw(t, r)
	ok := rc.login(alice)
	if ok.Type != relay.TypeOK || ok.Name != "alice" {
		t.Fatalf("login answer %+v", ok)
	}
	if strings.Contains(string(rc.last), "token") {
		t.Fatalf("login answer carries a token: %s", rc.last)
	}
	rc2 := dialRaw(t, r)
	expectErr(t, rc2.request(map[string]any{"type": "resume", "id": 1}), relay.CodeUnknownType)
}

func TestImpersonationRefused(t *testing.T) { eachStore(t, testImpersonationRefused) }

func testImpersonationRefused(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := register(t, r, "bob")
	mallory := register(t, r, "mallory")
	msgID, err := alice.c.Send(ctx, "bob", []byte("for bob only"), "x1")
	if err != nil {
		t.Fatal(err)
	}

	// Before login only hello, register, lookup, login, resume and ping work.
	rc := dialRaw(t, r)
	for i, f := range []map[string]any{
		{"type": "send", "to": "bob", "body": []byte("x"), "client_id": "a"},
		{"type": "ack", "ids": []int64{msgID}},
		{"type": "upload_prekeys", "prekeys": [][]byte{{1}}},
		{"type": "prekey_status"},
		{"type": "fetch_bundle", "name": "bob"},
		{"type": "replace_card", "card": "pfscard1:x"},
	} {
		f["id"] = i + 10
		expectErr(t, rc.request(f), relay.CodeNotLoggedIn)
	}

	// Mallory signs the challenge with her key but claims bob's card: refused.
	sig := mallory.key.Sign(relay.LoginDomain, append(append([]byte{}, rc.hello.RelayKey...), rc.hello.Challenge...))
	expectErr(t, rc.request(map[string]any{"type": "login", "id": 20, "card_id": bob.card.ID(), "signature": sig}), relay.CodeLoginFailed)

	// A real signature by bob for one connection is useless on another (replay).
	rcBob := dialRaw(t, r)
	bobSig := bob.key.Sign(relay.LoginDomain, append(append([]byte{}, rcBob.hello.RelayKey...), rcBob.hello.Challenge...))
	rc2 := dialRaw(t, r)
	expectErr(t, rc2.request(map[string]any{"type": "login", "id": 1, "card_id": bob.card.ID(), "signature": bobSig}), relay.CodeLoginFailed)
	// ...and a signature made for another relay's key fails here too.
	other := relaytest.Start(t)
	otherSig := bob.key.Sign(relay.LoginDomain, append(append([]byte{}, other.Server.RelayKey()...), rc2.hello.Challenge...))
	expectErr(t, rc2.request(map[string]any{"type": "login", "id": 2, "card_id": bob.card.ID(), "signature": otherSig}), relay.CodeLoginFailed)

	// Logged in as mallory: a forged sender is a field the relay refuses.
	rcM := dialRaw(t, r)
	if f := rcM.login(mallory); f.Type != relay.TypeOK {
		t.Fatalf("mallory login: %+v", f)
	}
	expectErr(t, rcM.request(map[string]any{"type": "send", "id": 2, "to": "bob", "body": []byte("x"), "client_id": "f", "from": "alice"}), relay.CodeBadField)
	expectErr(t, rcM.request(map[string]any{"type": "send", "id": 3, "to": "bob", "body": []byte("x"), "client_id": "f", "from_card_id": alice.card.ID()}), relay.CodeBadField)
	// Acking bob's message as mallory deletes nothing.
	if f := rcM.request(map[string]any{"type": "ack", "id": 4, "ids": []int64{msgID}}); f.Type != relay.TypeOK {
		t.Fatalf("ack: %+v", f)
	}
	// Reading someone else's queue or prekeys is not expressible: fields are refused.
	expectErr(t, rcM.request(map[string]any{"type": "prekey_status", "id": 5, "card_id": bob.card.ID()}), relay.CodeBadField)
	expectErr(t, rcM.request(map[string]any{"type": "upload_prekeys", "id": 6, "prekeys": [][]byte{{1}}, "name": "bob"}), relay.CodeBadField)
	// Mallory's sends are stamped as hers.
	if f := rcM.request(map[string]any{"type": "send", "id": 7, "to": "bob", "body": []byte("hi"), "client_id": "m"}); f.Type != relay.TypeAccepted {
		t.Fatalf("send: %+v", f)
	}

	bc := bob.login(t, r)
	m := nextMessage(t, bc)
	if m.ID != msgID || m.From != "alice" {
		t.Fatalf("bob's message after mallory's ack: %+v", m)
	}
	if m := nextMessage(t, bc); m.From != "mallory" || m.FromCardID != mallory.card.ID() {
		t.Fatalf("mallory's message stamped as %q/%s", m.From, m.FromCardID)
	}
}

func TestMalformedFramesGetErrors(t *testing.T) { eachStore(t, testMalformedFramesGetErrors) }

func testMalformedFramesGetErrors(t *testing.T, bk store) {
	r := bk.Start(t)
	rc := dialRaw(t, r)
	for _, tc := range []struct {
		frame string
		code  string
	}{
		{`not json`, relay.CodeBadFrame},
		{`[1,2]`, relay.CodeBadFrame},
		{`{"type":"nope","id":1}`, relay.CodeUnknownType},
		{`{"type":"lookup","id":1}`, relay.CodeBadField},
		{`{"type":"lookup","id":1,"name":5}`, relay.CodeBadField},
		{`{"type":"lookup","id":1,"name":"bob","extra":1}`, relay.CodeBadField},
		{`{"type":"lookup","id":1,"name":"bob"} {}`, relay.CodeBadFrame},
		{`{"type":"lookup","name":"bob"}`, relay.CodeBadField},
		{`{"type":"send","id":1,"to":"bob","body":"!!!","client_id":"x"}`, relay.CodeBadField},
		{`{"type":"hello","id":1,"versions":[99]}`, relay.CodeUnsupportedVersion},
	} {
		rc.sendText([]byte(tc.frame))
		f := rc.read()
		if f.Type != relay.TypeError || f.Code != tc.code {
			t.Errorf("%s: got %+v, want error %s", tc.frame, f, tc.code)
		}
	}
	// Oversized frame: answered, connection kept.
	rc2 := dialRaw(t, r)
	rc2.sendText([]byte(`{"type":"lookup","id":1,"name":"` + strings.Repeat("a", relay.MaxFrameSize) + `"}`))
	if f := rc2.read(); f.Type != relay.TypeError || f.Code != relay.CodeFrameTooLarge || f.Limit != relay.LimitMaxFrameBytes {
		t.Fatalf("oversized frame: got %+v, want frame_too_large, limit max_frame_bytes", f)
	}
	if f := rc2.request(map[string]any{"type": "ping", "id": 2}); f.Type != relay.TypePong {
		t.Fatalf("after an oversized frame: %+v", f)
	}
	// Over a mebibyte more: the error frame, then a close frame (PROTOCOL.md
	// "Transport", "Limits and abuse"), both naming the limit.
	rc3 := dialRaw(t, r)
	go rc3.ws.WriteMessage(websocket.TextMessage, make([]byte, relay.MaxFrameSize+2<<20))
	if f := rc3.expectClosed(relay.CodeFrameTooLarge); f.Limit != relay.LimitMaxFrameBytes {
		t.Fatalf("frame far over the limit: error frame names limit %q, want %q", f.Limit, relay.LimitMaxFrameBytes)
	}
	wantLimited(t, r, server.LimitMaxFrameBytes, 2)
}

func TestRateLimit(t *testing.T) { eachStore(t, testRateLimit) }

func testRateLimit(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: 1, FrameBurst: 5}})
	rc := dialRaw(t, r)
	limited := 0
	for i := 1; i <= 10; i++ {
		rc.sendJSON(map[string]any{"type": "ping", "id": i})
	}
	for i := 0; i < 10; i++ {
		f := rc.read()
		if f.Type == relay.TypeError && f.Code == relay.CodeRateLimited {
			limited++
			if f.ID == 0 {
				t.Fatal("rate_limited error does not name the refused request's id")
			}
			if f.RetryAfterMS <= 0 {
				t.Fatal("rate_limited without retry_after_ms")
			}
		}
	}
	if limited < 4 {
		t.Fatalf("%d of 10 frames rate limited with burst 5", limited)
	}
	// A client that keeps hammering is cut off, with a close frame that says why.
	for i := 0; i < 40; i++ {
		if rc.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`)) != nil {
			break
		}
	}
	for {
		rc.ws.SetReadDeadline(time.Now().Add(waitFor))
		_, _, err := rc.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, relay.CodeRateLimited) {
			t.Fatalf("connection ended with %v, want a policy-violation close naming rate_limited", err)
		}
		break
	}
}

func TestHealthAndMetrics(t *testing.T) { eachStore(t, testHealthAndMetrics) }

func testHealthAndMetrics(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	register(t, r, "bob")
	if _, err := alice.c.Send(ctx, "bob", []byte("x"), "1"); err != nil {
		t.Fatal(err)
	}
	if got := r.Get(t, "/healthz"); got != "ok\n" {
		t.Fatalf("/healthz: %q", got)
	}
	m := r.Get(t, "/metrics")
	for _, want := range []string{
		"pfschat_relay_logged_in 1",
		"pfschat_relay_connections ",
		"pfschat_relay_queue_depth 1",
		`pfschat_relay_frames_in_total{type="send"} 1`,
		`pfschat_relay_frames_out_total{type="accepted"} 1`,
		"pfschat_relay_commit_seconds_count 1",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}
}

func TestGracefulShutdownTellsClients(t *testing.T) { eachStore(t, testGracefulShutdownTellsClients) }

func testGracefulShutdownTellsClients(t *testing.T, bk store) {
	r := bk.Start(t)
	rc := dialRaw(t, r)
	go r.Close()
	for {
		f := rc.read()
		if f.Type == relay.TypeGoingAway {
			return
		}
	}
}

// TestLargestMessage: the largest body a send may carry is delivered intact (its
// deliver frame still fits the frame limit); one byte more is refused by name.
func TestLargestMessage(t *testing.T) { eachStore(t, testLargestMessage) }

func testLargestMessage(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice-with-a-long-name-here-1234")
	bob := newUser(t, r, "bob-also-has-a-long-name-abcdefg")
	waitSynced(t, bob.c)
	body := make([]byte, relay.MaxBodySize)
	rand.Read(body)
	id, err := alice.c.Send(ctx, bob.name, body, strings.Repeat("c", 64))
	if err != nil {
		t.Fatal(err)
	}
	m := nextMessage(t, bob.c)
	if m.ID != id || !bytes.Equal(m.Body, body) {
		t.Fatalf("largest message: got id %d, %d bytes", m.ID, len(m.Body))
	}
	_, err = alice.c.Send(ctx, bob.name, make([]byte, relay.MaxBodySize+1), "x")
	wantCode(t, err, relay.CodeFrameTooLarge)
	// And the relay refuses it too, when a client does not check.
	rc := dialRaw(t, r)
	rc.login(alice)
	f := rc.request(map[string]any{"type": "send", "id": 9, "to": bob.name, "body": make([]byte, relay.MaxBodySize+1), "client_id": "y"})
	expectErr(t, f, relay.CodeFrameTooLarge)
	if f.Limit != relay.LimitMaxBodyBytes { // PROTOCOL.md: "frame_too_large with limit: max_body_bytes"
		t.Fatalf("body over the limit: error frame names limit %q, want %q", f.Limit, relay.LimitMaxBodyBytes)
	}
	wantLimited(t, r, server.LimitMaxBodyBytes, 1) // the client's own refusal never reached the relay
}

func TestQueueBytesLimit(t *testing.T) { eachStore(t, testQueueBytesLimit) }

func testQueueBytesLimit(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{MaxQueueBytes: 1000}, SenderQuota: -1})
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	register(t, r, "bob")
	if _, err := alice.c.Send(ctx, "bob", make([]byte, 900), "1"); err != nil {
		t.Fatal(err)
	}
	_, err := alice.c.Send(ctx, "bob", make([]byte, 200), "2")
	wantCode(t, err, relay.CodeQueueFull)
	var pe *relay.ProtocolError
	if errorsAs(err, &pe); pe.Limit != "bytes" {
		t.Fatalf("queue_full names limit %q, want bytes", pe.Limit)
	}
	wantLimited(t, r, server.LimitQueueBytes, 1)
}

// TestExpiredMessagesNotDelivered: a message past its TTL is not delivered.
func TestExpiredMessagesNotDelivered(t *testing.T) { eachStore(t, testExpiredMessagesNotDelivered) }

func testExpiredMessagesNotDelivered(t *testing.T, bk store) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := bk.StartWith(t, relaytest.Options{Clock: clock})
	alice := newUser(t, r, "alice")
	bob := register(t, r, "bob")
	rc := dialRaw(t, r)
	rc.login(alice)
	if f := rc.request(map[string]any{"type": "send", "id": 2, "to": "bob", "body": []byte("short-lived"), "client_id": "a", "ttl": 60}); f.Type != relay.TypeAccepted {
		t.Fatalf("send: %+v", f)
	}
	if _, err := alice.c.Send(testCtx(t), "bob", []byte("long-lived"), "b"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	c := bob.login(t, r)
	if m := nextMessage(t, c); string(m.Body) != "long-lived" {
		t.Fatalf("got %q: the expired message was delivered", m.Body)
	}
	waitSynced(t, c)
}

// TestConcurrentBundlesTakeEachKeyOnce: many clients fetching bundles at once get
// each one-time prekey at most once.
func TestConcurrentBundlesTakeEachKeyOnce(t *testing.T) {
	eachStore(t, testConcurrentBundlesTakeEachKeyOnce)
}

func testConcurrentBundlesTakeEachKeyOnce(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	var keys []ratchet.PublicPreKey
	keys = append(keys, makePreKeys(t, bob, ratchet.SignedPreKey, 1, 1)...)
	keys = append(keys, makePreKeys(t, bob, ratchet.KEMLastResort, 1, 1)...)
	keys = append(keys, makePreKeys(t, bob, ratchet.OneTimePreKey, 1, 10)...)
	if err := bob.c.UploadPreKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	const fetchers = 20
	clients := make([]*client.Client, fetchers)
	for i := range clients {
		clients[i] = newUser(t, r, fmt.Sprintf("f%d", i)).c
	}
	var mu sync.Mutex
	got := map[uint32]int{}
	none := 0
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := c.FetchBundle(ctx, "bob")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if b.OneTimePreKey == nil {
				none++
			} else {
				got[b.OneTimePreKey.ID]++
			}
		}()
	}
	wg.Wait()
	if len(got) != 10 || none != fetchers-10 {
		t.Fatalf("%d distinct one-time keys handed out, %d bundles without one; want 10 and %d", len(got), none, fetchers-10)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("one-time prekey %d handed out %d times", id, n)
		}
	}
}

// TestKilledConnectionActsOnNothing: a connection the relay has cut off (here: its card
// was replaced elsewhere, as when the owner recovers the name from a thief) is not acted
// on for any frame it sends after the cut, however long its socket lingers. Before,
// the relay kept executing its frames until the socket went (about a second, or the
// write timeout for a client that stopped reading), and a thief could replace the
// recovered card again.
func TestKilledConnectionActsOnNothing(t *testing.T) { eachStore(t, testKilledConnectionActsOnNothing) }

func testKilledConnectionActsOnNothing(t *testing.T, bk store) {
	ctx := testCtx(t)
	r, _, bob, owner, thief := cardReplacedUnderAConnection(t, bk)
	signed := owner.card
	for {
		f := thief.read()
		if f.Type == relay.TypeError {
			if f.Code != relay.CodeCardReplaced {
				t.Fatalf("the thief's connection: error %q, want %q", f.Code, relay.CodeCardReplaced)
			}
			break
		}
	}
	// Cut off; the thief writes on before its socket goes (and echoes no close).
	_, card3 := newIdentity(t, "alice")
	thief.sendJSON(map[string]any{"type": "replace_card", "id": 901, "card": card3.Export()})
	thief.sendJSON(map[string]any{"type": "block", "id": 902, "name": "bob"})
	thief.ws.SetReadDeadline(time.Now().Add(waitFor))
	for {
		_, data, err := thief.ws.ReadMessage()
		if err != nil {
			break // the relay's close frame (or the socket's end)
		}
		var f relay.Frame
		if json.Unmarshal(data, &f) == nil && (f.ID == 901 || f.ID == 902) {
			t.Fatalf("the cut-off connection was answered: %s", data)
		}
	}
	// The relay counts a connection as gone once it has stopped reading it and torn
	// it down: whatever it was going to do with the frames, it has done by then.
	nc := thief.ws.NetConn()
	nc.SetReadDeadline(time.Now().Add(waitFor))
	io.Copy(io.Discard, nc)
	for deadline := time.Now().Add(waitFor); openConnections(t, r) > 2; { // alice's and bob's
		if time.Now().After(deadline) {
			t.Fatal("the cut-off connection is still open")
		}
		time.Sleep(time.Millisecond) // no event to wait on: the relay's teardown is its own
	}
	got, err := bob.c.LookupCard(ctx, "alice")
	if err != nil || got.ID() != signed.ID() {
		t.Fatalf("alice's card after the cut-off connection's replace_card: %v %v, want the owner's %s", got.ID(), err, signed.ID())
	}
	if _, err := bob.c.Send(ctx, "alice", []byte("not blocked"), "after-cut"); err != nil {
		t.Fatalf("a send to alice after the cut-off connection's block: %v", err)
	}
}

// openConnections is the relay's pfschat_relay_connections gauge.
func openConnections(t testing.TB, r *relaytest.Relay) int {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Server.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "pfschat_relay_connections "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatal("no pfschat_relay_connections metric")
	return 0
}
