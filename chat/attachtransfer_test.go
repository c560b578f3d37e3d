package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"pfschat/ratchet"
	"pfschat/storage"
)

// sealAll is the sealed stream of plain under key, from ratchet's own writer.
func sealAll(t *testing.T, key []byte, plain []byte) []byte {
	t.Helper()
	var k [ratchet.StreamKeySize]byte
	copy(k[:], key)
	var out bytes.Buffer
	w := ratchet.NewStreamWriter(&out, &k)
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The upload's sealer hands out exactly ratchet's sealed stream (from any offset, the
// digest always of the whole), and the download's opener takes it back in pieces of
// any size, and resumes from whole chunks on disk.
func TestSealStreamAndOpener(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, ratchet.StreamKeySize)
	rand.Read(key)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, size := range []int{0, 1, ratchet.StreamChunkSize, ratchet.StreamChunkSize + 1, 9*ratchet.StreamChunkSize + 100} {
		plain := make([]byte, size)
		rand.Read(plain)
		src := filepath.Join(t.TempDir(), "src")
		if err := os.WriteFile(src, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		want := sealAll(t, key, plain)
		digest := sha256.Sum256(want)
		for _, from := range []int64{0, 1, ratchet.StreamSealedChunkSize, int64(len(want)) / 2, int64(len(want))} {
			if from > int64(len(want)) {
				continue
			}
			s, err := startSealStream(ctx, src, key, int64(size), from)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, int64(len(want))-from)
			if err := s.read(ctx, got); err != nil {
				t.Fatalf("size %d from %d: %v", size, from, err)
			}
			d, crc, err := s.result(ctx)
			if err != nil || !bytes.Equal(got, want[from:]) || !bytes.Equal(d, digest[:]) || crc != storage.UpdateBlobCRC32C(0, want) {
				t.Fatalf("size %d from %d: sealed bytes, digest or CRC-32C differ (%v)", size, from, err)
			}
		}
		// Opened in random pieces; then again after a resume from k whole chunks; each
		// time opened by Write itself and behind it, on the opening goroutine.
		chunks := int64(max(1, (size+ratchet.StreamChunkSize-1)/ratchet.StreamChunkSize))
		for _, run := range []struct {
			k      int64
			behind bool
		}{{0, false}, {chunks - 1, false}, {0, true}, {chunks - 1, true}} {
			k := run.k
			part := filepath.Join(t.TempDir(), "part")
			if err := os.WriteFile(part, plain[:k*ratchet.StreamChunkSize], 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(part, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			o := newBlobOpener(key, int64(len(want)), f)
			if err := o.resume(f, k); err != nil {
				t.Fatal(err)
			}
			if run.behind {
				o.openBehind()
			}
			rest := want[o.hashed:]
			for len(rest) > 0 {
				n := min(len(rest), 1+rng.IntN(3*ratchet.StreamSealedChunkSize))
				if _, err := o.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if err := o.flush(); err != nil || o.openErr != nil {
				t.Fatal(err, o.openErr)
			}
			f.Close()
			if o.pos != int64(len(want)) || o.hashed != o.pos || o.written != int64(size) || !bytes.Equal(o.h.Sum(nil), digest[:]) {
				t.Fatalf("size %d resumed at %d (behind %v): pos %d hashed %d written %d, digest equal %v", size, k, run.behind, o.pos, o.hashed, o.written, bytes.Equal(o.h.Sum(nil), digest[:]))
			}
			if b, _ := os.ReadFile(part); !bytes.Equal(b, plain) {
				t.Fatalf("size %d resumed at %d (behind %v): the opened file differs", size, k, run.behind)
			}
		}
	}
}

// A tampered chunk stops the writing but not the hashing: the digest then tells a
// tampered blob from a wrong key.
func TestOpenerKeepsHashingAfterABadChunk(t *testing.T) {
	for _, behind := range []bool{false, true} {
		t.Run(fmt.Sprint("behind=", behind), func(t *testing.T) { testOpenerKeepsHashing(t, behind) })
	}
}

func testOpenerKeepsHashing(t *testing.T, behind bool) {
	key := make([]byte, ratchet.StreamKeySize)
	rand.Read(key)
	plain := make([]byte, 3*ratchet.StreamChunkSize)
	sealed := sealAll(t, key, plain)
	sealed[10] ^= 1
	var out bytes.Buffer
	f, err := os.Create(filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := newBlobOpener(key, int64(len(sealed)), f)
	if behind {
		o.openBehind()
	}
	if _, err := o.Write(sealed); err != nil {
		t.Fatal(err)
	}
	if err := o.flush(); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(sealed)
	if !errors.Is(o.openErr, ratchet.ErrDecrypt) || o.written != 0 || !bytes.Equal(o.h.Sum(nil), want[:]) || out.Len() != 0 {
		t.Fatalf("open error %v, %d written, digest of all %v", o.openErr, o.written, bytes.Equal(o.h.Sum(nil), want[:]))
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Fatalf("%d bytes written after a bad first chunk", st.Size())
	}
	if _, err := o.Write([]byte{1}); err == nil {
		t.Fatal("a byte past the stream was taken")
	}
}

// A file that changed since its upload began fails the sealer (it never seals another
// file's bytes under the recorded size).
func TestSealStreamChangedFile(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, ratchet.StreamKeySize)
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, make([]byte, 1000), 0o600)
	for _, size := range []int64{999, 1001} {
		s, err := startSealStream(ctx, src, key, size, 0)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, io.LimitReader(&sealReader{s: s}, 1<<20))
		if _, _, err := s.result(ctx); err == nil {
			t.Fatalf("a 1000-byte file sealed as %d bytes", size)
		}
	}
}

type sealReader struct{ s *sealStream }

func (r *sealReader) Read(p []byte) (int, error) {
	if err := r.s.read(context.Background(), p[:1]); err != nil {
		return 0, io.EOF
	}
	return 1, nil
}

// A file that refuses the writes (its goroutine's) stops the opener with that error,
// at a later Write or at flush, and is not taken for a tampered stream.
func TestOpenerReportsAWriteError(t *testing.T) {
	key := make([]byte, ratchet.StreamKeySize)
	rand.Read(key)
	plain := make([]byte, 40*ratchet.StreamChunkSize+7) // more than the write buffers hold
	sealed := sealAll(t, key, plain)
	p := filepath.Join(t.TempDir(), "p")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := newBlobOpener(key, int64(len(sealed)), f)
	var werr error
	for rest := sealed; len(rest) > 0 && werr == nil; {
		n := min(len(rest), 8*32<<10)
		_, werr = o.Write(rest[:n])
		rest = rest[n:]
	}
	ferr := o.flush()
	if werr == nil && ferr == nil {
		t.Fatal("no error from a file that takes no writes")
	}
	for _, err := range []error{werr, ferr} {
		if err != nil && (errors.Is(err, ratchet.ErrDecrypt) || errors.Is(err, ErrAttachmentDigest)) {
			t.Fatalf("a write error reported as %v", err)
		}
	}
}
