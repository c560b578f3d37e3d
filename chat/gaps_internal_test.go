package chat

import (
	"slices"
	"testing"
	"time"

	"pfschat/storage"
)

func TestFindGaps(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(id int64, seq uint64, sent, recv time.Duration) storage.SeqMark {
		return storage.SeqMark{ID: id, Seq: seq, SentAt: t0.Add(sent), ReceivedAt: t0.Add(recv)}
	}
	// 1, 2, 4 arrived; 4 arrived at +10s.
	marks := []storage.SeqMark{mk(1, 1, 0, time.Second), mk(2, 2, time.Second, 2*time.Second), mk(3, 4, 3*time.Second, 10*time.Second)}
	if g := findGaps(marks, t0.Add(10*time.Second+GapWait-time.Nanosecond)); len(g) != 0 {
		t.Fatalf("a hole younger than GapWait reported: %+v", g)
	}
	g := findGaps(marks, t0.Add(10*time.Second+GapWait))
	if len(g) != 1 || g[0].From != 3 || g[0].To != 3 || g[0].Before != 3 || !g[0].Since.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("gaps = %+v, want seq 3 before message 3", g)
	}
	// 3 arrives late: the gap clears.
	late := append(marks, mk(4, 3, 2*time.Second, 5*time.Minute))
	if g := findGaps(late, t0.Add(time.Hour)); len(g) != 0 {
		t.Fatalf("gap stayed after the message arrived: %+v", g)
	}
	// A new installation: 1, 2 again, sent later. No false gap; its own hole is found.
	restart := append(late, mk(5, 1, time.Hour, time.Hour), mk(6, 2, time.Hour+time.Second, time.Hour), mk(7, 5, time.Hour+2*time.Second, time.Hour))
	g = findGaps(restart, t0.Add(2*time.Hour))
	if len(g) != 1 || g[0].From != 3 || g[0].To != 4 || g[0].Before != 7 {
		t.Fatalf("after a restart gaps = %+v, want 3..4 before message 7", g)
	}
	// A clock that steps back within one run splits nothing.
	back := []storage.SeqMark{mk(1, 1, 0, 0), mk(2, 2, 10*time.Second, 0), mk(3, 3, 5*time.Second, 0), mk(4, 4, 20*time.Second, 0)}
	if g := findGaps(back, t0.Add(time.Hour)); len(g) != 0 {
		t.Fatalf("clock step back raised %+v", g)
	}
	// A reinstallation of the receiver: the sender's counter goes on (57, 58, 60).
	// Nothing below 57, the lowest this profile has, is missing here; 59 is.
	reinstall := []storage.SeqMark{mk(1, 57, 0, 0), mk(2, 58, time.Second, 0), mk(3, 60, 2*time.Second, 0)}
	if g := findGaps(reinstall, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 59 || g[0].To != 59 || g[0].Before != 3 {
		t.Fatalf("after the receiver's reinstallation gaps = %+v, want only 59", g)
	}
	// A lower number that arrives later moves the run's start: the holes above it count.
	lateLow := append(slices.Clone(reinstall), mk(4, 40, -time.Second, time.Minute))
	if g := findGaps(lateLow, t0.Add(time.Hour)); len(g) != 2 || g[0].From != 41 || g[0].To != 56 || g[1].From != 59 {
		t.Fatalf("a lower number arrived later: gaps = %+v, want 41..56 and 59", g)
	}
	// An unblock: 1, 3 arrived before it; 4..6 went while the sender was blocked; 7 is
	// the first to arrive after it, then 9. 4..6 are not missing; 2, lost before the
	// block, still is, and so is 8; 5 arriving late afterwards changes nothing.
	unblocked := []storage.SeqMark{mk(1, 1, 0, 0), mk(2, 3, time.Second, 0), mk(3, 7, 10*time.Second, time.Minute), mk(4, 9, 11*time.Second, time.Minute)}
	unblocked[2].AfterUnblock, unblocked[3].AfterUnblock = true, true
	if g := findGaps(unblocked, t0.Add(time.Hour)); len(g) != 2 || g[0].From != 2 || g[0].To != 2 || g[0].Before != 2 ||
		g[1].From != 8 || g[1].To != 8 || g[1].Before != 4 {
		t.Fatalf("after an unblock gaps = %+v, want 2 (lost before the block) and 8", g)
	}
	lateAfterUnblock := append(slices.Clone(unblocked), storage.SeqMark{ID: 5, Seq: 5, SentAt: t0.Add(5 * time.Second), ReceivedAt: t0.Add(2 * time.Minute), AfterUnblock: true})
	if g := findGaps(lateAfterUnblock, t0.Add(time.Hour)); len(g) != 2 || g[0].From != 2 || g[1].From != 8 || g[1].To != 8 {
		t.Fatalf("a lower number arrived after the first since the unblock: gaps = %+v, want 2 and 8", g)
	}
	// Nothing arrived before the unblock: every number below the first since is excused.
	onlyAfter := []storage.SeqMark{mk(1, 7, 10*time.Second, time.Minute), mk(2, 5, 5*time.Second, 2*time.Minute), mk(3, 9, 11*time.Second, time.Minute)}
	for i := range onlyAfter {
		onlyAfter[i].AfterUnblock = true
	}
	if g := findGaps(onlyAfter, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 8 {
		t.Fatalf("only messages since the unblock: gaps = %+v, want only 8", g)
	}
	// Without the unblock, the same marks have holes 2, 4..6 and 8.
	if g := findGaps([]storage.SeqMark{mk(1, 1, 0, 0), mk(2, 3, time.Second, 0), mk(3, 7, 10*time.Second, time.Minute), mk(4, 9, 11*time.Second, time.Minute)}, t0.Add(time.Hour)); len(g) != 3 {
		t.Fatalf("never blocked: gaps = %+v, want 2, 4..6 and 8", g)
	}
	// A sender's new installation after the unblock starts a run of its own, whose first
	// number to arrive is its floor; the run before the unblock keeps its hole.
	restarted := []storage.SeqMark{mk(1, 1, 0, 0), mk(2, 3, time.Second, 0),
		{ID: 3, Seq: 1, SentAt: t0.Add(time.Hour), AfterUnblock: true}, {ID: 4, Seq: 3, SentAt: t0.Add(time.Hour + time.Second), AfterUnblock: true}}
	if g := findGaps(restarted, t0.Add(2*time.Hour)); len(g) != 2 || g[0].From != 2 || g[0].Before != 2 || g[1].From != 2 || g[1].Before != 4 {
		t.Fatalf("a restart after the unblock: gaps = %+v, want 2 before message 2 and 2 before message 4", g)
	}
	// A huge number is one range, not a loop over it.
	huge := []storage.SeqMark{mk(1, 1, 0, 0), mk(2, 1<<62, time.Second, 0)}
	if g := findGaps(huge, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 2 || g[0].To != 1<<62-1 {
		t.Fatalf("huge: %+v", g)
	}
}
