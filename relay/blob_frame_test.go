package relay

import (
	"errors"
	"testing"
)

func TestBlobFramesStrict(t *testing.T) {
	const id = `"blob_id":"0123456789abcdef0123456789abcdef"`
	const cap32 = `"capability":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`
	ok := []string{
		`{"type":"blob_begin","id":1,"size":32769,"chunks":2,"recipients":1}`,
		`{"type":"blob_begin","id":1,"recipients":3}`,
		`{"type":"blob_resume","id":1,` + id + `}`,
		`{"type":"blob_put","id":1,` + id + `,"index":0,"data":"AQID"}`,
		`{"type":"blob_commit","id":1,` + id + `,"digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"type":"blob_commit","id":1,` + id + `,"crc32c":"3q2+7w=="}`,
		`{"type":"blob_get","id":1,` + id + `,` + cap32 + `,"index":7}`,
		`{"type":"blob_done","id":1,` + id + `,` + cap32 + `}`,
	}
	for _, s := range ok {
		if _, err := DecodeFrame([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		`{"type":"blob_begin","id":1,"size":32769,"chunks":1,"recipients":1}`:                                                  "chunks",
		`{"type":"blob_begin","id":1,"size":-1,"recipients":1}`:                                                                "size",
		`{"type":"blob_begin","id":1,"size":1,"chunks":1}`:                                                                     "recipients",
		`{"type":"blob_begin","id":1,"size":1,"chunks":1,"recipients":1025}`:                                                   "recipients",
		`{"type":"blob_resume","id":1,"blob_id":"0123456789ABCDEF0123456789abcdef"}`:                                           "blob_id",
		`{"type":"blob_resume","id":1,"blob_id":"../../etc/passwd"}`:                                                           "blob_id",
		`{"type":"blob_put","id":1,` + id + `,"index":-1,"data":"AQID"}`:                                                       "index",
		`{"type":"blob_put","id":1,` + id + `}`:                                                                                "data",
		`{"type":"blob_commit","id":1,` + id + `,"digest":"AQID"}`:                                                             "digest",
		`{"type":"blob_commit","id":1,` + id + `,"crc32c":"AQID"}`:                                                             "crc32c",
		`{"type":"blob_commit","id":1,` + id + `,"crc32c":"AQIDBAU="}`:                                                         "crc32c",
		`{"type":"blob_commit","id":1,` + id + `}`:                                                                             "crc32c",
		`{"type":"blob_commit","id":1,` + id + `,"crc32c":"3q2+7w==","digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`: "digest",
		`{"type":"blob_put","id":1,` + id + `,"crc32c":"3q2+7w==","data":"AQID"}`:                                              "crc32c",
		`{"type":"blob_get","id":1,` + id + `,"capability":"AQID"}`:                                                            "capability",
		`{"type":"blob_get","id":1,` + id + `}`:                                                                                "capability",
		`{"type":"blob_get","id":1,` + id + `,` + cap32 + `,"next":2}`:                                                         "",
		`{"type":"blob_done","id":1,` + id + `,` + cap32 + `,"data":"AQID"}`:                                                   "data",
		`{"type":"blob_put","id":1,` + id + `,"index":1,"index":2,"data":"AQID"}`:                                              "",
	}
	for s, field := range bad {
		_, err := DecodeFrame([]byte(s))
		var fe *FrameError
		if !errors.As(err, &fe) || (field != "" && fe.Field != field) {
			t.Errorf("%s: %v, want a refusal naming %q", s, err, field)
		}
	}
	// The largest chunk's frame fits the frame limit.
	big := EncodeFrame(&Frame{Type: TypeBlobPut, ID: 1 << 62, BlobID: "0123456789abcdef0123456789abcdef", Index: 1 << 40, Data: make([]byte, BlobChunkSize)})
	if len(big) > MaxFrameSize {
		t.Fatalf("a full chunk's frame is %d bytes", len(big))
	}
	if _, err := DecodeFrame(big); err != nil {
		t.Fatal(err)
	}
	over := EncodeFrame(&Frame{Type: TypeBlobPut, ID: 1, BlobID: "0123456789abcdef0123456789abcdef", Data: make([]byte, BlobChunkSize+1)})
	if _, err := DecodeFrame(over); err == nil {
		t.Fatal("a chunk over BlobChunkSize was accepted")
	}
}
