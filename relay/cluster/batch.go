package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

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

// maxAtomic is the most messages publishAtomicChunks puts in one atomic batch
// (JetStream allows 1000 by default; the relay's group commit takes up to 1024).
const maxAtomic = 500

// atomicOutcome is what became of one message of publishAtomicChunks.
type atomicOutcome struct {
	seq      uint64 // stored at this sequence (> 0)
	rejected bool   // its batch was refused: not stored, publish it alone
	err      error  // unknown outcome (unavailable)
}

// publishAtomicChunks publishes msgs in atomic batches of at most maxAtomic, side by
// side. A rejected batch's messages lose their batch headers, ready to go one by one.
func (c *Conn) publishAtomicChunks(ctx context.Context, msgs []*nats.Msg) []atomicOutcome {
	out := make([]atomicOutcome, len(msgs))
	var wg sync.WaitGroup
	for start := 0; start < len(msgs); start += maxAtomic {
		end := min(start+maxAtomic, len(msgs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := msgs[start:end]
			if len(chunk) == 1 {
				out[start].rejected = true // alone is cheaper without a batch
				return
			}
			seq, err := c.publishAtomic(ctx, chunk)
			var rej errBatchRejected
			for k := range chunk {
				switch {
				case err == nil:
					out[start+k].seq = seq + uint64(k)
				case errors.As(err, &rej):
					out[start+k].rejected = true
					chunk[k].Header.Del("Nats-Batch-Id")
					chunk[k].Header.Del("Nats-Batch-Sequence")
					chunk[k].Header.Del("Nats-Batch-Commit")
				default:
					out[start+k].err = err
				}
			}
		}()
	}
	wg.Wait()
	return out
}
