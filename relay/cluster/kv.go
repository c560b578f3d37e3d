package cluster

// kvBucket is the directory's key-value bucket, laid out as a NATS key-value bucket
// (stream KV_<bucket>, subjects $KV.<bucket>.<key>, one value per key, delete markers
// "KV-Operation: DEL"), so `nats kv` can inspect it, plus what the relay needs beyond
// the KV API: reads from the stream leader (direct gets off: a follower may lag, and
// a read that misses a just-made registration would answer not_found), per-key TTLs,
// and transactions over several keys: an atomic batch publish (nats-server 2.12+)
// whose every message expects its key's last revision, so the batch commits whole
// or, if any key moved since it was read, not at all.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/server"
)

// errConflict: a compare-and-set lost (a key changed since it was read); the caller
// reads again and retries.
var errConflict = errors.New("relay/cluster: key changed meanwhile")

// JetStream's error codes for an atomic batch it did not take whole: "batch is
// incomplete" (its first message was refused, e.g. over the in-flight limit) and
// "too many inflight".
const (
	errAtomicIncomplete      = 10176
	errAtomicTooManyInflight = 10210
)

// maxRetries bounds the read-modify-write retries of one operation under contention.
const maxRetries = 64

type kvBucket struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	kv      jetstream.KeyValue // for watches
	name    string             // bucket
	subj    string             // "$KV.<bucket>."
	timeout time.Duration
}

// openBucket creates (or binds to) the bucket with the configuration the directory
// needs, updating an existing one to it.
func openBucket(ctx context.Context, c *Conn, bucket, desc string) (*kvBucket, error) {
	cfg := jetstream.StreamConfig{
		Name:               "KV_" + bucket,
		Description:        desc,
		Subjects:           []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject:  1,
		MaxBytes:           -1,
		MaxMsgSize:         -1,
		MaxMsgs:            -1,
		MaxConsumers:       -1,
		Storage:            jetstream.FileStorage,
		Replicas:           c.Replicas(),
		AllowRollup:        true,
		DenyDelete:         true,
		Duplicates:         2 * time.Minute,
		Discard:            jetstream.DiscardNew,
		AllowDirect:        false, // reads go to the leader
		AllowMsgTTL:        true,  // per-key TTLs (limits)
		AllowAtomicPublish: true,  // transactions
	}
	var st jetstream.Stream
	err := untilCtx(ctx, func() (err error) {
		actx, cancel := context.WithTimeout(ctx, 2*c.Timeout())
		defer cancel()
		st, err = c.JetStream().CreateOrUpdateStream(actx, cfg)
		return err
	})
	if err != nil {
		return nil, dirUnavailable(fmt.Errorf("relay/cluster: bucket %s: %w", bucket, err))
	}
	bctx, cancel := context.WithTimeout(ctx, c.Timeout())
	defer cancel()
	kv, err := c.JetStream().KeyValue(bctx, bucket)
	if err != nil {
		return nil, dirUnavailable(fmt.Errorf("relay/cluster: binding bucket %s: %w", bucket, err))
	}
	return &kvBucket{nc: c.NATS(), js: c.JetStream(), stream: st, kv: kv, name: bucket, subj: "$KV." + bucket + ".", timeout: c.Timeout()}, nil
}

// kvEntry is a key's latest state: rev is its last revision (0: never written or
// expired), deleted says the last revision is a delete marker.
type kvEntry struct {
	rev     uint64
	val     []byte
	deleted bool
}

// exists says whether the key holds a value.
func (e kvEntry) exists() bool { return e.rev != 0 && !e.deleted }

// get reads key's latest revision from the stream leader.
func (b *kvBucket) get(ctx context.Context, key string) (kvEntry, error) {
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	m, err := b.stream.GetLastMsgForSubject(rctx, b.subj+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return kvEntry{}, nil
	}
	if err != nil {
		return kvEntry{}, dirUnavailable(fmt.Errorf("relay/cluster: reading %s: %w", key, err))
	}
	e := kvEntry{rev: m.Sequence, val: m.Data}
	switch m.Header.Get("KV-Operation") {
	case "DEL", "PURGE":
		e.deleted, e.val = true, nil
	}
	return e, nil
}

// kvOp is one write of a transaction: key gets val (or a delete marker) if its last
// revision is still rev (0: the key was never written, or expired).
type kvOp struct {
	key string
	val []byte
	del bool
	rev uint64
	ttl time.Duration // > 0: the value (or delete marker) expires (at least 1 s)
}

// markerTTL is how long the delete marker of a key named by a one-time id stays (a
// blob's record, a card's index entry, prekeys and replaced-card record, a used-up
// invite's record): a marker never expires by itself (the bucket keeps one message
// per key), and each such key is deleted once, so every blob delivered, every card
// retired and every invite used up left one for good — in the bucket's storage and
// its per-subject index, and read again by each scan of its prefix (the hourly
// ExpireBlobs reads every "blob." marker). A marker fences only writes that read the
// key before it: a day is far past any of those (each gives up within the request
// timeout), and once it is gone the key reads as never written, as deleted reads, and
// a write expecting the revision it read still conflicts. Keys named by a name (an
// account, its blocks, its blob usage) keep their marker: one per name, replaced by
// the next, and the change feed must see an account's deletion.
var markerTTL = 24 * time.Hour // a var: a test shortens it

