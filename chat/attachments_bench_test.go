package chat

// Attachment throughput and memory (issue 15), in one run so that the ratios count:
//
//	go test ./chat -run '^$' -bench 'Attachment|RawWebSocket|SHA256File' -benchtime 1x [-attach-mib 100]
//
// BenchmarkAttachmentEndToEnd: alice seals and uploads a file, bob downloads, verifies and
// writes it (one relay, loopback, no frame-rate limit: the default 200 frames/s caps a
// connection at 6.25 MiB/s by policy). It reports the peak growth of the Go heap and of
// the process's RSS over their values before the transfer: sender, receiver and relay
// share the process, so each of them grew by at most that.
// BenchmarkRawWebSocketCopy: the same bytes through one WebSocket (gorilla, 32 KiB binary
// messages, loopback). BenchmarkSHA256File: SHA-256 of the file read from disk (sha256sum).

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

var attachMiB = flag.Int("attach-mib", 100, "file size of the attachment benchmarks, MiB")

func benchFile(b *testing.B) (string, int64) {
	size := int64(*attachMiB) << 20
	p := filepath.Join(b.TempDir(), "bench.bin")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return p, size
}

// cpuTime is the process's CPU time so far, user and system: on a machine shared with
// other work the wall figures swing with the load, the CPU cost per byte much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// memPeak samples the heap in use and the RSS until stop, returning the peaks' growth.
func memPeak(stop <-chan struct{}) (heap, rss int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseHeap, baseRSS := int64(ms.HeapInuse), rssBytes()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		runtime.ReadMemStats(&ms)
		heap = max(heap, int64(ms.HeapInuse)-baseHeap)
		rss = max(rss, rssBytes()-baseRSS)
		select {
		case <-stop:
			return heap, rss
		case <-t.C:
		}
	}
}

func BenchmarkAttachmentEndToEnd(b *testing.B) {
	path, size := benchFile(b)
	r := relaytest.StartWith(b, relaytest.Options{Synchronous: benchSync(),
		Limits: server.Limits{FramesPerSecond: -1, MaxBlobBytes: size + size/64 + 1<<20, BlobQuotaBytes: -1}})
	alice, bob := benchUser(b, r, "alice"), benchUser(b, r, "bob")
	pairUp(b, alice, bob)
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Minute)
	defer cancel()
	var heapPeak, rssPeak int64
	var up, msg, down time.Duration  // the phases: seal + upload + commit, the message, download + open
	var upCPU, downCPU time.Duration // the process's CPU time in the send and download phases
	b.SetBytes(size)
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			h, r := memPeak(stop)
			heapPeak, rssPeak = max(heapPeak, h), max(rssPeak, r)
			close(done)
		}()
		t0, c0 := time.Now(), cpuTime()
		reg := trace.StartRegion(ctx, "send")
		if _, err := alice.c.SendFile(ctx, "bob", path, "", nil); err != nil {
			b.Fatal(err)
		}
		reg.End()
		t1, c1 := time.Now(), cpuTime()
		m := waitAttachment(b, bob.c, "alice")
		t2, c2 := time.Now(), cpuTime()
		reg = trace.StartRegion(ctx, "download")
		saved, err := bob.c.Download(ctx, m.ID, b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		reg.End()
		up, msg, down = up+t1.Sub(t0), msg+t2.Sub(t1), down+time.Since(t2)
		upCPU, downCPU = upCPU+c1-c0, downCPU+cpuTime()-c2
		close(stop)
		<-done
		b.StopTimer()
		os.Remove(saved)
		b.StartTimer()
	}
	b.ReportMetric(float64(heapPeak)/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(rssPeak)/(1<<20), "rss-growth-MiB")
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(up.Seconds()*1e3/float64(b.N), "send-ms/op")
	b.ReportMetric(msg.Seconds()*1e3/float64(b.N), "message-ms/op")
	b.ReportMetric(down.Seconds()*1e3/float64(b.N), "download-ms/op")
	// CPU time over wall time in a phase: how many of the cores it kept busy.
	b.ReportMetric(upCPU.Seconds()/up.Seconds(), "send-cores")
	b.ReportMetric(downCPU.Seconds()/down.Seconds(), "download-cores")
}

func BenchmarkRawWebSocketCopy(b *testing.B) {
	_, size := benchFile(b)
	var got atomic.Int64
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, rd, err := ws.NextReader()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, rd)
			if got.Add(n) >= size {
				got.Store(0)
				ws.WriteMessage(websocket.TextMessage, []byte("done"))
			}
		}
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	buf := make([]byte, 32<<10)
	rand.Read(buf)
	b.SetBytes(size)
	cpu0 := cpuTime()
	for b.Loop() {
		for sent := int64(0); sent < size; sent += int64(len(buf)) {
			if err := ws.WriteMessage(websocket.BinaryMessage, buf[:min(int64(len(buf)), size-sent)]); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
}

func BenchmarkSHA256File(b *testing.B) {
	path, size := benchFile(b)
	b.SetBytes(size)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
