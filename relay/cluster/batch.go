package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// errBatchRejected wraps a JetStream refusal of a whole atomic batch: nothing of it
// was stored (a duplicate, a per-subject limit, a failed expectation in it).
type errBatchRejected struct{ err error }

func (e errBatchRejected) Error() string { return "atomic batch rejected: " + e.err.Error() }
func (e errBatchRejected) Unwrap() error { return e.err }

// publishAtomic publishes msgs (all to one stream that allows atomic publish) as one
// atomic batch: all are stored, with consecutive sequences from the returned one, or
// none. One round trip and, at R1 with sync always, one sync for the whole batch
// instead of one per message. An errBatchRejected means nothing was stored; any other
// error leaves the outcome unknown.
func (c *Conn) publishAtomic(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	var idb [12]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	last := len(msgs) - 1
	for i, m := range msgs {
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i == last {
			break
		}
		if err := c.nc.PublishMsg(m); err != nil {
			return 0, errBatchRejected{unavailable("batch publish", err)} // never committed
		}
	}
	msgs[last].Header.Set("Nats-Batch-Commit", "1")
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.nc.RequestMsgWithContext(rctx, msgs[last])
	if err != nil {
		return 0, unavailable("batch commit", err)
	}
	var r struct {
		Error *apiError `json:"error"`
		Seq   uint64    `json:"seq"`
		Count uint64    `json:"count"`
		Batch string    `json:"batch"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return 0, unavailable("batch commit", fmt.Errorf("bad reply: %w", err))
	}
	if r.Error != nil {
		return 0, errBatchRejected{r.Error}
	}
	if r.Batch != id || r.Count != uint64(len(msgs)) || r.Seq < uint64(len(msgs)) {
		return 0, unavailable("batch commit", fmt.Errorf("ack for batch %q of %d up to %d, sent %q of %d", r.Batch, r.Count, r.Seq, id, len(msgs)))
	}
	return r.Seq - uint64(len(msgs)) + 1, nil
}
