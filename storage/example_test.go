package storage_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"pfschat/storage"
)

// A receive, the way the chat controller does it: decrypt, commit everything in one
// transaction, and only then ack the relay.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "pfschat-example")
	defer os.RemoveAll(dir)

	// nil passphrase: the throwaway demo profile. Real profiles pass the user's passphrase.
	c, err := storage.CreateClient(ctx, filepath.Join(dir, "client.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	c.PutCard(ctx, storage.Card{ID: "b0b", Name: "bob", Data: []byte("bob's card"), FirstSeen: now})
	c.AddContact(ctx, "bob", "b0b", now)

	rx := storage.ReceiveTx{
		RelayID: "17",
		Session: &storage.Session{ID: "s1", PeerCardID: "b0b", Active: true, State: []byte("ratchet state")},
		Message: &storage.Message{Contact: "bob", Body: []byte("hi alice"), ReceivedAt: now, State: storage.Delivered},
	}
	if _, err := c.CommitReceive(ctx, rx); err != nil {
		log.Fatal(err)
	}
	// ... now ack relay message 17. If the relay delivers it again:
	_, err = c.CommitReceive(ctx, rx)
	fmt.Println("duplicate:", errors.Is(err, storage.ErrDuplicate))

	page, next, _ := c.Messages(ctx, "bob", storage.Cursor{}, 50)
	fmt.Printf("%s (more: %v)\n", page[0].Body, next != storage.Cursor{})
	// Output:
	// duplicate: true
	// hi alice (more: false)
}
