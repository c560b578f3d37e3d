package chat

import (
	"sync"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/relaytest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRotateKeys(t *testing.T) {
	r := relaytest.Start(t)
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	// 25 keeps alice above the relay's low-key notice (20), which would top up at once.
	alice := newUser(t, r, "alice", func(p *Profile) { p.Prefs.Clock = clk.now; p.Prefs.OneTimeKeys = 25 })
	bob := newUser(t, r, "bob")
	ctx := ctxT(t)
	rc, _ := alice.c.relayClient()
	status := func() (otp, kem, spk, lr int) {
		t.Helper()
		st, err := rc.PreKeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Counts[ratchet.OneTimePreKey], st.Counts[ratchet.KEMOneTime], st.Counts[ratchet.SignedPreKey], st.Counts[ratchet.KEMLastResort]
	}
	local := func(kind ratchet.PreKeyKind) int {
		t.Helper()
		ks, err := alice.c.store.PreKeys(ctx, uint8(kind))
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	if otp, kem, spk, lr := status(); otp != 25 || kem != 25 || spk != 1 || lr != 1 {
		t.Fatalf("after Initialize the relay holds otp=%d kem=%d spk=%d lr=%d, want 25/25/1/1", otp, kem, spk, lr)
	}
	// Idempotent: nothing new is generated.
	must(t, alice.c.RotateKeys(ctx, 25))
	if n := local(ratchet.OneTimePreKey); n != 25 {
		t.Fatalf("second RotateKeys left %d one-time keys locally, want 25", n)
	}

	// Bob starts a session: one one-time key of each kind is handed out and, once the
	// session exists on alice's side, its private half is gone.
	if _, err := bob.c.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.Send(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, alice.c, "bob", "hi")
	if n := local(ratchet.OneTimePreKey); n != 24 {
		t.Fatalf("after a session, %d one-time keys held locally, want 24", n)
	}
	if n := local(ratchet.KEMOneTime); n != 24 {
		t.Fatalf("after a session, %d ML-KEM one-time keys held locally, want 24", n)
	}
	must(t, alice.c.RotateKeys(ctx, 25))
	if otp, kem, _, _ := status(); otp != 25 || kem != 25 {
		t.Fatalf("top-up left otp=%d kem=%d on the relay", otp, kem)
	}

	// A week later the signed prekeys rotate; the old private halves stay for 30 days.
	clk.add(SignedPreKeyMaxAge + time.Hour)
	must(t, alice.c.RotateKeys(ctx, 25))
	if n, m := local(ratchet.SignedPreKey), local(ratchet.KEMLastResort); n != 2 || m != 2 {
		t.Fatalf("after rotation, %d signed and %d last-resort keys held, want 2 and 2", n, m)
	}
	clk.add(RetiredPreKeyGrace + time.Hour)
	must(t, alice.c.RotateKeys(ctx, 25))
	// The newest was itself over a week old, so it rotated again: old one deleted, the
	// retired-a-moment-ago one kept.
	if n := local(ratchet.SignedPreKey); n != 2 {
		t.Fatalf("after the grace period, %d signed keys held, want 2", n)
	}

	// Sessions still work after all that.
	m, err := bob.c.Send(ctx, "alice", "still here")
	must(t, err)
	waitReceived(t, alice.c, "bob", "still here")
	waitState(t, bob.c, m.ID, Delivered)
}

func TestGentleReset(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := ctxT(t)
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "before")
	spk, _ := bob.c.store.PreKeys(ctx, uint8(ratchet.SignedPreKey))
	must(t, bob.c.GentleReset(ctx))
	spk2, _ := bob.c.store.PreKeys(ctx, uint8(ratchet.SignedPreKey))
	if len(spk2) != 1 || spk2[0].ID == spk[0].ID {
		t.Fatalf("signed prekeys after reset: %+v (before %+v)", spk2, spk)
	}
	// Alice's old session is gone on bob's side; she resets too, and they talk again
	// with fresh keys.
	must(t, alice.c.ResetSession(ctx, "bob"))
	m, err := alice.c.Send(ctx, "bob", "after")
	must(t, err)
	waitReceived(t, bob.c, "alice", "after")
	waitState(t, alice.c, m.ID, Delivered)
}

// Concurrent RotateKeys calls wait for each other: the relay ends with exactly n keys.
func TestRotateKeysConcurrent(t *testing.T) {
	r := relaytest.Start(t)
	alice := newUser(t, r, "alice", func(p *Profile) { p.Prefs.OneTimeKeys = 25 })
	ctx := ctxT(t)
	rc, _ := alice.c.relayClient()
	// Empty the relay's one-time keys as if many peers had fetched bundles.
	for range 25 {
		if _, err := rc.FetchBundle(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- alice.c.RotateKeys(ctx, 30) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	st, err := rc.PreKeyStatus(ctx)
	must(t, err)
	if st.Counts[ratchet.OneTimePreKey] != 30 || st.Counts[ratchet.KEMOneTime] != 30 {
		t.Fatalf("relay holds %v, want 30 of each one-time kind", st.Counts)
	}
}
