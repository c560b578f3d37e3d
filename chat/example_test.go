package chat_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"pfschat/chat"
	"pfschat/relay/server"
	"pfschat/storage"
)

// Two people who have never met register with a relay, and talk through a Double
// Ratchet. The relay runs in-process here; in real life it is `pfschat relay`.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pfschat-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// An in-process relay over a real WebSocket and a real SQLite file.
	relayStore, err := storage.OpenRelay(ctx, filepath.Join(dir, "relay.db"), storage.RelayOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer relayStore.Close()
	srv, err := server.New(ctx, server.Config{Store: relayStore})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(ctx)
	relayURL := "ws" + strings.TrimPrefix(hs.URL, "http")

	// Each person creates an identity: keys sealed under a passphrase, a card signed by
	// the relay, 100 one-time prekeys published (the seed's initialize + rotateKeys).
	alice, err := chat.Profile{Dir: filepath.Join(dir, "alice")}.Create(ctx, "alice", []byte("alice's passphrase"), relayURL)
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := chat.Profile{Dir: filepath.Join(dir, "bob")}.Create(ctx, "bob", []byte("bob's passphrase"), relayURL)
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	// Alice fetches and verifies Bob's card (trust on first use) and writes to him; the
	// first message carries the PQXDH handshake.
	if _, err := alice.AddContact(ctx, "bob"); err != nil {
		log.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "Hello, Bob!"); err != nil {
		log.Fatal(err)
	}
	got := next(bob, chat.MessageReceived)
	fmt.Printf("bob got %q from %s\n", got.Message.Text, got.Contact)

	// Bob answers; Alice learns it arrived from Bob's encrypted delivery receipt.
	reply, err := bob.Send(ctx, "alice", "Hi Alice!")
	if err != nil {
		log.Fatal(err)
	}
	got = next(alice, chat.MessageReceived)
	fmt.Printf("alice got %q from %s\n", got.Message.Text, got.Contact)
	for ev := next(bob, chat.DeliveryChanged); ev.Message.ID != reply.ID || ev.Message.State < chat.Delivered; ev = next(bob, chat.DeliveryChanged) {
	}
	fmt.Println("bob's reply: delivered")

	// They compare safety numbers out of band; both see the same 60 digits.
	a, _ := alice.SafetyNumber(ctx, "bob")
	b, _ := bob.SafetyNumber(ctx, "alice")
	fmt.Println("safety numbers match:", a.Digits() == b.Digits(), len(a.Groups()), "groups")
	if err := alice.Verify(ctx, "bob"); err != nil {
		log.Fatal(err)
	}

	// Output:
	// bob got "Hello, Bob!" from alice
	// alice got "Hi Alice!" from bob
	// bob's reply: delivered
	// safety numbers match: true 12 groups
}

// next returns the controller's next event of the given kind.
func next(c *chat.Controller, kind chat.EventKind) chat.Event {
	for ev := range c.Events() {
		if ev.Kind == kind {
			return ev
		}
	}
	log.Fatal("event stream closed")
	return chat.Event{}
}
