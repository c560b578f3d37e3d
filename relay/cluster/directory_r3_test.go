package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

func connectR3(t *testing.T, urls ...string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{URLs: urls, Replicas: 3, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestDirectoryR3: two nodes on a 3-server JetStream cluster, the directory at R3
// (each node first connected to another server): one-time prekeys taken under
// contention from both nodes go out once each; with one server stopped the directory
// still registers, takes and blocks; with two stopped a registration is refused with
// server.ErrUnavailable and is afterwards there whole or not at all; with one back it
// works again and holds everything written before.
func TestDirectoryR3(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster with stops and restarts")
	}
	g := natstest.Cluster(t, 3)
	u := g.URLs()
	a := newTestDirectory(t, connectR3(t, u[0], u[1], u[2]))
	b := newTestDirectory(t, connectR3(t, u[1], u[2], u[0]))
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second) // bounds a hang: each re-election may take tens of seconds on two loaded cores
	defer cancel()
	start := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(start).Seconds(), what) }
	if err := a.CreateAccount(ctx, storage.Account{Name: "bob", CardID: "c-bob", Card: []byte("bob")}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	keys := make([]storage.StoredPreKey, n)
	for i := range keys {
		keys[i] = storage.StoredPreKey{Kind: 2, ID: uint32(i + 1), Data: []byte(fmt.Sprint("opk", i+1))}
	}
	if stored, err := b.PutPreKeys(ctx, "c-bob", keys, 0); err != nil || stored != n {
		t.Fatalf("stored %d, %v", stored, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint32]int{}
	errs := make(chan error, 16)
	for _, d := range []*Directory{a, b, a, b, a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, err := d.TakePreKey(ctx, "c-bob", 2)
				if errors.Is(err, storage.ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[k.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("key %d handed out %d times", id, c)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d keys handed out, want %d", len(seen), n)
	}

	// One of three stopped: the directory goes on (after the stream's leader moves,
	// if it was there).
	phase("prekeys taken")
	g.Stop(2)
	eventually(t, "a registration with one server stopped", func() error {
		return register(ctx, b, "carol")
	})
	if err := a.Block(ctx, "carol", "bob", time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutPreKeys(ctx, "c-carol", keys[:2], 0); err != nil {
		t.Fatal(err)
	}
	if k, err := b.TakePreKey(ctx, "c-carol", 2); err != nil || k.ID != 1 {
		t.Fatalf("take with one server stopped: %+v %v", k, err)
	}

	// Two of three stopped: no quorum, refused as unavailable.
	phase("one stopped: written")
	g.Stop(1)
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := a.CreateAccount(short, storage.Account{Name: "dave", CardID: "c-dave", Card: []byte("dave")})
	cancel()
	if !errors.Is(err, server.ErrUnavailable) {
		t.Fatalf("a registration without quorum: %v, want server.ErrUnavailable", err)
	}

	phase("two stopped: refused")
	g.Restart(1)
	phase("restarted")
	eventually(t, "a registration with a quorum again", func() error {
		return register(ctx, a, "erin")
	})
	phase("written again")
	// The refused registration's outcome was unknown to the node (its commit may sit in
	// the stream's log until a quorum returns): it is there whole or not at all, and
	// the client's retry settles it.
	_, errName := b.AccountByName(ctx, "dave")
	_, errCard := b.AccountByCardID(ctx, "c-dave")
	if (errName == nil) != (errCard == nil) || (errName != nil && !errors.Is(errName, storage.ErrNotFound)) {
		t.Fatalf("the registration refused as unavailable is half there: by name %v, by card %v", errName, errCard)
	}
	if err := register(ctx, b, "dave"); err != nil {
		t.Fatalf("the client's retry: %v", err)
	}
	for _, name := range []string{"bob", "carol", "erin"} {
		if _, err := b.AccountByName(ctx, name); err != nil {
			t.Fatalf("%s after the outage: %v", name, err)
		}
	}
	// A listing is a watch (an ordered consumer), which a cluster just back from an
	// outage may leave silent for longer than a scan's tries (CI under -race: "listing
	// blk.: no answer within 2s"): it answers unavailable, and is asked again, as the
	// relay's hourly scans are. Any other error or a wrong answer fails at once.
	untilAvailable(t, "blocks after the outage", func() error {
		bl, err := b.Blocks(ctx)
		if err == nil && len(bl["carol"]) != 1 {
			t.Fatalf("blocks after the outage: %v", bl)
		}
		return err
	})
	untilAvailable(t, "carol's prekeys after the outage", func() error {
		n, err := b.CountPreKeys(ctx, "c-carol", 2)
		if err == nil && n != 1 {
			t.Fatalf("carol's prekeys after the outage: %d", n)
		}
		return err
	})
}

// untilAvailable calls f until it returns nil, for as long as it fails with
// server.ErrUnavailable (within eventually's deadline); another error fails the test.
func untilAvailable(t *testing.T, what string, f func() error) {
	t.Helper()
	eventually(t, what, func() error {
		err := f()
		if err != nil && !errors.Is(err, server.ErrUnavailable) {
			t.Fatalf("%s: %v", what, err)
		}
		return err
	})
}

// register registers name (card "c-"+name) as a client retrying after unavailable
// does: a first try whose answer was lost may have been stored, and the relay answers
// the repeat of the same card as a success (onRegister), so the store's ErrExists
// for the same card counts as done here.
func register(ctx context.Context, d *Directory, name string) error {
	err := d.CreateAccount(ctx, storage.Account{Name: name, CardID: "c-" + name, Card: []byte(name)})
	if errors.Is(err, storage.ErrExists) {
		if a, aerr := d.AccountByName(ctx, name); aerr == nil && a.CardID == "c-"+name {
			return nil
		}
	}
	return err
}
