package server_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// TestStorageFullOnRealFileSystem fills a real, size-limited file system (a tmpfs or
// loop-mounted ext4 the caller mounts, e.g. `mount -t tmpfs -o size=32m tmpfs /mnt/x`)
// and checks that the recipient's acks still delete on a disk with no byte left.
//
//	PFSCHAT_FULLDISK_DIR=/mnt/x [PFSCHAT_FULLDISK_RESERVE_MIB=2] go test -run RealFileSystem -v ./relay/server/
func TestStorageFullOnRealFileSystem(t *testing.T) {
	dir := os.Getenv("PFSCHAT_FULLDISK_DIR")
	if dir == "" {
		t.Skip("set PFSCHAT_FULLDISK_DIR to a small, size-limited file system to run")
	}
	reserveMiB := int64(2)
	if v := os.Getenv("PFSCHAT_FULLDISK_RESERVE_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		reserveMiB = n
	}
	ctx := context.Background()
	path := filepath.Join(dir, "relay.db")
	os.Remove(path)
	st, err := storage.OpenRelay(ctx, path, storage.RelayOptions{MaxQueueBytes: 1 << 30, MaxQueueCount: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(ctx, server.Config{Store: st, Limits: server.Limits{MaxQueueBytes: 1 << 30, MaxQueueCount: 1 << 20, FramesPerSecond: -1},
		Disk: server.DiskConfig{MinFreeBytes: 4 << 20, ReservePath: path + ".reserve", ReserveBytes: reserveMiB << 20, Interval: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(ctx)
	r := &relaytest.Relay{URL: "ws" + hs.URL[len("http"):] + "/v1/ws", Addr: hs.Listener.Addr().String(), Server: srv, Store: st}
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	waitSynced(t, bob.c)

	// Fill the queue until the high-water mark refuses.
	body := make([]byte, 16<<10)
	var ids []int64
	for i := 0; ; i++ {
		rand.Read(body)
		id, err := alice.c.Send(ctx, "bob", body, "m"+strconv.Itoa(i))
		if err != nil {
			wantCode(t, err, relay.CodeStorageFull)
			break
		}
		ids = append(ids, id)
	}
	t.Logf("queued %d messages of %d KiB before storage_full", len(ids), len(body)>>10)

	// Then take every byte left, as another program on the disk would.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	var sfs syscall.Statfs_t
	syscall.Statfs(dir, &sfs)
	t.Logf("disk filled: %d bytes available", sfs.Bavail*uint64(sfs.Bsize))
	if reserveMiB > 0 {
		deadline := time.Now().Add(waitFor)
		for _, err := os.Stat(path + ".reserve"); err == nil; _, err = os.Stat(path + ".reserve") {
			if time.Now().After(deadline) {
				t.Fatal("reserve not released")
			}
			time.Sleep(time.Millisecond)
		}
		syscall.Statfs(dir, &sfs)
		t.Logf("reserve released: %d bytes available", sfs.Bavail*uint64(sfs.Bsize))
	}

	// The recipient drains its queue on the full disk.
	for i := 0; i < len(ids); i += relay.MaxAckIDs {
		if err := bob.c.Ack(ctx, ids[i:min(i+relay.MaxAckIDs, len(ids))]...); err != nil {
			t.Fatalf("ack of messages %d.. on a full disk (reserve %d MiB): %v", i, reserveMiB, err)
		}
	}
	if n, _, err := st.QueueUsage(ctx, "bob"); err != nil || n != 0 {
		t.Fatalf("queue after acks: %d, %v", n, err)
	}
	t.Logf("acked and deleted %d messages on the full disk", len(ids))

	// Space returns: the relay takes sends again by itself.
	os.Remove(filler)
	deadline := time.Now().Add(waitFor)
	for {
		_, err := alice.c.Send(ctx, "bob", []byte("after"), "after")
		if err == nil {
			break
		}
		wantCode(t, err, relay.CodeStorageFull)
		if time.Now().After(deadline) {
			t.Fatal("the relay did not recover")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := st.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}
