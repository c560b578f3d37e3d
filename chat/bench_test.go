package chat

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"pfschat/chat/payload"
	"pfschat/ratchet"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// Benchmarks run with the production store settings (FULL sync for clients and relay)
// unless the name says otherwise.
//
//	go test ./chat -run '^$' -bench . -benchtime 2000x

func benchUser(b *testing.B, r *relaytest.Relay, name string) *user {
	return newUser(b, r, name, func(p *Profile) {
		p.StoreOptions.Synchronous = benchSync() // production: FULL
		p.Prefs.OneTimeKeys = 5
	})
}

// benchSync is the SQLite sync mode for benchmark stores: FULL (production) unless
// PFSCHAT_BENCH_SYNC=NORMAL, which takes the disk's fsync out of the figures to show the
// CPU cost alone.
func benchSync() string { return os.Getenv("PFSCHAT_BENCH_SYNC") }

// forLimits runs f against a relay with default limits and one without a rate limit
// (the relay's default is 200 frames/s per connection, a policy for people, not a cost
// of the software). The clients pace themselves by what the relay announces.
func forLimits(b *testing.B, f func(b *testing.B, r *relaytest.Relay)) {
	for _, unlimited := range []bool{false, true} {
		name := "relay=default-limits"
		if unlimited {
			name = "relay=no-rate-limit"
		}
		b.Run(name, func(b *testing.B) {
			opts := relaytest.Options{Synchronous: benchSync()}
			if unlimited {
				opts.Limits.FramesPerSecond = -1
			}
			f(b, relaytest.StartWith(b, opts))
		})
	}
}

// pairUp makes from and to contacts with a session, one message each way.
func pairUp(b *testing.B, from, to *user) {
	ctx := b.Context()
	if _, err := from.c.AddContact(ctx, to.name); err != nil {
		b.Fatal(err)
	}
	if _, err := from.c.Send(ctx, to.name, "hi"); err != nil {
		b.Fatal(err)
	}
	waitReceived(b, to.c, from.name, "hi")
	m, err := to.c.Send(ctx, from.name, "hi back")
	if err != nil {
		b.Fatal(err)
	}
	waitReceived(b, from.c, to.name, "hi back")
	waitState(b, to.c, m.ID, Delivered)
}

