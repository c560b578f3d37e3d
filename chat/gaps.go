package chat

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"pfschat/storage"
)

// GapWait is how long a missing sequence number (chat/PAYLOAD.md §3) may lag behind a
// later message of the same sender before Gaps reports it: the relay may deliver out of
// order, so a short hole is normal.
const GapWait = time.Minute

// WithdrawnReason is the Reason of the incoming Failed message that stands in for a
// message of the contact's that the relay refused (chat/PAYLOAD.md §4.6).
const WithdrawnReason = "the relay refused it"

// KeyGoneReason is the Reason of the undecryptable placeholder for a late message whose
// skipped message key is gone (expired after 30 days, or evicted as the oldest of too
// many): the message was never decrypted here, and now never can be.
const KeyGoneReason = "it arrived after its key expired"

// Gap is a run of a contact's messages that has not arrived: sequence numbers From..To
// are missing although a later message (Before, a message ID) arrived at least GapWait
// ago. The conversation shows it just before message Before as "a message from NAME has
// not arrived".
type Gap struct {
	Contact  string
	From, To uint64
	Before   int64     // the ID of the first message after the hole
	Since    time.Time // when the first later message arrived
}

// Gaps returns the holes in contact's incoming sequence, oldest first. Messages without
// a sequence number (before payload v2) never count; a sender whose counter starts again
// (a new installation: a lower seq with a later send time) starts a new sequence, so a
// restart is no gap. Holes are counted only above the lowest number this profile has of
// a counter: the numbers below it went to an installation before this one (a
// reinstalled or recovered profile starts in the middle of its contacts' counters). Each
// time the user unblocks the contact, the numbers between the highest to arrive before
// that unblock and the first to arrive after it are not counted: what the contact sent
// while blocked was dropped unread or refused by the relay, and any of those numbers may
// have been among it; a hole below the highest number that arrived before the unblock is
// older than the block and still counted. A gap disappears once its message arrives.
func (c *Controller) Gaps(ctx context.Context, contact string) ([]Gap, error) {
	marks, err := c.store.IncomingSeqs(ctx, contact)
	if err != nil {
		return nil, fmt.Errorf("chat: gaps with %s: %w", contact, err)
	}
	gs := findGaps(marks, c.now())
	for i := range gs {
		gs[i].Contact = contact
	}
	return gs, nil
}

