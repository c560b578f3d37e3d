package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/server"
	"pfschat/storage"
)

// QueueOptions shape the queue's streams.
type QueueOptions struct {
	// MaxPerRecipient caps the messages queued for one name (the stream's per-subject
	// limit, discard new per subject: a send over it is refused queue_full, limit
	// count). 0 = no cap.
	MaxPerRecipient int
	// MaxBytesPerRecipient caps the bytes queued for one name (queue_full, limit
	// bytes), and SenderQuota a sender's share of one name's queue: 1/SenderQuota of
	// its count and bytes (queue_full, limit sender_quota). 0 = none. Kept in usage
	// records (usage.go).
	MaxBytesPerRecipient int64
	SenderQuota          int
	// DedupWindow is the stream's duplicate window for Nats-Msg-Id (0 = 2 minutes).
	DedupWindow time.Duration
	// DedupKeep is how long a send's (from, client_id) is remembered beyond the window
	// when its message has no TTL (0 = 30 days; negative: not at all, the window only).
	DedupKeep time.Duration
	// MaxMsgSize bounds one stored message (0 = 1 MiB).
	MaxMsgSize int32
	// Clock is the time TTLs are counted from (nil = time.Now).
	Clock func() time.Time
	// Shards splits the queue into this many streams by recipient (0 = 1), so that
	// their leaders spread over a cluster's servers instead of one server's leader
	// taking every write. Fixed when the queue is first made: a recipient's messages
	// are in the stream its name hashes to.
	Shards int
}

// Queue is server.Queue on JetStream: a stream with one subject per recipient
// (<prefix>.q.<name>), the message's id its stream sequence. A send is accepted only
// after its publish ack (at R1 the server syncs as configured, sync_interval always
// for "every write"; at R3 a quorum has it). Duplicates are caught by Nats-Msg-Id in
// the stream's window and beyond it by a marker per (from, client_id) in a second
// stream (<prefix>.d.<hash>, one message per subject, written with "expected last
// subject sequence 0"). Messages with a ttl carry a per-message TTL (Nats-TTL).
type Queue struct {
	c        *Conn
	js       jetstream.JetStream
	o        QueueOptions
	shards   int
	qstreams []string // the queue's streams, one per shard
	qsubjs   []string // their subject prefixes ("<prefix>.q." or "<prefix>.q<k>.")
	dstream  string
	usubj    string // "<prefix>.u."
	ustream  string
	uDirect  string // direct get last-by-subject prefix of the usage stream
	dsubj    string // "<prefix>.d."
	dDirect  string // direct get last-by-subject prefix of the dedup stream
	now      func() time.Time
	replicas int
	// msgID is the Nats-Msg-Id of a send (dedupID); tests replace it to act as if
	// the window had passed.
	msgID func(from, fromCard, clientID string) string
	// noBatch, set by tests and benchmarks, publishes one by one only.
	noBatch bool
	// noFoldGiveBack, set by benchmarks, gives back each recipient's usage apart in
	// AckBatch (as before the give-backs of a round were one write).
	noFoldGiveBack bool
}

var (
	_ server.Queue            = (*Queue)(nil)
	_ server.AckBatcher       = (*Queue)(nil)
	_ server.OwnedAcker       = (*Queue)(nil)
	_ server.QueuePurger      = (*Queue)(nil)
	_ server.StaleQueuePurger = (*Queue)(nil)
)

// NewQueue creates (or updates) the queue's streams and returns the queue.
func NewQueue(ctx context.Context, c *Conn, o QueueOptions) (*Queue, error) {
	if o.Shards == 0 {
		o.Shards = 1
	}
	if o.MaxPerRecipient < 0 || o.MaxBytesPerRecipient < 0 || o.SenderQuota < 0 || o.Shards < 0 || o.Shards > 64 {
		return nil, fmt.Errorf("%w: negative queue limit", ErrOptions)
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 2 * time.Minute
	}
	if o.DedupKeep == 0 {
		o.DedupKeep = 30 * 24 * time.Hour
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = 1 << 20
	}
	q := &Queue{c: c, js: c.js, o: o, now: o.Clock, replicas: c.Replicas(), msgID: dedupID}
	if q.now == nil {
		q.now = time.Now
	}
	p := c.Prefix()
	q.shards = o.Shards
	for k := range q.shards {
		if q.shards == 1 {
			q.qstreams, q.qsubjs = []string{p + "_QUEUE"}, []string{p + ".q."}
			break
		}
		q.qstreams = append(q.qstreams, p+"_QUEUE"+strconv.Itoa(k))
		q.qsubjs = append(q.qsubjs, p+".q"+strconv.Itoa(k)+".")
	}
	q.dstream, q.dsubj = p+"_DEDUP", p+".d."
	q.ustream, q.usubj = p+"_USAGE", p+".u."
	q.uDirect = "$JS.API.DIRECT.GET." + q.ustream + "."
	q.dDirect = "$JS.API.DIRECT.GET." + q.dstream + "."
	for k := range q.shards {
		if err := q.createQueueStream(ctx, k); err != nil {
			return nil, err
		}
	}
	if o.DedupKeep > 0 {
		dcfg := jetstream.StreamConfig{
			Name:               q.dstream,
			Description:        "pfschat relay: sends remembered beyond the queue's duplicate window",
			Subjects:           []string{q.dsubj + ">"},
			Storage:            jetstream.FileStorage,
			Replicas:           c.Replicas(),
			MaxMsgsPerSubject:  1,
			Duplicates:         time.Second,
			AllowDirect:        true,
			AllowMsgTTL:        true,
			AllowAtomicPublish: c.Replicas() > 1, // (not with AsyncPersistMode, below)
		}
		if c.Replicas() == 1 {
			// Not synced on every write: a marker lost to a power cut weakens only the
			// duplicate check of a send resent more than the window after it was
			// accepted (the window itself is rebuilt from the synced queue).
			dcfg.PersistMode = jetstream.AsyncPersistMode
		}
		if err := createStream(ctx, c, dcfg); err != nil {
			return nil, fmt.Errorf("cluster: dedup stream %s: %w", q.dstream, err)
		}
	}
	if q.limited() {
		ucfg := jetstream.StreamConfig{
			Name:               q.ustream,
			Description:        "pfschat relay: bytes queued per recipient and per sender",
			Subjects:           []string{q.usubj + ">"},
			Storage:            jetstream.FileStorage,
			Replicas:           c.Replicas(),
			MaxMsgsPerSubject:  1,
			AllowDirect:        true,
			AllowAtomicPublish: true,
		}
		if err := createStream(ctx, c, ucfg); err != nil {
			return nil, fmt.Errorf("cluster: usage stream %s: %w", q.ustream, err)
		}
	}
	return q, nil
}

