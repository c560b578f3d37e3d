package server

import (
	"log/slog"
	"testing"
	"time"

	"pfschat/storage"
)

// keepingHub is a Hub outside the package's control: it keeps what it is given.
type keepingHub struct{ got []*storage.QueuedMessage }

func (h *keepingHub) Subscribe(string, Subscriber) func() { return func() {} }
func (h *keepingHub) Publish(m *storage.QueuedMessage)    { h.got = append(h.got, m) }
func (h *keepingHub) Notice(string, Notice)               {}

// keepingSub is a Subscriber outside the package's control.
type keepingSub struct{ got []*storage.QueuedMessage }

func (s *keepingSub) Deliver(m *storage.QueuedMessage) { s.got = append(s.got, m) }
func (s *keepingSub) Notify(Notice)                    {}

// TestSendReqOwnership: a published request goes back to the pool only when every
// holder is this package's code that releases it; a message handed to another Hub
// or Subscriber is never reused.
func TestSendReqOwnership(t *testing.T) {
	srv := &Server{m: newMetrics()}
	newTestConn := func() *conn {
		c := &conn{s: srv, inflight: make(chan struct{}, 8)}
		c.out = newOutQueue(16, func() {}) // no writer: items stay queued
		return c
	}
	sender := newTestConn()
	commit := func(hub Hub) *sendReq {
		cm := newCommitter(nil, hub, slog.New(slog.DiscardHandler), srv.m, 8, time.Now, nil)
		r := newSendReq()
		r.c, r.reqID = sender, 1
		r.body = append(r.body[:0], "secret"...)
		r.msg = storage.QueuedMessage{To: "bob", From: "alice", Body: r.body}
		sender.inflight <- struct{}{}
		cm.answerSends([]*sendReq{r}, nil, []storage.EnqueueResult{{ID: 7}}, nil)
		return r
	}

	kh := &keepingHub{}
	r := commit(kh)
	if !r.escaped || len(kh.got) != 1 || kh.got[0] != &r.msg || string(kh.got[0].Body) != "secret" || r.msg.ID != 7 {
		t.Fatalf("other hub: escaped %v, got %d messages", r.escaped, len(kh.got))
	}

	mh := NewMemHub()
	ks := &keepingSub{}
	mh.Subscribe("bob", ks)
	r = commit(mh)
	if !r.escaped || len(ks.got) != 1 || string(ks.got[0].Body) != "secret" {
		t.Fatalf("foreign subscriber: escaped %v, got %d messages", r.escaped, len(ks.got))
	}

	mh = NewMemHub()
	bob1, bob2 := newTestConn(), newTestConn()
	mh.Subscribe("bob", bob1)
	mh.Subscribe("bob", bob2)
	r = commit(mh)
	if r.escaped || r.refs.Load() != 2 {
		t.Fatalf("own connections: escaped %v, refs %d, want 2 (one per queued item)", r.escaped, r.refs.Load())
	}
	for _, c := range []*conn{bob1, bob2} {
		if c.out.len() != 1 || c.out.items[0].owner != r || c.out.items[0].msg != &r.msg {
			t.Fatalf("queued item does not hold the request")
		}
	}
	bob1.out.items[0].owner.release()
	if r.refs.Load() != 1 || string(r.msg.Body) != "secret" {
		t.Fatal("released before every writer was done")
	}
	bob2.out.items[0].owner.release()
	if r.refs.Load() != 0 || r.msg.Body != nil {
		t.Fatal("not recycled after the last writer")
	}
}
