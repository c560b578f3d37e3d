package relay

import (
	"encoding/base64"
	"strconv"
)

// Fast paths for the blob chunk frames (PROTOCOL.md "Blobs"), the bulk of an
// attachment's bytes: a 43 KB frame through encoding/json's reflection costs more than
// the chunk's encryption. As the message fast paths (fastframe.go), each recognises only
// the canonical layout the encoders below write and leaves anything else to the full
// decoders, which accept it with the same result (FuzzFastDecoders checks this).

const (
	blobPutPrefix   = `{"type":"blob_put","id":`
	blobChunkPrefix = `{"type":"blob_chunk","id":`
)

// AppendBlobPut encodes a blob_put frame as EncodeFrame would.
func AppendBlobPut(b []byte, id uint64, blobID string, index int64, data []byte) []byte {
	b = append(b, blobPutPrefix...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"blob_id":`...)
	b = appendJSONString(b, blobID)
	if index != 0 {
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, index, 10)
	}
	if len(data) > 0 {
		b = append(b, `,"data":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// AppendBlobChunk encodes the relay's answer to a blob_get as EncodeFrame would.
func AppendBlobChunk(b []byte, id uint64, data []byte) []byte {
	b = append(b, blobChunkPrefix...)
	b = strconv.AppendUint(b, id, 10)
	if len(data) > 0 {
		b = append(b, `,"data":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// fastDecodeBlobPut recognises {"type":"blob_put","id":N,"blob_id":S[,"index":N],"data":B}.
func fastDecodeBlobPut(b []byte) (Frame, bool) {
	s := scanner{b: b}
	f := Frame{Type: TypeBlobPut}
	var ok bool
	if !s.lit(blobPutPrefix) {
		return Frame{}, false
	}
	if f.ID, ok = s.uint(); !ok || !s.lit(`,"blob_id":`) {
		return Frame{}, false
	}
	if f.BlobID, ok = s.str(); !ok {
		return Frame{}, false
	}
	if s.lit(`,"index":`) {
		n, ok := s.uint()
		if !ok {
			return Frame{}, false
		}
		f.Index = int64(n)
	}
	if !s.lit(`,"data":`) {
		return Frame{}, false
	}
	if f.Data, ok = s.b64(); !ok || !s.lit("}") || !s.end() {
		return Frame{}, false
	}
	return f, true
}

// fastDecodeBlobChunk recognises {"type":"blob_chunk","id":N,"data":B}.
func fastDecodeBlobChunk(b []byte) (Frame, bool) {
	s := scanner{b: b}
	f := Frame{Type: TypeBlobChunk}
	var ok bool
	if !s.lit(blobChunkPrefix) {
		return Frame{}, false
	}
	if f.ID, ok = s.uint(); !ok || !s.lit(`,"data":`) {
		return Frame{}, false
	}
	if f.Data, ok = s.b64(); !ok || !s.lit("}") || !s.end() {
		return Frame{}, false
	}
	return f, true
}
