package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// heldFeed is a node's shared directory whose change feed holds back, once armed,
// every change to one account, in order, until release is closed: the moment before
// another node's write to the account reaches this node's caches, made as long as a
// test needs.
type heldFeed struct {
	*cluster.Directory
	name    string
	armed   chan struct{}
	held    chan struct{} // closed once a change was held
	release chan struct{}
	once    sync.Once
}

func (h *heldFeed) WatchChanges(ctx context.Context, f func(server.Change)) error {
	var mu sync.Mutex
	var held []server.Change
	var flushed bool
	go func() {
		select {
		case <-h.release:
		case <-ctx.Done():
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ch := range held {
			f(ch)
		}
		held, flushed = nil, true
	}()
	return h.Directory.WatchChanges(ctx, func(ch server.Change) {
		select {
		case <-h.armed:
		default:
			f(ch)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if ch.Account == h.name && !flushed {
			held = append(held, ch)
			h.once.Do(func() { close(h.held) })
			return
		}
		f(ch)
	})
}

// startProductionNode starts a relay node on the NATS server at url as `pfschat relay
// --nats` runs it (clusterNodeOptions: its queue measured by cluster.Ops), its
// directory's change feed passing through feed when not nil.
func startProductionNode(t *testing.T, url string, feed *heldFeed) *relaytest.Relay {
	t.Helper()
	o, _ := clusterNodeOptions(t, url, relaytest.Options{})
	if feed != nil {
		feed.Directory = o.Dir.(*cluster.Directory)
		o.Dir = feed
	}
	return relaytest.StartWith(t, o)
}

// TestSendToADeletedAccountOnAnotherNode: bob, on node B, has sent to alice before;
// alice's account is deleted on node A, and B hears of it late (its change feed and
// the change that carries it held back until the end). Bob's send in that moment is
// accepted on B's word (its caches still hold alice) or refused not_found — and the
// name's next owner, registered on A afterwards, is never sent it: the registration
// drops what was queued under the name before it. A send bob makes after that
// registration, B still not having heard, is the new owner's, as on one node (a send
// names a name, not a card). Before, the queue of 'pfschat relay --nats' (measured by
// cluster.Ops) lacked the queue's MarkRecipient and PurgeRecipientBefore, the
// registration dropped nothing, and the new owner was sent the message meant for the
// deleted account, every run.
func TestSendToADeletedAccountOnAnotherNode(t *testing.T) {
	ns := natstest.Single(t)
	feed := &heldFeed{name: "alice", armed: make(chan struct{}), held: make(chan struct{}), release: make(chan struct{})}
	a := startProductionNode(t, ns.URL(), nil)
	b := startProductionNode(t, ns.URL(), feed)
	ctx := testCtx(t)

	alice, deleter := registerLoggedIn(t, a, "alice")
	bob := register(t, b, "bob")
	sender := dialRaw(t, b)
	if f := sender.login(bob); f.Type != relay.TypeOK {
		t.Fatalf("bob's login on B: %+v", f)
	}
	send := func(id int, body string) relay.Frame {
		t.Helper()
		return sender.request(map[string]any{"type": "send", "id": id, "to": "alice", "body": []byte(body), "client_id": body})
	}
	if f := send(1, "before the deletion"); f.Type != relay.TypeAccepted {
		t.Fatalf("bob's first send on B: %+v", f)
	}
	close(feed.armed)

	if f := deleter.request(deleteAccountFrame(a, alice, 2)); f.Type != relay.TypeOK {
		t.Fatalf("delete_account on A: %+v", f)
	}
	select { // B's feed has the deletion, and holds it
	case <-feed.held:
	case <-time.After(waitFor):
		t.Fatal("node B's change feed was not sent the deletion")
	}
	switch f := send(3, "for the deleted alice"); {
	case f.Type == relay.TypeAccepted:
	case f.Type == relay.TypeError && f.Code == relay.CodeNotFound:
	default:
		t.Fatalf("bob's send on B after the deletion on A: %+v", f)
	}

	newKey, newCard := newIdentity(t, "alice")
	taker := dialRaw(t, a)
	if f := taker.request(map[string]any{"type": "register", "id": 1, "card": newCard.Export()}); f.Type != relay.TypeCard {
		t.Fatalf("the new owner's register on A: %+v", f)
	}
	newAlice := &user{name: "alice", key: newKey, card: newCard}
	if f := send(4, "for the new alice"); f.Type != relay.TypeAccepted {
		t.Fatalf("bob's send on B after the new registration: %+v", f)
	}
	close(feed.release)

	c := newAlice.login(t, a)
	var got []string
	wctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		p, err := c.Pushes().Wait(wctx)
		if err != nil {
			t.Fatalf("the new owner's backlog did not end: %v", err)
		}
		if p.Message != nil {
			got = append(got, string(p.Message.Body))
		}
		if p.Synced {
			break
		}
	}
	if len(got) != 1 || got[0] != "for the new alice" {
		t.Fatalf("the name's new owner was sent %q, want only the message sent after its registration", got)
	}
}
