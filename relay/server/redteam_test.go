package server_test

// Attacks on the relay by a client that knows only relay/PROTOCOL.md, spoken in raw
// frames: what a well-behaved client never sends. Each is the regression test of a
// weakness that was fixed.

import (
	"crypto/rand"
	"errors"
	"runtime"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// A logged-in account that replaces its card in a loop does not grow the relay's
// store without end: the relay remembers the name's newest storage.MaxReplacedCards
// replaced cards and forgets the older ones (PROTOCOL.md "Card lookup by ID").
func TestReplaceCardLoopKeepsBoundedHistory(t *testing.T) {
	eachStore(t, testReplaceCardLoopKeepsBoundedHistory)
}

func testReplaceCardLoopKeepsBoundedHistory(t *testing.T, bk store) {
	r := bk.Start(t)
	mallory := register(t, r, "mallory")
	rc := dialRaw(t, r)
	if f := rc.login(mallory); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	replaced := []string{mallory.card.ID()}
	const rounds = storage.MaxReplacedCards + 2
	for i := range rounds {
		_, card := newIdentity(t, "mallory")
		id := 100 + i
		if f := rc.request(map[string]any{"type": "replace_card", "id": id, "card": card.Export()}); f.Type != relay.TypeCard {
			t.Fatalf("replace_card %d: %+v", i, f)
		}
		replaced = append(replaced, card.ID())
	}
	replaced = replaced[:len(replaced)-1] // the last is current
	lookup := func(id int, cardID string) relay.Frame {
		return rc.request(map[string]any{"type": "lookup_card", "id": id, "card_id": cardID})
	}
	forgotten := len(replaced) - storage.MaxReplacedCards
	for i, cardID := range replaced[:forgotten] {
		expectErr(t, lookup(10+i, cardID), relay.CodeNotFound)
	}
	if f := lookup(20, replaced[forgotten]); f.Type != relay.TypeCard || !f.Replaced {
		t.Fatalf("the oldest replaced card still remembered: %+v", f)
	}
	if f := lookup(21, replaced[len(replaced)-1]); f.Type != relay.TypeCard || !f.Replaced {
		t.Fatalf("the newest replaced card: %+v", f)
	}
}

// A client that is not logged in and starts a binary message, sending a few bytes of
// it and holding the rest, does not make the relay hold a blob buffer (256 KiB) for
// it: 64 such connections from one address (the default connections_per_address)
// cost the relay no more than idle ones. Each connection sends the start of a
// fragmented binary message, then a ping; the pong says the relay's read loop is
// inside the message.
func TestPartialBinaryBeforeLoginHoldsNoBuffer(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{LoginTimeout: time.Minute}})
	const conns = 64
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for range conns {
		rc := dialRaw(t, r)
		head := make([]byte, 33) // a blob put message's header, its data never sent
		head[0] = 0x01
		head[8] = 7
		rc.writeRawFrame(0x2, false, head) // binary, not the final fragment
		rc.writeRawFrame(0x9, true, nil)   // ping, inside the message
		rc.waitPong()
	}
	grown := heap() - min(heap(), before)
	// Holding a buffer each would grow the heap by at least 8 MiB even when the relay's
	// free list of 32 buffers was full before: more than twice this limit.
	if limit := uint64(conns * relay.MaxBlobMessageSize / 4); grown > limit {
		t.Fatalf("%d connections holding the start of a binary message before login grew the heap by %d bytes (limit %d)", conns, grown, limit)
	}
}

// writeRawFrame writes one masked client WebSocket frame straight to the socket.
func (rc *raw) writeRawFrame(opcode byte, fin bool, payload []byte) {
	rc.t.Helper()
	if len(payload) > 125 {
		rc.t.Fatal("writeRawFrame: payloads up to 125 bytes")
	}
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var mask [4]byte
	rand.Read(mask[:])
	frame := append([]byte{b0, 0x80 | byte(len(payload))}, mask[:]...)
	for i, c := range payload {
		frame = append(frame, c^mask[i%4])
	}
	if _, err := rc.ws.NetConn().Write(frame); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// errPong ends waitPong's read.
var errPong = errors.New("pong")

// waitPong reads until a pong arrives. The connection cannot be read after it.
func (rc *raw) waitPong() {
	rc.t.Helper()
	rc.ws.SetPongHandler(func(string) error { return errPong })
	rc.ws.SetReadDeadline(time.Now().Add(waitFor))
	for {
		_, _, err := rc.ws.ReadMessage()
		if errors.Is(err, errPong) {
			return
		}
		if err != nil {
			rc.t.Fatalf("no pong: %v", err)
		}
	}
}

// Empty blobs are not free: each blob, whatever its size, counts at least one chunk
// against blob_quota_bytes, so an account cannot make database rows and files without
// end with blob_begin frames of size 0 (PROTOCOL.md "Blobs").
// (relay/cluster's TestBlobsAcrossNodes checks the same of its blob store.)
func TestEmptyBlobsCountAgainstTheQuota(t *testing.T) {
	const room = 4
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{BlobQuotaBytes: room * relay.BlobChunkSize}})
	mallory := register(t, r, "mallory")
	rc := dialRaw(t, r)
	if f := rc.login(mallory); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	for i := range room {
		if f := rc.request(map[string]any{"type": "blob_begin", "id": 10 + i, "size": 0, "recipients": 1}); f.Type != relay.TypeBlob {
			t.Fatalf("empty blob %d: %+v", i, f)
		}
	}
	f := rc.request(map[string]any{"type": "blob_begin", "id": 20, "size": 0, "recipients": 1})
	expectErr(t, f, relay.CodeBlobQuota)
	if f.Limit != server.LimitBlobQuotaBytes {
		t.Fatalf("limit %q, want %q", f.Limit, server.LimitBlobQuotaBytes)
	}
}
