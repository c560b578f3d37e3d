package server_test

// Attacks on the relay by a client that knows only relay/PROTOCOL.md, spoken in raw
// frames: what a well-behaved client never sends. Each is the regression test of a
// weakness that was fixed.

import (
	"crypto/rand"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
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
	mallory, rc := registerLoggedIn(t, r, "mallory")
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

// After login too, a binary message held after its first bytes costs the relay about
// what it sent, not a blob buffer: readBinary takes the 256 KiB buffer only once a
// chunk's worth has arrived. 64 logged-in connections each send a blob put message's
// header, then a ping; the pong says the relay's read loop is inside the message.
func TestPartialBinaryAfterLoginHoldsLittle(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{ConnectionsPerAddress: -1}})
	mallory := register(t, r, "mallory")
	const conns = 64
	rcs := make([]*raw, conns)
	for i := range rcs {
		rcs[i] = dialRaw(t, r)
		if f := rcs[i].login(mallory); f.Type != relay.TypeOK {
			t.Fatalf("login %d: %+v", i, f)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for _, rc := range rcs {
		head := make([]byte, relay.BlobPutHeaderSize) // its data never sent
		head[0] = 0x01
		head[8] = 7
		rc.writeRawFrame(0x2, false, head)
		rc.writeRawFrame(0x9, true, nil)
		rc.waitPong()
	}
	grown := heap() - min(heap(), before)
	// A blob buffer each would grow the heap by at least 8 MiB even when the relay's
	// free list of 32 buffers was full before: more than twice this limit.
	if limit := uint64(conns * relay.MaxBlobMessageSize / 4); grown > limit {
		t.Fatalf("%d logged-in connections holding the start of a binary message grew the heap by %d bytes (limit %d)", conns, grown, limit)
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
	eachStore(t, testEmptyBlobsCountAgainstTheQuota)
}

func testEmptyBlobsCountAgainstTheQuota(t *testing.T, bk store) {
	const room = 4
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{BlobQuotaBytes: room * relay.BlobChunkSize}})
	_, rc := registerLoggedIn(t, r, "mallory")
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

// An upload_prekeys frame is refused for what can be seen without a signature check
// before any signature is checked: a prekey repeated in the frame (its id, or its key
// under another id), a second signed prekey, more one-time prekeys than the relay
// stores (in the frame alone, or with those stored). Each frame below starts with a
// prekey whose signature does not verify: a relay that verified first would name it
// (prekey 0) instead, having spent an Ed25519 verification per key up to there.
func TestPreKeyUploadRefusedBeforeVerifying(t *testing.T) {
	eachStore(t, testPreKeyUploadRefusedBeforeVerifying)
}

func testPreKeyUploadRefusedBeforeVerifying(t *testing.T, bk store) {
	r := bk.Start(t)
	mallory, rc := registerLoggedIn(t, r, "mallory")
	encode := func(keys ...ratchet.PublicPreKey) [][]byte {
		t.Helper()
		out := make([][]byte, len(keys))
		for i, k := range keys {
			b, err := k.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			out[i] = b
		}
		return out
	}
	upload := func(id int, keys ...ratchet.PublicPreKey) relay.Frame {
		t.Helper()
		return rc.request(map[string]any{"type": "upload_prekeys", "id": id, "prekeys": encode(keys...)})
	}
	forged := makePreKeys(t, mallory, ratchet.KEMOneTime, 900, 1)[0]
	forged.Signature = slices.Clone(forged.Signature)
	forged.Signature[0] ^= 1
	oneTime := makePreKeys(t, mallory, ratchet.OneTimePreKey, 1, 101)
	sameKeyOtherID := oneTime[0]
	sameKeyOtherID.ID = 7777
	signed := makePreKeys(t, mallory, ratchet.SignedPreKey, 1, 2)

	refused := func(f relay.Frame, code, says string) {
		t.Helper()
		expectErr(t, f, code)
		if !strings.Contains(f.Message, says) || strings.Contains(f.Message, "does not verify") {
			t.Fatalf("refusal says %q, want it to say %q (and not name the forged prekey)", f.Message, says)
		}
	}
	refused(upload(10, forged, oneTime[0], oneTime[0]), relay.CodeBadPreKey, "prekey 2 repeats the id of prekey 1")
	refused(upload(11, forged, oneTime[0], sameKeyOtherID), relay.CodeBadPreKey, "prekey 2 repeats the key of prekey 1")
	refused(upload(12, forged, signed[0], signed[1]), relay.CodeBadPreKey, "prekey 2 is a second signed prekey")
	f := upload(13, append([]ratchet.PublicPreKey{forged}, oneTime...)...)
	refused(f, relay.CodeTooManyPreKeys, "101 one_time prekeys in one frame")
	if f.Limit != "max_one_time_prekeys" {
		t.Fatalf("limit %q, want max_one_time_prekeys", f.Limit)
	}

	// The store's cap: 100 stored, one more refused before its frame is verified.
	if f := upload(20, oneTime[:100]...); f.Type != relay.TypePreKeyStatus || f.Counts["one_time"] != 100 {
		t.Fatalf("storing 100 one-time prekeys: %+v", f)
	}
	refused(upload(21, forged, oneTime[100]), relay.CodeTooManyPreKeys, "100 one_time prekeys stored, 1 more")

	// Not vacuous: alone, the forged prekey is refused for its signature.
	if f := upload(30, forged); f.Type != relay.TypeError || f.Code != relay.CodeBadPreKey || !strings.Contains(f.Message, "prekey 0 does not verify") {
		t.Fatalf("the forged prekey alone: %+v", f)
	}
	status := rc.request(map[string]any{"type": "prekey_status", "id": 31})
	if c := status.Counts; c["one_time"] != 100 || c["kem_one_time"] != 0 || c["signed"] != 0 {
		t.Fatalf("after the refusals the relay holds %v, want the 100 one-time prekeys only", c)
	}
}

// A logged-in client that starts a message and then only pings cannot keep it open:
// the message must be whole within MessageTimeout of its first frame (limit
// message_deadline), and the pings the relay answers meanwhile do not extend that.
// Each ping used to push the read deadline out again, so a partial message held up to
// 64 KiB of JSON, or a 256 KiB blob buffer for a binary one, for as long as the client
// kept pinging.
func TestPingsDoNotHoldAMessageOpen(t *testing.T) {
	const bound = 300 * time.Millisecond
	for _, tc := range []struct {
		name   string
		opcode byte
		start  []byte
	}{
		{"text", 0x1, []byte(`{"type":"send","id":1,"to":"`)},
		{"binary", 0x2, append([]byte{0x01, 0, 0, 0, 0, 0, 0, 0, 7}, make([]byte, 24)...)}, // a blob put header
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{MessageTimeout: bound}})
			_, rc := registerLoggedIn(t, r, "mallory")
			w := rc.watch()
			started := time.Now()
			rc.writeRawFrame(tc.opcode, false, tc.start)
			pinging := time.NewTicker(bound / 10)
			defer pinging.Stop()
			giveUp := time.After(waitFor)
			pongs := 0
			for {
				select {
				case <-pinging.C:
					rc.ws.NetConn().Write(maskedPing()) // fails once the relay has closed: the reads say why
				case <-w.pongs:
					pongs++
				case f := <-w.frames:
					expectTimeoutFrame(t, w, f)
				case err := <-w.ended:
					held := time.Since(started)
					// The frames read before the close may still be in their buffered
					// channel: select picks among ready cases at random.
					for len(w.frames) > 0 {
						expectTimeoutFrame(t, w, <-w.frames)
					}
					if w.errFrame == nil {
						t.Fatalf("the connection ended without the %s error frame: %v", relay.CodeMessageTimeout, err)
					}
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation ||
						!strings.HasPrefix(ce.Text, relay.CodeMessageTimeout+": "+server.LimitMessageDeadline+": ") {
						t.Fatalf("want a close frame 1008 naming %s and %s, got %v", relay.CodeMessageTimeout, server.LimitMessageDeadline, err)
					}
					if held < bound {
						t.Fatalf("closed %v after the message's first frame, before its bound %v", held, bound)
					}
					if pongs < 3 {
						t.Fatalf("the relay answered %d pings while the message was open: the test did not ping through it", pongs)
					}
					if n := limited(t, r, server.LimitMessageDeadline); n != 1 {
						t.Fatalf("message_deadline counted %d times, want 1", n)
					}
					return
				case <-giveUp:
					t.Fatalf("a message begun %v ago is still open after %d answered pings; its bound is %v", time.Since(started), pongs, bound)
				}
			}
		})
	}
}