// createQueueStream creates (or updates) shard k's stream.
func (q *Queue) createQueueStream(ctx context.Context, k int) error {
	o, c := q.o, q.c
	cfg := jetstream.StreamConfig{
		Name:               q.qstreams[k],
		Description:        "pfschat relay queue: one subject per recipient",
		Subjects:           []string{q.qsubjs[k] + ">"},
		Storage:            jetstream.FileStorage,
		Replicas:           c.Replicas(),
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		Duplicates:         o.DedupWindow,
		MaxMsgSize:         o.MaxMsgSize,
		AllowDirect:        true,
		AllowMsgTTL:        true,
		AllowAtomicPublish: true,
		MaxMsgsPerSubject:  -1,
	}
	if o.MaxPerRecipient > 0 {
		cfg.MaxMsgsPerSubject = int64(o.MaxPerRecipient)
		cfg.DiscardNewPerSubject = true
	}
	if err := createStream(ctx, c, cfg); err != nil {
		return fmt.Errorf("cluster: queue stream %s: %w", cfg.Name, err)
	}
	return nil
}

// createStream creates or updates a stream, each attempt with a timeout of its own: a
// cluster placing a new replicated stream may take a few seconds. An attempt that
// times out, or finds the cluster not ready (still electing its meta leader, its
// peers not all known: relay nodes started beside their NATS servers), is tried again
// until ctx ends; CreateOrUpdateStream makes a retry of one that did go through
// harmless. A NATS without JetStream fails at once.
func createStream(ctx context.Context, c *Conn, cfg jetstream.StreamConfig) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*c.Timeout())
		_, err := c.js.CreateOrUpdateStream(cctx, cfg)
		cancel()
		if err == nil || ctx.Err() != nil || !streamNotReady(err) {
			return err
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// JetStream API error codes of a cluster not ready to place a stream yet.
const (
	errCodeClusterNotAvailable = 10008 // JetStream system temporarily unavailable
	errCodeNoSuitablePeers     = 10005 // no suitable peers for placement
)

// streamNotReady reports whether a stream's creation failed only because the
// cluster was not ready for it yet.
func streamNotReady(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		isAPIErr(err, errCodeClusterNotAvailable) || isAPIErr(err, errCodeNoSuitablePeers)
}

// Subject is the queue subject of a name (in the stream of its shard).
func (q *Queue) subject(name string) (string, error) {
	t, err := nameToken(name)
	if err != nil {
		return "", err
	}
	return q.qsubjs[q.shardOf(name)] + t, nil
}

// shardOf is the shard a name's messages are in.
func (q *Queue) shardOf(name string) int {
	if q.shards == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % uint32(q.shards))
}

// id is a message's id: its stream sequence, with the shard in it when there are
// several (seq*shards + shard): unique across shards, increasing per recipient.
func (q *Queue) id(shard int, seq uint64) int64 {
	return int64(seq)*int64(q.shards) + int64(shard)
}

// seqOf splits an id into its shard and stream sequence.
func (q *Queue) seqOf(id int64) (int, uint64) {
	return int(id % int64(q.shards)), uint64(id / int64(q.shards))
}

// streamOf is the stream of a queue subject.
func (q *Queue) streamOf(subj string) string {
	for k, p := range q.qsubjs {
		if strings.HasPrefix(subj, p) {
			return q.qstreams[k]
		}
	}
	return q.qstreams[0]
}

