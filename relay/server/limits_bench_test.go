package server_test

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay/relaytest"
)

// BenchmarkHonestPairUnderAttack measures an honest pair's round trip (a message each
// way, each acknowledged) on a relay with the default limits, alone and while an
// attacker floods fetch_bundle for the pair's own name from 8 connections logged in
// as one account (no pacing, reading only to drain the answers).
//
//	go test -run '^$' -bench HonestPairUnderAttack -benchtime 300x ./relay/server/
func BenchmarkHonestPairUnderAttack(b *testing.B) {
	for _, attack := range []bool{false, true} {
		name := "alone"
		if attack {
			name = "fetch_bundle_flood"
		}
		b.Run(name, func(b *testing.B) {
			r := relaytest.Start(b)
			pair := newHonestPair(b, r)
			publishBundle(b, pair.b, 100)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var sent, answered int64
			var mu sync.Mutex
			if attack {
				mallory := register(b, r, "mallory")
				for range 8 {
					rc := dialRaw(b, r)
					rc.login(mallory)
					wg.Add(2)
					go func() { // drain
						defer wg.Done()
						n := int64(0)
						for {
							if _, _, err := rc.ws.ReadMessage(); err != nil {
								mu.Lock()
								answered += n
								mu.Unlock()
								return
							}
							n++
						}
					}()
					go func() {
						defer wg.Done()
						n := int64(0)
						defer func() { mu.Lock(); sent += n; mu.Unlock() }()
						for i := 2; ; i++ {
							select {
							case <-stop:
								return
							default:
							}
							if rc.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"fetch_bundle","id":`+strconv.Itoa(i)+`,"name":"honest-b"}`)) != nil {
								return
							}
							n++
						}
					}()
					b.Cleanup(func() { rc.ws.Close() })
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				pair.roundTrip(b)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			close(stop)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if attack {
				for _, l := range []string{"fetch_bundle_per_requester", "frames_per_second"} {
					b.ReportMetric(float64(limited(b, r, l)), l)
				}
			}
		})
	}
}