// expectTimeoutFrame records f on w when it is the message_timeout error frame, and
// fails the test on any other error frame.
func expectTimeoutFrame(t *testing.T, w *watchedConn, f relay.Frame) {
	t.Helper()
	if f.Type != relay.TypeError {
		return
	}
	if f.Code != relay.CodeMessageTimeout || f.Limit != server.LimitMessageDeadline {
		t.Fatalf("error frame %+v, want %s with limit %s", f, relay.CodeMessageTimeout, server.LimitMessageDeadline)
	}
	w.errFrame = &f
}

// Between messages pings and silence are governed by the idle deadline, not by the
// message deadline: a logged-in client that sends whole messages and, between them,
// pings or stays silent for several times MessageTimeout keeps its connection.
func TestMessageDeadlineSparesTheTimeBetweenMessages(t *testing.T) {
	const bound = 100 * time.Millisecond
	r := relaytest.StartWith(t, relaytest.Options{Limits: server.Limits{MessageTimeout: bound}})
	_, rc := registerLoggedIn(t, r, "alice")
	w := rc.watch()
	pinging := time.NewTicker(bound / 5)
	defer pinging.Stop()
	for id := 10; id < 12; id++ {
		rc.writeRawFrame(0x1, true, []byte(`{"type":"ping","id":`+strconv.Itoa(id)+`}`))
		w.expectPong(t, uint64(id))
		// Silent for longer than the message bound...
		select {
		case err := <-w.ended:
			t.Fatalf("closed while silent between messages: %v", err)
		case <-time.After(2 * bound):
		}
		// ...then pinging for longer than it.
		for since := time.Now(); time.Since(since) < 2*bound; {
			<-pinging.C
			rc.writeRawFrame(0x9, true, nil)
			select {
			case <-w.pongs:
			case err := <-w.ended:
				t.Fatalf("closed while pinging between messages: %v", err)
			case <-time.After(waitFor):
				t.Fatal("no pong")
			}
		}
	}
	rc.writeRawFrame(0x1, true, []byte(`{"type":"ping","id":20}`))
	w.expectPong(t, 20)
	if n := limited(t, r, server.LimitMessageDeadline); n != 0 {
		t.Fatalf("message_deadline counted %d times, want 0", n)
	}
}

