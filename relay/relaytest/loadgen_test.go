package relaytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDialLoadGivesUpOnASilentRelay: a server that completes the WebSocket handshake
// and never sends its hello fails the dial by the context's deadline instead of
// hanging the load run that made it.
func TestDialLoadGivesUpOnASilentRelay(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		<-release // says nothing until the test ends
	}))
	defer srv.Close()
	defer close(release) // before the server's Close: the handler returns first
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	c, err := DialLoad(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err == nil {
		c.Close()
		t.Fatal("a dial to a relay that never says hello succeeded")
	}
	if !strings.Contains(err.Error(), "hello") {
		t.Fatalf("dial error %q does not name the hello", err)
	}
}
