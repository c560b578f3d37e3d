package chat

import (
	"context"
	"fmt"
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
// reinstalled or recovered profile starts in the middle of its contacts' counters). After
// the user unblocks the contact, the numbers between the highest to arrive before the
// unblock and the first to arrive since are not counted: what the contact sent while
// blocked was dropped unread or refused by the relay, and any of those numbers may have
// been among it; a hole below the highest number that arrived before the unblock is
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
// but for the hole an unblock excuses (see Gaps).
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
	var out []Gap
	var prev uint64
	if len(rs) > 0 {
		prev = rs[0].Seq - 1
	}
	// The block may have taken the numbers between the highest that arrived before the
	// unblock, below the first to arrive after it, and that first one: holes there are
	// excused. The first to arrive, not the lowest of those: a lower number arriving
	// later (the relay may reorder) would bring back the holes between it and the
	// first, which the block may have made. A hole below the highest before the unblock
	// was there before the block (a loss the block did not make): it stays a gap.
	var firstAfterUnblock *storage.SeqMark
	for i := range rs {
		if rs[i].AfterUnblock && (firstAfterUnblock == nil || rs[i].ID < firstAfterUnblock.ID) {
			firstAfterUnblock = &rs[i]
		}
	}
	var blockedFrom, blockedTo uint64 // the holes within blockedFrom..blockedTo are excused
	if firstAfterUnblock != nil {
		blockedFrom, blockedTo = prev+1, firstAfterUnblock.Seq-1
		for _, m := range rs {
			if !m.AfterUnblock && m.Seq <= blockedTo {
				blockedFrom = max(blockedFrom, m.Seq+1)
			}
		}
	}
	for i, m := range rs {
		excused := firstAfterUnblock != nil && prev+1 >= blockedFrom && m.Seq-1 <= blockedTo
		if m.Seq > prev+1 && !excused && !now.Before(since[i].Add(GapWait)) {
			out = append(out, Gap{From: prev + 1, To: m.Seq - 1, Before: m.ID, Since: since[i]})
		}
		prev = max(prev, m.Seq)
	}
	return out
}
