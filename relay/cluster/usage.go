package cluster

// Queue limits JetStream cannot keep per subject: the bytes queued for a recipient
// and each sender's share of a recipient's queue (1/SenderQuota of its count and
// bytes). Each recipient has a usage record — its count and bytes, and per sender —
// as the one message of its subject <prefix>.u.<name> in the usage stream, changed by
// compare-and-set (expected last subject sequence). Enqueue reserves before it
// publishes and gives back what was not stored; Ack gives back what it deleted.
// Messages JetStream drops by their TTL are not given back: the record can only be
// too high, never too low, and a send it would refuse first recounts the recipient's
// queue from the stream (once per batch and recipient) and decides on that — if the
// record was last written more than recountAfter ago: a newer one may hold
// reservations of sends still on their way into the stream, which a count of the
// stream would miss (and then let the queue pass its limit).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/storage"
)

// usage is a recipient's usage record.
type usage struct {
	At      int64            `json:"t,omitempty"` // when written (Unix ns, the writer's clock)
	Count   int64            `json:"c"`
	Bytes   int64            `json:"b"`
	Senders map[string]*pair `json:"s,omitempty"`
}

type pair struct {
	Count int64 `json:"c"`
	Bytes int64 `json:"b"`
}

// ErrBadUsage is returned for a usage record that does not decode.
var ErrBadUsage = errors.New("cluster: bad queue usage record")

func decodeQueueUsage(b []byte) (*usage, error) {
	var u usage
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadUsage, err)
	}
	if u.Count < 0 || u.Bytes < 0 {
		return nil, fmt.Errorf("%w: negative usage", ErrBadUsage)
	}
	for s, p := range u.Senders {
		if p == nil || p.Count < 0 || p.Bytes < 0 || s == "" {
			return nil, fmt.Errorf("%w: sender %q", ErrBadUsage, s)
		}
	}
	return &u, nil
}

func (u *usage) add(from string, count, bytes int64) {
	u.Count = max(0, u.Count+count)
	u.Bytes = max(0, u.Bytes+bytes)
	if u.Senders == nil {
		u.Senders = map[string]*pair{}
	}
	p := u.Senders[from]
	if p == nil {
		p = &pair{}
		u.Senders[from] = p
	}
	p.Count = max(0, p.Count+count)
	p.Bytes = max(0, p.Bytes+bytes)
	if p.Count == 0 {
		delete(u.Senders, from)
	}
}

func (u *usage) clone() *usage {
	c := &usage{At: u.At, Count: u.Count, Bytes: u.Bytes, Senders: make(map[string]*pair, len(u.Senders))}
	for s, p := range u.Senders {
		c.Senders[s] = &pair{p.Count, p.Bytes}
	}
	return c
}

// recountAfter: a record older than this has no reservation in flight (an Enqueue
// publishes within its timeouts), so a count of the stream may replace it.
const recountAfter = 30 * time.Second

// limited reports whether the queue keeps usage records.
func (q *Queue) limited() bool { return q.o.MaxBytesPerRecipient > 0 || q.o.SenderQuota > 0 }

func (q *Queue) usageSubject(name string) string {
	t, _ := nameToken(name) // names were checked by subject()
	return q.usubj + t
}

// check is the limit a message of size bytes from sender would break, or nil.
func (q *Queue) check(u *usage, to, from string, size int64) *storage.QueueFullError {
	maxCount, maxBytes := int64(q.o.MaxPerRecipient), q.o.MaxBytesPerRecipient
	switch {
	case maxCount > 0 && u.Count >= maxCount:
		return &storage.QueueFullError{Recipient: to, Limit: "count", Max: maxCount, Current: u.Count}
	case maxBytes > 0 && u.Bytes+size > maxBytes:
		return &storage.QueueFullError{Recipient: to, Limit: "bytes", Max: maxBytes, Current: u.Bytes}
	}
	if q.o.SenderQuota > 0 {
		var p pair
		if sp := u.Senders[from]; sp != nil {
			p = *sp
		}
		qc, qb := maxCount/int64(q.o.SenderQuota), maxBytes/int64(q.o.SenderQuota)
		switch {
		case qc > 0 && p.Count >= qc:
			return &storage.QueueFullError{Recipient: to, Limit: "sender_quota", Max: qc, Current: p.Count}
		case qb > 0 && p.Bytes+size > qb:
			return &storage.QueueFullError{Recipient: to, Limit: "sender_quota", Max: qb, Current: p.Bytes}
		}
	}
	return nil
}

