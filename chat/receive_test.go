package chat

import (
	"context"
	"strings"
	"sync"
	"testing"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/fifo"
	"pfschat/relay/relaytest"
)

// tamperRelay flips a byte in the ciphertext of chosen sends, as a hostile relay or a
// broken link would.
type tamperRelay struct {
	RelayClient
	mu     sync.Mutex
	tamper bool
}

func (t *tamperRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	t.mu.Lock()
	on := t.tamper
	t.tamper = false
	t.mu.Unlock()
	if on {
		body = append([]byte(nil), body...)
		body[len(body)-3] ^= 0x40
	}
	return t.RelayClient.Send(ctx, to, body, clientID)
}

// A message that cannot be decrypted is acked, kept in the history as an undecryptable
// entry with its reason, reported as an event; the session is unharmed.
func TestUndecryptableIsRecordedNotDropped(t *testing.T) {
	r := relaytest.Start(t)
	tr := &tamperRelay{}
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { tr.RelayClient = client.New(cfg); return tr }
	})
	bob := newUser(t, r, "bob")
	ctx := t.Context()
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, "bob", "clean"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "clean")

	tr.mu.Lock()
	tr.tamper = true
	tr.mu.Unlock()
	if _, err := alice.c.Send(ctx, "bob", "tampered"); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, bob.c, "undecryptable", func(e Event) bool { return e.Kind == Undecryptable })
	if ev.Contact != "alice" || ev.Message == nil || ev.Message.State != UndecryptableState || ev.Message.Reason == "" || ev.Err == nil {
		t.Fatalf("event %+v", ev)
	}
	// The next message still decrypts: the forged one changed nothing.
	if _, err := alice.c.Send(ctx, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "after")
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	if len(h) != 3 || h[1].State != UndecryptableState || h[0].Text != "after" {
		t.Fatalf("history %+v", h)
	}
	// Acked: nothing waits at the relay, and a restart does not bring it back.
	bob.reopen()
	must(t, bob.c.WaitSynced(ctx))
	h2, _ := bob.c.History(ctx, "alice", 0, 10)
	if len(h2) != 3 {
		t.Fatalf("after restart, history has %d entries, want 3", len(h2))
	}
}

// dupRelay delivers every push twice, as a relay does after a reconnect when the ack
// was lost.
type dupRelay struct {
	RelayClient
	once sync.Once
	out  *fifo.Queue[client.Push]
}

func (d *dupRelay) Pushes() *fifo.Queue[client.Push] {
	d.once.Do(func() {
		d.out = fifo.New[client.Push]()
		go func() {
			defer d.out.Close()
			for {
				p, err := d.RelayClient.Pushes().Wait(context.Background())
				if err != nil {
					return
				}
				d.out.Push(p)
				if p.Message != nil {
					d.out.Push(p)
				}
			}
		}()
	})
	return d.out
}

func TestRedeliveryIsShownOnce(t *testing.T) {
	r := relaytest.Start(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { return &dupRelay{RelayClient: client.New(cfg)} }
	})
	ctx := t.Context()
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two", "three"} {
		if _, err := alice.c.Send(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
	}
	waitReceived(t, bob.c, "alice", "three")
	if _, err := bob.c.Send(ctx, "alice", "sync"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, alice.c, "bob", "sync")
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	if len(h) != 4 {
		t.Fatalf("bob's history has %d entries, want 4: %+v", len(h), h)
	}
	for _, m := range h {
		if m.State == UndecryptableState {
			t.Fatalf("a redelivery became an undecryptable entry: %s", m.Reason)
		}
	}
}

// refuseRelay refuses every send for good, as a relay does for a recipient it does not
// know.
type refuseRelay struct{ RelayClient }

func (refuseRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	return 0, &relay.ProtocolError{Code: relay.CodeNotFound, Message: "no such recipient"}
}

// A send the relay refuses for good ends as failed, with the relay's reason, and leaves
// the outbox instead of being retried forever.
func TestRefusedSendFails(t *testing.T) {
	r := relaytest.Start(t)
	newUser(t, r, "bob")
	alice := newUser(t, r, "alice", func(p *Profile) {
		p.Prefs.Dial = func(cfg client.Config) RelayClient { return refuseRelay{client.New(cfg)} }
	})
	ctx := t.Context()
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	m, err := alice.c.Send(ctx, "bob", "into the void")
	must(t, err)
	ev := waitEvent(t, alice.c, "failed", func(e Event) bool { return e.Kind == DeliveryChanged && e.Message.ID == m.ID })
	if ev.Message.State != Failed || !strings.Contains(ev.Message.Reason, "no such recipient") {
		t.Fatalf("message %+v", ev.Message)
	}
	// The refused message itself leaves the outbox. (Its "withdrawn" notice to bob,
	// chat/PAYLOAD.md §4.6, may still be queued: this relay refuses that too, for good.)
	out, err := alice.c.store.Outbox(ctx)
	must(t, err)
	for _, it := range out {
		if it.MessageID == m.ID {
			t.Fatalf("the refused message is still in the outbox: %+v", it)
		}
	}
}
