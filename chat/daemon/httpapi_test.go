package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// serveHTTP serves o's HTTP API on a loopback port; it returns the address and the
// secret.
func serveHTTP(t *testing.T, o *owned) (addr, secret string) {
	t.Helper()
	secret, err := daemon.NewSecret(filepath.Join(t.TempDir(), "secret"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(o.srv.HTTPHandler(secret, daemon.LoopbackHosts(ln.Addr().String())))
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() {
		o.srv.Close() // first: it ends every event stream, so hs.Close cannot wait for one
		hs.Close()
	})
	return ln.Addr().String(), secret
}

// TestHTTPHeadEventsEnds: HEAD /api/v1/events is answered with the stream's headers and
// ends, as HEAD does; the next request on the same connection is answered (the event
// stream kept running into the bodiless answer, so the connection was stuck for good,
// and the server could not close). Unknown paths are 404, a wrong method 405, both
// after the secret is checked.
func TestHTTPHeadEventsEnds(t *testing.T) {
	r := relaytest.Start(t)
	o := startOwner(t, r, chattest.NewUser(t, r, "bob"))
	addr, secret := serveHTTP(t, o)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second)) // a failure, never a hang
	rd := bufio.NewReader(nc)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"HEAD", "/api/v1/events", http.StatusOK},
		{"GET", "/api/v1/check", http.StatusOK},
		{"GET", "/api/v1/nope", http.StatusNotFound},
		{"GET", "/api/v1/rpc", http.StatusMethodNotAllowed},
		{"POST", "/api/v1/check", http.StatusMethodNotAllowed},
		{"DELETE", "/api/v1/events", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		if err := req.Write(nc); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(rd, req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

// TestHTTPEventsReconnectStartsAgain: a reconnected event stream (Last-Event-ID sent, as
// EventSource does) starts as a new one, with every unread message again and the same
// SSE id, as API.md says: the header is not a resume point.
func TestHTTPEventsReconnectStartsAgain(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	addr, secret := serveHTTP(t, startOwner(t, r, bob))
	first := func(lastID string) (id, data string) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok && id != "" {
				return id, v
			}
		}
		t.Fatalf("event stream ended: %v", sc.Err())
		return "", ""
	}
	id, data := first("")
	if !strings.Contains(data, `"text":"hi"`) {
		t.Fatalf("first event %s, want the unread \"hi\"", data)
	}
	if id2, data2 := first(id); id2 != id || !strings.Contains(data2, `"text":"hi"`) {
		t.Fatalf("after reconnecting with Last-Event-ID %s: id %s %s, want the unread \"hi\" again", id, id2, data2)
	}
}

// TestHTTPBrokenBodyIsNotTooLarge: a request body that cannot be read (a chunked body
// that breaks off) is answered 400, and only one over 1 MiB is 413, as API.md says.
func TestHTTPBrokenBodyIsNotTooLarge(t *testing.T) {
	r := relaytest.Start(t)
	o := startOwner(t, r, chattest.NewUser(t, r, "bob"))
	addr, secret := serveHTTP(t, o)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"a broken chunk", "zz\r\n{}\r\n0\r\n\r\n", http.StatusBadRequest},
		{"over 1 MiB", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", daemon.MaxRequestBytes+1, strings.Repeat(" ", daemon.MaxRequestBytes+1)), http.StatusRequestEntityTooLarge},
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second)) // a failure, never a hang
		fmt.Fprintf(nc, "POST /api/v1/rpc HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%s", addr, secret, tc.body)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		nc.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
