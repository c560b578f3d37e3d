package relay

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// Binary blob messages (PROTOCOL.md "Blobs", "Binary chunk messages"): the bulk of an
// attachment's bytes travel in WebSocket binary messages with a small fixed header
// instead of base64 in JSON. A message carries a run of up to BlobRunChunks
// consecutive chunks, so a 100 MiB blob is 400 messages, not 3,200 JSON frames.

// Binary message kinds: the first byte of a binary message.
const (
	BlobMsgPut   = 0x01 // client → relay: a run of chunks of an upload
	BlobMsgChunk = 0x02 // relay → client: the answer to a blob_get with count
)

const (
	// BlobRunChunks is the most chunks one binary message carries (and a blob_get's
	// largest count).
	BlobRunChunks = 8
	// BlobRunMax is the most data bytes one binary message carries: 256 KiB.
	BlobRunMax = BlobRunChunks * BlobChunkSize
	// BlobPutHeaderSize is the size of a blob put message's header: kind (1), request
	// id (8), blob id (16), index (8).
	BlobPutHeaderSize = 1 + 8 + BlobIDLen/2 + 8
	// BlobChunkHeaderSize is the size of a blob chunk message's header: kind (1),
	// request id (8).
	BlobChunkHeaderSize = 1 + 8
	// MaxBlobMessageSize is the largest binary message either side sends.
	MaxBlobMessageSize = BlobPutHeaderSize + BlobRunMax
	// maxBlobIndex bounds a chunk index so that its byte offset fits an int64.
	maxBlobIndex = (1<<63 - 1) / BlobChunkSize
)

// BlobPutMsg is a decoded blob put message: Data is the blob's bytes from chunk Index
// on (a view into the message).
type BlobPutMsg struct {
	ID     uint64
	BlobID string
	Index  int64
	Data   []byte
}

// AppendBlobPutHeader appends the header of a blob put message; the caller appends
// the data (1 to BlobRunMax bytes). blobID must be a valid blob id (ValidBlobID).
func AppendBlobPutHeader(b []byte, id uint64, blobID string, index int64) []byte {
	b = append(b, BlobMsgPut)
	b = binary.BigEndian.AppendUint64(b, id)
	var raw [BlobIDLen / 2]byte
	hex.Decode(raw[:], []byte(blobID))
	b = append(b, raw[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(index))
}

// AppendBlobChunkHeader appends the header of a blob chunk message; the caller
// appends the data (0 to BlobRunMax bytes).
func AppendBlobChunkHeader(b []byte, id uint64) []byte {
	b = append(b, BlobMsgChunk)
	return binary.BigEndian.AppendUint64(b, id)
}

// DecodeBlobPutMsg parses a blob put message. It never panics; a refusal is a
// *FrameError (bad_frame: not a put message or cut short; bad_field: a zero id, an
// index past any blob, no data or more than BlobRunMax bytes). The returned message's
// ID is set whenever the header was long enough to hold it, so the caller can answer.
func DecodeBlobPutMsg(b []byte) (BlobPutMsg, error) {
	if len(b) == 0 || b[0] != BlobMsgPut {
		return BlobPutMsg{}, &FrameError{Code: CodeBadFrame, Reason: "binary messages from a client are blob put messages: kind 0x01"}
	}
	if len(b) < BlobPutHeaderSize {
		return BlobPutMsg{}, &FrameError{Code: CodeBadFrame, Reason: "blob put message shorter than its " + strconv.Itoa(BlobPutHeaderSize) + "-byte header"}
	}
	m := BlobPutMsg{ID: binary.BigEndian.Uint64(b[1:9])}
	m.BlobID = hex.EncodeToString(b[9 : 9+BlobIDLen/2])
	idx := binary.BigEndian.Uint64(b[9+BlobIDLen/2 : BlobPutHeaderSize])
	m.Data = b[BlobPutHeaderSize:]
	switch {
	case m.ID == 0:
		return m, &FrameError{Code: CodeBadField, Field: "id", Reason: "a request id is not 0"}
	case idx > maxBlobIndex:
		return m, &FrameError{Code: CodeBadField, Field: "index", Reason: "index past any blob"}
	case len(m.Data) == 0:
		return m, &FrameError{Code: CodeBadField, Field: "data", Reason: "empty chunk"}
	case len(m.Data) > BlobRunMax:
		return m, &FrameError{Code: CodeFrameTooLarge, Field: "data", Reason: "more than " + strconv.Itoa(BlobRunMax) + " bytes of chunks"}
	}
	m.Index = int64(idx)
	return m, nil
}

// DecodeBlobChunkMsg parses a blob chunk message from the relay: the request id and
// the data (a view into b). It never panics; a refusal is a *FrameError.
func DecodeBlobChunkMsg(b []byte) (id uint64, data []byte, err error) {
	n := min(len(b), BlobChunkHeaderSize)
	if id, err = DecodeBlobChunkHeader(b[:n], len(b)-n); err != nil {
		return 0, nil, err
	}
	return id, b[n:], nil
}

// DecodeBlobChunkHeader checks the header h of a blob chunk message followed by n
// bytes of data and returns its request id (DecodeBlobChunkMsg's checks, for a reader
// that reads the header apart from the data).
func DecodeBlobChunkHeader(h []byte, n int) (uint64, error) {
	switch {
	case len(h) == 0 || h[0] != BlobMsgChunk:
		return 0, &FrameError{Code: CodeBadFrame, Reason: "binary messages from a relay are blob chunk messages: kind 0x02"}
	case len(h) < BlobChunkHeaderSize:
		return 0, &FrameError{Code: CodeBadFrame, Reason: "blob chunk message shorter than its " + strconv.Itoa(BlobChunkHeaderSize) + "-byte header"}
	case len(h) > BlobChunkHeaderSize || n < 0:
		return 0, &FrameError{Code: CodeBadFrame, Reason: "blob chunk header of the wrong size"}
	case n > BlobRunMax:
		return 0, &FrameError{Code: CodeFrameTooLarge, Reason: "blob chunk message with more than " + strconv.Itoa(BlobRunMax) + " bytes of data"}
	}
	id := binary.BigEndian.Uint64(h[1:9])
	if id == 0 {
		return 0, &FrameError{Code: CodeBadField, Field: "id", Reason: "a request id is not 0"}
	}
	return id, nil
}
