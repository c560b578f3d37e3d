package daemon_test

import (
	"bufio"
	"encoding/json"
	"net"
	"sync"
	"testing"

	"pfschat/chat/daemon"
	"pfschat/chat/profile"
)

// handOverOnClose is a listener whose one connection is accepted only once Close is
// called: a client that connects while the server shuts down (Close has stopped the
// server and is about to close its listeners).
type handOverOnClose struct {
	nc     net.Conn
	closed chan struct{}
	once   sync.Once
	handed bool // Accept's alone: the server accepts on one goroutine
}

func (l *handOverOnClose) Accept() (net.Conn, error) {
	<-l.closed
	if !l.handed {
		l.handed = true
		return l.nc, nil
	}
	return nil, net.ErrClosed
}

func (l *handOverOnClose) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handOverOnClose) Addr() net.Addr { return l.nc.LocalAddr() }

// A connection accepted while the owner shuts down is refused as closing (code 9), not
// as too_many (it was: the server answered every refused connection with too_many).
func TestConnectionWhileClosingIsClosing(t *testing.T) {
	serverEnd, clientEnd := net.Pipe()
	defer clientEnd.Close()
	srv := daemon.New(daemon.Config{Owner: profile.OwnerDaemon, Version: "test"})
	srv.Serve(&handOverOnClose{nc: serverEnd, closed: make(chan struct{})})
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()

	line, err := bufio.NewReader(clientEnd).ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	var resp struct {
		Error *daemon.Error   `json:"error"`
		ID    json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(line, &resp); err != nil || resp.Error == nil {
		t.Fatalf("refusal %s: %v", line, err)
	}
	if resp.Error.Code != daemon.CodeClosing || resp.Error.Data == nil || resp.Error.Data.Name != "closing" || string(resp.ID) != "null" {
		t.Errorf("a connection while closing is answered %s; want closing (code %d) with id null", line, daemon.CodeClosing)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
