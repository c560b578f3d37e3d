package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

func TestDeleteAccountFreesTheName(t *testing.T) { eachStore(t, testDeleteAccountFreesTheName) }

func testDeleteAccountFreesTheName(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	waitSynced(t, alice.c)
	waitSynced(t, bob.c)
	if _, err := alice.c.Send(ctx, "bob", []byte("from the old alice"), "x1"); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.c)
	// Alice goes offline with messages waiting and a second device logged in.
	alice.c.Close()
	for _, id := range []string{"q1", "q2"} {
		if _, err := bob.c.Send(ctx, "alice", []byte("waiting"), id); err != nil {
			t.Fatal(err)
		}
	}
	other := client.New(client.Config{URL: r.URL, Identity: alice.key, Card: alice.card, PinnedRelayKey: r.Server.RelayKey()})
	defer other.Close()
	if err := other.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	deleter := client.New(client.Config{URL: r.URL, Identity: alice.key, Card: alice.card, PinnedRelayKey: r.Server.RelayKey()})
	defer deleter.Close()
	if err := deleter.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	// Refusals first: another card's id, a stale time, a bad signature.
	rc := dialRaw(t, r)
	if f := rc.login(alice); f.Type != relay.TypeOK {
		t.Fatalf("raw login: %+v", f)
	}
	now := time.Now().Unix()
	good := alice.key.Sign(relay.DeleteAccountDomain, relay.DeleteAccountMessage(r.Server.RelayKey(), alice.card.ID(), now))
	stale := now - 3600
	staleSig := alice.key.Sign(relay.DeleteAccountDomain, relay.DeleteAccountMessage(r.Server.RelayKey(), alice.card.ID(), stale))
	expectErr(t, rc.request(map[string]any{"type": "delete_account", "id": 2, "card_id": bob.card.ID(), "time": now, "signature": good}), relay.CodeForbidden)
	expectErr(t, rc.request(map[string]any{"type": "delete_account", "id": 3, "card_id": alice.card.ID(), "time": stale, "signature": staleSig}), relay.CodeBadTime)
	bobSig := bob.key.Sign(relay.DeleteAccountDomain, relay.DeleteAccountMessage(r.Server.RelayKey(), alice.card.ID(), now))
	expectErr(t, rc.request(map[string]any{"type": "delete_account", "id": 4, "card_id": alice.card.ID(), "time": now, "signature": bobSig}), relay.CodeForbidden)
	expectErr(t, rc.request(map[string]any{"type": "delete_account", "id": 5, "card_id": alice.card.ID(), "time": now + 1, "signature": good}), relay.CodeForbidden)
	if _, err := dirOf(r).AccountByName(ctx, "alice"); err != nil {
		t.Fatalf("a refused delete_account deleted: %v", err)
	}

	if err := deleter.DeleteAccount(ctx); err != nil {
		t.Fatal(err)
	}
	// The other device is told and closed.
	if err := other.Ping(ctx); err == nil {
		// The close can trail the ping's answer; the next request must fail.
		deadline := time.Now().Add(waitFor)
		for other.Ping(ctx) == nil {
			if time.Now().After(deadline) {
				t.Fatal("the other device stayed connected after its account was deleted")
			}
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := bob.c.LookupCard(ctx, "alice"); err == nil {
		t.Fatal("the deleted name still has a card")
	} else {
		wantCode(t, err, relay.CodeNotFound)
	}
	if n := queued(t, r, "alice"); n != 0 {
		t.Fatalf("%d messages still queued for the deleted account", n)
	}
	if n, _ := dirOf(r).CountPreKeys(ctx, alice.card.ID(), 2); n != 0 {
		t.Fatalf("%d prekeys left", n)
	}
	// Bob's connection, which knew the name, cannot queue for it any more.
	_, err := bob.c.Send(ctx, "alice", []byte("to nobody"), "q3")
	wantCode(t, err, relay.CodeNotFound)

	// The name is free: someone else takes it and starts clean.
	newAlice := newUser(t, r, "alice")
	waitSynced(t, newAlice.c)
	if _, err := bob.c.Send(ctx, "alice", []byte("hello new alice"), "q4"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, newAlice.c); string(m.Body) != "hello new alice" {
		t.Fatalf("the new owner got %q", m.Body)
	}
	// The old owner's duplicate-detection entries went too.
	if _, err := newAlice.c.Send(ctx, "bob", []byte("from the new alice"), "x1"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, bob.c); string(m.Body) != "from the new alice" {
		t.Fatalf("bob got %q", m.Body)
	}
	if err := integrity(ctx, r); err != nil {
		t.Fatal(err)
	}
}

// clock is an injected relay clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestAccountExpiry(t *testing.T) { eachStore(t, testAccountExpiry) }

func testAccountExpiry(t *testing.T, bk store) {
	const day = 24 * time.Hour
	clk := &clock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clk.now, AccountExpiry: 30 * day})
	ctx := testCtx(t)
	register(t, r, "idle")
	active := register(t, r, "active")
	live := newUser(t, r, "live") // stays connected throughout
	waitSynced(t, live.c)
	if _, err := live.c.Send(ctx, "idle", []byte("never read"), "m1"); err != nil {
		t.Fatal(err)
	}

	clk.add(20 * day)
	active.login(t, r)
	active.c.Close()
	// Wait until the relay has let go of that connection (a connected account is kept).
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(r.Get(t, "/metrics"), "pfschat_relay_connections 1\n") {
		if time.Now().After(deadline) {
			t.Fatal("the relay kept active's closed connection")
		}
		time.Sleep(time.Millisecond)
	}
	clk.add(11 * day) // idle: 31 days; active: 11 days since its login; live: connected
	if n := r.Server.SweepAccounts(ctx); n != 1 {
		t.Fatalf("sweep deleted %d accounts, want 1 (idle)", n)
	}
	if _, err := dirOf(r).AccountByName(ctx, "idle"); !errorsIs(err, storage.ErrNotFound) {
		t.Fatalf("idle account after expiry: %v", err)
	}
	if n := queued(t, r, "idle"); n != 0 {
		t.Fatalf("idle account's queue: %d left", n)
	}
	for _, name := range []string{"active", "live"} {
		if _, err := dirOf(r).AccountByName(ctx, name); err != nil {
			t.Fatalf("%s expired too early: %v", name, err)
		}
	}
	clk.add(20 * day) // active: 31 days; live: still connected
	if n := r.Server.SweepAccounts(ctx); n != 1 {
		t.Fatalf("second sweep deleted %d, want 1 (active)", n)
	}
	if _, err := dirOf(r).AccountByName(ctx, "live"); err != nil {
		t.Fatalf("a connected account expired: %v", err)
	}
	if err := live.c.Ping(ctx); err != nil {
		t.Fatalf("live connection: %v", err)
	}
	// The freed name can be registered again.
	register(t, r, "idle")
}

