package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// heldNotices is a node's real hub, but the notices hold picks (an account deleted,
// a card replaced) reach the node's connections only once release is closed (held
// says one was caught): the milliseconds such a notice from another node takes to be
// heard here, made as long as a test needs.
type heldNotices struct {
	server.Hub
	hold    func(server.Notice) bool
	held    chan struct{}
	once    sync.Once
	release chan struct{}
}

func newHeldNotices(hold func(server.Notice) bool) *heldNotices {
	return &heldNotices{hold: hold, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldNotices) wrap(hub server.Hub) server.Hub {
	h.Hub = hub
	return keepExtensions(h, hub)
}

func (h *heldNotices) Subscribe(name string, s server.Subscriber) func() {
	return h.Hub.Subscribe(name, &heldSubscriber{Subscriber: s, h: h})
}

type heldSubscriber struct {
	server.Subscriber
	h *heldNotices
}

func (s *heldSubscriber) Notify(n server.Notice) {
	if !s.h.hold(n) {
		s.Subscriber.Notify(n)
		return
	}
	s.h.once.Do(func() { close(s.h.held) })
	go func() {
		<-s.h.release
		s.Subscriber.Notify(n)
	}()
}

func (s *heldSubscriber) Resync(ctx context.Context) (int, error) {
	if r, ok := s.Subscriber.(server.Resyncable); ok {
		return r.Resync(ctx)
	}
	return 0, nil
}

// TestAcksOfADeletedAccountOnAnotherNode: alice is logged in on node B while her
// account is deleted on node A; node B hears of it late (its notice held back until
// the end), and meanwhile the name is registered by a new owner on A and bob sends
// the new owner messages. The old connection on B streams acks for every id the
// test's messages can have, and acks the new messages by their ids once they are
// accepted: none of them is deleted, because an ack there deletes a message only
// while the acking card is still the name's. (Before, the queue is keyed by name and
// such acks deleted all of the new owner's messages, every run.)
func TestAcksOfADeletedAccountOnAnotherNode(t *testing.T) {
	held := newHeldNotices(func(n server.Notice) bool { return n.AccountDeleted != "" })
	a, b, bob, alice, old, deleter := aliceOnTwoNodes(t, server.Limits{FramesPerSecond: -1, TextBytesPerSecond: -1, AckIDsPerSecond: -1}, held)
	ctx := testCtx(t)

	// The old connection streams quiet acks of ids 1..128 until told to stop; its
	// frames are read (and the answer to the final ack handed over) until it ends.
	// The stream is as fast as the test can write (about 10,000 acks while node A
	// deletes, registers and accepts), and the final ack is answered once every ack
	// before it is committed: about 3 s under the race detector alone, over 10 s
	// (waitFor) once in a run of the package beside relay/cluster's tests on two
	// loaded cores. The reads and that answer wait backlogWait instead.
	const backlogWait = 4 * waitFor
	ids := make([]int64, 128)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	quiet, _ := json.Marshal(map[string]any{"type": "ack", "ids": ids})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if old.ws.WriteMessage(websocket.TextMessage, quiet) != nil {
				return
			}
		}
	}()
	const finalAck = 7777
	final := make(chan relay.Frame, 1)
	ended := make(chan []relay.Frame, 1)
	go func() {
		var frames []relay.Frame
		for {
			old.ws.SetReadDeadline(time.Now().Add(backlogWait))
			_, data, err := old.ws.ReadMessage()
			if err != nil {
				ended <- frames
				return
			}
			var f relay.Frame
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			if f.ID == finalAck {
				final <- f
			}
			frames = append(frames, f)
		}
	}()

	if f := deleter.request(deleteAccountFrame(a, alice, 9)); f.Type != relay.TypeOK {
		t.Fatalf("delete_account on A: %+v", f)
	}
	newKey, newCard := newIdentity(t, "alice")
	taker := dialRaw(t, a)
	if f := taker.request(map[string]any{"type": "register", "id": 1, "card": newCard.Export()}); f.Type != relay.TypeCard {
		t.Fatalf("the new owner's register: %+v", f)
	}
	newAlice := &user{name: "alice", key: newKey, card: newCard}
	if f := taker.login(newAlice); f.Type != relay.TypeOK {
		t.Fatalf("the new owner's login: %+v", f)
	}
	const sent = 5
	var newIDs []int64
	for i := range sent {
		id, err := bob.c.Send(ctx, "alice", []byte(fmt.Sprint("for the new alice ", i)), fmt.Sprint("n", i))
		if err != nil {
			t.Fatal(err)
		}
		newIDs = append(newIDs, id)
	}
	close(stop)
	<-stopped
	select {
	case <-held.held:
	default:
		t.Fatal("node B was not sent the deletion's notice before the new owner's messages")
	}
	// One ack after the messages were accepted, answered once committed (or refused).
	old.sendJSON(map[string]any{"type": "ack", "id": finalAck, "ids": newIDs})
	select {
	case f := <-final:
		if f.Type != relay.TypeError || f.Code != relay.CodeAccountDeleted {
			t.Errorf("the deleted account's ack of the new owner's messages was answered %+v, want account_deleted", f)
		}
	case <-time.After(backlogWait):
		t.Fatal("the final ack was not answered")
	}
	close(held.release)
	frames := <-ended
	if len(frames) == 0 || frames[len(frames)-1].Code != relay.CodeAccountDeleted {
		t.Errorf("the old connection on B ended after %+v, want account_deleted last", frames)
	}

	// The new owner, logging in afresh on B, is sent every one of its messages.
	if got := backlogOf(t, newAlice, b); got != sent {
		t.Fatalf("the new owner's backlog holds %d of its %d messages: the old connection's acks deleted the rest", got, sent)
	}
}

