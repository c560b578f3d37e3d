package chat

import (
	"log/slog"
	"testing"
	"time"

	"pfschat/relay"
)

// A stream of low_prekeys notices wakes the key rotator once per window, not once per
// notice.
func TestLowPreKeysNoticeWakesRotatorOncePerWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := &Controller{now: func() time.Time { return now }, rotateCh: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
	wakes := 0
	drain := func() {
		select {
		case <-c.rotateCh:
			wakes++
		default:
		}
	}
	for range 1000 { // a notice per bundle fetch, 100 a second for 10 s
		now = now.Add(10 * time.Millisecond)
		c.onLowPreKeys()
		drain()
	}
	if wakes != 1 {
		t.Fatalf("1000 notices within the window woke the rotator %d times, want 1", wakes)
	}
	now = now.Add(relay.LowPreKeysWindow)
	c.onLowPreKeys()
	drain()
	if wakes != 2 {
		t.Fatalf("a notice after the window: %d wakes, want 2", wakes)
	}
	// A clock stepped backwards does not lock the gate for good.
	now = now.Add(-time.Hour)
	c.onLowPreKeys()
	drain()
	if wakes != 3 {
		t.Fatalf("after a backwards clock step: %d wakes, want 3", wakes)
	}
}