// findGaps orders marks by send time and splits them into the sender's runs (each seq 1
// after the first begins a new one) and returns each run's holes that a later message has waited behind for GapWait.
// Its work is O(n log n) in the messages, whatever their numbers.
func findGaps(marks []storage.SeqMark, now time.Time) []Gap {
	ms := slices.Clone(marks)
	slices.SortFunc(ms, func(a, b storage.SeqMark) int {
		if c := a.SentAt.Compare(b.SentAt); c != 0 {
			return c
		}
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	var out []Gap
	run := []storage.SeqMark{}
	var top uint64
	flush := func() {
		out = append(out, runGaps(run, now)...)
		run = run[:0]
		top = 0
	}
	for _, m := range ms {
		// A 1 sent after the run's others: the counter restarted (a new installation).
		// Any other number joins the run, so a sender's clock that steps back cannot
		// split one run in two and invent a hole.
		if m.Seq == 1 && top > 0 {
			flush()
		}
		run = append(run, m)
		top = max(top, m.Seq)
	}
	flush()
	return out
}

// runGaps returns the holes in one run of a sender's counter above its lowest number,
// but for the holes the unblocks excuse (see Gaps).
func runGaps(run []storage.SeqMark, now time.Time) []Gap {
	rs := slices.Clone(run)
	slices.SortFunc(rs, func(a, b storage.SeqMark) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	// since[i]: the earliest arrival among rs[i:] — the later messages of a hole before rs[i].
	since := make([]time.Time, len(rs))
	for i := len(rs) - 1; i >= 0; i-- {
		since[i] = rs[i].ReceivedAt
		if i+1 < len(rs) && since[i+1].Before(since[i]) {
			since[i] = since[i+1]
		}
	}
	excused := unblockHoles(rs)
	var out []Gap
	var prev uint64
	if len(rs) > 0 {
		prev = rs[0].Seq - 1
	}
	for i, m := range rs {
		if m.Seq > prev+1 && !excused.covers(prev+1, m.Seq-1) && !now.Before(since[i].Add(GapWait)) {
			out = append(out, Gap{From: prev + 1, To: m.Seq - 1, Before: m.ID, Since: since[i]})
		}
		prev = max(prev, m.Seq)
	}
	return out
}

// seqRange is the sequence numbers from..to.
type seqRange struct{ from, to uint64 }

// excusedRanges are the ranges of a run its sender's blocks may have taken, ordered by
// their first number, with reach[i] the highest last number among ranges[:i+1].
type excusedRanges struct {
	ranges []seqRange
	reach  []uint64
}

// covers reports whether one of the ranges holds all of from..to.
func (e excusedRanges) covers(from, to uint64) bool {
	// ranges[:n] start at or below from; one of them must reach to.
	n, _ := slices.BinarySearchFunc(e.ranges, from+1, func(r seqRange, v uint64) int { return cmp.Compare(r.from, v) })
	return n > 0 && e.reach[n-1] >= to
}

// unblockHoles returns the ranges of a run (rs, ordered by number) that its sender's
// blocks may have taken. The messages that arrived after the same number of unblocks
// (SeqMark.UnblocksBefore) make an epoch: epoch 0 arrived before any unblock, epoch k
// after the k-th. For each epoch k ≥ 1 with messages, the block the k-th unblock ended
// may have taken the numbers between the first message of epoch k to arrive and the
// highest number below it that arrived in an earlier epoch: holes there are excused. A
// hole below that highest number was there before the block (a loss the block did not
// make): it stays a gap. Every unblock counts, not only the last: the messages between
// two blocks would put the first block's hole below the highest number before the last
// unblock, and it would be reported again.
func unblockHoles(rs []storage.SeqMark) excusedRanges {
	// The first to arrive, not the lowest of those: a lower number arriving later (the
	// relay may reorder) would bring back the holes between it and the first, which the
	// block may have made.
	first := make(map[int]storage.SeqMark) // epoch → its first message to arrive
	for _, m := range rs {
		if f, ok := first[m.UnblocksBefore]; m.UnblocksBefore > 0 && (!ok || m.ID < f.ID) {
			first[m.UnblocksBefore] = m
		}
	}
	if len(first) == 0 {
		return excusedRanges{}
	}
	// The highest number of the epochs before k is a prefix maximum over the epochs in
	// order: a Fenwick tree over their ranks keeps the whole O(n log n) however many
	// unblocks there were.
	epochs := make([]int, 0, len(rs))
	for _, m := range rs {
		epochs = append(epochs, m.UnblocksBefore)
	}
	slices.Sort(epochs)
	epochs = slices.Compact(epochs)
	rank := func(epoch int) int { r, _ := slices.BinarySearch(epochs, epoch); return r }
	tree := make([]uint64, len(epochs)+1)
	add := func(rank int, seq uint64) {
		for i := rank + 1; i < len(tree); i += i & -i {
			tree[i] = max(tree[i], seq)
		}
	}
	highestBelowRank := func(rank int) uint64 { // 0: none
		var h uint64
		for i := rank; i > 0; i -= i & -i {
			h = max(h, tree[i])
		}
		return h
	}
	// The epochs' first messages by number: every number below one is in the tree when
	// its range is read.
	firsts := slices.SortedFunc(maps.Values(first), func(a, b storage.SeqMark) int { return cmp.Compare(a.Seq, b.Seq) })
	var out excusedRanges
	next := 0
	for _, f := range firsts {
		for ; next < len(rs) && rs[next].Seq < f.Seq; next++ {
			add(rank(rs[next].UnblocksBefore), rs[next].Seq)
		}
		if from := max(rs[0].Seq, highestBelowRank(rank(f.UnblocksBefore))+1); from < f.Seq {
			out.ranges = append(out.ranges, seqRange{from, f.Seq - 1})
		}
	}
	slices.SortFunc(out.ranges, func(a, b seqRange) int { return cmp.Compare(a.from, b.from) })
	out.reach = make([]uint64, len(out.ranges))
	for i, r := range out.ranges {
		out.reach[i] = r.to
		if i > 0 {
			out.reach[i] = max(r.to, out.reach[i-1])
		}
	}
	return out
}