// BenchmarkEndToEnd: messages/s through controllers, real relay and stores; one op is
// one message committed by the sender and committed by the recipient. The delivery
// receipts flow back concurrently (their cost is included).
func BenchmarkEndToEnd(b *testing.B) {
	for _, pairs := range []int{1, 100} {
		b.Run(fmt.Sprintf("conversations=%d", pairs), func(b *testing.B) {
			forLimits(b, func(b *testing.B, r *relaytest.Relay) {
				senders := make([]*user, pairs)
				receivers := make([]*user, pairs)
				for i := range pairs {
					senders[i] = benchUser(b, r, fmt.Sprintf("s%d", i))
					receivers[i] = benchUser(b, r, fmt.Sprintf("r%d", i))
					pairUp(b, senders[i], receivers[i])
				}
				ctx := b.Context()
				per := (b.N + pairs - 1) / pairs
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for i := range pairs {
					wg.Add(2)
					go func() {
						defer wg.Done()
						for k := range per {
							if _, err := senders[i].c.Send(ctx, receivers[i].name, "m"+strconv.Itoa(k)); err != nil {
								b.Error(err)
								return
							}
						}
					}()
					go func() {
						defer wg.Done()
						want := "m" + strconv.Itoa(per-1)
						for ev := range receivers[i].c.Events() {
							if ev.Kind == MessageReceived && ev.Message.Text == want {
								return
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(per*pairs)/el.Seconds(), "msgs/s")
			})
		})
	}
}

// BenchmarkSendToDelivered: latency from Send to the sender seeing "delivered" (the
// peer's encrypted receipt), one message at a time; reports p50 and p99.
func BenchmarkSendToDelivered(b *testing.B) { forLimits(b, benchSendToDelivered) }

func benchSendToDelivered(b *testing.B, r *relaytest.Relay) {
	alice, bob := benchUser(b, r, "alice"), benchUser(b, r, "bob")
	pairUp(b, alice, bob)
	ctx := b.Context()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		m, err := alice.c.Send(ctx, "bob", "ping "+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		waitState(b, alice.c, m.ID, Delivered)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkBreakdown measures the parts one message costs, to compare with the
// end-to-end figures: the ratchet (encrypt + decrypt, and the state codec), the two
// store commits, and the relay round trip.
func BenchmarkBreakdown(b *testing.B) {
	r := relaytest.StartWith(b, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}, Synchronous: benchSync()})
	alice, bob := benchUser(b, r, "alice"), benchUser(b, r, "bob")
	pairUp(b, alice, bob)
	ctx := b.Context()
	sa, err := alice.c.ActiveSession(ctx, mustContact(b, alice.c, "bob").CardID)
	if err != nil || sa == nil {
		b.Fatal("no session", err)
	}
	sb, err := bob.c.ActiveSession(ctx, mustContact(b, bob.c, "alice").CardID)
	if err != nil || sb == nil {
		b.Fatal("no session", err)
	}
	plain, _ := payload.Encode(&payload.Payload{Type: payload.Text, At: time.Now(), ID: newClientID(), Seq: 1, Text: "a 64-byte-ish message for the benchmark, like a short chat line"})

	b.Run("ratchet-encrypt+decrypt", func(b *testing.B) {
		for b.Loop() {
			w, err := sa.s.Encrypt(plain)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sb.s.Decrypt(w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session-marshal+parse", func(b *testing.B) {
		for b.Loop() {
			st, err := sa.s.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ratchet.ParseSession(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	state, _ := sa.s.MarshalBinary()
	wire, _ := sa.s.Encrypt(plain)
	b.Run("store-commit-send", func(b *testing.B) {
		row := sa.row
		row.State = state
		for b.Loop() {
			id := newClientID()
			if _, err := alice.c.store.CommitSend(ctx, storage.SendTx{Session: row,
				Message: &storage.Message{Contact: "bob", Direction: storage.Outgoing, Body: []byte("x"), SentAt: time.Now(), ClientID: id},
				Outbox:  storage.OutboxItem{ClientID: id, To: "bob", Payload: wire}}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			alice.c.store.RemoveOutbox(ctx, id)
			b.StartTimer()
		}
	})
	b.Run("store-commit-receive", func(b *testing.B) {
		row := sb.row
		row.State = state
		for b.Loop() {
			id := newClientID()
			if _, err := bob.c.store.CommitReceive(ctx, storage.ReceiveTx{Session: &row, RelayID: id,
				Message: &storage.Message{Contact: "alice", Direction: storage.Incoming, Body: []byte("x"), SentAt: time.Now(), ReceivedAt: time.Now(), State: storage.Delivered, ClientID: "in:alice/" + id}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The relay alone: a raw client sends to a second raw client, which acks.
	alice.close()
	bob.close()
	rs := client.New(client.Config{URL: r.URL, Identity: alice.c2id(), Card: alice.c2card()})
	rr := client.New(client.Config{URL: r.URL, Identity: bob.c2id(), Card: bob.c2card()})
	for _, c := range []*client.Client{rs, rr} {
		if err := c.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		defer c.Close()
	}
	b.Run("relay-send-to-accepted", func(b *testing.B) {
		// bob's side acks everything as it arrives, like a controller would.
		actx, done := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				p, err := rr.Pushes().Wait(actx)
				if err != nil {
					return
				}
				if p.Message != nil {
					rr.Ack(ctx, p.Message.ID)
				}
			}
		}()
		for b.Loop() {
			if _, err := rs.Send(ctx, "bob", wire, newClientID()); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		done()
		<-stopped
		drain(b, rr)
	})
	b.Run("relay-send-deliver-ack", func(b *testing.B) {
		for b.Loop() {
			if _, err := rs.Send(ctx, "bob", wire, newClientID()); err != nil {
				b.Fatal(err)
			}
			for {
				p, err := rr.Pushes().Wait(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if p.Message != nil {
					if err := rr.Ack(ctx, p.Message.ID); err != nil {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
}

func drain(b *testing.B, c *client.Client) {
	ctx := b.Context()
	for {
		p, ok := c.Pushes().Pop()
		if !ok {
			return
		}
		if p.Message != nil {
			c.Ack(ctx, p.Message.ID)
		}
	}
}

func mustContact(b *testing.B, c *Controller, name string) Contact {
	ct, err := c.Contact(b.Context(), name)
	if err != nil {
		b.Fatal(err)
	}
	return ct
}
