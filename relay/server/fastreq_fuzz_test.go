package server

import (
	"bytes"
	"io"
	"slices"
	"testing"
	"testing/iotest"

	"pfschat/relay"
)

// FuzzDecodeFastReqs: the read loop's fast paths for a client's send and ack frames
// (pooled requests, their buffers reused from the frame before) accept only what
// relay.DecodeFrame accepts, with its values, whatever the request they reuse held.
func FuzzDecodeFastReqs(f *testing.F) {
	send := relay.AppendSend(nil, &relay.Frame{Type: relay.TypeSend, ID: 3, To: "bob", ClientID: "c1", TTL: 60, Body: []byte("hello")})
	ack := relay.AppendAck(nil, 4, []int64{1, 2, 3})
	f.Add(send, ack)
	f.Add(ack, send)
	f.Add(relay.AppendSend(nil, &relay.Frame{Type: relay.TypeSend, ID: 1, To: "a", ClientID: "x", Body: bytes.Repeat([]byte{7}, 300)}), send)
	f.Add([]byte(`{"type":"send","id":1,"to":"bob","client_id":"c","body":"aGk=","body":"aGk="}`), []byte(`{"type":"ack","id":2,"ids":[]}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, frame := range [][]byte{a, b, a} {
			if r, to, clientID, ttl, ok := decodeSendReq(frame); ok {
				fr, err := relay.DecodeFrame(frame)
				if err != nil {
					t.Fatalf("send fast path accepted %q, which DecodeFrame refuses: %v", frame, err)
				}
				if fr.Type != relay.TypeSend || r.reqID != fr.ID || string(to) != fr.To || string(clientID) != fr.ClientID ||
					ttl != fr.TTL || !bytes.Equal(r.msg.Body, fr.Body) {
					t.Fatalf("send fast path: id %d to %q client_id %q ttl %d body %x\nDecodeFrame %+v", r.reqID, to, clientID, ttl, r.msg.Body, fr)
				}
				r.release()
			}
			if q, ok := decodeAckReq(frame); ok {
				fr, err := relay.DecodeFrame(frame)
				if err != nil {
					t.Fatalf("ack fast path accepted %q, which DecodeFrame refuses: %v", frame, err)
				}
				if fr.Type != relay.TypeAck || q.reqID != fr.ID || !slices.Equal(q.ids, fr.IDs) && len(q.ids)+len(fr.IDs) > 0 {
					t.Fatalf("ack fast path: id %d ids %v\nDecodeFrame %+v", q.reqID, q.ids, fr)
				}
				q.release()
			}
		}
	})
}

// FuzzReadBinary: the relay's readers of a binary message return one within
// relay.MaxBlobMessageSize whole (readBinary: whatever buffers the messages before
// left in the free lists; discardBinary: its first 9 bytes), however the reads come,
// and report one over it as too big instead of returning it.
func FuzzReadBinary(f *testing.F) {
	put := append(relay.AppendBlobPutHeader(nil, 1, "0123456789abcdef0123456789abcdef", 0), bytes.Repeat([]byte("d"), 100)...)
	f.Add(put, false, uint16(0))
	f.Add(put, true, uint16(10))
	f.Add([]byte{}, false, uint16(0))
	f.Add([]byte{1, 2, 3}, true, uint16(0))
	f.Add(bytes.Repeat([]byte{1}, 5000), false, uint16(300))
	f.Add([]byte{1}, false, uint16(relay.MaxBlobMessageSize/5+1))
	f.Fuzz(func(t *testing.T, msg []byte, oneByte bool, pad uint16) {
		// pad grows the message past the first steps' buffers, and past the limit,
		// without a fuzzer input that large: up to 320 KiB of a byte pattern.
		msg = append(msg, bytes.Repeat([]byte{0xa5}, 5*int(pad))...)
		reader := func() io.Reader {
			var r io.Reader = bytes.NewReader(msg)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			return r
		}
		for range 2 {
			data, tooBig, held, err := readBinary(reader())
			if len(msg) <= relay.MaxBlobMessageSize {
				if err != nil || tooBig || !bytes.Equal(data, msg) {
					t.Fatalf("readBinary, %d bytes: got %d bytes, tooBig %v, %v", len(msg), len(data), tooBig, err)
				}
			} else if !tooBig || !bytes.Equal(data, msg[:9]) || err != nil {
				t.Fatalf("readBinary, %d bytes over the limit: got %d bytes (want its first 9, for the answer's id), tooBig %v, %v", len(msg), len(data), tooBig, err)
			}
			held.release()
		}
		head, tooBig, err := discardBinary(reader())
		if len(msg) <= relay.MaxBlobMessageSize {
			if err != nil || tooBig || !bytes.Equal(head, msg[:min(9, len(msg))]) {
				t.Fatalf("discardBinary, %d bytes: got head %x, tooBig %v, %v", len(msg), head, tooBig, err)
			}
		} else if !tooBig || !bytes.Equal(head, msg[:9]) || err != nil {
			t.Fatalf("discardBinary, %d bytes over the limit: got head %x, tooBig %v, %v", len(msg), head, tooBig, err)
		}
	})
}