// markerSubject is where a send's beyond-the-window marker is: under its sender, so
// that deleting the sender's account drops them.
func (q *Queue) markerSubject(from, id string) string {
	t, err := nameToken(from)
	if err != nil {
		t = "_" // not a relay name: still one subject per (from, client_id) by the hash
	}
	return q.dsubj + t + "." + id
}

// PurgeRecipient implements server.QueuePurger: name's queue and the markers of
// name's sends are dropped (its account was deleted).
func (q *Queue) PurgeRecipient(ctx context.Context, name string) (int, error) {
	tok, err := nameToken(name)
	if err != nil {
		return 0, err
	}
	k := q.shardOf(name)
	subjs := []string{"$JS.API.STREAM.PURGE." + q.qstreams[k]}
	reqs := [][]byte{[]byte(`{"filter":"` + q.qsubjs[k] + tok + `"}`)}
	if q.limited() {
		subjs = append(subjs, "$JS.API.STREAM.PURGE."+q.ustream)
		reqs = append(reqs, []byte(`{"filter":"`+q.usubj+tok+`"}`))
	}
	if q.o.DedupKeep > 0 {
		subjs = append(subjs, "$JS.API.STREAM.PURGE."+q.dstream)
		reqs = append(reqs, []byte(`{"filter":"`+q.dsubj+tok+`.>"}`))
	}
	return q.purge(ctx, subjs, reqs)
}

// MarkRecipient implements server.StaleQueuePurger: the last sequences of the
// streams that hold name's queue and its usage record.
func (q *Queue) MarkRecipient(ctx context.Context, name string) (server.QueueMark, error) {
	subjs := []string{"$JS.API.STREAM.INFO." + q.qstreams[q.shardOf(name)]}
	if q.limited() {
		subjs = append(subjs, "$JS.API.STREAM.INFO."+q.ustream)
	}
	replies, errs := q.c.requestAll(ctx, subjs, make([][]byte, len(subjs)))
	mark := make(server.QueueMark, len(subjs))
	for i, m := range replies {
		if errs[i] != nil {
			return nil, errs[i]
		}
		var r struct {
			State struct {
				LastSeq uint64 `json:"last_seq"`
			} `json:"state"`
		}
		if err := apiReply(m, &r); err != nil {
			return nil, unavailable("stream info", err)
		}
		mark[i] = r.State.LastSeq
	}
	return mark, nil
}

// PurgeRecipientBefore implements server.StaleQueuePurger: the messages queued for
// name, and its usage record, stored up to mark are dropped; later ones stay.
func (q *Queue) PurgeRecipientBefore(ctx context.Context, name string, mark server.QueueMark) (int, error) {
	tok, err := nameToken(name)
	if err != nil {
		return 0, err
	}
	if len(mark) == 0 {
		return 0, errors.New("cluster: purging a queue before no mark")
	}
	upTo := func(subj string, last uint64) []byte { // "seq": the first sequence kept
		return []byte(`{"filter":"` + subj + `","seq":` + strconv.FormatUint(last+1, 10) + `}`)
	}
	k := q.shardOf(name)
	subjs := []string{"$JS.API.STREAM.PURGE." + q.qstreams[k]}
	reqs := [][]byte{upTo(q.qsubjs[k]+tok, mark[0])}
	if q.limited() && len(mark) > 1 {
		subjs = append(subjs, "$JS.API.STREAM.PURGE."+q.ustream)
		reqs = append(reqs, upTo(q.usubj+tok, mark[1]))
	}
	return q.purge(ctx, subjs, reqs)
}

// purge sends the purge requests reqs to the streams' purge subjects subjs, the
// queue's first, and returns how many messages the first dropped.
func (q *Queue) purge(ctx context.Context, subjs []string, reqs [][]byte) (int, error) {
	replies, errs := q.c.requestAll(ctx, subjs, reqs)
	n := 0
	for i, m := range replies {
		if errs[i] != nil {
			return n, errs[i]
		}
		var r struct {
			Purged uint64 `json:"purged"`
		}
		if err := apiReply(m, &r); err != nil {
			return n, unavailable("purge", err)
		}
		if i == 0 {
			n = int(r.Purged)
		}
	}
	return n, nil
}

// ttl is the per-message TTL for an expiry (at least a second), 0 for none.
func (q *Queue) ttl(expires time.Time) time.Duration {
	if expires.IsZero() {
		return 0
	}
	d := expires.Sub(q.now())
	if d < time.Second {
		return time.Second
	}
	return d.Truncate(time.Second) + time.Second
}

