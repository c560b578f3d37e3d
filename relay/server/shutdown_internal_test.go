package server

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/relay"
	"pfschat/storage"
)

// TestStopReadingHoldsAgainstPing: a ping that arrives while the relay stops a
// connection's reads (shutdown, linger) must not push the stop deadline out again.
// Before readCap, the ping handler re-armed the idle deadline (75 s by default), so a
// shutdown waited for ever on a client that kept pinging — the hang CI once hit.
func TestStopReadingHoldsAgainstPing(t *testing.T) {
	ctx := t.Context()
	store, err := storage.OpenRelay(ctx, filepath.Join(t.TempDir(), "relay.db"), storage.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// No login: the login deadline must not be what ends the read loop.
	s, err := New(ctx, Config{Store: store, Limits: Limits{LoginTimeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	inPing := make(chan *conn, 1)
	release := make(chan struct{})
	s.testHookPing = func(c *conn) {
		select {
		case inPing <- c:
			<-release
		default:
		}
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})

	nonce := make([]byte, relay.NonceSize)
	rand.Read(nonce)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + relay.WSPath + "?" + relay.NonceParam + "=" + relay.EncodeNonce(nonce)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // the hello
		t.Fatal(err)
	}
	// Keep reading so the pong the relay queues is taken off the socket.
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	if err := ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	var c *conn
	select {
	case c = <-inPing:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay never handled the ping")
	}
	c.stopReading() // as Shutdown does, while the ping handler is running
	close(release)
	select {
	case <-c.readerDone:
	case <-time.After(5 * time.Second): // the idle deadline would be 75 s
		t.Fatal("the read loop kept reading after stopReading: the ping re-armed its deadline")
	}
}
