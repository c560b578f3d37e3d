package chat

import (
	"math/rand/v2"
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
	unblocked[2].UnblocksBefore, unblocked[3].UnblocksBefore = 1, 1
	if g := findGaps(unblocked, t0.Add(time.Hour)); len(g) != 2 || g[0].From != 2 || g[0].To != 2 || g[0].Before != 2 ||
		g[1].From != 8 || g[1].To != 8 || g[1].Before != 4 {
		t.Fatalf("after an unblock gaps = %+v, want 2 (lost before the block) and 8", g)
	}
	lateAfterUnblock := append(slices.Clone(unblocked), storage.SeqMark{ID: 5, Seq: 5, SentAt: t0.Add(5 * time.Second), ReceivedAt: t0.Add(2 * time.Minute), UnblocksBefore: 1})
	if g := findGaps(lateAfterUnblock, t0.Add(time.Hour)); len(g) != 2 || g[0].From != 2 || g[1].From != 8 || g[1].To != 8 {
		t.Fatalf("a lower number arrived after the first since the unblock: gaps = %+v, want 2 and 8", g)
	}
	// Nothing arrived before the unblock: every number below the first since is excused.
	onlyAfter := []storage.SeqMark{mk(1, 7, 10*time.Second, time.Minute), mk(2, 5, 5*time.Second, 2*time.Minute), mk(3, 9, 11*time.Second, time.Minute)}
	for i := range onlyAfter {
		onlyAfter[i].UnblocksBefore = 1
	}
	if g := findGaps(onlyAfter, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 8 {
		t.Fatalf("only messages since the unblock: gaps = %+v, want only 8", g)
	}
	// Each unblock excuses the hole of its own block, not only the last. 1, 3 arrived
	// before the first block (2 lost), which took 4..5; 6, 8 between the blocks (7 lost);
	// the second block took 9; 10, 12 after (11 lost). 2, 7 and 11 are missing.
	epoch := func(k int, ms ...storage.SeqMark) []storage.SeqMark {
		for i := range ms {
			ms[i].UnblocksBefore = k
		}
		return ms
	}
	twoUnblocks := slices.Concat(epoch(0, mk(1, 1, 0, 0), mk(2, 3, time.Second, 0)),
		epoch(1, mk(3, 6, 10*time.Second, time.Minute), mk(4, 8, 11*time.Second, time.Minute)),
		epoch(2, mk(5, 10, 20*time.Second, 2*time.Minute), mk(6, 12, 21*time.Second, 2*time.Minute)))
	if g := findGaps(twoUnblocks, t0.Add(time.Hour)); len(g) != 3 || g[0].From != 2 || g[0].To != 2 || g[0].Before != 2 ||
		g[1].From != 7 || g[1].To != 7 || g[1].Before != 4 || g[2].From != 11 || g[2].To != 11 || g[2].Before != 6 {
		t.Fatalf("two unblocks: gaps = %+v, want 2, 7 and 11", g)
	}
	// Three unblocks. 1 arrived before the first block, which took 2; 3, 4 before the
	// second, which took 5..6; after it 8 arrived first, 7 later (the block may have
	// taken 5..7, and 7 arriving brings back nothing); the third block took 9; 10, 11,
	// 13 after it (12 lost). Only 12 is missing.
	threeUnblocks := slices.Concat(epoch(0, mk(1, 1, 0, 0)),
		epoch(1, mk(2, 3, 10*time.Second, time.Minute), mk(3, 4, 11*time.Second, time.Minute)),
		epoch(2, mk(4, 8, 21*time.Second, 2*time.Minute), mk(5, 7, 20*time.Second, 3*time.Minute)),
		epoch(3, mk(6, 10, 30*time.Second, 4*time.Minute), mk(7, 11, 31*time.Second, 4*time.Minute), mk(8, 13, 33*time.Second, 4*time.Minute)))
	if g := findGaps(threeUnblocks, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 12 || g[0].To != 12 || g[0].Before != 8 {
		t.Fatalf("three unblocks: gaps = %+v, want only 12", g)
	}
	// Nothing arrived between the first unblock and the second block: the second
	// unblock excuses both blocks' numbers, 3..5, and the lost 7 after it is missing.
	silentBetween := slices.Concat(epoch(0, mk(1, 1, 0, 0), mk(2, 2, time.Second, 0)),
		epoch(2, mk(3, 6, 20*time.Second, time.Minute), mk(4, 8, 21*time.Second, time.Minute)))
	if g := findGaps(silentBetween, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 7 || g[0].To != 7 || g[0].Before != 4 {
		t.Fatalf("an unblock with nothing after it before the next block: gaps = %+v, want only 7", g)
	}
	// Without the unblock, the same marks have holes 2, 4..6 and 8.
	if g := findGaps([]storage.SeqMark{mk(1, 1, 0, 0), mk(2, 3, time.Second, 0), mk(3, 7, 10*time.Second, time.Minute), mk(4, 9, 11*time.Second, time.Minute)}, t0.Add(time.Hour)); len(g) != 3 {
		t.Fatalf("never blocked: gaps = %+v, want 2, 4..6 and 8", g)
	}
	// A sender's new installation after the unblock starts a run of its own, whose first
	// number to arrive is its floor; the run before the unblock keeps its hole.
	restarted := []storage.SeqMark{mk(1, 1, 0, 0), mk(2, 3, time.Second, 0),
		{ID: 3, Seq: 1, SentAt: t0.Add(time.Hour), UnblocksBefore: 1}, {ID: 4, Seq: 3, SentAt: t0.Add(time.Hour + time.Second), UnblocksBefore: 1}}
	if g := findGaps(restarted, t0.Add(2*time.Hour)); len(g) != 2 || g[0].From != 2 || g[0].Before != 2 || g[1].From != 2 || g[1].Before != 4 {
		t.Fatalf("a restart after the unblock: gaps = %+v, want 2 before message 2 and 2 before message 4", g)
	}
	// A huge number is one range, not a loop over it.
	huge := []storage.SeqMark{mk(1, 1, 0, 0), mk(2, 1<<62, time.Second, 0)}
	if g := findGaps(huge, t0.Add(time.Hour)); len(g) != 1 || g[0].From != 2 || g[0].To != 1<<62-1 {
		t.Fatalf("huge: %+v", g)
	}
}

// TestUnblockHolesFollowTheRule checks unblockHoles, which finds the ranges unblocks
// excuse in O(n log n), against the rule written out the slow way (every epoch's first
// message against every message), on many small random runs.
func TestUnblockHolesFollowTheRule(t *testing.T) {
	excusedByRule := func(rs []storage.SeqMark, from, to uint64) bool {
		for _, f := range rs {
			if f.UnblocksBefore == 0 {
				continue
			}
			isFirst := true
			for _, m := range rs {
				isFirst = isFirst && (m.UnblocksBefore != f.UnblocksBefore || m.ID >= f.ID)
			}
			if !isFirst {
				continue
			}
			lo := rs[0].Seq
			for _, m := range rs {
				if m.UnblocksBefore < f.UnblocksBefore && m.Seq < f.Seq {
					lo = max(lo, m.Seq+1)
				}
			}
			if lo <= from && to < f.Seq {
				return true
			}
		}
		return false
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		rs := make([]storage.SeqMark, 1+rng.IntN(12))
		for i, id := range rng.Perm(len(rs)) {
			rs[i] = storage.SeqMark{ID: int64(id + 1), Seq: 1 + rng.Uint64N(20), UnblocksBefore: rng.IntN(5)}
		}
		slices.SortFunc(rs, func(a, b storage.SeqMark) int { return int(a.Seq) - int(b.Seq) })
		excused := unblockHoles(rs)
		for from := uint64(1); from <= 21; from++ {
			for to := from; to <= 21; to++ {
				if got, want := excused.covers(from, to), excusedByRule(rs, from, to); got != want {
					t.Fatalf("marks %+v: %d..%d excused %v, the rule says %v", rs, from, to, got, want)
				}
			}
		}
	}
}
