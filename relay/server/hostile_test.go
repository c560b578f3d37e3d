package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// hostileFrame returns one random, mutated, wrongly typed or oversized frame.
func hostileFrame(rng *rand.Rand) (int, []byte) {
	valid := []string{
		`{"type":"send","id":1,"to":"bob","body":"aGk=","client_id":"x"}`,
		`{"type":"login","id":2,"card_id":"00","signature":"AAAA"}`,
		`{"type":"register","id":3,"card":"pfscard1:AAAA"}`,
		`{"type":"upload_prekeys","id":4,"prekeys":["AAAA","////"]}`,
		`{"type":"ack","id":5,"ids":[1,2,3]}`,
		`{"type":"fetch_bundle","id":6,"name":"bob"}`,
		`{"type":"resume","id":7,"token":"AAAA"}`,
		`{"type":"hello","id":8,"versions":[1,2,3]}`,
	}
	switch rng.IntN(8) {
	case 0: // random bytes
		b := make([]byte, rng.IntN(512))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return websocket.TextMessage, b
	case 1: // binary message
		return websocket.BinaryMessage, []byte{1, 2, 3}
	case 2: // oversized (but under the discard limit: the connection stays)
		return websocket.TextMessage, []byte(`{"type":"lookup","id":1,"name":"` + strings.Repeat("x", relay.MaxFrameSize+rng.IntN(4096)) + `"}`)
	case 3: // wrong field types
		fields := []string{`"id":"x"`, `"ids":"x"`, `"body":5`, `"versions":{}`, `"to":[1]`, `"ttl":"1"`, `"prekeys":[5]`, `"id":-1`, `"id":1e99`}
		return websocket.TextMessage, []byte(`{"type":"send",` + fields[rng.IntN(len(fields))] + `}`)
	case 4: // deep nesting
		n := 1 + rng.IntN(5000)
		return websocket.TextMessage, []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	default: // a valid frame with bytes flipped, cut or duplicated
		b := []byte(valid[rng.IntN(len(valid))])
		for k := rng.IntN(4); k >= 0; k-- {
			switch i := rng.IntN(len(b)); rng.IntN(3) {
			case 0:
				b[i] = byte(rng.Uint32())
			case 1:
				b = b[:i]
			default:
				b = append(b[:i], append([]byte(string(b[i:])), b[i:]...)...)
			}
			if len(b) == 0 {
				break
			}
		}
		return websocket.TextMessage, b
	}
}

// TestHostileInputKeepsServing throws thousands of random and oversized frames at a
// live relay from several connections while two users keep talking.
func TestHostileInputKeepsServing(t *testing.T) { eachStore(t, testHostileInputKeepsServing) }

