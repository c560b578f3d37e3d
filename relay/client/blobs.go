package client

// Blobs (relay/PROTOCOL.md "Blobs"): upload in numbered chunks with a window of
// requests in flight, resume after a reconnect, commit, fetch by id and capability.

import (
	"context"
	"errors"
	"fmt"

	"pfschat/relay"
)

// BlobWindow is how many chunk requests are in flight at once by default: enough to
// keep a loopback or LAN link busy, few enough that the relay's outbound queue for a
// download stays small.
const BlobWindow = 64

// BlobState is the relay's view of an upload.
type BlobState struct {
	ID         string
	Size       int64
	Next       int64  // the first chunk the relay lacks (= the chunk count once complete)
	Capability []byte // set once committed
}

// MaxBlobBytes is the largest blob the relay announced it stores (0: no blobs, or not
// connected yet).
func (c *Client) MaxBlobBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxBlob
}

// BlobBegin starts an upload of size bytes that recipients accounts will fetch; the
// relay names the blob. blob_too_large and blob_quota come back as
// *relay.ProtocolError.
func (c *Client) BlobBegin(ctx context.Context, size int64, recipients int) (string, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeBlobBegin, Size: size, Chunks: relay.BlobChunks(size), Recipients: recipients})
	if err != nil {
		return "", fmt.Errorf("relay: starting a blob upload: %w", err)
	}
	if !relay.ValidBlobID(resp.BlobID) {
		return "", fmt.Errorf("relay: the relay named a blob %q, not a blob id", resp.BlobID)
	}
	return resp.BlobID, nil
}

// BlobResume asks how far an upload got (after a reconnect or a restart).
func (c *Client) BlobResume(ctx context.Context, id string) (BlobState, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeBlobResume, BlobID: id})
	if err != nil {
		return BlobState{}, fmt.Errorf("relay: resuming blob %s: %w", id, err)
	}
	return BlobState{ID: id, Size: resp.Size, Next: resp.Next, Capability: resp.Capability}, nil
}

// BlobCommit completes an upload whose bytes hash (SHA-256) to digest and returns the
// blob's capability.
func (c *Client) BlobCommit(ctx context.Context, id string, digest []byte) ([]byte, error) {
	resp, err := c.do(ctx, &relay.Frame{Type: relay.TypeBlobCommit, BlobID: id, Digest: digest})
	if err != nil {
		return nil, fmt.Errorf("relay: committing blob %s: %w", id, err)
	}
	if len(resp.Capability) != relay.BlobCapabilitySize {
		return nil, fmt.Errorf("relay: committing blob %s: the answer has no capability", id)
	}
	return resp.Capability, nil
}

// BlobDone tells the relay this account fetched the blob completely.
func (c *Client) BlobDone(ctx context.Context, id string, capability []byte) error {
	if _, err := c.do(ctx, &relay.Frame{Type: relay.TypeBlobDone, BlobID: id, Capability: capability}); err != nil {
		return fmt.Errorf("relay: blob %s fetched: %w", id, err)
	}
	return nil
}

// pipeline sends the frames make(i) for i in [from, to) in order, at most window
// unanswered, and hands each answer to got in order. It stops at the first error.
func (c *Client) pipeline(ctx context.Context, from, to int64, window int, make func(i int64) (*relay.Frame, error), got func(i int64, resp relay.Frame) error) error {
	if window <= 0 {
		window = BlobWindow
	}
	cc, err := c.current()
	if err != nil {
		return err
	}
	type inflight struct {
		i  int64
		id uint64
		ch chan relay.Frame
	}
	var q []inflight
	var wbuf []byte // the encoded frame: written before the next is made
	defer func() {
		cc.pmu.Lock()
		for _, p := range q {
			if cc.pending != nil {
				delete(cc.pending, p.id)
			}
		}
		cc.pmu.Unlock()
	}()
	wait := func() error {
		p := q[0]
		select {
		case resp, ok := <-p.ch:
			q = q[1:]
			if !ok {
				return ErrConnectionLost
			}
			if resp.Type == relay.TypeError {
				return &relay.ProtocolError{Code: resp.Code, Message: resp.Message, Limit: resp.Limit}
			}
			return got(p.i, resp)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := from; i < to || len(q) > 0; {
		if i < to && len(q) < window {
			f, err := make(i)
			if err != nil {
				return err
			}
			if err := c.waitPace(ctx); err != nil {
				return err
			}
			f.ID = c.nextID.Add(1)
			ch := make1()
			cc.pmu.Lock()
			if cc.pending == nil {
				cc.pmu.Unlock()
				return ErrConnectionLost
			}
			cc.pending[f.ID] = ch
			cc.pmu.Unlock()
			q = append(q, inflight{i: i, id: f.ID, ch: ch})
			if f.Type == relay.TypeBlobPut {
				wbuf = relay.AppendBlobPut(wbuf[:0], f.ID, f.BlobID, f.Index, f.Data)
			} else {
				wbuf = relay.EncodeFrame(f)
			}
			if err := c.writeRequest(cc, wbuf); err != nil {
				return err
			}
			i++
			continue
		}
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

func make1() chan relay.Frame { return make(chan relay.Frame, 1) }

// BlobPut uploads chunks [from, chunk count) of blob id (size bytes), read(i, buf)
// filling chunk i (relay.BlobChunkSize bytes but the last), window in flight (0:
// BlobWindow). done(i) is called as the relay acknowledges chunk i. A dropped
// connection returns ErrConnectionLost (or ErrNotConnected): BlobResume and go on.
func (c *Client) BlobPut(ctx context.Context, id string, size, from int64, window int, read func(i int64, buf []byte) error, done func(i int64)) error {
	chunks := relay.BlobChunks(size)
	chunk := make([]byte, relay.BlobChunkSize) // reused: each frame is written before the next is read
	err := c.pipeline(ctx, from, chunks, window, func(i int64) (*relay.Frame, error) {
		n := min(int64(relay.BlobChunkSize), size-i*relay.BlobChunkSize)
		buf := chunk[:n]
		if err := read(i, buf); err != nil {
			return nil, err
		}
		return &relay.Frame{Type: relay.TypeBlobPut, BlobID: id, Index: i, Data: buf}, nil
	}, func(i int64, _ relay.Frame) error {
		if done != nil {
			done(i)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("relay: uploading blob %s: %w", id, err)
	}
	return nil
}

// ErrBlobChunk: the relay answered a blob_get with a chunk of the wrong size.
var ErrBlobChunk = errors.New("relay: blob chunk of the wrong size")

// BlobGet downloads chunks [from, chunk count) of blob id (size bytes) with its
// capability, window in flight (0: BlobWindow), handing each to write in order.
func (c *Client) BlobGet(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error {
	chunks := relay.BlobChunks(size)
	err := c.pipeline(ctx, from, chunks, window, func(i int64) (*relay.Frame, error) {
		return &relay.Frame{Type: relay.TypeBlobGet, BlobID: id, Capability: capability, Index: i}, nil
	}, func(i int64, resp relay.Frame) error {
		if want := min(int64(relay.BlobChunkSize), size-i*relay.BlobChunkSize); int64(len(resp.Data)) != want {
			return fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrBlobChunk, i, len(resp.Data), want)
		}
		return write(i, resp.Data)
	})
	if err != nil {
		return fmt.Errorf("relay: downloading blob %s: %w", id, err)
	}
	return nil
}