// Enqueue implements server.Queue: the batch is published at once (async) and each
// message is accepted once its publish ack came. Per message it reports the id, a
// duplicate, a limit (*storage.QueueFullError) or server.ErrUnavailable (not stored,
// or unknown: a retry with the same client_id is recognised).
func (q *Queue) Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error) {
	res := make([]storage.EnqueueResult, len(msgs))
	if len(msgs) == 0 {
		return res, nil
	}
	first := make([]int, len(msgs))
	seen := make(map[[2]string]int, len(msgs))
	subjects := make([]string, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.To == "" || m.From == "" || m.ClientID == "" {
			return nil, fmt.Errorf("cluster: enqueue: %w: queued message needs To, From and ClientID", storage.ErrInvalid)
		}
		s, err := q.subject(m.To)
		if err != nil {
			return nil, fmt.Errorf("cluster: enqueue: %w: %w", storage.ErrInvalid, err)
		}
		subjects[i] = s
		k := [2]string{m.From, m.ClientID}
		if j, ok := seen[k]; ok {
			first[i] = j
			continue
		}
		seen[k] = i
		first[i] = i
	}
	var reserved []bool
	if q.limited() {
		var err error
		if reserved, err = q.reserve(ctx, msgs, first, res); err != nil {
			return nil, err
		}
		q.refusedDuplicates(ctx, msgs, res)
	}
	// 1. Publish every first copy (the envelope copies the pooled body): as one atomic
	// batch (one sync); when JetStream refuses it (a duplicate in it, a full queue),
	// one by one, so each send gets its own answer.
	out := make([]*nats.Msg, len(msgs))
	ids := make([]string, len(msgs))
	var firsts []*nats.Msg
	var firstIdx []int
	for i := range msgs {
		if first[i] != i || res[i].Err != nil || res[i].Duplicate {
			continue
		}
		m := &msgs[i]
		data, err := appendEnvelope(make([]byte, 0, 64+len(m.Body)), m)
		if err != nil {
			return nil, fmt.Errorf("cluster: enqueue: %w", err)
		}
		ids[i] = markerID(m.From, m.ClientID)
		h := nats.Header{}
		h.Set(jetstream.MsgIDHeader, q.msgID(m.From, m.FromCardID, m.ClientID))
		if d := q.ttl(m.ExpiresAt); d > 0 {
			h.Set(jetstream.MsgTTLHeader, d.String())
		}
		out[i] = &nats.Msg{Subject: subjects[i], Data: data, Header: h}
		firsts, firstIdx = append(firsts, out[i]), append(firstIdx, i)
	}
	acks := make([]*jetstream.PubAck, len(msgs))
	alone := firstIdx // published one by one
	if len(firsts) > 1 && !q.noBatch {
		alone = nil
		// An atomic batch is of one stream: one (or more) per shard, side by side.
		byShard := make([][]int, q.shards)
		for _, i := range firstIdx {
			k := q.shardOf(msgs[i].To)
			byShard[k] = append(byShard[k], i)
		}
		outs := make([][]atomicOutcome, q.shards)
		var wg sync.WaitGroup
		for k, idx := range byShard {
			if len(idx) == 0 {
				continue
			}
			group := make([]*nats.Msg, len(idx))
			for n, i := range idx {
				group[n] = out[i]
			}
			wg.Add(1)
			go func() { defer wg.Done(); outs[k] = q.c.publishAtomicChunks(ctx, group) }()
		}
		wg.Wait()
		for k, idx := range byShard {
			for n, i := range idx {
				switch o := outs[k][n]; {
				case o.seq > 0:
					res[i].ID = q.id(k, o.seq)
					acks[i] = &jetstream.PubAck{Sequence: uint64(res[i].ID)} // (an id)
				case o.rejected:
					alone = append(alone, i)
				default:
					res[i].Err = o.err // unknown: the client retries, the window recognises it
				}
			}
		}
	}
	if len(alone) > 0 {
		futs := make([]jetstream.PubAckFuture, len(msgs))
		for _, i := range alone {
			f, err := q.js.PublishMsgAsync(out[i])
			if err != nil {
				res[i].Err = unavailable("publish", err)
				continue
			}
			futs[i] = f
		}
		for i, f := range futs {
			if f == nil {
				continue
			}
			acks[i], res[i].Err = q.waitAck(ctx, f, msgs[i].To)
			if acks[i] != nil {
				res[i].ID = q.id(q.shardOf(msgs[i].To), acks[i].Sequence)
				res[i].Duplicate = acks[i].Duplicate
				acks[i].Sequence = uint64(res[i].ID) // from here on an id
			}
		}
	}
	// 2. Remember each stored send beyond the window; a marker already there is an
	// earlier copy of this send from before the window: drop the new one.
	if q.o.DedupKeep > 0 {
		q.markers(ctx, msgs, first, ids, acks, res)
	}
	if reserved != nil {
		back := map[string][]storage.QueuedMessage{}
		for i, r := range reserved {
			if r && (res[i].Err != nil || res[i].Duplicate) {
				back[msgs[i].To] = append(back[msgs[i].To], msgs[i])
			}
		}
		q.giveBack(ctx, back) // best effort: a record too high is recounted
	}
	for i := range msgs {
		if j := first[i]; j != i {
			res[i] = res[j]
			if res[i].Err == nil {
				res[i].Duplicate = true
			}
		}
	}
	return res, nil
}

func (q *Queue) waitAck(ctx context.Context, f jetstream.PubAckFuture, to string) (*jetstream.PubAck, error) {
	select {
	case a := <-f.Ok():
		return a, nil
	case err := <-f.Err():
		if isAPIErr(err, errCodeStoreFailed) && strings.Contains(err.Error(), "per subject") {
			return nil, &storage.QueueFullError{Recipient: to, Limit: "count", Max: int64(q.o.MaxPerRecipient), Current: int64(q.o.MaxPerRecipient)}
		}
		return nil, unavailable("publish ack", err)
	case <-ctx.Done():
		return nil, unavailable("publish ack", ctx.Err())
	}
}

