package ratchet

// File stream tests: round trips at the chunk edges, every kind of tampering, and the
// deterministic vectors of STREAM.md (testdata/stream_vectors.json):
//
//	go test ./ratchet -run TestStreamVectors -update   # rewrite the vectors
//	go test ./ratchet -run TestStreamVectors           # regenerate and compare

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

const streamVectorsPath = "testdata/stream_vectors.json"

// streamPlain is the vectors' plaintext of n bytes: byte i is i mod 251.
func streamPlain(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func streamKey() *[StreamKeySize]byte {
	var k [StreamKeySize]byte
	for i := range k {
		k[i] = byte(i)
	}
	return &k
}

func seal(t testing.TB, key *[StreamKeySize]byte, plain []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewStreamWriter(&out, key)
	// Odd write sizes, to cross chunk edges inside one Write.
	for p := plain; len(p) > 0; {
		n := min(len(p), 7777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func open(key *[StreamKeySize]byte, sealed []byte) ([]byte, error) {
	return io.ReadAll(NewStreamReader(bytes.NewReader(sealed), key))
}

var streamSizes = []int{0, 1, StreamChunkSize - 1, StreamChunkSize, StreamChunkSize + 1, 2 * StreamChunkSize, 3*StreamChunkSize + 5}

func TestStreamRoundTrip(t *testing.T) {
	key := streamKey()
	for _, n := range streamSizes {
		plain := streamPlain(n)
		sealed := seal(t, key, plain)
		want, err := StreamSealedSize(int64(n))
		if err != nil || int64(len(sealed)) != want {
			t.Fatalf("%d bytes: sealed %d, StreamSealedSize %d (%v)", n, len(sealed), want, err)
		}
		if back, err := StreamPlainSize(want); err != nil || back != int64(n) {
			t.Fatalf("%d bytes: StreamPlainSize(%d) = %d, %v", n, want, back, err)
		}
		got, err := open(key, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: open: %v (got %d bytes)", n, err, len(got))
		}
	}
}

func TestStreamPlainSizeRejects(t *testing.T) {
	for _, n := range []int64{-1, 0, 15, StreamSealedChunkSize + 16, StreamSealedChunkSize + 5} {
		if _, err := StreamPlainSize(n); !errors.Is(err, ErrStreamSize) {
			t.Errorf("StreamPlainSize(%d) = %v, want ErrStreamSize", n, err)
		}
	}
	if _, err := StreamSealedSize(-1); !errors.Is(err, ErrStreamSize) {
		t.Errorf("StreamSealedSize(-1) = %v", err)
	}
}

func TestStreamTampering(t *testing.T) {
	key := streamKey()
	plain := streamPlain(3*StreamChunkSize + 5)
	sealed := seal(t, key, plain)
	c := StreamSealedChunkSize
	chunk := func(b []byte, i int) []byte { return b[i*c : min(len(b), (i+1)*c)] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flipped := bytes.Clone(sealed)
	flipped[c+100] ^= 1
	otherKey := *key
	otherKey[0] ^= 1
	cases := []struct {
		name   string
		sealed []byte
		key    *[StreamKeySize]byte
		want   error
	}{
		{"flipped byte", flipped, key, ErrStreamChunk},
		{"wrong key", sealed, &otherKey, ErrStreamChunk},
		{"truncated inside a chunk", sealed[:len(sealed)-1], key, ErrStreamChunk},
		{"truncated at a chunk edge", sealed[:2*c], key, ErrStreamTruncated},
		{"empty", nil, key, ErrStreamTruncated},
		{"shorter than a tag", sealed[:10], key, ErrStreamTruncated},
		{"reordered", cat(chunk(sealed, 1), chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)), key, ErrStreamChunk},
		{"swapped middle chunks", cat(chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 1), chunk(sealed, 3)), key, ErrStreamChunk},
		{"chunk dropped", cat(chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)), key, ErrStreamChunk},
		{"trailing data", cat(sealed, []byte{0}), key, ErrStreamChunk},
		{"last chunk of another stream appended", cat(sealed, chunk(seal(t, key, streamPlain(10)), 0)), key, ErrStreamChunk},
	}
	for _, tc := range cases {
		got, err := open(tc.key, tc.sealed)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		// Only authenticated chunks come out, and never the whole file.
		if len(got) >= len(plain) || !bytes.Equal(got, plain[:len(got)]) {
			t.Errorf("%s: returned %d bytes that are not a prefix of the plaintext", tc.name, len(got))
		}
	}
	// A full chunk that is marked last but followed by data: trailing.
	one := seal(t, key, streamPlain(StreamChunkSize))
	if _, err := open(key, cat(one, []byte("x"))); !errors.Is(err, ErrStreamTrailing) {
		t.Errorf("data after a full last chunk: %v, want ErrStreamTrailing", err)
	}
}

func TestOpenStreamChunkSizes(t *testing.T) {
	key := streamKey()
	full, _ := SealStreamChunk(nil, key, 0, false, streamPlain(StreamChunkSize))
	if _, err := OpenStreamChunk(nil, key, 0, false, full); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStreamChunk(nil, key, 0, true, full); !errors.Is(err, ErrStreamChunk) {
		t.Errorf("flag flipped: %v", err)
	}
	if _, err := OpenStreamChunk(nil, key, 1, false, full); !errors.Is(err, ErrStreamChunk) {
		t.Errorf("counter changed: %v", err)
	}
	if _, err := OpenStreamChunk(nil, key, 0, false, full[:100]); !errors.Is(err, ErrStreamTruncated) {
		t.Errorf("short non-last chunk: %v", err)
	}
	if _, err := OpenStreamChunk(nil, key, 0, true, append(bytes.Clone(full), 0)); !errors.Is(err, ErrStreamChunk) {
		t.Errorf("oversized chunk: %v", err)
	}
	if _, err := SealStreamChunk(nil, key, 0, false, []byte{1}); !errors.Is(err, ErrStreamSize) {
		t.Errorf("short non-last seal: %v", err)
	}
	empty, err := SealStreamChunk(nil, key, 0, true, nil)
	if err != nil || len(empty) != StreamTagSize {
		t.Fatalf("empty stream: %d bytes, %v", len(empty), err)
	}
	if _, err := SealStreamChunk(nil, key, 1, true, nil); !errors.Is(err, ErrStreamSize) {
		t.Errorf("empty last chunk after others: %v", err)
	}
}

// The constant memory claim: the reader and writer hold one chunk whatever the size.
func TestStreamAllocsPerChunk(t *testing.T) {
	key := streamKey()
	buf := make([]byte, 32<<10)
	allocs := func(chunks int) float64 {
		sealed := seal(t, key, streamPlain(chunks*StreamChunkSize))
		return testing.AllocsPerRun(3, func() {
			r := NewStreamReader(bytes.NewReader(sealed), key)
			for {
				if _, err := r.Read(buf); err != nil {
					break
				}
			}
		})
	}
	if a2, a16 := allocs(2), allocs(16); a16 != a2 {
		t.Errorf("opening 2 chunks allocated %v times, 16 chunks %v: allocations grow with the size", a2, a16)
	}
}

type streamVector struct {
	Name      string   `json:"name"`
	Key       string   `json:"key"`
	PlainSize int      `json:"plain_size"`
	Sealed    string   `json:"sealed,omitempty"` // hex, for small vectors
	Nonces    []string `json:"nonces"`           // every chunk's 12-byte nonce, hex
	Tags      []string `json:"tags"`             // every chunk's 16-byte tag, hex
	Digest    string   `json:"digest"`           // SHA-256 of the sealed stream, hex
	SealedLen int64    `json:"sealed_size"`
}

type streamVectorFile struct {
	ChunkSize int            `json:"chunk_size"`
	TagSize   int            `json:"tag_size"`
	Plaintext string         `json:"plaintext"`
	Vectors   []streamVector `json:"vectors"`
}

func makeStreamVectors(t *testing.T) []byte {
	key := streamKey()
	f := streamVectorFile{ChunkSize: StreamChunkSize, TagSize: StreamTagSize,
		Plaintext: "byte i of the plaintext is i mod 251"}
	names := map[int]string{0: "empty", 1: "one byte", 100: "100 bytes", StreamChunkSize: "one full chunk",
		StreamChunkSize + 1: "one chunk and one byte", 2 * StreamChunkSize: "two full chunks",
		2*StreamChunkSize + 7: "two chunks and 7 bytes"}
	for _, n := range []int{0, 1, 100, StreamChunkSize, StreamChunkSize + 1, 2 * StreamChunkSize, 2*StreamChunkSize + 7} {
		sealed := seal(t, key, streamPlain(n))
		v := streamVector{Name: names[n], Key: hex.EncodeToString(key[:]), PlainSize: n, SealedLen: int64(len(sealed))}
		if n <= 100 {
			v.Sealed = hex.EncodeToString(sealed)
		}
		for i, off := 0, 0; off < len(sealed); i, off = i+1, off+StreamSealedChunkSize {
			end := min(len(sealed), off+StreamSealedChunkSize)
			var nonce [12]byte
			streamNonce(&nonce, uint64(i), end == len(sealed))
			v.Nonces = append(v.Nonces, hex.EncodeToString(nonce[:]))
			v.Tags = append(v.Tags, hex.EncodeToString(sealed[end-StreamTagSize:end]))
		}
		d := sha256.Sum256(sealed)
		v.Digest = hex.EncodeToString(d[:])
		f.Vectors = append(f.Vectors, v)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestStreamVectors(t *testing.T) {
	got := makeStreamVectors(t)
	if *updateVectors {
		if err := os.WriteFile(streamVectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(streamVectorsPath)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./ratchet -run TestStreamVectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the code produces; if the format changed on purpose, update STREAM.md and run\n\tgo test ./ratchet -run TestStreamVectors -update", streamVectorsPath)
	}
}

// TestStreamVectorsFollowSpec rebuilds every vector from STREAM.md with the standard
// ChaCha20-Poly1305 alone: nonce = 11-byte big-endian counter ‖ last flag.
func TestStreamVectorsFollowSpec(t *testing.T) {
	raw, err := os.ReadFile(streamVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f streamVectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	// STREAM.md §2 and §5, not the file: 64 KiB chunks, 16-byte tags, the key 0x00…0x1f.
	if f.ChunkSize != 65536 || f.TagSize != 16 {
		t.Fatalf("the file says chunks of %d bytes and tags of %d, STREAM.md 65536 and 16", f.ChunkSize, f.TagSize)
	}
	var sizes []int
	for _, v := range f.Vectors {
		sizes = append(sizes, v.PlainSize)
		key, _ := hex.DecodeString(v.Key)
		for i, b := range key {
			if b != byte(i) || len(key) != 32 {
				t.Fatalf("%s: key %x, STREAM.md §5 says the bytes 0x00…0x1f", v.Name, key)
			}
		}
		aead, err := chacha20poly1305.New(key)
		if err != nil {
			t.Fatal(err)
		}
		plain := streamPlain(v.PlainSize)
		var sealed []byte
		var tags, nonces []string
		for i := 0; ; i++ {
			start := i * f.ChunkSize
			end := min(len(plain), start+f.ChunkSize)
			last := end == len(plain)
			nonce := make([]byte, 12)
			binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
			if last {
				nonce[11] = 1
			}
			c := aead.Seal(nil, nonce, plain[start:end], nil)
			nonces = append(nonces, hex.EncodeToString(nonce))
			tags = append(tags, hex.EncodeToString(c[len(c)-f.TagSize:]))
			sealed = append(sealed, c...)
			if last {
				break
			}
		}
		d := sha256.Sum256(sealed)
		if hex.EncodeToString(d[:]) != v.Digest || int64(len(sealed)) != v.SealedLen {
			t.Errorf("%s: the spec's construction gives digest %x (%d bytes), the vector %s (%d)", v.Name, d, len(sealed), v.Digest, v.SealedLen)
		}
		if v.Sealed != "" && hex.EncodeToString(sealed) != v.Sealed {
			t.Errorf("%s: sealed bytes differ from the spec's construction", v.Name)
		}
		if !slices.Equal(tags, v.Tags) {
			t.Errorf("%s: the spec's construction gives the tags %q, the vector %q", v.Name, tags, v.Tags)
		}
		if !slices.Equal(nonces, v.Nonces) {
			t.Errorf("%s: the spec's construction gives the nonces %q, the vector %q", v.Name, nonces, v.Nonces)
		}
		if v.PlainSize <= 100 && v.Sealed == "" {
			t.Errorf("%s: STREAM.md §5 says a vector of at most 100 plaintext bytes holds its sealed bytes", v.Name)
		}
	}
	if want := []int{0, 1, 100, 65536, 65537, 131072, 131079}; !slices.Equal(sizes, want) {
		t.Errorf("the vectors have the plaintext sizes %v, STREAM.md §5 lists %v", sizes, want)
	}
}

// The rows of STREAM.md §3's error table that the tests above do not cover.
func TestStreamErrorTable(t *testing.T) {
	key := streamKey()
	full, err := SealStreamChunk(nil, key, 0, false, streamPlain(StreamChunkSize))
	if err != nil {
		t.Fatal(err)
	}
	// An empty last chunk after a full one, sealed the way the writer never does.
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		t.Fatal(err)
	}
	var nonce [12]byte
	streamNonce(&nonce, 1, true)
	emptyLast := aead.Seal(nil, nonce[:], nil, nil)
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err = open(key, slices.Concat(full, emptyLast))
	check("reader: empty last chunk after a full one", err, ErrStreamChunk)
	for _, n := range []int{1, 15} {
		_, err = open(key, slices.Concat(full, emptyLast[:n]))
		check(fmt.Sprintf("reader: %d bytes after a full chunk", n), err, ErrStreamTruncated)
	}
	// A full chunk sealed as last, then 1 to 16 bytes: the chunk is judged first (it
	// opens only as last), so ErrStreamTrailing, not the rows of the piece after it.
	fullLast, err := SealStreamChunk(nil, key, 0, true, streamPlain(StreamChunkSize))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 15, 16, 17} {
		_, err = open(key, slices.Concat(fullLast, emptyLast[:min(n, len(emptyLast))], make([]byte, max(0, n-len(emptyLast)))))
		check(fmt.Sprintf("reader: %d bytes after a full chunk sealed as last", n), err, ErrStreamTrailing)
	}
	// A short final piece is opened with the flag set only: never retried as not last.
	_, err = open(key, full[:StreamSealedChunkSize-1])
	check("reader: a full non-last chunk less its last byte", err, ErrStreamChunk)
	_, err = OpenStreamChunk(nil, key, 1, true, emptyLast)
	check("OpenStreamChunk: empty last chunk 1", err, ErrStreamChunk)
	_, err = OpenStreamChunk(nil, key, 0, true, emptyLast[:15])
	check("OpenStreamChunk: 15 bytes", err, ErrStreamChunk)
	_, err = OpenStreamChunk(nil, key, maxStreamChunks, true, append(bytes.Clone(emptyLast), 0))
	check("OpenStreamChunk: chunk number beyond any int64 size", err, ErrStreamSize)
	_, err = SealStreamChunk(nil, key, 0, true, streamPlain(StreamChunkSize+1))
	check("SealStreamChunk: 65537 bytes", err, ErrStreamSize)
	if n, err := StreamPlainSize(StreamSealedChunkSize + 17); n != StreamChunkSize+1 || err != nil {
		t.Errorf("StreamPlainSize(65552 + 17) = %d, %v", n, err)
	}
	if n, err := StreamPlainSize(StreamTagSize); n != 0 || err != nil {
		t.Errorf("StreamPlainSize(16) = %d, %v", n, err)
	}
}

// STREAM.md §2–§3: a stream has at most ⌊(2⁶³ − 1) / 65552⌋ chunks (the most full sealed
// chunks an int64 holds), and the two size functions agree on it at the top of the
// range, where n + 65535 no longer fits an int64.
func TestStreamSizeLimits(t *testing.T) {
	const m = int64(math.MaxInt64 / 65552) // STREAM.md §2, not maxStreamChunks
	if maxStreamChunks != m {
		t.Fatalf("maxStreamChunks %d, STREAM.md §2 says %d", maxStreamChunks, m)
	}
	for _, n := range []int64{math.MaxInt64, math.MaxInt64 - 65534, math.MaxInt64 - 65535, m*65536 + 1} {
		if s, err := StreamSealedSize(n); !errors.Is(err, ErrStreamSize) {
			t.Errorf("StreamSealedSize(%d) = %d, %v; want ErrStreamSize (more than %d chunks)", n, s, err, m)
		}
	}
	if s, err := StreamSealedSize(m * 65536); s != m*65552 || err != nil {
		t.Errorf("StreamSealedSize(%d chunks of 65536) = %d, %v; want %d", m, s, err, m*65552)
	}
	if p, err := StreamPlainSize(m * 65552); p != m*65536 || err != nil {
		t.Errorf("StreamPlainSize(%d full chunks) = %d, %v", m, p, err)
	}
	// One more (short) chunk still fits an int64 (2⁶³ − 1 = m × 65552 + 32767), but its
	// number is m, which OpenStreamChunk refuses: no stream has this size.
	for _, n := range []int64{math.MaxInt64, m*65552 + 17} {
		if p, err := StreamPlainSize(n); !errors.Is(err, ErrStreamSize) {
			t.Errorf("StreamPlainSize(%d) = %d, %v; want ErrStreamSize (chunk number %d)", n, p, err, m)
		}
	}
}

// No entry point seals or opens a chunk numbered M or more (STREAM.md §2: at most M
// chunks): the chunk functions refuse the number, and the streaming writer and reader
// refuse to go past it. Reaching M for real would take 8 EiB, so the stream's counter
// is set just below it.
func TestStreamRefusesMoreThanMChunks(t *testing.T) {
	var key [StreamKeySize]byte
	full := make([]byte, StreamChunkSize)
	if _, err := SealStreamChunk(nil, &key, maxStreamChunks, true, []byte("x")); !errors.Is(err, ErrStreamSize) {
		t.Fatalf("SealStreamChunk numbered M: %v, want ErrStreamSize", err)
	}
	if _, err := SealStreamChunk(nil, &key, maxStreamChunks-1, true, []byte("x")); err != nil {
		t.Fatalf("SealStreamChunk numbered M-1: %v", err)
	}
	sealed, _ := SealStreamChunk(nil, &key, maxStreamChunks-1, false, full)
	if _, err := OpenStreamChunk(nil, &key, maxStreamChunks, false, sealed); !errors.Is(err, ErrStreamSize) {
		t.Fatalf("OpenStreamChunk numbered M: %v, want ErrStreamSize", err)
	}

	var out bytes.Buffer
	w := NewStreamWriter(&out, &key)
	w.i = maxStreamChunks - 1 // chunk M-1 is the last there may be
	if _, err := w.Write(full); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("bytes for chunk M")); err != nil { // buffered: chunk M-1 goes out
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrStreamSize) { // chunk M would go out
		t.Fatalf("closing with chunk M to seal: %v, want ErrStreamSize", err)
	}

	// Chunks M-1 (not last) and M, as a stream whose reader is at chunk M-1.
	last, _ := SealStreamChunk(nil, &key, maxStreamChunks-1, true, []byte("x"))
	r := NewStreamReader(bytes.NewReader(append(append([]byte(nil), sealed...), last...)), &key)
	r.i = maxStreamChunks - 1
	if _, err := io.ReadAll(r); !errors.Is(err, ErrStreamSize) {
		t.Fatalf("reading past chunk M-1: %v, want ErrStreamSize", err)
	}
}
