package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/storage"
)

// BenchmarkDirectory measures the directory's operations on one in-process
// JetStream server syncing every write (R1) and on three clustered ones (R3, the
// default sync: a quorum has each write), beside the SQLite store (FULL sync) in the
// same run: a card lookup (a leader read), a registration (a two-key transaction),
// a one-time prekey taken from a card's 100 (a compare-and-set rewrite of the list),
// and a shared limit's token (a compare-and-set with a TTL).
//
//	go test -run '^$' -bench BenchmarkDirectory -benchtime 200x ./relay/cluster
func BenchmarkDirectory(b *testing.B) {
	stores := map[string]func(b *testing.B) dirStore{
		"sqlite": func(b *testing.B) dirStore {
			r, err := storage.OpenRelay(b.Context(), b.TempDir()+"/relay.db", storage.RelayOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			return r
		},
		"jetstream": func(b *testing.B) dirStore {
			return newTestDirectory(b, connect(b, natstest.Single(b).URL()))
		},
		"jetstream-r3": func(b *testing.B) dirStore {
			g := natstest.Cluster(b, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Connect(ctx, Options{URLs: g.URLs(), Replicas: 3})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			return newTestDirectory(b, c)
		},
	}
	for _, name := range []string{"sqlite", "jetstream", "jetstream-r3"} {
		b.Run(name, func(b *testing.B) {
			d := stores[name](b)
			ctx := b.Context()
			if err := d.CreateAccount(ctx, storage.Account{Name: "bob", CardID: "c-bob", Card: make([]byte, 2048), CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			b.Run("AccountByCardID", func(b *testing.B) {
				for b.Loop() {
					if _, err := d.AccountByCardID(ctx, "c-bob"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("CreateAccount", func(b *testing.B) {
				i := 0
				for b.Loop() {
					i++
					n := fmt.Sprint("user", i)
					if err := d.CreateAccount(ctx, storage.Account{Name: n, CardID: "c-" + n, Card: make([]byte, 2048)}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("TakePreKey", func(b *testing.B) {
				keys := make([]storage.StoredPreKey, 100)
				for i := range keys {
					keys[i] = storage.StoredPreKey{Kind: 4, ID: uint32(i + 1), Data: make([]byte, 1250)} // an ML-KEM-768 key's size
				}
				left := 0
				for b.Loop() {
					if left == 0 {
						b.StopTimer()
						if _, err := d.PutPreKeys(ctx, "c-bob", keys, 0); err != nil {
							b.Fatal(err)
						}
						left = len(keys)
						b.StartTimer()
					}
					if _, err := d.TakePreKey(ctx, "c-bob", 4); err != nil {
						b.Fatal(err)
					}
					left--
				}
			})
			if dd, ok := d.(*Directory); ok {
				b.Run("SharedLimit", func(b *testing.B) {
					now := time.Now()
					for b.Loop() {
						if _, _, err := dd.Allow(ctx, "fetch_bundle_per_target", "bob", now, time.Nanosecond, 1<<20); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
