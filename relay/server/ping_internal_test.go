package server

import "testing"

// TestPingsSpreadOverTheInterval: the pinger's ticks each ping about a sixteenth of the
// connections, and over one interval (pingSlots ticks) every connection exactly once —
// not all of them in one burst.
func TestPingsSpreadOverTheInterval(t *testing.T) {
	s := &Server{conns: map[*conn]struct{}{}}
	const n = 100
	for i := range n {
		s.conns[&conn{id: uint64(i + 1)}] = struct{}{} // as serveWS numbers them
	}
	pinged := map[*conn]int{}
	for tick := range pingSlots {
		due := s.dueForPing(tick, nil)
		if lo, hi := n/pingSlots, (n+pingSlots-1)/pingSlots; len(due) < lo || len(due) > hi {
			t.Fatalf("tick %d pings %d of %d connections, want %d to %d", tick, len(due), n, lo, hi)
		}
		for _, c := range due {
			pinged[c]++
		}
	}
	for c := range s.conns {
		if pinged[c] != 1 {
			t.Fatalf("a connection was pinged %d times in one interval, want once", pinged[c])
		}
	}
	again := map[*conn]bool{}
	for _, c := range s.dueForPing(pingSlots, nil) {
		again[c] = true
	}
	first := s.dueForPing(0, nil)
	if len(again) != len(first) {
		t.Fatalf("the next interval's first tick pings %d connections, the first interval's %d", len(again), len(first))
	}
	for _, c := range first {
		if !again[c] {
			t.Fatal("the next interval's first tick pings other connections than the first's")
		}
	}
}