// watchedConn is a raw connection read on its own goroutine, so the test can write
// pings while it waits for what the relay sends.
type watchedConn struct {
	pongs    chan struct{}
	frames   chan relay.Frame
	ended    chan error // the error that ended the reads
	errFrame *relay.Frame
}

// watch reads rc until its connection ends. Nothing else may read rc after it.
func (rc *raw) watch() *watchedConn {
	w := &watchedConn{pongs: make(chan struct{}, 64), frames: make(chan relay.Frame, 64), ended: make(chan error, 1)}
	rc.ws.SetPongHandler(func(string) error {
		w.pongs <- struct{}{}
		return nil
	})
	// No close frame back: the test writes raw frames on the socket beside gorilla.
	rc.ws.SetCloseHandler(func(int, string) error { return nil })
	rc.ws.SetReadDeadline(time.Time{})
	go func() {
		for {
			_, data, err := rc.ws.ReadMessage()
			if err != nil {
				w.ended <- err
				return
			}
			f, _ := relay.DecodeServerFrame(data)
			w.frames <- f
		}
	}()
	return w
}

// expectPong waits for the relay's pong frame answering the ping frame id.
func (w *watchedConn) expectPong(t *testing.T, id uint64) {
	t.Helper()
	for {
		select {
		case f := <-w.frames:
			if f.Type == relay.TypePong && f.ID == id {
				return
			}
			if f.Type == relay.TypeError {
				t.Fatalf("error frame %+v", f)
			}
		case <-w.pongs:
		case err := <-w.ended:
			t.Fatalf("closed while waiting for the pong of %d: %v", id, err)
		case <-time.After(waitFor):
			t.Fatalf("no pong for %d", id)
		}
	}
}

// maskedPing is a client's WebSocket ping frame, empty, with a random mask.
func maskedPing() []byte {
	frame := []byte{0x80 | 0x9, 0x80, 0, 0, 0, 0}
	rand.Read(frame[2:])
	return frame
}
