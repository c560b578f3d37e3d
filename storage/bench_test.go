package storage

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Run: go test ./storage -run '^$' -bench . -benchtime 2s
// Throughput is reported per second of wall time; the disk is whatever backs TMPDIR.

func benchClient(b *testing.B, sync string) *Client {
	b.Helper()
	c, err := CreateClientWith(b.Context(), filepath.Join(b.TempDir(), "c.db"), []byte("pw"),
		ClientOptions{KDF: testKDF, Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	addPeer(b, c, "bob")
	return c
}

// openBenchRelay opens a relay store in b's temporary directory, with queue limits
// no benchmark reaches.
func openBenchRelay(b *testing.B, sync string) *Relay {
	b.Helper()
	r, err := OpenRelay(b.Context(), filepath.Join(b.TempDir(), "r.db"),
		RelayOptions{Synchronous: sync, MaxQueueCount: 10000, MaxQueueBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

func perSecond(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

// BenchmarkReceiveCommit: one CommitReceive per transaction — relay id, a 1.5 KB ratchet
// state, a 200 B message — the cost of every incoming message.
func BenchmarkReceiveCommit(b *testing.B) {
	for _, sync := range []string{SyncFull, SyncNormal} {
		b.Run(sync, func(b *testing.B) {
			ctx := b.Context()
			c := benchClient(b, sync)
			state := make([]byte, 1500)
			body := make([]byte, 200)
			rand.Read(state)
			rand.Read(body)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, err := c.CommitReceive(ctx, ReceiveTx{
					RelayID: strconv.Itoa(i),
					Session: &Session{ID: "s", PeerCardID: "card-bob", Active: true, State: state},
					Message: &Message{Contact: "bob", Body: body, State: Delivered},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			perSecond(b, b.N, "commits/s")
		})
	}
}

// BenchmarkReceiveCommitBatch: CommitReceiveBatch of 100 (a backlog after reconnect);
// b.N counts receives.
func BenchmarkReceiveCommitBatch(b *testing.B) {
	for _, sync := range []string{SyncFull, SyncNormal} {
		b.Run(sync, func(b *testing.B) {
			ctx := b.Context()
			c := benchClient(b, sync)
			state := make([]byte, 1500)
			body := make([]byte, 200)
			batch := make([]ReceiveTx, 100)
			b.ResetTimer()
			for done := 0; done < b.N; done += len(batch) {
				n := min(len(batch), b.N-done)
				for j := 0; j < n; j++ {
					batch[j] = ReceiveTx{
						RelayID: strconv.Itoa(done + j),
						Session: &Session{ID: "s", PeerCardID: "card-bob", Active: true, State: state},
						Message: &Message{Contact: "bob", Body: body, State: Delivered},
					}
				}
				res, err := c.CommitReceiveBatch(ctx, batch[:n])
				if err != nil || res[0].Err != nil {
					b.Fatal(err, res[0].Err)
				}
			}
			perSecond(b, b.N, "commits/s")
		})
	}
}

// BenchmarkSendCommit: one CommitSend per transaction (state + message + outbox).
func BenchmarkSendCommit(b *testing.B) {
	ctx := b.Context()
	c := benchClient(b, SyncFull)
	state := make([]byte, 1500)
	body := make([]byte, 200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := c.CommitSend(ctx, SendTx{
			Session: Session{ID: "s", PeerCardID: "card-bob", Active: true, State: state},
			Message: &Message{Contact: "bob", Body: body},
			Outbox:  OutboxItem{ClientID: strconv.Itoa(i), To: "bob", Payload: body},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b, b.N, "commits/s")
}

// BenchmarkRelayEnqueueAck: a message enqueued and acked; b.N counts messages. "single"
// is one transaction per enqueue and per ack; "group100" commits 100 of each at a time.
func BenchmarkRelayEnqueueAck(b *testing.B) {
	for _, sync := range []string{SyncFull, SyncNormal} {
		for _, batch := range []int{1, 100} {
			name := sync + "/single"
			if batch > 1 {
				name = fmt.Sprintf("%s/group%d", sync, batch)
			}
			b.Run(name, func(b *testing.B) {
				ctx := b.Context()
				r := openBenchRelay(b, sync)
				body := make([]byte, 200)
				msgs := make([]QueuedMessage, batch)
				ids := make([]int64, batch)
				exp := time.Now().Add(30 * 24 * time.Hour)
				b.ResetTimer()
				for done := 0; done < b.N; done += batch {
					n := min(batch, b.N-done)
					for j := 0; j < n; j++ {
						msgs[j] = QueuedMessage{To: "bob", From: "alice", FromCardID: "ca", ClientID: strconv.Itoa(done + j), Body: body, ExpiresAt: exp}
					}
					res, err := r.Enqueue(ctx, msgs[:n])
					if err != nil {
						b.Fatal(err)
					}
					for j := 0; j < n; j++ {
						if res[j].Err != nil || res[j].Duplicate {
							b.Fatalf("%+v", res[j])
						}
						ids[j] = res[j].ID
					}
					if err := r.Ack(ctx, "bob", ids[:n]); err != nil {
						b.Fatal(err)
					}
				}
				perSecond(b, b.N, "msgs/s")
			})
		}
	}
}

// BenchmarkRelayEnqueueAckSpread is the relay's load shape: group commits of 200
// messages for 100 different recipients, acked through AckBatch.
func BenchmarkRelayEnqueueAckSpread(b *testing.B) {
	for _, sync := range []string{SyncFull, SyncNormal} {
		b.Run(sync+"/group200/recipients100", func(b *testing.B) {
			ctx := b.Context()
			r := openBenchRelay(b, sync)
			const batch, recipients = 200, 100
			body := make([]byte, 256)
			names := make([]string, recipients)
			for i := range names {
				names[i] = fmt.Sprintf("r%d", i)
			}
			msgs := make([]QueuedMessage, batch)
			acks := map[string][]int64{}
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				now := time.Now()
				for j := 0; j < n; j++ {
					msgs[j] = QueuedMessage{To: names[(done+j)%recipients], From: "s" + names[(done+j)%recipients], FromCardID: "ca",
						ClientID: strconv.Itoa(done + j), Body: body, ReceivedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
				}
				res, err := r.Enqueue(ctx, msgs[:n])
				if err != nil {
					b.Fatal(err)
				}
				clear(acks)
				for j := 0; j < n; j++ {
					if res[j].Err != nil || res[j].Duplicate {
						b.Fatalf("%+v", res[j])
					}
					acks[msgs[j].To] = append(acks[msgs[j].To], res[j].ID)
				}
				if err := r.AckBatch(ctx, acks); err != nil {
					b.Fatal(err)
				}
			}
			perSecond(b, b.N, "msgs/s")
		})
	}
}

// BenchmarkRelayCommitRound is one round of the relay's group commit at a moderate
// rate: a few messages, each for a different recipient, and the acks for the previous
// round's messages, in one Commit. It is the shape of the 10k msg/s load (about four
// messages a round), where the cost per statement, not the fsync, dominates: read its
// allocs/op and B/op with -benchmem.
func BenchmarkRelayCommitRound(b *testing.B) {
	for _, batch := range []int{1, 4, 7, 16} {
		b.Run(fmt.Sprintf("msgs=%d/%s", batch, SyncNormal), func(b *testing.B) {
			ctx := b.Context()
			r := openBenchRelay(b, SyncNormal)
			body := make([]byte, 256)
			msgs := make([]QueuedMessage, batch)
			acks := map[string][]int64{}
			next := map[string][]int64{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now := time.Now()
				for j := range msgs {
					to := "r" + strconv.Itoa((i*batch+j)%1000)
					msgs[j] = QueuedMessage{To: to, From: "s" + to, FromCardID: "ca",
						ClientID: strconv.Itoa(i), Body: body, ReceivedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
				}
				res, err := r.Commit(ctx, msgs, acks)
				if err != nil {
					b.Fatal(err)
				}
				clear(next)
				for j, m := range msgs {
					if res[j].Err != nil || res[j].Duplicate {
						b.Fatalf("%+v", res[j])
					}
					next[m.To] = append(next[m.To], res[j].ID)
				}
				acks, next = next, acks
			}
			perSecond(b, b.N*batch, "msgs/s")
		})
	}
}

// BenchmarkTakePreKey: one atomic take per transaction.
func BenchmarkTakePreKey(b *testing.B) {
	ctx := b.Context()
	r, err := OpenRelay(ctx, filepath.Join(b.TempDir(), "r.db"), RelayOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	keys := make([]StoredPreKey, b.N)
	for i := range keys {
		keys[i] = StoredPreKey{Kind: 2, ID: uint32(i + 1), Data: make([]byte, 60)}
	}
	if _, err := r.PutPreKeys(ctx, "card", keys, 0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.TakePreKey(ctx, "card", 2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessagesPage: a page of 50 from a conversation of 100,000 messages (built
// once, in one transaction), at the newest end and half-way back.
func BenchmarkMessagesPage(b *testing.B) {
	ctx := b.Context()
	c := benchClient(b, SyncFull)
	addPeer(b, c, "carol")
	const total = 100_000
	body := make([]byte, 120)
	err := c.db.write(ctx, func(tx *txn) error {
		stmt, err := tx.tx.PrepareContext(ctx, `INSERT INTO messages (id, contact, direction, body_sealed, sent_at, received_at, state, client_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id := int64(1); id <= total+total/10; id++ {
			contact := "bob"
			if id%11 == 0 { // another conversation interleaved
				contact = "carol"
			}
			sealed, err := c.keys.seal("messages", "body", msgRow(id), body)
			if err != nil {
				return err
			}
			at := t0.Add(time.Duration(id) * time.Second).UnixNano()
			if _, err := stmt.ExecContext(ctx, id, contact, 1+id%2, sealed, at, at, Read, strconv.FormatInt(id, 36)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var n int
	c.db.r.QueryRow("SELECT count(*) FROM messages WHERE contact = 'bob'").Scan(&n)
	if n < total {
		b.Fatalf("built %d messages", n)
	}
	for _, at := range []struct {
		name string
		cur  Cursor
	}{{"newest", Cursor{}}, {"middle", Cursor{BeforeID: total / 2}}} {
		b.Run(at.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				page, _, err := c.Messages(ctx, "bob", at.cur, 50)
				if err != nil || len(page) != 50 {
					b.Fatalf("%d, %v", len(page), err)
				}
			}
		})
	}
}

// BenchmarkUnlock: OpenClient with the production Argon2id parameters (DefaultKDF).
func BenchmarkUnlock(b *testing.B) {
	ctx := b.Context()
	path := filepath.Join(b.TempDir(), "c.db")
	c, err := CreateClient(ctx, path, []byte("correct horse battery staple"))
	if err != nil {
		b.Fatal(err)
	}
	c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := OpenClient(ctx, path, []byte("correct horse battery staple"))
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkFsyncFloor is the device's floor for any durable commit: one 4 KiB write and
// fsync per op on a file in the same temp dir. Read the FULL figures against it: a
// commit cannot be faster than one of these.
func BenchmarkFsyncFloor(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(page, int64(i%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b, b.N, "syncs/s")
}

// BenchmarkOpenRelayQueued: opening a relay store with 100,000 queued messages (256 B
// each, 1,000 recipients), which counts every recipient's usage from the queue.
func BenchmarkOpenRelayQueued(b *testing.B) {
	ctx := b.Context()
	path := filepath.Join(b.TempDir(), "r.db")
	r, err := OpenRelay(ctx, path, RelayOptions{Synchronous: SyncNormal})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	const total, batch = 100000, 500
	msgs := make([]QueuedMessage, batch)
	for done := 0; done < total; done += batch {
		for j := range msgs {
			to := "r" + strconv.Itoa((done+j)%1000)
			msgs[j] = QueuedMessage{To: to, From: "s", FromCardID: "ca", ClientID: strconv.Itoa(done + j), Body: body}
		}
		if _, err := r.Enqueue(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	r.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := OpenRelay(ctx, path, RelayOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n, _ := r.QueueDepth(ctx); n != total {
			b.Fatalf("depth %d", n)
		}
		r.Close()
	}
}

// BenchmarkCreateStore: a new store from nothing to its current schema (what a new
// profile's or relay's first moments wait for), NORMAL sync, no passphrase.
func BenchmarkCreateStore(b *testing.B) {
	ctx := b.Context()
	b.Run("client", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c, err := CreateClientWith(ctx, filepath.Join(b.TempDir(), "c.db"), nil, ClientOptions{Synchronous: SyncNormal})
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("relay", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			r, err := OpenRelay(ctx, filepath.Join(b.TempDir(), "r.db"), RelayOptions{Synchronous: SyncNormal})
			if err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
}
