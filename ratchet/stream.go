package ratchet

// File streams (STREAM.md): a file is sealed with a fresh 32-byte key in chunks of
// StreamChunkSize bytes, each chunk with ChaCha20-Poly1305 under a nonce made of the
// chunk's number and a last-chunk flag, so truncation, reordering, dropping and
// swapping chunks all fail authentication. Memory is one chunk whatever the size.

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

const (
	// StreamChunkSize is the plaintext size of every chunk but the last.
	StreamChunkSize = 64 << 10
	// StreamTagSize is what sealing adds to each chunk.
	StreamTagSize = aeadOverhead
	// StreamSealedChunkSize is the sealed size of a full chunk.
	StreamSealedChunkSize = StreamChunkSize + StreamTagSize
	// StreamKeySize is the size of a stream key.
	StreamKeySize = 32
	// maxStreamChunks bounds the number of chunks (STREAM.md §3): the most full sealed
	// chunks an int64 size holds. The nonce's 11-byte counter would allow far more.
	maxStreamChunks = math.MaxInt64 / StreamSealedChunkSize
)

// Stream errors; each wraps ErrDecrypt or ErrMalformed so callers may test either.
var (
	// ErrStreamChunk: a chunk failed authentication (flipped byte, wrong key, chunks
	// reordered or swapped, a last chunk moved).
	ErrStreamChunk = fmt.Errorf("ratchet: stream chunk does not authenticate: %w", ErrDecrypt)
	// ErrStreamTruncated: the stream ended before a chunk marked last.
	ErrStreamTruncated = fmt.Errorf("ratchet: stream truncated: %w", ErrDecrypt)
	// ErrStreamTrailing: data follows the chunk marked last.
	ErrStreamTrailing = fmt.Errorf("ratchet: data after the last stream chunk: %w", ErrDecrypt)
	// ErrStreamSize: a size that no stream can have.
	ErrStreamSize = fmt.Errorf("ratchet: impossible stream size: %w", ErrMalformed)
)

// StreamSealedSize is the sealed size of a plaintext of n bytes: n plus a tag per
// chunk, with one (empty) chunk for an empty file.
func StreamSealedSize(n int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("%w: negative plaintext size %d", ErrStreamSize, n)
	}
	chunks := n / StreamChunkSize // not (n + StreamChunkSize - 1) / …: that overflows near 2⁶³
	if n%StreamChunkSize != 0 || n == 0 {
		chunks++
	}
	if chunks > maxStreamChunks {
		return 0, fmt.Errorf("%w: plaintext of %d bytes", ErrStreamSize, n)
	}
	return n + chunks*StreamTagSize, nil
}

// StreamPlainSize inverts StreamSealedSize: the plaintext size of a sealed stream of
// n bytes, or ErrStreamSize when no plaintext seals to n bytes.
func StreamPlainSize(n int64) (int64, error) {
	if n < StreamTagSize {
		return 0, fmt.Errorf("%w: sealed stream of %d bytes is shorter than one tag", ErrStreamSize, n)
	}
	full := n / StreamSealedChunkSize
	rest := n % StreamSealedChunkSize
	switch {
	case rest > 0 && full >= maxStreamChunks:
		// A last chunk numbered maxStreamChunks: OpenStreamChunk refuses it, and
		// StreamSealedSize of its plaintext size is an error.
		return 0, fmt.Errorf("%w: sealed stream of %d bytes has more than %d chunks", ErrStreamSize, n, int64(maxStreamChunks))
	case rest == 0 && full > 0:
		return full * StreamChunkSize, nil
	case rest >= StreamTagSize && (rest > StreamTagSize || full == 0):
		return full*StreamChunkSize + rest - StreamTagSize, nil
	}
	return 0, fmt.Errorf("%w: no plaintext seals to %d bytes", ErrStreamSize, n)
}

