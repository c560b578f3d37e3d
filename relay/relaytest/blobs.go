package relaytest

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/storage"
)

// UploadBlob puts data as a blob for recipients through c, a logged-in client, and
// commits it, returning the blob's id and capability.
func UploadBlob(t testing.TB, c *client.Client, data []byte, recipients int) (string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := c.BlobBegin(ctx, int64(len(data)), recipients)
	if err != nil {
		t.Fatal(err)
	}
	err = c.BlobPut(ctx, id, int64(len(data)), 0, 0, func(i int64, buf []byte) error {
		copy(buf, data[i*relay.BlobChunkSize:])
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(data)
	capab, err := c.BlobCommit(ctx, id, digest[:], storage.UpdateBlobCRC32C(0, data))
	if err != nil {
		t.Fatal(err)
	}
	return id, capab
}
