package chat

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"pfschat/ratchet"
)

// FuzzBlobOpener feeds the download's opener (its bytes come from the relay, which is
// not trusted) a sealed stream, altered, cut or of another claimed size, in pieces of
// any size. It never panics, refuses more bytes than the stream has with
// ErrAttachmentDigest, writes only authenticated plaintext (the file is always a
// prefix of the real plaintext), and opens an unaltered stream whole.
func FuzzBlobOpener(f *testing.F) {
	f.Add(uint32(5), []byte{}, []byte{}, uint16(0), int8(0))
	f.Add(uint32(0), []byte{}, []byte{3}, uint16(0), int8(0))
	f.Add(uint32(ratchet.StreamChunkSize), []byte{}, []byte{200, 1, 7}, uint16(0), int8(0))
	f.Add(uint32(ratchet.StreamChunkSize+10), []byte{}, []byte{255}, uint16(0), int8(0))
	f.Add(uint32(2*ratchet.StreamChunkSize+1), []byte{0, 1, 0, 0x41}, []byte{9}, uint16(0), int8(0))
	f.Add(uint32(ratchet.StreamChunkSize+10), []byte{}, []byte{255}, uint16(3), int8(0))
	f.Add(uint32(ratchet.StreamChunkSize+10), []byte{}, []byte{255}, uint16(0), int8(-11))
	f.Add(uint32(100), []byte{}, []byte{}, uint16(0), int8(1))
	var key [ratchet.StreamKeySize]byte
	key[0] = 7
	f.Fuzz(func(t *testing.T, size uint32, edits, cuts []byte, cut uint16, claimDelta int8) {
		size %= 3*ratchet.StreamChunkSize + 1
		plain := make([]byte, size)
		for i := range plain {
			plain[i] = byte(i*7 + i>>8)
		}
		var sealed []byte
		for i := uint64(0); ; i++ {
			from := int(i) * ratchet.StreamChunkSize
			to := min(from+ratchet.StreamChunkSize, len(plain))
			last := to == len(plain)
			var err error
			if sealed, err = ratchet.SealStreamChunk(sealed, &key, i, last, plain[from:to]); err != nil {
				t.Fatal(err)
			}
			if last {
				break
			}
		}
		altered := false
		for len(edits) >= 4 {
			pos := (int(edits[0])<<16 | int(edits[1])<<8 | int(edits[2])) % len(sealed)
			if edits[3] != 0 {
				sealed[pos] ^= edits[3]
				altered = true
			}
			edits = edits[4:]
		}
		if c := int(cut) % (len(sealed) + 1); c > 0 {
			sealed, altered = sealed[:len(sealed)-c], true
		}
		claimed := int64(size) + int64(claimDelta)
		sealedSize, err := ratchet.StreamSealedSize(claimed)
		if err != nil {
			return
		}
		file, err := os.Create(filepath.Join(t.TempDir(), "part"))
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		o := newBlobOpener(key[:], sealedSize, file)
		var werr error
		for rest, k := sealed, 0; len(rest) > 0 && werr == nil; k++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, (int(cuts[k%len(cuts)])+1)*613)
			}
			_, werr = o.Write(rest[:n])
			rest = rest[n:]
		}
		if werr != nil && !errors.Is(werr, ErrAttachmentDigest) {
			t.Fatalf("write: untyped error %v", werr)
		}
		if werr != nil && int64(len(sealed)) <= sealedSize {
			t.Fatalf("write refused a stream within its size: %v", werr)
		}
		if err := o.flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		got, err := os.ReadFile(file.Name())
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != o.written || !bytes.HasPrefix(plain, got) {
			t.Fatalf("wrote %d bytes (counted %d) that are not a prefix of the plaintext", len(got), o.written)
		}
		if !altered && claimed == int64(size) && (werr != nil || o.openErr != nil || o.pos != sealedSize || !bytes.Equal(got, plain)) {
			t.Fatalf("an unaltered stream of %d bytes: write %v, open %v, pos %d of %d, %d bytes written", size, werr, o.openErr, o.pos, sealedSize, len(got))
		}
	})
}
