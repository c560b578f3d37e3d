package storage

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// The vector relay/PROTOCOL.md gives for blob_commit's crc32c.
func TestBlobCRC32CVector(t *testing.T) {
	crc := UpdateBlobCRC32C(0, []byte("1234"))
	crc = UpdateBlobCRC32C(crc, []byte("56789")) // extended piece by piece, as AppendBlob does
	if crc != 0xE3069283 {
		t.Fatalf("CRC-32C of 123456789: %08x, want e3069283", crc)
	}
	if got := base64.StdEncoding.EncodeToString(BlobCRC32C(crc)); got != "4waSgw==" {
		t.Fatalf("as sent: %s, want 4waSgw==", got)
	}
}

func TestBlobCheckMatches(t *testing.T) {
	data := []byte("123456789")
	crc := UpdateBlobCRC32C(0, data)
	sum := sha256.Sum256(data)
	wrong := sha256.Sum256(data[1:])
	for _, c := range []struct {
		name  string
		check BlobCheck
		sha   []byte
		want  bool
	}{
		{"crc32c", BlobCheck{CRC32C: BlobCRC32C(crc)}, nil, true},
		{"wrong crc32c", BlobCheck{CRC32C: BlobCRC32C(crc + 1)}, sum[:], false},
		{"short crc32c", BlobCheck{CRC32C: BlobCRC32C(crc)[:3]}, nil, false},
		{"digest", BlobCheck{SHA256: sum[:]}, sum[:], true},
		{"wrong digest", BlobCheck{SHA256: wrong[:]}, sum[:], false},
		{"digest not computed", BlobCheck{SHA256: sum[:]}, nil, false},
		{"both", BlobCheck{CRC32C: BlobCRC32C(crc), SHA256: sum[:]}, sum[:], false},
		{"neither", BlobCheck{}, sum[:], false},
	} {
		if got := c.check.Matches(crc, c.sha); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