// Without --account-expiry nothing ever expires.
func TestAccountExpiryOff(t *testing.T) { eachStore(t, testAccountExpiryOff) }

func testAccountExpiryOff(t *testing.T, bk store) {
	clk := &clock{t: time.Now()}
	r := bk.StartWith(t, relaytest.Options{Clock: clk.now})
	register(t, r, "idle")
	clk.add(10 * 365 * 24 * time.Hour)
	if n := r.Server.SweepAccounts(testCtx(t)); n != 0 {
		t.Fatalf("sweep with expiry off deleted %d", n)
	}
}

// nodeQueue is the queue of a relay node as `pfschat relay --nats` runs it (measured
// by cluster.Ops), with every optional extension the relay looks for: a test that
// wraps it by embedding keeps them all (embedding server.Queue alone would hide them
// from the relay, which then skips what they do).
type nodeQueue interface {
	server.Queue
	server.AckBatcher
	server.OwnedAcker
	server.QueuePurger
	server.StaleQueuePurger
	Expire(ctx context.Context, now time.Time) (int, error)
	QueueDepth(ctx context.Context) (int, error)
}

// purgeFails is a cluster node's queue whose next purges fail, as when the store
// loses its quorum for a moment: fails of PurgeRecipient's, failsBefore of
// PurgeRecipientBefore's.
type purgeFails struct {
	nodeQueue
	fails, failsBefore atomic.Int32
}

func (q *purgeFails) PurgeRecipient(ctx context.Context, name string) (int, error) {
	if q.fails.Add(-1) >= 0 {
		return 0, fmt.Errorf("purge: %w", server.ErrUnavailable)
	}
	return q.nodeQueue.PurgeRecipient(ctx, name)
}