// readUsage reads the records of names (a missing one is empty, sequence 0).
func (q *Queue) readUsage(ctx context.Context, names []string) (map[string]*usage, map[string]uint64, error) {
	subjs := make([]string, len(names))
	for i, n := range names {
		subjs[i] = q.uDirect + q.usageSubject(n)
	}
	replies, errs := q.c.requestAll(ctx, subjs, make([][]byte, len(names)))
	recs, seqs := map[string]*usage{}, map[string]uint64{}
	for i, n := range names {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		m := replies[i]
		switch st := m.Header.Get(headerStatus); st {
		case "":
		case statusNoResults:
			recs[n], seqs[n] = &usage{}, 0
			continue
		default:
			return nil, nil, unavailable("usage read", fmt.Errorf("status %s", st))
		}
		seq, err := strconv.ParseUint(m.Header.Get(headerStreamSequence), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: usage of %q: bad sequence header", n)
		}
		u, err := decodeQueueUsage(m.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: usage of %q: %w", n, err)
		}
		recs[n], seqs[n] = u, seq
	}
	return recs, seqs, nil
}

// usageAttempts bounds the read-modify-write rounds of a reservation or give-back;
// from the third on, each waits a little (usageBackoff) so that two nodes writing
// one recipient's record (one reserving, the other giving back) spread out.
const usageAttempts = 16

// usageBackoff waits before attempt (randomised, up to 2×attempt ms from the third).
func usageBackoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return nil
	}
	t := time.NewTimer(time.Duration(1+mrand.IntN(2*attempt)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errUsageConflict: another writer changed the record first.
var errUsageConflict = errors.New("cluster: usage record changed meanwhile")

// writeUsage replaces the records of the names in recs if each is still at its
// sequence in seqs; per name the error (errUsageConflict when it was not).
func (q *Queue) writeUsage(ctx context.Context, recs map[string]*usage, seqs map[string]uint64) map[string]error {
	errs := map[string]error{}
	futs := map[string]jetstream.PubAckFuture{}
	now := q.now().UnixNano()
	names := make([]string, 0, len(recs))
	batch := make([]*nats.Msg, 0, len(recs))
	for n, u := range recs {
		u.At = now
		b, _ := json.Marshal(u)
		h := nats.Header{}
		h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seqs[n], 10))
		names = append(names, n)
		batch = append(batch, &nats.Msg{Subject: q.usageSubject(n), Data: b, Header: h})
	}
	alone := make([]int, 0, len(batch))
	if len(batch) > 1 && !q.noBatch {
		// All at once (one sync at R1) when no record changed meanwhile, the usual
		// case; a refused batch's records one by one, to find which did.
		for k, o := range q.c.publishAtomicChunks(ctx, batch) {
			switch {
			case o.seq > 0:
			case o.rejected:
				alone = append(alone, k)
			default:
				errs[names[k]] = o.err
			}
		}
	} else {
		for k := range batch {
			alone = append(alone, k)
		}
	}
	for _, k := range alone {
		n := names[k]
		f, err := q.js.PublishMsgAsync(batch[k])
		if err != nil {
			errs[n] = unavailable("usage write", err)
			continue
		}
		futs[n] = f
	}
	for n, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			// At R>1 a write expecting a subject's last sequence is also refused
			// (10164, no sequence) while another write of that subject is in flight:
			// another node's reservation or give-back. Both are a lost compare-and-set.
			if isAPIErr(err, errCodeWrongLastSeq) || isAPIErr(err, errCodeWrongLastSeqInFlight) {
				errs[n] = errUsageConflict
			} else {
				errs[n] = unavailable("usage write", err)
			}
		case <-ctx.Done():
			errs[n] = unavailable("usage write", ctx.Err())
		}
	}
	return errs
}

