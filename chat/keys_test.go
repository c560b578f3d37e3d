package chat_test

import (
	"sync"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/ratchet"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
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
	alice := chattest.NewUser(t, r, "alice", func(p *chat.Profile) { p.Prefs.Clock = clk.now; p.Prefs.OneTimeKeys = 25 })
	bob := chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	rc, _ := chat.RelayClientOf(alice.Controller)
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
		ks, err := chat.StoreOf(alice.Controller).PreKeys(ctx, uint8(kind))
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	if otp, kem, spk, lr := status(); otp != 25 || kem != 25 || spk != 1 || lr != 1 {
		t.Fatalf("after Initialize the relay holds otp=%d kem=%d spk=%d lr=%d, want 25/25/1/1", otp, kem, spk, lr)
	}
	// Idempotent: nothing new is generated.
	chattest.Must(t, alice.RotateKeys(ctx, 25))
	if n := local(ratchet.OneTimePreKey); n != 25 {
		t.Fatalf("second RotateKeys left %d one-time keys locally, want 25", n)
	}

	// Bob starts a session: one one-time key of each kind is handed out and, once the
	// session exists on alice's side, its private half is gone.
	chattest.AddContact(t, bob, "alice")
	chattest.AddContact(t, alice, "bob") // receipts go only to contacts alice accepted
	chattest.Send(t, bob, alice, "hi")
	if n := local(ratchet.OneTimePreKey); n != 24 {
		t.Fatalf("after a session, %d one-time keys held locally, want 24", n)
	}
	if n := local(ratchet.KEMOneTime); n != 24 {
		t.Fatalf("after a session, %d ML-KEM one-time keys held locally, want 24", n)
	}
	chattest.Must(t, alice.RotateKeys(ctx, 25))
	if otp, kem, _, _ := status(); otp != 25 || kem != 25 {
		t.Fatalf("top-up left otp=%d kem=%d on the relay", otp, kem)
	}

	// A week later the signed prekeys rotate; the old private halves stay for 30 days.
	clk.add(chat.SignedPreKeyMaxAge + time.Hour)
	chattest.Must(t, alice.RotateKeys(ctx, 25))
	if n, m := local(ratchet.SignedPreKey), local(ratchet.KEMLastResort); n != 2 || m != 2 {
		t.Fatalf("after rotation, %d signed and %d last-resort keys held, want 2 and 2", n, m)
	}
	clk.add(chat.RetiredPreKeyGrace + time.Hour)
	chattest.Must(t, alice.RotateKeys(ctx, 25))
	// The newest was itself over a week old, so it rotated again: old one deleted, the
	// retired-a-moment-ago one kept.
	if n := local(ratchet.SignedPreKey); n != 2 {
		t.Fatalf("after the grace period, %d signed keys held, want 2", n)
	}

	// Sessions still work after all that.
	m := chattest.Send(t, bob, alice, "still here")
	chattest.WaitState(t, bob, m.ID, chat.Delivered)
}

func TestGentleReset(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	ctx := t.Context()
	chattest.AddContact(t, alice, "bob")
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	chattest.Send(t, alice, bob, "before")
	spk, _ := chat.StoreOf(bob.Controller).PreKeys(ctx, uint8(ratchet.SignedPreKey))
	chattest.Must(t, bob.GentleReset(ctx))
	spk2, _ := chat.StoreOf(bob.Controller).PreKeys(ctx, uint8(ratchet.SignedPreKey))
	if len(spk2) != 1 || spk2[0].ID == spk[0].ID {
		t.Fatalf("signed prekeys after reset: %+v (before %+v)", spk2, spk)
	}
	// Alice's old session is gone on bob's side; she resets too, and they talk again
	// with fresh keys.
	chattest.Must(t, alice.ResetSession(ctx, "bob"))
	m := chattest.Send(t, alice, bob, "after")
	chattest.WaitState(t, alice, m.ID, chat.Delivered)
}

// Concurrent RotateKeys calls wait for each other: the relay ends with exactly n keys.
func TestRotateKeysConcurrent(t *testing.T) {
	// One requester drains the keys below: off with its fetch limit.
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{FetchBundlePerMinute: -1}})
	alice := chattest.NewUser(t, r, "alice", func(p *chat.Profile) { p.Prefs.OneTimeKeys = 25 })
	ctx := t.Context()
	rc, _ := chat.RelayClientOf(alice.Controller)
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
		go func() { defer wg.Done(); errs <- alice.RotateKeys(ctx, 30) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		chattest.Must(t, err)
	}
	st, err := rc.PreKeyStatus(ctx)
	chattest.Must(t, err)
	if st.Counts[ratchet.OneTimePreKey] != 30 || st.Counts[ratchet.KEMOneTime] != 30 {
		t.Fatalf("relay holds %v, want 30 of each one-time kind", st.Counts)
	}
}