// markers writes the beyond-the-window markers of a published batch and turns the
// sends whose marker was there already into duplicates of the earlier copy.
func (q *Queue) markers(ctx context.Context, msgs []storage.QueuedMessage, first []int, ids []string, acks []*jetstream.PubAck, res []storage.EnqueueResult) {
	marks := make([]*nats.Msg, len(msgs))
	var batch []*nats.Msg
	for i, a := range acks {
		if a == nil || first[i] != i {
			continue
		}
		seq := make([]byte, 8)
		binary.BigEndian.PutUint64(seq, a.Sequence)
		d := q.ttl(msgs[i].ExpiresAt)
		if d == 0 {
			d = q.o.DedupKeep
		}
		h := nats.Header{}
		h.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		h.Set(jetstream.MsgTTLHeader, d.String())
		marks[i] = &nats.Msg{Subject: q.markerSubject(msgs[i].From, ids[i]), Data: seq, Header: h}
		batch = append(batch, marks[i])
	}
	// At R>1 all at once (one Raft entry) when none was there before, the usual case;
	// at R1 the markers are not synced one by one, so they go one by one.
	if len(batch) > 1 && !q.noBatch && q.replicas > 1 {
		// Written, or unknown (the window still covers those sends): only the
		// messages of a refused batch go one by one, to find which were there.
		again := map[*nats.Msg]bool{}
		for k, o := range q.c.publishAtomicChunks(ctx, batch) {
			if o.rejected {
				again[batch[k]] = true
			}
		}
		for i, m := range marks {
			if m != nil && !again[m] {
				marks[i] = nil
			}
		}
	}
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range marks {
		if m == nil {
			continue
		}
		if f, err := q.js.PublishMsgAsync(m); err == nil {
			futs[i] = f
		}
	}
	var again []int // sends whose marker was there already
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			// A marker that could not be written leaves this send remembered for the
			// window only; the message is stored, so it stays accepted.
			if isAPIErr(err, errCodeWrongLastSeq) && !acks[i].Duplicate {
				again = append(again, i)
			}
		case <-ctx.Done():
		}
	}
	if len(again) == 0 {
		return
	}
	subjs := make([]string, len(again))
	reqs := make([][]byte, len(again))
	for k, i := range again {
		subjs[k] = q.dDirect + q.markerSubject(msgs[i].From, ids[i])
		reqs[k] = nil
	}
	replies, errs := q.c.requestAll(ctx, subjs, reqs)
	var dels []uint64
	for k, i := range again {
		m := replies[k]
		if errs[k] != nil || m == nil || len(m.Data) != 8 {
			continue // the marker is gone (expired) or unreadable: keep the new copy
		}
		orig := binary.BigEndian.Uint64(m.Data)
		if orig == acks[i].Sequence {
			continue
		}
		dels = append(dels, acks[i].Sequence)
		res[i] = storage.EnqueueResult{ID: int64(orig), Duplicate: true}
	}
	_, _ = q.deleteIDs(ctx, dels) // best effort: the copy is a duplicate either way
}

// refusedDuplicates answers the sends a limit refused that were accepted before (a
// resend): a duplicate of the earlier copy, as the SQLite queue does (it looks for
// duplicates before limits), found by their markers.
func (q *Queue) refusedDuplicates(ctx context.Context, msgs []storage.QueuedMessage, res []storage.EnqueueResult) {
	if q.o.DedupKeep <= 0 {
		return
	}
	var idx []int
	var subjs []string
	for i := range msgs {
		var qf *storage.QueueFullError
		if errors.As(res[i].Err, &qf) {
			idx = append(idx, i)
			m := &msgs[i]
			subjs = append(subjs, q.dDirect+q.markerSubject(m.From, markerID(m.From, m.ClientID)))
		}
	}
	replies, errs := q.c.requestAll(ctx, subjs, make([][]byte, len(subjs)))
	for k, i := range idx {
		if m := replies[k]; errs[k] == nil && m.Header.Get(headerStatus) == "" && len(m.Data) == 8 {
			res[i] = storage.EnqueueResult{ID: int64(binary.BigEndian.Uint64(m.Data)), Duplicate: true}
		}
	}
}

// deleteIDs deletes messages by id; ones already gone are no error. deleted says
// which this call removed (the leader answered ok), for the usage give-back.
func (q *Queue) deleteIDs(ctx context.Context, ids []uint64) (deleted []bool, err error) {
	if len(ids) == 0 {
		return nil, nil
	}
	subjs := make([]string, len(ids))
	reqs := make([][]byte, len(ids))
	for i, id := range ids {
		k, seq := q.seqOf(int64(id))
		subjs[i] = "$JS.API.STREAM.MSG.DELETE." + q.qstreams[k]
		reqs[i] = []byte(`{"seq":` + strconv.FormatUint(seq, 10) + `,"no_erase":true}`)
	}
	replies, errs := q.c.requestAll(ctx, subjs, reqs)
	deleted = make([]bool, len(ids))
	for i, m := range replies {
		if errs[i] != nil {
			return nil, errs[i]
		}
		err := apiReply(m, nil)
		if err != nil && !isAPIErr(err, errCodeNoMessage) && !isAPIErr(err, errCodeSequenceGone) && !isAPIErr(err, errCodeSeqNotFound) {
			return nil, unavailable("delete", err)
		}
		deleted[i] = err == nil
	}
	return deleted, nil
}

