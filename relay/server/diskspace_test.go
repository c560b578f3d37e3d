package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// fakeDisk is an injected statfs: the test sets how many bytes and inodes are free
// (of inodes in all: 0, the zero value, reports none, as btrfs does).
type fakeDisk struct {
	free, freeInodes atomic.Uint64
	inodes           uint64
}

func (d *fakeDisk) Free(string) (server.DiskSpace, error) {
	return server.DiskSpace{AvailBytes: d.free.Load(), FreeInodes: d.freeInodes.Load(), Inodes: d.inodes}, nil
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// waitHealth waits until /healthz says want (the guard checks every millisecond).
func waitHealth(t *testing.T, r *relaytest.Relay, want string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for httpGet(t, "http://"+r.Addr+"/healthz") != want {
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never said %q", want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStorageFullRefusesSendsKeepsAcks(t *testing.T) {
	const mib = 1 << 20
	disk := &fakeDisk{}
	disk.free.Store(1 << 30)
	reserve := filepath.Join(t.TempDir(), "relay.db.reserve")
	r := relaytest.StartWith(t, relaytest.Options{Disk: server.DiskConfig{
		MinFreeBytes: 100 * mib, ReservePath: reserve, ReserveBytes: mib, Interval: time.Millisecond, Free: disk.Free,
	}})
	if st, err := os.Stat(reserve); err != nil || st.Size() != mib {
		t.Fatalf("reserve file at start: %v, %v", st, err)
	}
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	waitSynced(t, bob.c)
	ctx := testCtx(t)
	if _, err := alice.c.Send(ctx, "bob", []byte("before"), "c1"); err != nil {
		t.Fatal(err)
	}
	m1 := nextMessage(t, bob.c)

	// Below the high-water mark: sends are refused, acks and logins work.
	disk.free.Store(50 * mib)
	waitHealth(t, r, "degraded: storage_full\n")
	_, err := alice.c.Send(ctx, "bob", []byte("during"), "c2")
	wantCode(t, err, relay.CodeStorageFull)
	if err := bob.c.Ack(ctx, m1.ID); err != nil {
		t.Fatalf("ack on a full disk: %v", err)
	}
	if n, _, err := r.Store.QueueUsage(ctx, "bob"); err != nil || n != 0 {
		t.Fatalf("bob's queue after the ack: %d (%v), want 0", n, err)
	}
	carol := newUser(t, r, "carol") // register and login need no queue space
	if _, err := carol.c.LookupCard(ctx, "alice"); err != nil {
		t.Fatal(err)
	}

	// Nearly exhausted: the reserve goes to the acks; still refusing.
	disk.free.Store(mib / 2)
	deadline := time.Now().Add(waitFor)
	for _, err := os.Stat(reserve); err == nil; _, err = os.Stat(reserve) {
		if time.Now().After(deadline) {
			t.Fatal("reserve file was not released")
		}
		time.Sleep(time.Millisecond)
	}
	_, err = alice.c.Send(ctx, "bob", []byte("during"), "c3")
	wantCode(t, err, relay.CodeStorageFull)
	wantLimited(t, r, server.LimitMinFree, 2)

	// Space between the mark and the mark plus the reserve: the reserve must come back
	// first, so sends stay refused.
	disk.free.Store(100*mib + mib/2)
	waitHealth(t, r, "degraded: storage_full\n")
	_, err = alice.c.Send(ctx, "bob", []byte("during"), "c4")
	wantCode(t, err, relay.CodeStorageFull)

	// Space returns: the relay recovers by itself, reserve included.
	disk.free.Store(1 << 30)
	waitHealth(t, r, "ok\n")
	if st, err := os.Stat(reserve); err != nil || st.Size() != mib {
		t.Fatalf("reserve file after recovery: %v, %v", st, err)
	}
	if _, err := alice.c.Send(ctx, "bob", []byte("after"), "c2"); err != nil {
		t.Fatalf("send after recovery: %v", err)
	}
	if m := nextMessage(t, bob.c); string(m.Body) != "after" {
		t.Fatalf("got %q, want the message sent after recovery", m.Body)
	}
	metrics := r.Get(t, "/metrics")
	for _, want := range []string{`pfschat_relay_errors_total{code="storage_full"} 3`, "pfschat_relay_storage_full 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := r.Store.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

// A file system can run out of inodes with bytes to spare (each blob is a file): below
// the inode floor, 1% of the inodes, sends and uploads are refused as below min_free,
// saying that inodes ran out, and taken again once inodes are free.
func TestStorageFullOnInodes(t *testing.T) {
	disk := &fakeDisk{inodes: 1_000_000}
	disk.free.Store(1 << 40)
	disk.freeInodes.Store(500_000)
	r := relaytest.StartWith(t, relaytest.Options{Disk: server.DiskConfig{
		MinFreeBytes: 100 << 20, Interval: time.Millisecond, Free: disk.Free,
	}})
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := testCtx(t)

	disk.freeInodes.Store(9_999)
	waitHealth(t, r, "degraded: storage_full\n")
	_, err := alice.c.Send(ctx, "bob", []byte("during"), "c1")
	wantCode(t, err, relay.CodeStorageFull)
	if !strings.Contains(err.Error(), "out of free inodes") {
		t.Fatalf("the refused send says %q, want it to name the inodes", err)
	}
	_, err = alice.c.BlobBegin(ctx, 1000, 1)
	wantCode(t, err, relay.CodeStorageFull)
	if !strings.Contains(err.Error(), "out of free inodes") {
		t.Fatalf("the refused upload says %q, want it to name the inodes", err)
	}

	disk.freeInodes.Store(10_000)
	waitHealth(t, r, "ok\n")
	if _, err := alice.c.Send(ctx, "bob", []byte("after"), "c2"); err != nil {
		t.Fatalf("send after inodes returned: %v", err)
	}
	if m := nextMessage(t, bob.c); string(m.Body) != "after" {
		t.Fatalf("got %q, want the message sent after inodes returned", m.Body)
	}
}
