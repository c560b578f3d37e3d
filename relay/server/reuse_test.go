package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// TestPooledBodiesIntact: the relay decodes bodies into pooled buffers and reuses them
// once the commit is done and every connection's writer has encoded them. Many
// concurrent senders, a recipient logged in twice (two writers share each message)
// and a later backlog read from the store must all see every body exactly as sent.
func TestPooledBodiesIntact(t *testing.T) { eachStore(t, testPooledBodiesIntact) }

func testPooledBodiesIntact(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}})
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	second := client.New(client.Config{URL: r.URL, Identity: bob.key, Card: bob.card, PinnedRelayKey: r.Server.RelayKey()})
	t.Cleanup(func() { second.Close() })
	if err := second.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, bob.c)
	waitSynced(t, second)

	const senders, each = 4, 150
	body := func(s, i int) []byte {
		b := make([]byte, 64+(s*each+i)%300) // varying sizes: buffers get reused across sizes
		binary.BigEndian.PutUint32(b, uint32(s*each+i))
		for j := 4; j < len(b); j++ {
			b[j] = byte(s*31 + i*7 + j)
		}
		return b
	}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		u := newUser(t, r, fmt.Sprintf("s%d", s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for w := 0; w < 4; w++ { // concurrent sends per connection
				inner.Add(1)
				go func() {
					defer inner.Done()
					for i := w; i < each; i += 4 {
						if _, err := u.c.Send(ctx, "bob", body(s, i), fmt.Sprint(i)); err != nil {
							t.Errorf("send: %v", err)
							return
						}
					}
				}()
			}
			inner.Wait()
		}()
	}
	check := func(c *client.Client, who string) error {
		seen := map[uint32]bool{}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		for len(seen) < senders*each {
			p, err := c.Pushes().Wait(ctx)
			if err != nil {
				return fmt.Errorf("%s: %d of %d messages within the timeout", who, len(seen), senders*each)
			}
			m := p.Message
			if m == nil {
				continue
			}
			if len(m.Body) < 4 {
				return fmt.Errorf("%s: message %d with a %d-byte body", who, m.ID, len(m.Body))
			}
			n := binary.BigEndian.Uint32(m.Body)
			if int(n) >= senders*each || seen[n] {
				return fmt.Errorf("%s: unexpected or repeated message %d", who, n)
			}
			seen[n] = true
			s, i := int(n)/each, int(n)%each
			if want := body(s, i); !bytes.Equal(m.Body, want) || m.From != fmt.Sprintf("s%d", s) {
				return fmt.Errorf("%s: message %d from %s altered: %x, want %x", who, n, m.From, m.Body, want)
			}
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- check(bob.c, "first connection") }()
	go func() { errs <- check(second, "second connection") }()
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The store kept its own copies: a new connection reads them all back intact.
	third := client.New(client.Config{URL: r.URL, Identity: bob.key, Card: bob.card, PinnedRelayKey: r.Server.RelayKey()})
	t.Cleanup(func() { third.Close() })
	if err := third.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := check(third, "backlog"); err != nil {
		t.Fatal(err)
	}
}