// purgeBelow deletes subj's messages with a sequence below seq and reports how many
// it removed.
func (q *Queue) purgeBelow(ctx context.Context, subj string, seq uint64) (uint64, error) {
	req := []byte(`{"filter":"` + subj + `","seq":` + strconv.FormatUint(seq, 10) + `}`)
	replies, errs := q.c.requestAll(ctx, []string{"$JS.API.STREAM.PURGE." + q.streamOf(subj)}, [][]byte{req})
	if errs[0] != nil {
		return 0, errs[0]
	}
	var r struct {
		Purged uint64 `json:"purged"`
	}
	if err := apiReply(replies[0], &r); err != nil {
		return 0, unavailable("purge", err)
	}
	return r.Purged, nil
}

// directMsg is one message of a direct get.
type directMsg struct {
	seq  uint64
	data []byte
}

// directBatch reads up to batch messages of subj with sequence >= from (and <= upTo
// when set) from any replica of the queue stream, in order; more reports whether
// further ones match.
func (q *Queue) directBatch(ctx context.Context, subj string, from uint64, batch int, upTo uint64) (out []directMsg, more bool, err error) {
	req := struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
		UpTo    uint64 `json:"up_to_seq,omitempty"`
		Max     int    `json:"max_bytes"`
	}{from, subj, batch, upTo, 16 << 20}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, q.c.timeout)
	defer cancel()
	ch := make(chan reply, batch+2) // the messages and the end of the batch
	replyTo, done, err := q.c.replySubjects(1, ch)
	if err != nil {
		return nil, false, err
	}
	defer done()
	if err := q.c.nc.PublishRequest("$JS.API.DIRECT.GET."+q.streamOf(subj), replyTo[0], body); err != nil {
		return nil, false, unavailable("direct get", err)
	}
	for {
		var m *nats.Msg
		select {
		case r := <-ch:
			m = r.m
		case <-ctx.Done():
			return nil, false, unavailable("direct get", ctx.Err())
		}
		switch st := m.Header.Get(headerStatus); st {
		case "":
		case statusEndOfBatch:
			np, _ := strconv.ParseUint(m.Header.Get(headerNumPending), 10, 64)
			return out, np > 0, nil
		case statusNoResults:
			return out, false, nil
		case "503":
			return nil, false, unavailable("direct get", nats.ErrNoResponders)
		default:
			return nil, false, unavailable("direct get", fmt.Errorf("status %s %s", st, m.Header.Get("Description")))
		}
		seq, err := strconv.ParseUint(m.Header.Get(headerStreamSequence), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("cluster: direct get: bad sequence header: %w", err)
		}
		out = append(out, directMsg{seq, m.Data})
	}
}

// leaderGet reads, on the stream leader (always up to date), the first message of
// subj with sequence >= from (next=true) or exactly seq (next=false). ok is false when
// there is none.
func (q *Queue) leaderGet(ctx context.Context, subj string, seq uint64, next bool) (directMsg, string, bool, error) {
	var req []byte
	if next {
		req, _ = json.Marshal(struct {
			Seq  uint64 `json:"seq"`
			Next string `json:"next_by_subj"`
		}{seq, subj})
	} else {
		req, _ = json.Marshal(struct {
			Seq uint64 `json:"seq"`
		}{seq})
	}
	replies, errs := q.c.requestAll(ctx, []string{"$JS.API.STREAM.MSG.GET." + q.streamOf(subj)}, [][]byte{req})
	if errs[0] != nil {
		return directMsg{}, "", false, errs[0]
	}
	var r struct {
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
			Data    []byte `json:"data"`
		} `json:"message"`
	}
	if err := apiReply(replies[0], &r); err != nil {
		if isAPIErr(err, errCodeNoMessage) {
			return directMsg{}, "", false, nil
		}
		return directMsg{}, "", false, unavailable("message get", err)
	}
	if r.Message == nil {
		return directMsg{}, "", false, nil
	}
	return directMsg{r.Message.Seq, r.Message.Data}, r.Message.Subject, true, nil
}

