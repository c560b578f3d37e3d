package cluster

import (
	"context"
	"fmt"
	"testing"

	"pfschat/relay/cluster/natstest"
	"pfschat/storage"
)

// BenchmarkQueuePendingR3: a backlog page (the relay's 256, and 16) read at R3 the
// way Pending reads it now — replica pages, every message confirmed on the stream
// leader — beside the read it replaced (replica pages, the leader asked only for the
// first message and the tail: pendingUnconfirmed), in the same run on one cluster.
// b.N counts pages; msgs/s counts messages read.
//
//	go test -run '^$' -bench QueuePendingR3 -benchtime 300x ./relay/cluster/
func BenchmarkQueuePendingR3(b *testing.B) {
	q := benchQueue(b, natstest.Cluster(b, 3).URLs(), 3, false)
	ctx := context.Background()
	body := make([]byte, 180)
	for _, n := range []int{16, 256} {
		to := fmt.Sprint("bob", n)
		msgs := make([]storage.QueuedMessage, n)
		for i := range msgs {
			msgs[i] = storage.QueuedMessage{To: to, From: "s", FromCardID: "card", ClientID: fmt.Sprint(to, "-", i), Body: body}
		}
		if _, err := q.Enqueue(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name string
			read func() ([]storage.QueuedMessage, error)
		}{
			{"unconfirmed", func() ([]storage.QueuedMessage, error) { return q.pendingUnconfirmed(ctx, to, 0, 256) }},
			{"confirmed", func() ([]storage.QueuedMessage, error) { return q.Pending(ctx, to, 0, 256) }},
		} {
			b.Run(fmt.Sprintf("page%d/%s", n, v.name), func(b *testing.B) {
				for b.Loop() {
					got, err := v.read()
					if err != nil || len(got) != n {
						b.Fatal(len(got), err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// pendingUnconfirmed is Pending as it was before every message was confirmed on the
// leader (for BenchmarkQueuePendingR3 only: it can return a message already acked).
func (q *Queue) pendingUnconfirmed(ctx context.Context, to string, afterID int64, limit int) ([]storage.QueuedMessage, error) {
	subj, err := q.subject(to)
	if err != nil {
		return nil, err
	}
	shard := q.shardOf(to)
	from := uint64(1)
	if afterID > 0 {
		_, seq := q.seqOf(afterID)
		from = seq + 1
	}
	first, _, ok, err := q.leaderGet(ctx, subj, from, true)
	if err != nil || !ok {
		return nil, err
	}
	from = first.seq
	var got []directMsg
	for len(got) < limit {
		part, more, err := q.directBatch(ctx, subj, from, limit-len(got), 0)
		if err != nil {
			return nil, err
		}
		got = append(got, part...)
		if len(part) > 0 {
			from = part[len(part)-1].seq + 1
		}
		if !more || len(part) == 0 {
			break
		}
	}
	for len(got) < limit {
		m, _, ok, err := q.leaderGet(ctx, subj, from, true)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		got = append(got, m)
		from = m.seq + 1
	}
	out := make([]storage.QueuedMessage, 0, len(got))
	for _, d := range got {
		m := storage.QueuedMessage{ID: q.id(shard, d.seq), To: to}
		if err := parseEnvelope(d.data, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// BenchmarkResyncRead: what the hub's periodic resync costs a node and its NATS
// servers per connection — one Pending after the last message the connection had,
// which finds nothing (the usual case: no push was lost) — at R1 (one server) and R3
// (three, the queue in three shards), servers in this process. Reported per read: the
// wall time and the CPU time of the whole process (client and servers). With the
// default interval (a minute) a node with 10,000 connections makes 167 reads a second.
//
//	go test -run '^$' -bench ResyncRead -benchtime 2000x ./relay/cluster/
func BenchmarkResyncRead(b *testing.B) {
	for _, v := range []struct {
		name             string
		servers, replica int
		shards           int
	}{{"R1", 1, 1, 1}, {"R3", 3, 3, 3}} {
		b.Run(v.name, func(b *testing.B) {
			var urls []string
			if v.servers == 1 {
				urls = []string{natstest.Single(b).URL()}
			} else {
				urls = natstest.Cluster(b, v.servers).URLs()
			}
			q := benchQueue(b, urls, v.replica, false, v.shards)
			ctx := context.Background()
			res, err := q.Enqueue(ctx, []storage.QueuedMessage{{To: "bob", From: "s", FromCardID: "card", ClientID: "x", Body: make([]byte, 180)}})
			if err != nil || res[0].Err != nil {
				b.Fatal(err, res)
			}
			last := res[0].ID
			cpu0 := processCPU()
			for b.Loop() {
				got, err := q.Pending(ctx, "bob", last, 256)
				if err != nil || len(got) != 0 {
					b.Fatal(len(got), err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/read")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/read")
		})
	}
}
