package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// BenchmarkQueueCycle: a round of the relay's group commit and what follows it —
// Enqueue a batch of 64 messages (32 recipients, 180-byte bodies), read each
// recipient's pending messages, ack them — on SQLite (FULL sync) and on JetStream at
// R1 with every write synced (sync_interval: always), with and without the
// beyond-the-window dedup markers. b.N counts messages.
//
//	go test -run XXX -bench QueueCycle -benchtime 2000x ./relay/cluster/
func BenchmarkQueueCycle(b *testing.B) {
	const batch, recipients = 64, 32
	run := func(b *testing.B, q server.Queue) {
		ctx := context.Background()
		body := make([]byte, 180)
		msgs := make([]storage.QueuedMessage, batch)
		b.ResetTimer()
		for n := 0; n < b.N; n += batch {
			for i := range msgs {
				msgs[i] = storage.QueuedMessage{To: fmt.Sprint("r", i%recipients), From: "s", FromCardID: "card", ClientID: fmt.Sprint(n, "-", i), Body: body, ReceivedAt: time.Now()}
			}
			if _, err := q.Enqueue(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			acks := map[string][]int64{}
			for r := range recipients {
				to := fmt.Sprint("r", r)
				p, err := q.Pending(ctx, to, 0, 256)
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range p {
					acks[to] = append(acks[to], m.ID)
				}
			}
			if ab, ok := q.(server.AckBatcher); ok {
				if err := ab.AckBatch(ctx, acks); err != nil {
					b.Fatal(err)
				}
			} else {
				for to, ids := range acks {
					if err := q.Ack(ctx, to, ids); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	}
	b.Run("sqlite", func(b *testing.B) {
		st, err := storage.OpenRelay(context.Background(), filepath.Join(b.TempDir(), "r.db"), storage.RelayOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		run(b, st)
	})
	for _, keep := range []time.Duration{0, -1} {
		name := "jetstream-R1"
		if keep < 0 {
			name += "-window-only"
		}
		b.Run(name, func(b *testing.B) {
			s := natstest.Single(b)
			c, err := Connect(context.Background(), Options{URLs: []string{s.URL()}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			q, err := NewQueue(context.Background(), c, QueueOptions{DedupKeep: keep})
			if err != nil {
				b.Fatal(err)
			}
			run(b, q)
		})
	}
}

// BenchmarkQueueEnqueue: Enqueue alone, batches of 64 to 32 recipients (b.N counts
// messages), on SQLite (FULL) and JetStream R1 syncing every write: one atomic batch
// per Enqueue, or one publish per message (noBatch).
func BenchmarkQueueEnqueue(b *testing.B) {
	const batch, recipients = 64, 32
	run := func(b *testing.B, q server.Queue) {
		ctx := context.Background()
		body := make([]byte, 180)
		msgs := make([]storage.QueuedMessage, batch)
		b.ResetTimer()
		for n := 0; n < b.N; n += batch {
			for i := range msgs {
				msgs[i] = storage.QueuedMessage{To: fmt.Sprint("r", i%recipients), From: "s", FromCardID: "card", ClientID: fmt.Sprint(n, "-", i), Body: body, ReceivedAt: time.Now()}
			}
			res, err := q.Enqueue(ctx, msgs)
			if err != nil || res[0].Err != nil {
				b.Fatal(err, res[0].Err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	}
	b.Run("sqlite", func(b *testing.B) {
		st, err := storage.OpenRelay(context.Background(), filepath.Join(b.TempDir(), "r.db"), storage.RelayOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		run(b, st)
	})
	for _, noBatch := range []bool{false, true} {
		name := "jetstream-R1-atomic"
		if noBatch {
			name = "jetstream-R1-each"
		}
		b.Run(name, func(b *testing.B) {
			s := natstest.Single(b)
			c, err := Connect(context.Background(), Options{URLs: []string{s.URL()}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			q, err := NewQueue(context.Background(), c, QueueOptions{})
			if err != nil {
				b.Fatal(err)
			}
			q.noBatch = noBatch
			run(b, q)
		})
	}
}