// streamNonce is the nonce of chunk i: the 11-byte big-endian counter ‖ the flag
// (0x01 on the last chunk, else 0x00).
func streamNonce(nonce *[12]byte, i uint64, last bool) {
	nonce[0], nonce[1], nonce[2] = 0, 0, 0
	binary.BigEndian.PutUint64(nonce[3:11], i)
	nonce[11] = 0
	if last {
		nonce[11] = 1
	}
}

func streamAEAD(key *[StreamKeySize]byte) cipher.AEAD {
	a, err := newAEAD(key)
	if err != nil {
		panic("ratchet: ChaCha20-Poly1305 setup: " + err.Error()) // 32-byte key: cannot happen
	}
	return a
}

// SealStreamChunk seals chunk number i (plain: at most StreamChunkSize bytes; exactly
// that unless last) and appends it to dst.
func SealStreamChunk(dst []byte, key *[StreamKeySize]byte, i uint64, last bool, plain []byte) ([]byte, error) {
	if len(plain) > StreamChunkSize || (!last && len(plain) != StreamChunkSize) || (last && i > 0 && len(plain) == 0) || i >= maxStreamChunks {
		return dst, fmt.Errorf("%w: chunk %d of %d bytes (last %v)", ErrStreamSize, i, len(plain), last)
	}
	var nonce [12]byte
	streamNonce(&nonce, i, last)
	return streamAEAD(key).Seal(dst, nonce[:], plain, nil), nil
}

// OpenStreamChunk is the chunk decoder: it authenticates sealed chunk number i under
// the last-chunk flag given and appends the plaintext to dst. The sizes are checked
// before any decryption (a non-last chunk is exactly StreamSealedChunkSize bytes; a
// last one at most that and, but for chunk 0, more than a tag).
func OpenStreamChunk(dst []byte, key *[StreamKeySize]byte, i uint64, last bool, sealed []byte) ([]byte, error) {
	switch {
	case len(sealed) < StreamTagSize || len(sealed) > StreamSealedChunkSize:
		return dst, fmt.Errorf("%w: chunk %d of %d bytes", ErrStreamChunk, i, len(sealed))
	case !last && len(sealed) != StreamSealedChunkSize:
		return dst, fmt.Errorf("%w: chunk %d of %d bytes is short but not last", ErrStreamTruncated, i, len(sealed))
	case last && i > 0 && len(sealed) == StreamTagSize:
		return dst, fmt.Errorf("%w: empty last chunk %d", ErrStreamChunk, i)
	case i >= maxStreamChunks:
		return dst, fmt.Errorf("%w: chunk number %d", ErrStreamSize, i)
	}
	var nonce [12]byte
	streamNonce(&nonce, i, last)
	out, err := streamAEAD(key).Open(dst, nonce[:], sealed, nil)
	if err != nil {
		return dst, fmt.Errorf("%w: chunk %d", ErrStreamChunk, i)
	}
	return out, nil
}

// StreamWriter seals what is written to it onto an underlying writer. Close seals the
// last chunk; without Close the stream is truncated (and fails to open).
type StreamWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	buf    []byte // pending plaintext, < StreamChunkSize bytes after each Write
	out    []byte
	i      uint64
	nonce  [12]byte
	err    error
	closed bool
}

// NewStreamWriter returns a writer that seals onto w under key.
func NewStreamWriter(w io.Writer, key *[StreamKeySize]byte) *StreamWriter {
	return &StreamWriter{w: w, aead: streamAEAD(key), buf: make([]byte, 0, StreamChunkSize),
		out: make([]byte, 0, StreamSealedChunkSize)}
}

func (s *StreamWriter) flush(last bool) error {
	if s.i >= maxStreamChunks {
		return fmt.Errorf("%w: more than %d chunks", ErrStreamSize, uint64(maxStreamChunks))
	}
	streamNonce(&s.nonce, s.i, last)
	s.out = s.aead.Seal(s.out[:0], s.nonce[:], s.buf, nil)
	s.buf = s.buf[:0]
	s.i++
	if _, err := s.w.Write(s.out); err != nil {
		return err
	}
	return nil
}