func (q *purgeFails) PurgeRecipientBefore(ctx context.Context, name string, mark server.QueueMark) (int, error) {
	if q.failsBefore.Add(-1) >= 0 {
		return 0, fmt.Errorf("purge: %w", server.ErrUnavailable)
	}
	return q.nodeQueue.PurgeRecipientBefore(ctx, name, mark)
}

// aliceAway starts a relay on a cluster queue whose purges can be made to fail, with
// alice registered and offline and two messages from bob queued for her.
func aliceAway(t *testing.T) (o relaytest.Options, q *purgeFails, r *relaytest.Relay, alice, bob *user) {
	t.Helper()
	o = jetstreamOptions(t, relaytest.Options{})
	nq, ok := o.Queue.(nodeQueue)
	if !ok {
		t.Fatalf("the node's queue %T lacks an extension of the relay's queue", o.Queue)
	}
	q = &purgeFails{nodeQueue: nq}
	o.Queue = q
	r = relaytest.StartWith(t, o)
	alice, bob = newUser(t, r, "alice"), newUser(t, r, "bob")
	waitSynced(t, alice.c)
	alice.c.Close()
	for _, id := range []string{"q1", "q2"} {
		if _, err := bob.c.Send(testCtx(t), "alice", []byte("for the first alice"), id); err != nil {
			t.Fatal(err)
		}
	}
	return o, q, r, alice, bob
}

// newAliceGetsOnlyHers registers alice again and checks that the name's queue is
// empty and that the first message the new alice gets is one sent to her.
func newAliceGetsOnlyHers(t *testing.T, r *relaytest.Relay, q *purgeFails, bob *user) {
	t.Helper()
	ctx := testCtx(t)
	next := newUser(t, r, "alice")
	waitSynced(t, next.c)
	if left, err := q.Pending(ctx, "alice", 0, 10); err != nil || len(left) != 0 {
		t.Fatalf("the name's new owner has %d messages queued (%v), want none", len(left), err)
	}
	if _, err := bob.c.Send(ctx, "alice", []byte("for the new alice"), "n1"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, next.c); string(m.Body) != "for the new alice" {
		t.Fatalf("the name's new owner got %q first", m.Body)
	}
}

// On a cluster the queue is apart from the account: a delete_account whose queue
// cannot be dropped is refused (unavailable) and deletes nothing, so that the name's
// next owner is never sent the deleted account's messages; the retry deletes both.
func TestDeleteAccountOnClusterDropsQueueFirst(t *testing.T) {
	o, q, r, alice, bob := aliceAway(t)
	ctx := testCtx(t)
	deleter := alice.login(t, r)
	q.fails.Store(1)
	wantCode(t, deleter.DeleteAccount(ctx), relay.CodeUnavailable)
	if _, err := o.Dir.AccountByName(ctx, "alice"); err != nil {
		t.Fatalf("a refused delete_account deleted the account: %v", err)
	}
	if err := deleter.DeleteAccount(ctx); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	newAliceGetsOnlyHers(t, r, q, bob)
}

// On a cluster a deletion that could not drop the account's queue (the expiry of an
// idle account deletes the account first, and the store may fail right after) leaves
// messages under the name: registering the name again drops them first, so that the
// new owner is never sent the old account's messages; if they cannot be dropped, the
// registration is refused (unavailable) and creates nothing.
func TestRegisterOnClusterDropsALeftQueue(t *testing.T) {
	o, q, r, alice, bob := aliceAway(t)
	ctx := testCtx(t)
	// The account goes, its queue stays: a failure between the two steps.
	if _, err := o.Dir.(interface {
		DeleteAccount(ctx context.Context, name, cardID string) (int, error)
	}).DeleteAccount(ctx, "alice", alice.card.ID()); err != nil {
		t.Fatal(err)
	}
	if left, err := q.Pending(ctx, "alice", 0, 10); err != nil || len(left) != 2 {
		t.Fatalf("the deleted account's queue holds %d messages (%v), want the 2 left", len(left), err)
	}
	q.failsBefore.Store(1)
	_, card := newIdentity(t, "alice")
	anon := client.New(client.Config{URL: r.URL, RootCAs: r.RootCAs()})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := anon.Register(ctx, card)
	wantCode(t, err, relay.CodeUnavailable)
	if _, err := o.Dir.AccountByName(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a registration refused for its queue created the account: %v", err)
	}
	newAliceGetsOnlyHers(t, r, q, bob)
}