// tombstone is the write deleting key, read at rev, with a marker that expires after
// markerTTL: only for the keys named by a one-time id (see markerTTL).
func tombstone(key string, rev uint64) kvOp {
	return kvOp{key: key, del: true, rev: rev, ttl: markerTTL}
}

// put writes one key if its revision is still op.rev: errConflict otherwise.
func (b *kvBucket) put(ctx context.Context, op kvOp) (uint64, error) {
	m := b.msg(op)
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(op.rev)}
	if op.ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(op.ttl))
	}
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	ack, err := b.js.PublishMsg(rctx, m, opts...)
	if err != nil {
		return 0, pubError(op.key, err)
	}
	return ack.Sequence, nil
}

func (b *kvBucket) msg(op kvOp) *nats.Msg {
	m := nats.NewMsg(b.subj + op.key)
	m.Data = op.val
	if op.del {
		m.Header.Set("KV-Operation", "DEL")
	}
	return m
}

// commit writes every op atomically (an atomic batch), each on the condition that
// its key's revision is still op.rev: all or nothing; errConflict if a key moved.
// The keys must be distinct.
func (b *kvBucket) commit(ctx context.Context, ops []kvOp) error {
	switch len(ops) {
	case 0:
		return nil
	case 1:
		_, err := b.put(ctx, ops[0])
		return err
	}
	var idb [16]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	for i, op := range ops {
		m := b.msg(op)
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(op.rev, 10))
		if op.ttl > 0 {
			m.Header.Set("Nats-TTL", strconv.FormatInt(int64(max(op.ttl, time.Second)/time.Second), 10))
		}
		if i < len(ops)-1 {
			if err := b.nc.PublishMsg(m); err != nil {
				return dirUnavailable(fmt.Errorf("relay/cluster: transaction on %s: %w", op.key, err))
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		rctx, cancel := b.reqCtx(ctx)
		resp, err := b.nc.RequestMsgWithContext(rctx, m)
		cancel()
		if err != nil {
			return dirUnavailable(fmt.Errorf("relay/cluster: committing a transaction of %d keys: %w", len(ops), err))
		}
		var ack struct {
			Error *struct {
				Code        int    `json:"code"`
				ErrCode     int    `json:"err_code"`
				Description string `json:"description"`
			} `json:"error"`
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return dirUnavailable(fmt.Errorf("relay/cluster: transaction answer does not parse: %w", err))
		}
		if ack.Error != nil {
			switch ack.Error.ErrCode {
			case int(jetstream.JSErrCodeStreamWrongLastSequence), int(jetstream.JSErrCodeStreamWrongLastSequenceConstant):
				return errConflict
			case errAtomicIncomplete, errAtomicTooManyInflight:
				// The stream had too many transactions open and dropped this one's
				// start: nothing was written; read again and retry.
				return errConflict
			}
			return dirUnavailable(fmt.Errorf("relay/cluster: transaction of %d keys refused: %s (%d)", len(ops), ack.Error.Description, ack.Error.ErrCode))
		}
		if ack.Seq == 0 {
			return dirUnavailable(errors.New("relay/cluster: transaction answer without a sequence"))
		}
	}
	return nil
}

// reqCtx bounds one request by the connection's timeout: a request the cluster drops
// (no stream leader while it elects one) must fail in time for the caller to retry,
// whatever the caller's own deadline.
func (b *kvBucket) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout)
}

// pubError maps a publish error: a lost compare-and-set is errConflict, anything else
// server.ErrUnavailable.
func pubError(key string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errConflict
	}
	return dirUnavailable(fmt.Errorf("relay/cluster: writing %s: %w", key, err))
}

// dirUnavailable marks err as the store's unavailability (server.ErrUnavailable: the
// NATS cluster did not take a write or answer a read in time; the client is told
// "unavailable" and retries). A write whose answer was lost may still land once a
// quorum returns (a transaction whole, never in part): every directory write is safe
// to repeat, and the relay answers a repeated registration of the same card as a
// success.
func dirUnavailable(err error) error {
	if err == nil || errors.Is(err, server.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", server.ErrUnavailable, err)
}

// retry runs f until it does not lose a compare-and-set, at most maxRetries times.
func retry(ctx context.Context, what string, f func() error) error {
	for i := 0; ; i++ {
		err := f()
		if !errors.Is(err, errConflict) {
			return err
		}
		if i >= maxRetries {
			return dirUnavailable(fmt.Errorf("relay/cluster: %s: still contended after %d tries", what, i+1))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if i > 2 {
			// Back off a little (randomised) so contenders spread out.
			var r [1]byte
			rand.Read(r[:])
			t := time.NewTimer(time.Duration(int(r[0])%(i*2)+1) * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
}

// untilCtx runs f until it succeeds or ctx ends (then f's last error): a node may
// start while the NATS cluster is still forming ("no suitable peers for placement").
// Each f bounds its own request: one the cluster drops while it elects a leader must
// not hold the whole of ctx.
func untilCtx(ctx context.Context, f func() error) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}
