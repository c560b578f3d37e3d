package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// BenchmarkQueueCycle: a round of the relay's group commit and what follows it —
// Enqueue a batch of 64 messages (32 recipients, 180-byte bodies), read each
// recipient's pending messages, ack them — on SQLite (FULL sync) and on JetStream at
// R1 with every write synced (sync_interval: always), R1 with the default sync, and
// R3 (benchVariants). b.N counts messages.
//
//	go test -run XXX -bench QueueCycle -benchtime 2000x ./relay/cluster/
func BenchmarkQueueCycle(b *testing.B) {
	const batch, recipients = 64, 32
	run := func(b *testing.B, q server.Queue) {
		ctx := context.Background()
		body := make([]byte, 180)
		msgs := make([]storage.QueuedMessage, batch)
		cpu0 := processCPU()
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
		// The process's CPU (the queue's client and, for JetStream, its in-process
		// servers) per message.
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	}
	b.Run("sqlite", func(b *testing.B) {
		st, err := storage.OpenRelay(context.Background(), filepath.Join(b.TempDir(), "r.db"), storage.RelayOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		run(b, st)
	})
	for _, v := range benchVariants {
		b.Run("jetstream-"+v.name, func(b *testing.B) { run(b, v.queue(b)) })
	}
	// Before the give-backs of an AckBatch were one usage write: one per recipient.
	b.Run("jetstream-R3-limits-giveback-apart", func(b *testing.B) {
		q := benchQueue(b, natstest.Cluster(b, 3).URLs(), 3, true)
		q.noFoldGiveBack = true
		run(b, q)
	})
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQueueEnqueue: Enqueue alone, batches of 64 to 32 recipients (b.N counts
// messages), on SQLite (FULL) and the JetStream set-ups of benchVariants; at R1
// syncing every write also one publish per message (noBatch) instead of one atomic
// batch per Enqueue.
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
	for _, v := range benchVariants {
		b.Run("jetstream-"+v.name, func(b *testing.B) {
			q := v.queue(b)
			run(b, q)
		})
	}
	b.Run("jetstream-R1-sync-always-each", func(b *testing.B) {
		q := benchVariants[0].queue(b)
		q.noBatch = true
		run(b, q)
	})
}

// benchVariants are the JetStream set-ups the queue benchmarks compare: R1 syncing
// every write (like SQLite FULL), R1 with JetStream's default sync, R3 on three
// in-process servers (the ack means a quorum has it).
var benchVariants = []struct {
	name  string
	queue func(b *testing.B) *Queue
}{
	{"R1-sync-always", func(b *testing.B) *Queue { return benchQueue(b, []string{natstest.Single(b).URL()}, 1, false) }},
	{"R1-sync-always-limits", func(b *testing.B) *Queue { return benchQueue(b, []string{natstest.Single(b).URL()}, 1, true) }},
	{"R1-default-sync", func(b *testing.B) *Queue {
		return benchQueue(b, []string{natstest.SingleDefaultSync(b).URL()}, 1, false)
	}},
	{"R3", func(b *testing.B) *Queue { return benchQueue(b, natstest.Cluster(b, 3).URLs(), 3, false) }},
	{"R3-limits", func(b *testing.B) *Queue { return benchQueue(b, natstest.Cluster(b, 3).URLs(), 3, true) }},
	{"R3-limits-3shards", func(b *testing.B) *Queue {
		q := benchQueue(b, natstest.Cluster(b, 3).URLs(), 3, true, 3)
		return q
	}},
}

// benchQueue: with limits, the relay's defaults: 10000 messages and 64 MiB per
// recipient, a sender 1/8 of them (usage records, usage.go).
func benchQueue(b *testing.B, urls []string, replicas int, limits bool, shards ...int) *Queue {
	b.Helper()
	c, err := Connect(context.Background(), Options{URLs: urls, Replicas: replicas})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	o := QueueOptions{}
	if limits {
		o = QueueOptions{MaxPerRecipient: 10000, MaxBytesPerRecipient: 64 << 20, SenderQuota: 8}
	}
	if len(shards) > 0 {
		o.Shards = shards[0]
	}
	q, err := NewQueue(context.Background(), c, o)
	if err != nil {
		b.Fatal(err)
	}
	return q
}
