package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// wsProxy stands between clients and a relay, message by message, as a hostile relay
// (or whoever holds the relay's key) could: toClient may rewrite what the relay sends,
// drop it (none) or add more.
type wsProxy struct {
	srv      *httptest.Server
	toClient func(mt int, data []byte) [][]byte
	// after, when set, runs after each message written to the client, with the
	// client's connection: for frames a message cannot carry (control frames).
	after func(down *websocket.Conn, data []byte) error
}

func startProxy(t *testing.T, relayURL string, toClient func(mt int, data []byte) [][]byte) *wsProxy {
	return startProxyAfter(t, relayURL, toClient, nil)
}

func startProxyAfter(t *testing.T, relayURL string, toClient func(mt int, data []byte) [][]byte, after func(down *websocket.Conn, data []byte) error) *wsProxy {
	t.Helper()
	p := &wsProxy{toClient: toClient, after: after}
	up := websocket.Upgrader{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer down.Close()
		target := strings.TrimSuffix(relayURL, relay.WSPath) + r.URL.Path + "?" + r.URL.RawQuery
		upc, _, err := websocket.DefaultDialer.Dial(target, nil)
		if err != nil {
			return
		}
		defer upc.Close()
		go func() {
			for {
				mt, data, err := down.ReadMessage()
				if err != nil || upc.WriteMessage(mt, data) != nil {
					upc.Close()
					return
				}
			}
		}()
		for {
			mt, data, err := upc.ReadMessage()
			if err != nil {
				return
			}
			for _, out := range p.toClient(mt, data) {
				if down.WriteMessage(mt, out) != nil {
					return
				}
				if p.after != nil && p.after(down, out) != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *wsProxy) url() string { return "ws" + strings.TrimPrefix(p.srv.URL, "http") + relay.WSPath }

// A download from a relay that answers a blob request with a binary message over the
// largest run loses its connection (ErrConnectionLost: chat stops a download after a
// few such in a row), and one from a relay that never answers fails after
// Config.BlobAnswerTimeout (it waited for ever). Found by a hostile-relay run: a recv
// that downloaded hung.
func TestBlobDownloadFromAHostileRelayEnds(t *testing.T) {
	r := relaytest.Start(t)
	key, card := register(t, r, "alice")
	data := make([]byte, relay.BlobRunMax)
	rand.Read(data)
	for _, c := range []struct {
		name     string
		toClient func(mt int, data []byte) [][]byte
		want     func(error) bool
	}{
		{"oversized", func(mt int, b []byte) [][]byte {
			if mt == websocket.BinaryMessage {
				return [][]byte{append(b, make([]byte, 1000)...)}
			}
			return [][]byte{b}
		}, func(err error) bool { return errors.Is(err, client.ErrConnectionLost) }},
		{"never answered", func(mt int, b []byte) [][]byte {
			if mt == websocket.BinaryMessage {
				return nil
			}
			return [][]byte{b}
		}, func(err error) bool { return errors.Is(err, client.ErrBlobStalled) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startProxy(t, r.URL, c.toClient)
			cl := client.New(client.Config{URL: p.url(), Identity: key, Card: card, PinnedRelayKey: r.Server.RelayKey(),
				BlobAnswerTimeout: 300 * time.Millisecond})
			defer cl.Close()
			if err := cl.Connect(t.Context()); err != nil {
				t.Fatal(err)
			}
			id, capab := relaytest.UploadBlob(t, cl, data, 1)
			var got bytes.Buffer
			err := cl.BlobGet(t.Context(), id, capab, int64(len(data)), 0, 0, func(i int64, b []byte) error {
				got.Write(b)
				return nil
			})
			if !c.want(err) {
				t.Fatalf("download: %v", err)
			}
			if got.Len() != 0 {
				t.Fatalf("%d bytes of a bad answer were handed on", got.Len())
			}
		})
	}
}

// A relay that delivers faster than the consumer takes cannot make the client hold
// more than Config.MaxQueuedPushBytes: the push that would pass it ends the connection
// (ErrPushesBacklogged), and the next one is made once the consumer has taken half.
// A hostile-relay run grew a recv --follow to 2.2 GB this way.
func TestPushesFromAFloodingRelayAreBounded(t *testing.T) {
	r := relaytest.Start(t)
	key, card := register(t, r, "alice")
	const bound = 32 << 10
	var floods atomic.Int32
	fake := strings.Repeat("cd", 32)
	p := startProxy(t, r.URL, func(mt int, b []byte) [][]byte {
		out := [][]byte{b}
		if bytes.Contains(b, []byte(`"type":"synced"`)) {
			floods.Add(1)
			for i := range 200 { // about 300 KiB of delivers: nine times the bound
				out = append(out, relay.AppendDeliver(nil, int64(1e6+i), "bob", fake, 1, make([]byte, 1024)))
			}
		}
		return out
	})
	c := client.New(client.Config{URL: p.url(), Identity: key, Card: card, PinnedRelayKey: r.Server.RelayKey(),
		MaxQueuedPushBytes: bound, MinBackoff: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	defer func() { c.Close(); <-ran }()
	for st := range c.States() {
		if st.State == client.StateOffline && errors.Is(st.Err, client.ErrPushesBacklogged) {
			break
		}
	}
	if w := c.Pushes().Weight(); w > bound {
		t.Fatalf("%d bytes of pushes wait, over the bound of %d", w, bound)
	}
	if n := floods.Load(); n != 1 {
		t.Fatalf("%d connections before the consumer took anything, want 1", n)
	}
	// The consumer takes them: the client connects again, and is flooded again.
	for floods.Load() < 2 {
		if _, err := c.Pushes().Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// A relay that pings without end is cut off: the client answers a burst, then ends
// the connection with ErrPingFlood (every ping costs it a pong, a write) and connects
// again after its backoff. A relay that pings as relays do stays connected.
func TestPingFloodFromARelayEndsTheConnection(t *testing.T) {
	r := relaytest.Start(t)
	key, card := register(t, r, "alice")
	var conns atomic.Int32
	p := startProxyAfter(t, r.URL, func(mt int, b []byte) [][]byte { return [][]byte{b} },
		func(down *websocket.Conn, b []byte) error {
			if !bytes.Contains(b, []byte(`"type":"synced"`)) {
				return nil
			}
			conns.Add(1)
			for range 5000 {
				if err := down.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)); err != nil {
					return err
				}
			}
			return nil
		})
	c := client.New(client.Config{URL: p.url(), Identity: key, Card: card, PinnedRelayKey: r.Server.RelayKey(),
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	defer func() { c.Close(); <-ran }()
	for ended := 0; ended < 2; {
		select {
		case st := <-c.States():
			if errors.Is(st.Err, client.ErrPingFlood) {
				ended++
			}
		case <-ctx.Done():
			t.Fatalf("%d connections ended by a ping flood, want 2", ended)
		}
	}
	if n := conns.Load(); n < 2 {
		t.Fatalf("%d connections flooded, want the client to have connected again", n)
	}
}

// A burst of pings up to the limit (relayPingBurst, 200) is answered and the
// connection stays: the limit is not in the way of a relay that pings often.
func TestPingsAtARelaysPaceAreAnswered(t *testing.T) {
	r := relaytest.Start(t)
	key, card := register(t, r, "alice")
	const burst = 200
	pongs := make(chan struct{}, burst)
	p := startProxyAfter(t, r.URL, func(mt int, b []byte) [][]byte { return [][]byte{b} },
		func(down *websocket.Conn, b []byte) error {
			if !bytes.Contains(b, []byte(`"type":"synced"`)) {
				return nil
			}
			down.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
			for range burst {
				if err := down.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)); err != nil {
					return err
				}
			}
			return nil
		})
	c := client.New(client.Config{URL: p.url(), Identity: key, Card: card, PinnedRelayKey: r.Server.RelayKey()})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The proxy reads the client's frames (and so its pongs) while it relays them to
	// the relay: a request makes it read.
	for got := 0; got < burst; {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("after %d pongs: %v", got, err)
		}
		select {
		case <-pongs:
			got++
		case <-ctx.Done():
			t.Fatalf("%d of %d pings answered", got, burst)
		}
	}
}