// backlogOf logs u in on r and counts the messages before the end of its backlog.
func backlogOf(t *testing.T, u *user, r *relaytest.Relay) int {
	t.Helper()
	c := u.login(t, r)
	ctx, cancel := context.WithTimeout(testCtx(t), waitFor)
	defer cancel()
	n := 0
	for {
		p, err := c.Pushes().Wait(ctx)
		if err != nil {
			t.Fatalf("%s's backlog did not end: %v", u.name, err)
		}
		if p.Message != nil {
			n++
		}
		if p.Synced {
			return n
		}
	}
}

// TestAcksOfAReplacedCardOnAnotherNode: the check that keeps a deleted account's acks
// from a new owner's messages lets through those of a card its own account replaced
// on another node, before that node heard of it: the messages are that account's.
func TestAcksOfAReplacedCardOnAnotherNode(t *testing.T) {
	held := newHeldNotices(func(n server.Notice) bool { return n.CardReplaced != "" })
	a, _, bob, _, old, replacer := aliceOnTwoNodes(t, server.Limits{}, held)
	ctx := testCtx(t)
	const sent = 3
	var ids []int64
	for i := range sent {
		id, err := bob.c.Send(ctx, "alice", []byte(fmt.Sprint("for alice ", i)), fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	key, card := newIdentity(t, "alice")
	if f := replacer.request(map[string]any{"type": "replace_card", "id": 30, "card": card.Export()}); f.Type != relay.TypeCard {
		t.Fatalf("replace_card on A: %+v", f)
	}
	if f := old.request(map[string]any{"type": "ack", "id": 31, "ids": ids}); f.Type != relay.TypeOK {
		t.Fatalf("the replaced card's ack on B, before B heard of the replacement: %+v", f)
	}
	select {
	case <-held.held:
	default:
		t.Fatal("node B was not sent the replacement's notice before the ack")
	}
	close(held.release)
	for {
		f := old.read()
		if f.Type == relay.TypeError {
			if f.Code != relay.CodeCardReplaced {
				t.Fatalf("the old card's connection on B: %+v, want card_replaced", f)
			}
			break
		}
	}
	if n := backlogOf(t, &user{name: "alice", key: key, card: card}, a); n != 0 {
		t.Fatalf("%d of the %d acked messages still queued", n, sent)
	}
}

// aliceOnTwoNodes starts nodes A and B on one NATS server (B's notices passing through
// held), bob logged in on A, and alice registered on A and logged in on both: old on
// B, onA on A.
func aliceOnTwoNodes(t *testing.T, limits server.Limits, held *heldNotices) (a, b *relaytest.Relay, bob, alice *user, old, onA *raw) {
	t.Helper()
	ns := natstest.Single(t)
	a, _ = startClusterNode(t, ns.URL(), relaytest.Options{Limits: limits})
	b, _ = startClusterNode(t, ns.URL(), relaytest.Options{Limits: limits, WrapHub: held.wrap})
	bob = newUser(t, a, "bob")
	waitSynced(t, bob.c)
	alice = register(t, a, "alice")
	old = dialRaw(t, b)
	if f := old.login(alice); f.Type != relay.TypeOK {
		t.Fatalf("old login on B: %+v", f)
	}
	onA = dialRaw(t, a)
	if f := onA.login(alice); f.Type != relay.TypeOK {
		t.Fatalf("login on A: %+v", f)
	}
	return a, b, bob, alice, old, onA
}
