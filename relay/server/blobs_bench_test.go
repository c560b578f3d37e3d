package server_test

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// BenchmarkBlob moves 32 MiB through the relay's blob frames (no frame-rate limit):
// upload (put + commit, which checks the blob's CRC-32C) and download.
func BenchmarkBlob(b *testing.B) {
	r := relaytest.StartWith(b, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1, BlobQuotaBytes: -1}})
	alice := register(b, r, "alice")
	ac := alice.login(b, r)
	data := make([]byte, 32<<20)
	rand.Read(data)
	d := sha256.Sum256(data)
	crc := storage.UpdateBlobCRC32C(0, data)
	size := int64(len(data))
	var id string
	var capab []byte
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			var err error
			if id, err = ac.BlobBegin(b.Context(), size, 1); err != nil {
				b.Fatal(err)
			}
			if err := ac.BlobPut(b.Context(), id, size, 0, 0, func(i int64, buf []byte) error {
				copy(buf, data[i*relay.BlobChunkSize:])
				return nil
			}, nil); err != nil {
				b.Fatal(err)
			}
			if capab, err = ac.BlobCommit(b.Context(), id, d[:], crc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if err := ac.BlobGet(b.Context(), id, capab, size, 0, 0, func(i int64, data []byte) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