func testHostileInputKeepsServing(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{FramesPerSecond: -1}})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)

	attackers, frames := 4, 1000
	if testing.Short() {
		frames = 300
	}
	var wg sync.WaitGroup
	var errFrames sync.Map
	for a := 0; a < attackers; a++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 99))
			var ws *websocket.Conn
			readerDone := make(chan struct{})
			dial := func() {
				var err error
				ws, _, err = websocket.DefaultDialer.DialContext(ctx, withNonce(r.URL), nil)
				if err != nil {
					t.Errorf("attacker dial: %v", err)
					return
				}
				readerDone = make(chan struct{})
				go func(ws *websocket.Conn, done chan struct{}) {
					defer close(done)
					for {
						_, data, err := ws.ReadMessage()
						if err != nil {
							return
						}
						var f relay.Frame
						if err := json.Unmarshal(data, &f); err != nil {
							t.Errorf("relay sent undecodable JSON: %q", data)
							return
						}
						if f.Type == relay.TypeError {
							n, _ := errFrames.LoadOrStore(f.Code, new(int))
							_ = n
						}
					}
				}(ws, readerDone)
			}
			dial()
			for i := 0; i < frames && ws != nil; i++ {
				mt, b := hostileFrame(rng)
				if err := ws.WriteMessage(mt, b); err != nil {
					// The relay may close a connection (e.g. too many failed logins);
					// come back and keep going.
					ws.Close()
					<-readerDone
					dial()
				}
			}
			if ws != nil {
				ws.Close()
				<-readerDone
			}
		}(uint64(a))
	}

	// Meanwhile the honest users keep talking.
	attackDone := make(chan struct{})
	go func() { wg.Wait(); close(attackDone) }()
	sent := 0
	for i := 0; ; i++ {
		id, err := alice.c.Send(ctx, "bob", []byte(fmt.Sprint("msg ", i)), fmt.Sprint(i))
		if err != nil {
			t.Fatalf("honest send %d during the attack: %v", i, err)
		}
		m := nextMessage(t, bob.c)
		if m.ID != id {
			t.Fatalf("bob got %d, want %d", m.ID, id)
		}
		if err := bob.c.AckNoWait(m.ID); err != nil {
			t.Fatal(err)
		}
		sent++
		select {
		case <-attackDone:
		default:
			continue
		}
		break
	}
	wg.Wait()
	for _, code := range []string{relay.CodeBadFrame, relay.CodeBadField, relay.CodeFrameTooLarge} {
		if _, ok := errFrames.Load(code); !ok {
			t.Errorf("no %s error frame seen during the attack", code)
		}
	}
	// Still serving: health, new users, messages.
	if got := r.Get(t, "/healthz"); got != "ok\n" {
		t.Fatalf("/healthz after the attack: %q", got)
	}
	carol := newUser(t, r, "carol")
	if _, err := carol.c.Send(ctx, "bob", []byte("after"), "after"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, bob.c); string(m.Body) != "after" {
		t.Fatalf("after the attack bob got %q", m.Body)
	}
	t.Logf("honest messages during the attack: %d", sent)
}

// A frame gorilla refuses as a protocol error (RSV1 set, a reserved opcode, an unmasked
// frame) is answered with its one close frame, 1002, and nothing after it (RFC 6455
// §5.5.1): the relay's own close, 1001, followed it as a second (found by a red team).
func TestProtocolErrorGetsOneCloseFrame(t *testing.T) {
	r := relaytest.Start(t)
	for name, frame := range map[string][]byte{
		"rsv1":            {0xc1, 0x80, 1, 2, 3, 4},                                             // FIN, RSV1, text; masked, empty
		"reserved opcode": {0x83, 0x80, 1, 2, 3, 4},                                             // FIN, opcode 3
		"unmasked":        {0x81, 0x02, 'h', 'i'},                                               // a client frame must be masked
		"long ping":       append([]byte{0x89, 0xfe, 0, 200, 1, 2, 3, 4}, make([]byte, 200)...), // a control frame over 125 bytes
		// Inside a message: a first text frame without FIN ("{"), then a bad one.
		"rsv1 continuation":     {0x01, 0x81, 0, 0, 0, 0, '{', 0xc0, 0x80, 1, 2, 3, 4},
		"unmasked continuation": {0x01, 0x81, 0, 0, 0, 0, '{', 0x80, 0x01, '}'},
		"text inside a message": {0x01, 0x81, 0, 0, 0, 0, '{', 0x81, 0x80, 1, 2, 3, 4},
	} {
		rc := dialRaw(t, r)
		nc := rc.ws.NetConn()
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(waitFor))
		all, _ := io.ReadAll(nc) // until the relay closes the socket
		var closes []int
		for i := 0; i+2 <= len(all); {
			op, n := all[i]&0x0f, int(all[i+1]&0x7f)
			hdr := 2
			switch n {
			case 126:
				n, hdr = int(all[i+2])<<8|int(all[i+3]), 4
			case 127:
				t.Fatalf("%s: a frame of 64-bit length from the relay", name)
			}
			if op == 0x8 && n >= 2 {
				closes = append(closes, int(all[i+hdr])<<8|int(all[i+hdr+1]))
			}
			i += hdr + n
		}
		if len(closes) != 1 || closes[0] != websocket.CloseProtocolError {
			t.Errorf("%s: close frames %v, want one 1002", name, closes)
		}
	}
}
