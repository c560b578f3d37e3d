//go:build unix

package server_test

import (
	"flag"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/relaytest"
)

var ackFloodPhase = flag.Duration("ackflood.phase", 2*time.Second, "BenchmarkAckFlood: how long each phase (quiet, flood) measures")

// BenchmarkAckFlood measures what an ack flood costs everyone else (the red team's F3,
// closed by ack_ids_per_second in ad0221d): another pair's send → accepted latency
// (mean and p99) and the process's CPU, first quiet, then while 8 connections of one
// account send compact quiet acks of 1,024 made-up ids ({"type":"ack","ids":[1,…,1024]},
// no id: no answer) as fast as the relay's frame and text-byte rates allow — a
// connection the relay closes for it comes back and logs in again. The victim sends
// one message every 10 ms to a recipient that is offline (its queue grows by a few
// hundred) and waits for each answer. One run does both phases; the figures:
//
//	quiet-mean-µs, quiet-p99-µs, flood-mean-µs, flood-p99-µs, mean-flood/quiet, p99-flood/quiet
//	quiet-cpu-cores, flood-cpu-cores: CPU-seconds per second of this process (the relay,
//	  and the test's clients: the flooders only write frames made once)
//	flood-acks/s: the acks the flooders got written, all 8; reconnects: their new logins
//	ack_ids_per_second: acks the relay refused for that limit (0 before it existed)
//
//	go test -run '^$' -bench AckFlood -benchtime 1x ./relay/server/ [-args -ackflood.phase 5s]
func BenchmarkAckFlood(b *testing.B) {
	r := relaytest.Start(b)
	_, victim := registerLoggedIn(b, r, "victim-a")
	register(b, r, "victim-b")
	mallory := register(b, r, "mallory")
	lim := victim.hello.Limits
	if lim == nil {
		b.Fatal("the hello has no limits")
	}

	// Written out by hand: the layout the relay's fast ack decoder takes (type first;
	// encoding/json would sort the keys and send it down the general decoder).
	ack := []byte(`{"type":"ack","ids":[`)
	for i := 1; i <= 1024; i++ {
		if i > 1 {
			ack = append(ack, ',')
		}
		ack = strconv.AppendInt(ack, int64(i), 10)
	}
	ack = append(ack, "]}"...)
	// Each flooder stays just under the frame rate and the text-byte rate, as the red
	// team did: over them the relay refuses frames before they cost anything.
	perConn := float64(lim.FramesPerSecond)
	if lim.TextBytesPerSecond > 0 {
		perConn = min(perConn, float64(lim.TextBytesPerSecond)/float64(len(ack)))
	}
	gap := time.Duration(float64(time.Second) / (0.95 * perConn))

	// victimRun sends every 10 ms until d has passed and returns each send's time to
	// its accepted.
	n := 0
	victimRun := func(d time.Duration) []time.Duration {
		var lat []time.Duration
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for end := time.Now().Add(d); time.Now().Before(end); <-t.C {
			n++
			start := time.Now()
			f := victim.request(map[string]any{"type": "send", "id": n + 10, "to": "victim-b", "body": []byte("ping " + strconv.Itoa(n)), "client_id": "c" + strconv.Itoa(n)})
			if f.Type != relay.TypeAccepted {
				b.Fatalf("the victim's send: %+v", f)
			}
			lat = append(lat, time.Since(start))
		}
		return lat
	}
	cpuRun := func(f func()) (cores float64) {
		c0, t0 := processCPU(), time.Now()
		f()
		return (processCPU() - c0).Seconds() / time.Since(t0).Seconds()
	}

	b.ResetTimer()
	var quiet, flood []time.Duration
	quietCPU := cpuRun(func() { quiet = victimRun(*ackFloodPhase) })

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acks, reconnects atomic.Int64
	// The flood is under way once the flooders have written a burst's worth.
	warmAt, warm := 8*int64(perConn)/2, make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := true; ; first = false {
				select {
				case <-stop:
					return
				default:
				}
				if !first {
					reconnects.Add(1)
				}
				rc := dialRaw(b, r)
				if f := rc.login(mallory); f.Type != relay.TypeOK {
					b.Errorf("the flooder's login: %+v", f)
					return
				}
				go func() { // drain: refusals and the close
					for {
						if _, _, err := rc.ws.ReadMessage(); err != nil {
							return
						}
					}
				}()
				t := time.NewTicker(gap)
				for alive := true; alive; {
					select {
					case <-stop:
						t.Stop()
						rc.ws.Close()
						return
					case <-t.C:
						if rc.ws.WriteMessage(websocket.TextMessage, ack) != nil {
							alive = false
							break
						}
						if acks.Add(1) == warmAt {
							close(warm)
						}
					}
				}
				t.Stop()
				rc.ws.Close()
			}
		}()
	}
	select {
	case <-warm:
	case <-time.After(waitFor):
		b.Fatal("the flood did not start")
	}
	acks0, t0 := acks.Load(), time.Now()
	floodCPU := cpuRun(func() { flood = victimRun(*ackFloodPhase) })
	floodRate := float64(acks.Load()-acks0) / time.Since(t0).Seconds()
	close(stop)
	wg.Wait()
	b.StopTimer()

	qMean, qP99 := meanP99(quiet)
	fMean, fP99 := meanP99(flood)
	b.ReportMetric(us(qMean), "quiet-mean-µs")
	b.ReportMetric(us(qP99), "quiet-p99-µs")
	b.ReportMetric(us(fMean), "flood-mean-µs")
	b.ReportMetric(us(fP99), "flood-p99-µs")
	b.ReportMetric(float64(fMean)/float64(qMean), "mean-flood/quiet")
	b.ReportMetric(float64(fP99)/float64(qP99), "p99-flood/quiet")
	b.ReportMetric(quietCPU, "quiet-cpu-cores")
	b.ReportMetric(floodCPU, "flood-cpu-cores")
	b.ReportMetric(floodRate, "flood-acks/s")
	b.ReportMetric(float64(reconnects.Load()), "reconnects")
	b.ReportMetric(float64(limited(b, r, "ack_ids_per_second")), "ack_ids_per_second")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d quiet and %d flood sends; each flooder paced at %.0f acks/s (%d bytes each)", len(quiet), len(flood), 0.95*perConn, len(ack))
}

// processCPU is this process's CPU time so far (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

func meanP99(d []time.Duration) (mean, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return sum / time.Duration(len(s)), s[(len(s)-1)*99/100]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
