package relay

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// The vectors of PROTOCOL.md "Binary chunk messages", in testdata/blob_messages.json
// and in the document itself.
func TestBlobMessageVectors(t *testing.T) {
	var v struct {
		Put struct {
			ID      uint64 `json:"id"`
			BlobID  string `json:"blob_id"`
			Index   int64  `json:"index"`
			Data    string `json:"data"`
			Message string `json:"message"`
		} `json:"put"`
		Chunk struct {
			ID      uint64 `json:"id"`
			Data    string `json:"data"`
			Message string `json:"message"`
		} `json:"chunk"`
	}
	b, err := os.ReadFile("testdata/blob_messages.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	data, _ := hex.DecodeString(v.Put.Data)
	put := append(AppendBlobPutHeader(nil, v.Put.ID, v.Put.BlobID, v.Put.Index), data...)
	if got := hex.EncodeToString(put); got != v.Put.Message {
		t.Fatalf("put message %s, want %s", got, v.Put.Message)
	}
	m, err := DecodeBlobPutMsg(put)
	if err != nil || m.ID != v.Put.ID || m.BlobID != v.Put.BlobID || m.Index != v.Put.Index || !bytes.Equal(m.Data, data) {
		t.Fatalf("decoded %+v, %v", m, err)
	}
	chunk := append(AppendBlobChunkHeader(nil, v.Chunk.ID), data...)
	if got := hex.EncodeToString(chunk); got != v.Chunk.Message {
		t.Fatalf("chunk message %s, want %s", got, v.Chunk.Message)
	}
	id, d, err := DecodeBlobChunkMsg(chunk)
	if err != nil || id != v.Chunk.ID || !bytes.Equal(d, data) {
		t.Fatalf("decoded %d %x, %v", id, d, err)
	}
	// PROTOCOL.md shows the same bytes, fields apart.
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"01 " + hex.EncodeToString(put[1:9]) + " " + hex.EncodeToString(put[9:25]) + " " + hex.EncodeToString(put[25:33]) + " " + hex.EncodeToString(put[33:]),
		"02 " + hex.EncodeToString(chunk[1:9]) + " " + hex.EncodeToString(chunk[9:]),
	} {
		if !strings.Contains(string(doc), "\n"+line+"\n") {
			t.Errorf("PROTOCOL.md lacks the vector line %q", line)
		}
	}
	if BlobPutHeaderSize != 33 || BlobChunkHeaderSize != 9 || BlobRunMax != 262144 || MaxBlobMessageSize != 262177 {
		t.Fatal("the header sizes differ from PROTOCOL.md")
	}
}

func TestBlobMessageRefusals(t *testing.T) {
	good := append(AppendBlobPutHeader(nil, 7, "0123456789abcdef0123456789abcdef", 3), 1, 2, 3)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, tc := range map[string]struct {
		b           []byte
		code, field string
	}{
		"empty":        {nil, CodeBadFrame, ""},
		"chunk kind":   {mut(func(b []byte) []byte { b[0] = BlobMsgChunk; return b }), CodeBadFrame, ""},
		"short header": {good[:BlobPutHeaderSize-1], CodeBadFrame, ""},
		"no data":      {good[:BlobPutHeaderSize], CodeBadField, "data"},
		"id 0":         {mut(func(b []byte) []byte { clear(b[1:9]); return b }), CodeBadField, "id"},
		"index":        {mut(func(b []byte) []byte { b[25] = 0x80; return b }), CodeBadField, "index"},
		"too long":     {append(AppendBlobPutHeader(nil, 7, "0123456789abcdef0123456789abcdef", 3), make([]byte, BlobRunMax+1)...), CodeFrameTooLarge, "data"},
	} {
		_, err := DecodeBlobPutMsg(tc.b)
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != tc.code || fe.Field != tc.field {
			t.Errorf("%s: %v, want %s %q", name, err, tc.code, tc.field)
		}
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"put kind":   {BlobMsgPut, 0, 0, 0, 0, 0, 0, 0, 1},
		"short":      {BlobMsgChunk, 0, 0, 0, 0, 0, 0, 1},
		"id 0":       {BlobMsgChunk, 0, 0, 0, 0, 0, 0, 0, 0},
		"over a run": append(AppendBlobChunkHeader(nil, 1), make([]byte, BlobRunMax+1)...),
	} {
		var fe *FrameError
		if _, _, err := DecodeBlobChunkMsg(b); !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	if _, _, err := DecodeBlobChunkMsg(AppendBlobChunkHeader(nil, 1)); err != nil {
		t.Errorf("an empty chunk message: %v", err)
	}
}

// FuzzBlobMessages feeds both binary decoders arbitrary bytes: they never panic, refuse
// with a *FrameError, and what they accept encodes back to the same bytes.
func FuzzBlobMessages(f *testing.F) {
	f.Add(append(AppendBlobPutHeader(nil, 31, "6f1c2e3d4a5b69788796a5b4c3d2e1f0", 8), 0xde, 0xad, 0xbe, 0xef))
	f.Add(append(AppendBlobChunkHeader(nil, 34), 0xde, 0xad, 0xbe, 0xef))
	f.Add([]byte{BlobMsgPut})
	f.Add([]byte{BlobMsgChunk, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fe *FrameError
		if m, err := DecodeBlobPutMsg(b); err == nil {
			if !ValidBlobID(m.BlobID) || m.ID == 0 || m.Index < 0 || len(m.Data) == 0 || len(m.Data) > BlobRunMax {
				t.Fatalf("accepted %+v", m)
			}
			if again := append(AppendBlobPutHeader(nil, m.ID, m.BlobID, m.Index), m.Data...); !bytes.Equal(again, b) {
				t.Fatalf("put message %x encodes back as %x", b, again)
			}
		} else if !errors.As(err, &fe) {
			t.Fatalf("untyped refusal %v", err)
		}
		if id, data, err := DecodeBlobChunkMsg(b); err == nil {
			if id == 0 || len(data) > BlobRunMax {
				t.Fatalf("accepted %d, %d bytes", id, len(data))
			}
			if again := append(AppendBlobChunkHeader(nil, id), data...); !bytes.Equal(again, b) {
				t.Fatalf("chunk message %x encodes back as %x", b, again)
			}
		} else if !errors.As(err, &fe) {
			t.Fatalf("untyped refusal %v", err)
		}
	})
}
