package client

// Blobs (relay/PROTOCOL.md "Blobs"): upload in numbered chunks with a window of
// requests in flight, resume after a reconnect, commit, fetch by id and capability.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

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

// BlobCommit completes an upload whose bytes have the SHA-256 digest and the CRC-32C
// (Castagnoli) crc, and returns the blob's capability. The relay is given the one it
// checks: the CRC-32C when its hello announced blob_crc32c, else the digest.
func (c *Client) BlobCommit(ctx context.Context, id string, digest []byte, crc uint32) ([]byte, error) {
	f := &relay.Frame{Type: relay.TypeBlobCommit, BlobID: id, Digest: digest}
	c.mu.Lock()
	if c.blobCRC {
		f.Digest, f.CRC32C = nil, binary.BigEndian.AppendUint32(nil, crc)
	}
	c.mu.Unlock()
	resp, err := c.do(ctx, f)
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
//
// step is how many chunks one request covers (i goes from, from+step, …); binary
// sends a blob_put as a binary put message.
func (c *Client) pipeline(ctx context.Context, from, to, step int64, binary bool, window int, make func(i int64) (*relay.Frame, error), got func(i int64, resp relay.Frame) error) error {
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
	stall := time.NewTimer(c.cfg.BlobAnswerTimeout)
	defer stall.Stop()
	wait := func() error {
		p := q[0]
		stall.Reset(c.cfg.BlobAnswerTimeout)
		select {
		case <-stall.C:
			return fmt.Errorf("%w (%v for request %d)", ErrBlobStalled, c.cfg.BlobAnswerTimeout, p.id)
		case resp, ok := <-p.ch:
			q = q[1:]
			if !ok {
				return ErrConnectionLost
			}
			if resp.Type == relay.TypeError {
				return relay.ErrorOf(resp)
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
			switch {
			case f.Type == relay.TypeBlobPut && binary:
				wbuf = relay.AppendBlobPutHeader(wbuf[:0], f.ID, f.BlobID, f.Index)
				err = cc.writeBinary(wbuf, f.Data)
				if err != nil {
					err = fmt.Errorf("%w: %v", ErrConnectionLost, err)
				}
			case f.Type == relay.TypeBlobPut:
				wbuf = relay.AppendBlobPut(wbuf[:0], f.ID, f.BlobID, f.Index, f.Data)
				err = c.writeRequest(cc, wbuf)
			default:
				err = c.writeRequest(cc, relay.EncodeFrame(f))
			}
			if err != nil {
				return err
			}
			i += step
			continue
		}
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

func make1() chan relay.Frame { return make(chan relay.Frame, 1) }

// blobRunChunks is how many chunks one blob request carries on this relay: > 1, binary
// messages (PROTOCOL.md "Binary chunk messages"); 1, JSON frames of one chunk.
func (c *Client) blobRunChunks() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blobRun > 0 {
		return c.blobRun, true
	}
	return 1, false
}

// blobWindow is the requests in flight for window (0: the default), about 2 MiB of
// chunks whatever a request carries.
func blobWindow(window int, run int64) int {
	if window > 0 {
		return window
	}
	return max(2, BlobWindow/int(run))
}

// BlobPut uploads chunks [from, chunk count) of blob id (size bytes), read(i, buf)
// filling buf with the blob's bytes from chunk i on (up to BlobRunChunks chunks: whole
// relay.BlobChunkSize chunks, the last one shorter at the blob's end), window requests
// in flight (0: about 2 MiB). done(i) is called as the relay acknowledges chunks up to
// i. On a relay announcing blob_run_chunks the chunks go as binary put messages; else
// as blob_put JSON frames. A dropped connection returns ErrConnectionLost (or
// ErrNotConnected): BlobResume and go on.
func (c *Client) BlobPut(ctx context.Context, id string, size, from int64, window int, read func(i int64, buf []byte) error, done func(i int64)) error {
	chunks := relay.BlobChunks(size)
	run, binary := c.blobRunChunks()
	chunk := make([]byte, run*relay.BlobChunkSize) // reused: each message is written before the next is read
	err := c.pipeline(ctx, from, chunks, run, binary, blobWindow(window, run), func(i int64) (*relay.Frame, error) {
		n := min(run*relay.BlobChunkSize, size-i*relay.BlobChunkSize)
		buf := chunk[:n]
		if err := read(i, buf); err != nil {
			return nil, err
		}
		return &relay.Frame{Type: relay.TypeBlobPut, BlobID: id, Index: i, Data: buf}, nil
	}, func(i int64, _ relay.Frame) error {
		if done != nil {
			done(min(i+run, chunks) - 1)
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
// capability, window requests in flight (0: about 2 MiB), handing the bytes to write
// in order: write(i, data) gets the blob's bytes from chunk i on (one chunk, or a run
// of up to BlobRunChunks from a relay that sends binary messages). data is valid only
// until write returns.
func (c *Client) BlobGet(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error {
	return c.blobGet(ctx, id, capability, size, from, window, false, write)
}

// BlobGetOwned is BlobGet handing data over: write may keep it after it returns, and
// gives it back with ReleaseBlobChunk once done with it (or drops it). A caller that
// hands the bytes to another goroutine saves a copy of every run.
func (c *Client) BlobGetOwned(ctx context.Context, id string, capability []byte, size, from int64, window int, write func(i int64, data []byte) error) error {
	return c.blobGet(ctx, id, capability, size, from, window, true, write)
}

// ReleaseBlobChunk gives back a run BlobGetOwned handed over, for the next download.
func ReleaseBlobChunk(data []byte) { putChunkBuf(data) }

func (c *Client) blobGet(ctx context.Context, id string, capability []byte, size, from int64, window int, owned bool, write func(i int64, data []byte) error) error {
	chunks := relay.BlobChunks(size)
	run, binary := c.blobRunChunks()
	count := int64(0)
	if binary {
		count = run
	}
	err := c.pipeline(ctx, from, chunks, run, false, blobWindow(window, run), func(i int64) (*relay.Frame, error) {
		return &relay.Frame{Type: relay.TypeBlobGet, BlobID: id, Capability: capability, Index: i, Count: count}, nil
	}, func(i int64, resp relay.Frame) error {
		if want := min(run*relay.BlobChunkSize, size-i*relay.BlobChunkSize); int64(len(resp.Data)) != want {
			putChunkBuf(resp.Data)
			return fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrBlobChunk, i, len(resp.Data), want)
		}
		if owned {
			return write(i, resp.Data)
		}
		defer putChunkBuf(resp.Data)
		return write(i, resp.Data)
	})
	if err != nil {
		return fmt.Errorf("relay: downloading blob %s: %w", id, err)
	}
	return nil
}

// chunkBufs is a free list of binary message data buffers (BlobRunMax+1 bytes), so a
// download reads its messages into a few buffers rather than a new 256 KiB each.
var chunkBufs = make(chan []byte, 16)

func getChunkBuf() []byte {
	select {
	case b := <-chunkBufs:
		return b
	default:
		return make([]byte, 0, relay.BlobRunMax+1)
	}
}

func putChunkBuf(b []byte) {
	if cap(b) != relay.BlobRunMax+1 {
		return // a JSON frame's data, or none
	}
	select {
	case chunkBufs <- b[:0]:
	default:
	}
}

// onBinary reads a binary message from the relay: a blob chunk message, handed to the
// request it answers. Only a read error is returned; a malformed message is logged
// and dropped like an undecodable frame.
func (c *Client) onBinary(cc *clientConn, r io.Reader) error {
	var hdr [relay.BlobChunkHeaderSize]byte
	n, err := io.ReadFull(r, hdr[:])
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		_, _, err = relay.DecodeBlobChunkMsg(hdr[:n])
		c.log.Warn("undecodable binary message from relay", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	buf := getChunkBuf()
	for len(buf) < cap(buf) {
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if len(buf) == cap(buf) { // over BlobRunMax: the rest is not read here
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
	id, err := relay.DecodeBlobChunkHeader(hdr[:], len(buf))
	if err != nil {
		putChunkBuf(buf)
		c.log.Warn("undecodable binary message from relay", "err", err)
		return nil
	}
	cc.pmu.Lock()
	ch := cc.pending[id]
	delete(cc.pending, id)
	cc.pmu.Unlock()
	if ch == nil {
		putChunkBuf(buf) // the answer to an abandoned request
		return nil
	}
	ch <- relay.Frame{Type: relay.TypeBlobChunk, ID: id, Data: buf}
	return nil
}