// A deleted account's other connections get nothing of a new owner of the name, and
// delete none of its messages, however soon the name is taken again: they are cut off
// before the deletion commits, and an ack of theirs still in the committer is dropped.
// A red team registered the name within 3 ms of the deletion while an old connection
// streamed quiet acks for the ids to come: it received the new owner's messages and
// acked all of them away, and the new owner's first login failed on the cached old card.
func TestDeleteAccountCutsItsConnectionsFirst(t *testing.T) {
	eachStore(t, testDeleteAccountCutsItsConnectionsFirst)
}

func testDeleteAccountCutsItsConnectionsFirst(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)
	alice, old := registerLoggedIn(t, r, "alice")
	deleter := dialRaw(t, r)
	if f := deleter.login(alice); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	// The old connection acks every id the test's messages can have, without pause,
	// and records what it is sent, until its connection ends.
	ids := make([]int64, 1024)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	ack, _ := json.Marshal(map[string]any{"type": "ack", "ids": ids})
	acking := make(chan struct{})
	go func() {
		defer close(acking)
		for old.ws.WriteMessage(websocket.TextMessage, ack) == nil {
		}
	}()
	got := make(chan []string, 1)
	go func() {
		var delivered []string
		for {
			old.ws.SetReadDeadline(time.Now().Add(waitFor))
			_, data, err := old.ws.ReadMessage()
			if err != nil {
				got <- delivered
				return
			}
			var f relay.Frame
			if json.Unmarshal(data, &f) == nil && f.Type == relay.TypeDeliver {
				delivered = append(delivered, string(f.Body))
			}
		}
	}()

	// The new owner takes the name the moment it is free, before the deleter's answer.
	newKey, newCard := newIdentity(t, "alice")
	taker := dialRaw(t, r)
	deleter.sendJSON(deleteAccountFrame(r, alice, 9))
	export := newCard.Export()
	for id := 100; ; id++ {
		f := taker.request(map[string]any{"type": "register", "id": id, "card": export})
		if f.Type == relay.TypeCard {
			break
		}
		if f.Code != relay.CodeNameTaken {
			t.Fatalf("register: %+v", f)
		}
	}
	const sent = 5
	for i := range sent {
		if _, err := bob.c.Send(ctx, "alice", []byte(fmt.Sprintf("for the new alice %d", i)), fmt.Sprintf("n%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	newAlice := &user{key: newKey, card: newCard}
	if f := taker.login(newAlice); f.Type != relay.TypeOK {
		t.Fatalf("the new owner's first login: %+v", f)
	}
	if f := deleter.answer(9); f.Type != relay.TypeOK {
		t.Fatalf("delete_account: %+v", f)
	}
	if delivered := <-got; len(delivered) != 0 {
		t.Fatalf("the deleted account's connection was delivered the new owner's messages: %q", delivered)
	}
	<-acking
	// Every ack still in the committer has been committed once an answered one has.
	if _, err := bob.c.Send(ctx, "bob", []byte("sync"), "sync"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, bob.c); string(m.Body) != "sync" {
		t.Fatalf("bob got %q", m.Body)
	} else if err := bob.c.Ack(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if n := queued(t, r, "alice"); n != sent {
		t.Fatalf("%d of the new owner's %d messages left: the old connection's acks deleted them", n, sent)
	}
}

// heldHub is the relay's real hub, but for the first Subscribe to name after arm,
// which waits for release (once it has said so on entered): a login caught past every
// check of its card, before its subscription.
type heldHub struct {
	server.Hub
	name             string
	armed            atomic.Bool
	entered, release chan struct{}
}

// resyncingWrapper is a test's wrapper of a hub that resyncs its subscribers (a
// cluster node's), still one to the relay.
type resyncingWrapper struct{ server.Hub }

func (resyncingWrapper) ResyncsSubscribers() {}

// forwardingWrapper is a test's wrapper of a hub that forwards to other nodes (a
// cluster node's), still one to the relay: the committer hands a message to the
// inner hub's LocalHub and Forward as it does on a production node, not to the
// wrapper's Publish.
type forwardingWrapper struct {
	server.Hub
	inner server.ForwardingHub
}

func (w forwardingWrapper) LocalHub() *server.MemHub         { return w.inner.LocalHub() }
func (w forwardingWrapper) Forward(m *storage.QueuedMessage) { w.inner.Forward(m) }

// resyncingForwardingWrapper is both (a cluster node's hub, cluster.Hub).
type resyncingForwardingWrapper struct{ forwardingWrapper }

func (resyncingForwardingWrapper) ResyncsSubscribers() {}

// keepExtensions returns wrapper seen as each optional extension of the relay's hub
// that inner, the hub it wraps, has (ResyncingHub, ForwardingHub), so that a test's
// wrapper of a cluster node's hub leaves the relay on the paths it takes in
// production. (The in-memory hub is found by its type, which no wrapper keeps.)
func keepExtensions(wrapper, inner server.Hub) server.Hub {
	_, resyncs := inner.(server.ResyncingHub)
	fw, forwards := inner.(server.ForwardingHub)
	switch {
	case resyncs && forwards:
		return resyncingForwardingWrapper{forwardingWrapper{wrapper, fw}}
	case forwards:
		return forwardingWrapper{wrapper, fw}
	case resyncs:
		return resyncingWrapper{wrapper}
	}
	return wrapper
}

func newHeldHub(name string) *heldHub {
	return &heldHub{name: name, entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldHub) wrap(hub server.Hub) server.Hub {
	h.Hub = hub
	return keepExtensions(h, hub)
}

func (h *heldHub) Subscribe(name string, s server.Subscriber) func() {
	if name == h.name && h.armed.CompareAndSwap(true, false) {
		close(h.entered)
		<-h.release
	}
	return h.Hub.Subscribe(name, s)
}

// A login whose checks pass before its account's deletion and whose subscription
// comes after it — so that it missed both of the deletion's notices — ends refused
// or cut off, never logged in as the deleted card, subscribed to the name its next
// owner takes (42e2b36: loggedIn looks at the store again when an account was deleted
// meanwhile). The login is held at the hub's door until the deletion is answered, so
// the window is hit every run: without the look again the late connection is
// answered ok and delivered the new owner's message.
func TestLoginOverlappingItsAccountsDeletion(t *testing.T) {
	eachStore(t, testLoginOverlappingItsAccountsDeletion)
}

func testLoginOverlappingItsAccountsDeletion(t *testing.T, bk store) {
	h := newHeldHub("alice")
	r := bk.StartWith(t, relaytest.Options{WrapHub: h.wrap})
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)
	alice, deleter := registerLoggedIn(t, r, "alice")
	late := dialRaw(t, r)
	h.armed.Store(true)
	late.sendJSON(map[string]any{"type": "login", "id": 1, "card_id": alice.card.ID(), "signature": late.loginSignature(alice)})
	select {
	case <-h.entered:
	case <-time.After(waitFor):
		t.Fatal("the login did not reach its subscription")
	}
	if f := deleter.request(deleteAccountFrame(r, alice, 2)); f.Type != relay.TypeOK {
		t.Fatalf("delete_account: %+v", f)
	}
	close(h.release)

	// The name's next owner takes it and is written to.
	newKey, newCard := newIdentity(t, "alice")
	taker := dialRaw(t, r)
	if f := taker.request(map[string]any{"type": "register", "id": 1, "card": newCard.Export()}); f.Type != relay.TypeCard {
		t.Fatalf("the new owner's register: %+v", f)
	}
	if f := taker.login(&user{key: newKey, card: newCard}); f.Type != relay.TypeOK {
		t.Fatalf("the new owner's login: %+v", f)
	}
	if _, err := bob.c.Send(ctx, "alice", []byte("for the new alice"), "n1"); err != nil {
		t.Fatal(err)
	}
	for {
		if f := taker.read(); f.Type == relay.TypeDeliver {
			if string(f.Body) != "for the new alice" {
				t.Fatalf("the new owner was delivered %q", f.Body)
			}
			break
		}
	}

	// The late login: refused, or its connection cut; never delivered that message.
	var frames []string
	for {
		late.ws.SetReadDeadline(time.Now().Add(waitFor))
		_, data, err := late.ws.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("the login that overlapped its account's deletion is still open, logged in as the deleted card; it was sent %q", frames)
			}
			break
		}
		frames = append(frames, string(data))
		var f relay.Frame
		if json.Unmarshal(data, &f) == nil && f.Type == relay.TypeDeliver {
			t.Fatalf("the login that overlapped its account's deletion was delivered the new owner's message: %q", frames)
		}
	}
	if len(frames) == 0 || !strings.Contains(frames[len(frames)-1], relay.CodeAccountDeleted) {
		t.Fatalf("the late login ended after %q, want its last frame account_deleted", frames)
	}
}
