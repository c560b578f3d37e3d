package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sseKeepAlive is how often an idle event stream gets a comment line, so proxies and
// clients see it alive.
const sseKeepAlive = 15 * time.Second

// HTTPHandler serves the API over HTTP, as signal-cli's daemon does:
//
//	POST /api/v1/rpc     one JSON-RPC request in the body, its response in the answer
//	GET  /api/v1/events  Server-Sent Events: every notification a subscription gets
//	GET  /api/v1/check   200 when the owner is up
//
// Every request must carry "Authorization: Bearer SECRET" (compared in constant time);
// a request with an Origin header (a browser's cross-site request) or with a Host other
// than one of hosts (DNS rebinding) is refused before anything else.
func (s *Server) HTTPHandler(secret string, hosts []string) http.Handler {
	allowed := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		allowed[strings.ToLower(h)] = true // host names are case-insensitive (RFC 3986 §3.2.2)
	}
	want := []byte(secret)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/rpc", s.httpRPC)
	mux.HandleFunc("GET /api/v1/events", s.httpEvents)
	mux.HandleFunc("GET /api/v1/check", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"ok\":true,\"online\":%v}\n", s.c.Online())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Origin") != "" || len(r.Header.Values("Origin")) > 0:
			http.Error(w, "cross-origin requests are refused", http.StatusForbidden)
		case !allowed[strings.ToLower(r.Host)]:
			http.Error(w, "unknown Host; use the address the daemon listens on", http.StatusMisdirectedRequest)
		case len(want) == 0 || subtle.ConstantTimeCompare(bearerToken(r.Header.Get("Authorization")), want) != 1:
			// (An empty secret would match a request without one: never a way in.)
			w.Header().Set("WWW-Authenticate", `Bearer realm="pfschat"`)
			http.Error(w, "missing or wrong bearer secret (see the daemon's secret file)", http.StatusUnauthorized)
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// bearerToken is the token of an Authorization header of the Bearer scheme, whose name
// is case-insensitive (RFC 9110 §11.1: "bearer" and "BEARER" are Bearer), or nil.
func bearerToken(h string) []byte {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	return []byte(token)
}

// LoopbackHosts are the Host values a daemon listening on addr answers: addr itself and,
// on a loopback address, localhost with its port.
func LoopbackHosts(addr string) []string {
	hosts := []string{addr}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			hosts = append(hosts, net.JoinHostPort("localhost", port))
		}
	}
	return hosts
}

func (s *Server) httpRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	w.Header().Set("Content-Type", "application/json")
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		json.NewEncoder(w).Encode(Response{JSONRPC: Version, Error: NewError(CodeInvalidRequest, "request body over %d bytes", MaxRequestBytes)})
		return
	case err != nil: // the client went away or sent a broken body: no answer reaches it
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(Response{JSONRPC: Version, Error: NewError(CodeInvalidRequest, "reading the request body: %v", err)})
		return
	}
	req, id, rerr := DecodeRequest(body)
	if rerr != nil {
		json.NewEncoder(w).Encode(Response{JSONRPC: Version, Error: rerr, ID: id})
		return
	}
	result, rerr := s.call(r.Context(), nil, req)
	if req.Notify {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	json.NewEncoder(w).Encode(s.response(req.ID, result, rerr))
}

func (s *Server) httpEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	if s.ctx.Err() != nil { // Close has begun: no new stream, as no new subscription
		http.Error(w, errClosing().Message, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead { // the headers only: a stream into a bodiless answer never ends
		return
	}
	fl.Flush()
	id := s.subID.Add(1)
	sub := s.cfg.Hub.Subscribe()
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	events := make(chan Notification)
	done := make(chan error, 1)
	go func() {
		done <- s.stream(r.Context(), id, sub, func(n Notification) error {
			select {
			case events <- n:
				return nil
			case <-r.Context().Done():
				return r.Context().Err()
			}
		})
	}()
	for {
		select {
		case n := <-events:
			b, _ := json.Marshal(n)
			eid := ""
			var ev Event
			if json.Unmarshal(n.Params, &ev) == nil && ev.Message != nil {
				eid = "id: " + strconv.FormatInt(ev.Message.ID, 10) + "\n"
			}
			if _, err := fmt.Fprintf(w, "event: %s\n%sdata: %s\n\n", n.Method, eid, b); err != nil {
				return
			}
			fl.Flush()
		case <-keep.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-done:
			return
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}
