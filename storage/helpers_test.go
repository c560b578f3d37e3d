package storage

import (
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)

func newClient(t testing.TB, pass []byte) *Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client.db")
	c, err := CreateClientWith(t.Context(), path, pass, ClientOptions{KDF: testKDF})
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newRelay(t testing.TB, opts RelayOptions) *Relay {
	t.Helper()
	r, err := OpenRelay(t.Context(), filepath.Join(t.TempDir(), "relay.db"), opts)
	if err != nil {
		t.Fatalf("OpenRelay: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// addPeer stores a card and a contact for name.
func addPeer(t testing.TB, c *Client, name string) {
	t.Helper()
	ctx := t.Context()
	if err := c.PutCard(ctx, Card{ID: "card-" + name, Name: name, Data: []byte("card of " + name), FirstSeen: t0}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddContact(ctx, name, "card-"+name, t0); err != nil {
		t.Fatal(err)
	}
}

func timeSec(i int) time.Duration { return time.Duration(i) * time.Second }