// Write seals p. A chunk is sealed only once more data follows it (or at Close), so
// that the last one carries the flag.
func (s *StreamWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("ratchet: write to a closed stream")
	}
	n := 0
	for len(p) > 0 {
		if len(s.buf) == StreamChunkSize {
			if s.err = s.flush(false); s.err != nil {
				return n, s.err
			}
		}
		k := copy(s.buf[len(s.buf):StreamChunkSize], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// Close seals the last chunk (an empty one for an empty stream). It does not close the
// underlying writer.
func (s *StreamWriter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return nil
	}
	s.closed = true
	s.err = s.flush(true)
	return s.err
}

// StreamReader opens a sealed stream: every Read returns only authenticated
// plaintext. The end of the stream is reported (io.EOF) only after a chunk marked last
// authenticated and nothing followed it; a stream that stops earlier is
// ErrStreamTruncated.
type StreamReader struct {
	r     io.Reader
	aead  cipher.AEAD
	in    []byte // one sealed chunk plus one byte of look-ahead
	have  int    // bytes of in filled
	plain []byte // the opened chunk
	out   []byte // plaintext not yet returned (a tail of plain)
	i     uint64
	nonce [12]byte // here, not on the stack: the AEAD is an interface, so it would escape
	done  bool
	err   error
}

// NewStreamReader opens the sealed stream read from r under key.
func NewStreamReader(r io.Reader, key *[StreamKeySize]byte) *StreamReader {
	return &StreamReader{r: r, aead: streamAEAD(key), in: make([]byte, StreamSealedChunkSize+1),
		plain: make([]byte, 0, StreamChunkSize)}
}

// Read implements io.Reader.
func (s *StreamReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.err = s.next()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// next reads and opens one chunk. It reads one byte past a full chunk to learn
// whether the chunk is the last.
func (s *StreamReader) next() error {
	if s.i >= maxStreamChunks {
		return fmt.Errorf("%w: more than %d chunks", ErrStreamSize, uint64(maxStreamChunks))
	}
	n, err := io.ReadFull(s.r, s.in[s.have:])
	s.have += n
	eof := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !eof {
		return err
	}
	var sealed []byte
	last := eof
	if last {
		sealed = s.in[:s.have]
	} else {
		sealed = s.in[:StreamSealedChunkSize]
	}
	if last && len(sealed) < StreamTagSize {
		return fmt.Errorf("%w: after %d chunks", ErrStreamTruncated, s.i)
	}
	nonce := &s.nonce
	streamNonce(nonce, s.i, last)
	out, oerr := s.aead.Open(s.plain[:0], nonce[:], sealed, nil)
	if oerr != nil {
		if last {
			// A full final chunk that opens as non-last: the chunks after it are gone.
			streamNonce(nonce, s.i, false)
			if len(sealed) == StreamSealedChunkSize {
				if _, e2 := s.aead.Open(nil, nonce[:], sealed, nil); e2 == nil {
					return fmt.Errorf("%w: chunk %d is not the last", ErrStreamTruncated, s.i)
				}
			}
		} else {
			// A full chunk followed by more data that opens only as last: trailing data.
			streamNonce(nonce, s.i, true)
			if _, e2 := s.aead.Open(nil, nonce[:], sealed, nil); e2 == nil {
				return fmt.Errorf("%w: after chunk %d", ErrStreamTrailing, s.i)
			}
		}
		return fmt.Errorf("%w: chunk %d", ErrStreamChunk, s.i)
	}
	if last && s.i > 0 && len(out) == 0 {
		return fmt.Errorf("%w: empty last chunk %d", ErrStreamChunk, s.i)
	}
	s.out = out
	s.i++
	if last {
		s.done = true
		s.have = 0
		return nil
	}
	// Keep the look-ahead byte.
	s.in[0] = s.in[StreamSealedChunkSize]
	s.have = 1
	return nil
}
