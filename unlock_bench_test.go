package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pfschat/chat/chattest"
	"pfschat/storage"
)

// unlockFigures is what one fresh `pfschat-unlock` process reports: the unlock itself
// (storage.OpenClientWith on a production store: Argon2id t=3, 64 MiB, 4 lanes) measured
// with getrusage around it, and the whole process until then.
type unlockFigures struct {
	WallMs, UserMs, SysMs float64
	MinFlt                int64
	ProcUserMs, ProcSysMs float64 // the process from its start to the end of the unlock
	ProcMinFlt            int64
	MaxRSSKiB             int64
}

func tvMs(tv syscall.Timeval) float64 { return float64(syscall.TimevalToNsec(tv)) / 1e6 }

// unlockProbe is the body of the `pfschat-unlock STORE PASSFILE` command of the test
// binary (see TestMain): one unlock in a fresh process, its figures as JSON on stdout.
func unlockProbe() {
	pass, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	t0 := time.Now()
	c, err := storage.OpenClientWith(context.Background(), os.Args[1], pass, storage.ClientOptions{})
	wall := time.Since(t0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.Close()
	json.NewEncoder(os.Stdout).Encode(unlockFigures{
		WallMs: float64(wall.Microseconds()) / 1000,
		UserMs: tvMs(r1.Utime) - tvMs(r0.Utime), SysMs: tvMs(r1.Stime) - tvMs(r0.Stime),
		MinFlt:     r1.Minflt - r0.Minflt,
		ProcUserMs: tvMs(r1.Utime), ProcSysMs: tvMs(r1.Stime), ProcMinFlt: r1.Minflt,
		MaxRSSKiB: r1.Maxrss,
	})
	os.Exit(0)
}

// BenchmarkColdUnlock: the profile unlock as a one-shot command pays it, in a fresh
// process each time (a warm loop in one process reuses memory already faulted in and
// measures only the hashing: storage's BenchmarkUnlock). Reported as p50s: wall time,
// user and system time and minor page faults of the unlock (getrusage before and after),
// and the process's maximum RSS; beside it, `pfschat version`'s whole process (exec to
// exit) in the same run as the floor of any command.
//
//	go test . -run '^$' -bench ColdUnlock -benchtime 10x
func BenchmarkColdUnlock(b *testing.B) {
	probe, err := exec.LookPath("pfschat-unlock")
	if err != nil {
		b.Fatalf("pfschat-unlock is not in $PATH (TestMain sets it up): %v", err)
	}
	bin := startupBin(b)
	dir := b.TempDir()
	path, passFile := filepath.Join(dir, "pfschat.db"), filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, chattest.Passphrase, 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := storage.CreateClientWith(context.Background(), path, chattest.Passphrase, storage.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	c.Close()
	var wall, user, sys, start []time.Duration
	var flt, rss []int64
	ms := func(v float64) time.Duration { return time.Duration(v * 1e6) }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
			b.Fatalf("pfschat version: %v\n%s", err, out)
		}
		start = append(start, time.Since(t0))
		out, err := exec.Command(probe, path, passFile).Output()
		if err != nil {
			b.Fatalf("pfschat-unlock: %v\n%s", err, out)
		}
		var f unlockFigures
		if err := json.Unmarshal(out, &f); err != nil {
			b.Fatalf("pfschat-unlock: %v: %q", err, out)
		}
		wall, user, sys = append(wall, ms(f.WallMs)), append(user, ms(f.UserMs)), append(sys, ms(f.SysMs))
		flt, rss = append(flt, f.MinFlt), append(rss, f.MaxRSSKiB)
	}
	b.StopTimer()
	med := func(v []int64) float64 {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return p50(d)
	}
	b.ReportMetric(p50(wall), "unlock-ms")
	b.ReportMetric(p50(user), "unlock-user-ms")
	b.ReportMetric(p50(sys), "unlock-sys-ms")
	b.ReportMetric(med(flt), "unlock-minflt")
	b.ReportMetric(med(rss)/1024, "maxrss-MiB")
	b.ReportMetric(p50(start), "version-ms")
	b.ReportMetric(p50(wall)/p50(start), "unlock/version")
	b.ReportMetric(0, "ns/op")
}
