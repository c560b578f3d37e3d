package client_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// AckNoWait sends quiet acks to a relay that announces them: the relay deletes the
// messages and sends no ok for them. Only the ack with an id that follows (Ack) is
// answered, and its ok comes after the quiet ones are committed, so an ok for any of
// them would have come first.
func TestAckNoWaitIsQuiet(t *testing.T) {
	r := relaytest.Start(t)
	aliceKey, aliceCard := register(t, r, "alice")
	bobKey, bobCard := register(t, r, "bob")
	var oks atomic.Int32
	p := startProxy(t, r.URL, func(mt int, b []byte) [][]byte {
		if bytes.HasPrefix(b, []byte(`{"type":"ok"`)) {
			oks.Add(1)
		}
		return [][]byte{b}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	run := func(c *client.Client) {
		ran := make(chan error, 1)
		go func() { ran <- c.Run(ctx) }()
		t.Cleanup(func() { c.Close(); <-ran })
		select {
		case <-c.Online():
		case <-ctx.Done():
			t.Fatal("not online")
		}
	}
	alice := client.New(client.Config{URL: r.URL, Identity: aliceKey, Card: aliceCard, PinnedRelayKey: r.Server.RelayKey()})
	run(alice)
	bob := client.New(client.Config{URL: p.url(), Identity: bobKey, Card: bobCard, PinnedRelayKey: r.Server.RelayKey()})
	run(bob)

	for i := range 3 {
		if _, err := alice.Send(ctx, "bob", []byte{byte(i)}, string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	for len(ids) < 3 {
		push, err := bob.Pushes().Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if push.Message != nil {
			ids = append(ids, push.Message.ID)
		}
	}
	before := oks.Load() // the login's ok
	if err := bob.AckNoWait(ids[0], ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := bob.Ack(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	if n := oks.Load() - before; n != 1 {
		t.Fatalf("%d ok frames came for two quiet acks and one with an id, want 1", n)
	}
}