// recount is name's usage counted from its queue.
func (q *Queue) recount(ctx context.Context, name string) (*usage, error) {
	subj, err := q.subject(name)
	if err != nil {
		return nil, err
	}
	u := &usage{}
	from := uint64(1)
	for {
		part, more, err := q.directBatch(ctx, subj, from, 1024, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range part {
			var m storage.QueuedMessage
			if err := parseEnvelope(d.data, &m); err != nil {
				return nil, fmt.Errorf("cluster: message %d for %q: %w", d.seq, name, err)
			}
			u.add(m.From, 1, int64(len(m.Body)))
		}
		if !more || len(part) == 0 {
			return u, nil
		}
		from = part[len(part)-1].seq + 1
	}
}

// reserve checks the limits of the batch's first copies in batch order and records
// what they will use; a refused message gets its QueueFullError in res. It returns
// which messages were reserved (to give back what is not stored).
func (q *Queue) reserve(ctx context.Context, msgs []storage.QueuedMessage, first []int, res []storage.EnqueueResult) ([]bool, error) {
	reserved := make([]bool, len(msgs))
	pending := map[string][]int{} // recipient -> its messages still to reserve
	var order []string
	for i := range msgs {
		if first[i] != i {
			continue
		}
		to := msgs[i].To
		if _, ok := pending[to]; !ok {
			order = append(order, to)
		}
		pending[to] = append(pending[to], i)
	}
	recounted := map[string]bool{}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == usageAttempts {
			err := unavailable("usage", errUsageConflict)
			for _, idx := range pending {
				for _, i := range idx {
					res[i].Err = err
				}
			}
			return reserved, nil
		}
		if err := usageBackoff(ctx, attempt); err != nil {
			return nil, unavailable("usage", err)
		}
		names := make([]string, 0, len(pending))
		for _, n := range order {
			if _, ok := pending[n]; ok {
				names = append(names, n)
			}
		}
		recs, seqs, err := q.readUsage(ctx, names)
		if err != nil {
			return nil, err
		}
		changed := map[string]*usage{}
		for _, n := range names {
			u := recs[n].clone()
			for _, i := range pending[n] {
				m := &msgs[i]
				size := int64(len(m.Body))
				full := q.check(u, n, m.From, size)
				if full != nil && !recounted[n] && q.now().Sub(time.Unix(0, recs[n].At)) > recountAfter {
					// The record may count messages gone by their TTL: count again.
					recounted[n] = true
					fresh, err := q.recount(ctx, n)
					if err != nil {
						return nil, err
					}
					for _, j := range pending[n] {
						if j == i {
							break
						}
						if res[j].Err == nil {
							fresh.add(msgs[j].From, 1, int64(len(msgs[j].Body)))
						}
					}
					u = fresh
					full = q.check(u, n, m.From, size)
				}
				if full != nil {
					res[i].Err = full
					continue
				}
				u.add(m.From, 1, size)
			}
			changed[n] = u
		}
		errs := q.writeUsage(ctx, changed, seqs)
		for _, n := range names {
			switch err := errs[n]; {
			case err == nil:
				for _, i := range pending[n] {
					if res[i].Err == nil {
						reserved[i] = true
					}
				}
				delete(pending, n)
			case errors.Is(err, errUsageConflict):
				for _, i := range pending[n] {
					res[i].Err = nil // decided again on the new record
				}
			default:
				for _, i := range pending[n] {
					res[i].Err = err
				}
				delete(pending, n)
			}
		}
	}
	return reserved, nil
}

// giveBack subtracts from the recipients' records what messages (from, bytes) no
// longer use: sends reserved but not stored, messages deleted by an ack. Best effort:
// a record left too high is recounted when it would refuse a send.
func (q *Queue) giveBack(ctx context.Context, back map[string][]storage.QueuedMessage) error {
	for attempt := 0; len(back) > 0 && attempt < usageAttempts; attempt++ {
		if err := usageBackoff(ctx, attempt); err != nil {
			return unavailable("usage give-back", err)
		}
		names := make([]string, 0, len(back))
		for n := range back {
			names = append(names, n)
		}
		recs, seqs, err := q.readUsage(ctx, names)
		if err != nil {
			return err
		}
		for n, ms := range back {
			for _, m := range ms {
				recs[n].add(m.From, -1, -int64(len(m.Body)))
			}
		}
		errs := q.writeUsage(ctx, recs, seqs)
		for _, n := range names {
			if err := errs[n]; err != nil && !errors.Is(err, errUsageConflict) {
				return err
			} else if err == nil {
				delete(back, n)
			}
		}
	}
	if len(back) > 0 {
		return unavailable("usage give-back", errUsageConflict)
	}
	return nil
}