// Pending implements server.Queue: batched direct gets by subject from afterID+1.
// A direct get is answered by any replica, and a replica may lag the leader by a few
// writes, deletes and purges included: at R>1 it could return a message whose ack was
// already answered. So at R>1 the read starts at the leader's first message of to's at
// or after afterID+1, every message a replica returns is confirmed on the stream
// leader (exact-sequence message gets, all at once), those the leader no longer has
// are dropped, and when the read reaches the end of the replica's copy the leader is
// asked for the rest. The stream leader answers a message get only once it has
// applied every entry committed before it became leader (raft leaderState), and it
// answers an ack only after applying its delete or purge: what it returns was not
// acked when the read began.
func (q *Queue) Pending(ctx context.Context, to string, afterID int64, limit int) ([]storage.QueuedMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	subj, err := q.subject(to)
	if err != nil {
		return nil, err
	}
	shard := q.shardOf(to)
	from := uint64(1)
	if afterID > 0 {
		_, seq := q.seqOf(afterID)
		from = seq + 1
	}
	var got []directMsg
	if q.replicas > 1 {
		first, _, ok, err := q.leaderGet(ctx, subj, from, true)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		got = append(got, first)
		from = first.seq + 1
	}
	for len(got) < limit {
		part, more, err := q.directBatch(ctx, subj, from, limit-len(got), 0)
		if err != nil {
			return nil, err
		}
		if len(part) == 0 {
			break
		}
		from = part[len(part)-1].seq + 1
		if q.replicas > 1 {
			if part, err = q.confirm(ctx, subj, part); err != nil {
				return nil, err
			}
		}
		got = append(got, part...)
		if !more {
			break
		}
	}
	if q.replicas > 1 {
		// The rest from the leader, after the last message it confirmed: a message
		// the replica has and the leader not yet is not accepted yet, and is read
		// here (or next time) once it is.
		from = got[len(got)-1].seq + 1
		for len(got) < limit {
			m, _, ok, err := q.leaderGet(ctx, subj, from, true)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			got = append(got, m)
			from = m.seq + 1
		}
	}
	out := make([]storage.QueuedMessage, 0, len(got))
	for _, d := range got {
		m := storage.QueuedMessage{ID: q.id(shard, d.seq), To: to}
		if err := parseEnvelope(d.data, &m); err != nil {
			return nil, fmt.Errorf("cluster: message %d for %q: %w", d.seq, to, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// confirm keeps the messages of subj read from a replica that the stream leader
// still has (same sequence, same subject), in order: one exact-sequence message get
// each, all sent at once.
func (q *Queue) confirm(ctx context.Context, subj string, part []directMsg) ([]directMsg, error) {
	if len(part) == 0 {
		return part, nil
	}
	api := "$JS.API.STREAM.MSG.GET." + q.streamOf(subj)
	subjs := make([]string, len(part))
	reqs := make([][]byte, len(part))
	for i, d := range part {
		subjs[i] = api
		reqs[i] = []byte(`{"seq":` + strconv.FormatUint(d.seq, 10) + `,"no_hdr":true}`)
	}
	replies, errs := q.c.requestAll(ctx, subjs, reqs)
	kept := part[:0]
	for i, d := range part {
		if errs[i] != nil {
			return nil, errs[i]
		}
		var r struct {
			Message *struct {
				Subject string `json:"subject"`
				Seq     uint64 `json:"seq"`
			} `json:"message"`
		}
		if err := apiReply(replies[i], &r); err != nil {
			if isAPIErr(err, errCodeNoMessage) {
				continue // deleted or purged on the leader: acked (or expired)
			}
			return nil, unavailable("message get", err)
		}
		if r.Message == nil || r.Message.Seq != d.seq || r.Message.Subject != subj {
			continue
		}
		kept = append(kept, d)
	}
	return kept, nil
}

// Ack implements server.Queue: the listed messages that are addressed to to are
// deleted (by sequence); others are ignored.
func (q *Queue) Ack(ctx context.Context, to string, ids []int64) error {
	gone, err := q.ack(ctx, to, ids, nil)
	if err != nil {
		return err
	}
	return q.gaveUp(ctx, map[string]map[uint64][]byte{to: gone})
}

// ack deletes to's acked messages and returns the stored data of those this call
// removed (for the usage give-back, left to the caller). With owns, the messages are
// deleted only if owns answers nil after every read of them (server.OwnedAcker): each
// message deleted was queued by then, and a deletion by sequence or a purge below a
// sequence read touches none queued after.
func (q *Queue) ack(ctx context.Context, to string, ids []int64, owns func(context.Context) error) (map[uint64][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	subj, err := q.subject(to)
	if err != nil {
		return nil, err
	}
	shard := q.shardOf(to)
	want := make([]uint64, 0, len(ids)) // stream sequences in to's shard
	for _, id := range ids {
		if k, seq := q.seqOf(id); id > 0 && k == shard {
			want = append(want, seq)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if len(want) == 0 {
		return nil, nil
	}
	// Which of them are to's: one read of to's messages up to the highest id, from
	// its first (with to's acks in order, that is a prefix of its queue).
	hi := want[len(want)-1]
	mine := map[uint64]bool{}
	data := map[uint64][]byte{} // the acked messages, for the usage records
	all := 0                    // to's messages up to hi
	from := uint64(1)
	for {
		part, more, err := q.directBatch(ctx, subj, from, 1024, hi)
		if err != nil {
			return nil, err
		}
		for _, m := range part {
			all++
			if _, ok := slices.BinarySearch(want, m.seq); ok {
				mine[m.seq] = true
				data[m.seq] = m.data
			}
		}
		if !more || len(part) == 0 {
			break
		}
		from = part[len(part)-1].seq + 1
	}
	// The replica that answered has every write up to hi when it has hi (writes apply
	// in order): if the acks cover all of to's messages up to hi, one purge of to's
	// subject below hi+1 deletes them (one write instead of one per message).
	if mine[hi] && len(mine) == all {
		if owns != nil {
			if err := owns(ctx); err != nil {
				return nil, err
			}
		}
		n, err := q.purgeBelow(ctx, subj, hi+1)
		if err != nil {
			return nil, err
		}
		if n != uint64(len(data)) {
			// Some were gone already (acked before, the replica that answered had
			// not applied that yet, or another node's ack of the same): which is
			// unknown, so nothing is given back — a record too high is recounted,
			// one too low would let the queue pass its limits.
			return nil, nil
		}
		return data, nil
	}
	var del []uint64
	for _, s := range want {
		if mine[s] {
			del = append(del, s)
			continue
		}
		if q.replicas > 1 {
			// Not on the replica that answered: it may lag; the leader knows.
			d, s2, ok, err := q.leaderGet(ctx, subj, s, false)
			if err != nil {
				return nil, err
			}
			if ok && s2 == subj {
				del = append(del, s)
				data[s] = d.data
			}
		}
	}
	if len(del) == 0 {
		return nil, nil
	}
	if owns != nil {
		if err := owns(ctx); err != nil {
			return nil, err
		}
	}
	delIDs := make([]uint64, len(del))
	for n, seq := range del {
		delIDs[n] = uint64(q.id(shard, seq))
	}
	deleted, err := q.deleteIDs(ctx, delIDs)
	if err != nil {
		return nil, err
	}
	// Only what this ack removed is given back: a message read from a replica that
	// had not applied an earlier ack of it is gone already, and its usage with it.
	gone := make(map[uint64][]byte, len(del))
	for n, s := range del {
		if deleted[n] {
			gone[s] = data[s]
		}
	}
	return gone, nil
}

// gaveUp gives back the usage of deleted messages (recipient -> their stored data):
// all recipients' records in one read and one write (an atomic batch: one Raft entry
// at R>1), best effort.
func (q *Queue) gaveUp(ctx context.Context, deleted map[string]map[uint64][]byte) error {
	if !q.limited() {
		return nil
	}
	back := map[string][]storage.QueuedMessage{}
	for to, ds := range deleted {
		for _, d := range ds {
			var m storage.QueuedMessage
			if parseEnvelope(d, &m) == nil {
				back[to] = append(back[to], m)
			}
		}
	}
	if len(back) > 0 {
		q.giveBack(ctx, back) // best effort
	}
	return nil
}

// AckBatch implements server.AckBatcher: every recipient's acks at once.
func (q *Queue) AckBatch(ctx context.Context, acks map[string][]int64) error {
	batch := make([]server.OwnedAck, 0, len(acks))
	for to, ids := range acks {
		batch = append(batch, server.OwnedAck{To: to, IDs: ids})
	}
	return errors.Join(q.ackAll(ctx, batch, nil)...)
}

// AckOwned implements server.OwnedAcker: AckBatch, but each ack's messages are
// deleted only while owns says its card holds its name (see ack). The check is one
// read of the directory per ack that finds something to delete, after the queue's
// reads and before its deletes.
func (q *Queue) AckOwned(ctx context.Context, acks []server.OwnedAck, owns func(ctx context.Context, name, cardID string) error) []error {
	return q.ackAll(ctx, acks, owns)
}

// ackAll runs the acks side by side (each is a read and a delete or purge: round
// trips, not work), at most ackParallel at once; then one give-back of usage for all
// of them (one usage write per round instead of one per recipient).
func (q *Queue) ackAll(ctx context.Context, acks []server.OwnedAck, owns func(ctx context.Context, name, cardID string) error) []error {
	const ackParallel = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = make([]error, len(acks))
		gone = map[string]map[uint64][]byte{}
		sem  = make(chan struct{}, ackParallel)
	)
	for i, a := range acks {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var check func(context.Context) error
			if owns != nil {
				check = func(ctx context.Context) error { return owns(ctx, a.To, a.CardID) }
			}
			g, err := q.ack(ctx, a.To, a.IDs, check)
			mu.Lock()
			defer mu.Unlock()
			errs[i] = err
			if len(g) == 0 {
				return
			}
			if gone[a.To] == nil {
				gone[a.To] = g
				return
			}
			for seq, d := range g { // two cards' acks of one name
				gone[a.To][seq] = d
			}
		}()
	}
	wg.Wait()
	if q.noFoldGiveBack {
		for to, g := range gone {
			q.gaveUp(ctx, map[string]map[uint64][]byte{to: g})
		}
	} else {
		q.gaveUp(ctx, gone)
	}
	return errs
}

// QueueDepth is the number of queued messages (for /metrics).
func (q *Queue) QueueDepth(ctx context.Context) (int, error) {
	n := 0
	for _, name := range q.qstreams {
		st, err := q.js.Stream(ctx, name)
		if err != nil {
			return 0, unavailable("stream info", err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return 0, unavailable("stream info", err)
		}
		n += int(info.State.Msgs)
	}
	return n, nil
}

// Expire implements the server's queue expiry: JetStream removes messages past their
// TTL itself (per-message TTL), so there is nothing to do.
func (q *Queue) Expire(context.Context, time.Time) (int, error) { return 0, nil }
