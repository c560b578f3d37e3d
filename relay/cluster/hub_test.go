package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// chanSub is a server.Subscriber that hands events to channels.
type chanSub struct {
	msgs    chan storage.QueuedMessage
	notices chan server.Notice
}

func newChanSub() *chanSub {
	return &chanSub{msgs: make(chan storage.QueuedMessage, 16), notices: make(chan server.Notice, 16)}
}

func (s *chanSub) Deliver(m *storage.QueuedMessage) {
	c := *m
	c.Body = append([]byte(nil), m.Body...)
	s.msgs <- c
}
func (s *chanSub) Notify(n server.Notice) { s.notices <- n }

func recvMsg(t *testing.T, ch chan storage.QueuedMessage) storage.QueuedMessage {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s")
	}
	return storage.QueuedMessage{}
}

// none checks nothing more arrives: a round trip through the NATS server on every
// connection (Flush) puts anything published before it in the hubs' inboxes, and a
// sentinel pushed behind it on each hub's inbox comes out after them.
func none(t *testing.T, ch chan storage.QueuedMessage, hubs ...*Hub) {
	t.Helper()
	for _, h := range hubs {
		if err := h.c.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hubs {
		sentinel := newChanSub()
		cancel := h.local.Subscribe("zz-sentinel", sentinel)
		var other [8]byte
		other[0] = ^h.node[0]
		b, _ := appendHubNotice(nil, other, "zz-sentinel", &server.Notice{Limit: "sentinel"})
		h.in <- &nats.Msg{Data: b}
		select {
		case <-sentinel.notices:
		case <-time.After(5 * time.Second):
			t.Fatal("hub dispatcher stuck")
		}
		cancel()
	}
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %+v", m)
	default:
	}
}

func TestHubAcrossNodes(t *testing.T) {
	s := natstest.Single(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, cb := testConn(t, []string{s.URL()}, 1), testConn(t, []string{s.URL()}, 1)
	ha, hb := NewHub(ctx, ca), NewHub(ctx, cb)
	defer ha.Close()
	defer hb.Close()
	onA, onB := newChanSub(), newChanSub()
	cancelA := ha.Subscribe("bob.x", onA)
	cancelB := hb.Subscribe("bob.x", onB)
	m := storage.QueuedMessage{ID: 7, To: "bob.x", From: "alice", FromCardID: "c", ClientID: "1", Body: []byte("hi"), ReceivedAt: time.Now().UTC()}
	ha.Publish(&m)
	if got := recvMsg(t, onA.msgs); got.ID != 7 || string(got.Body) != "hi" {
		t.Fatalf("local: %+v", got)
	}
	if got := recvMsg(t, onB.msgs); got.ID != 7 || got.To != "bob.x" || got.From != "alice" || string(got.Body) != "hi" {
		t.Fatalf("remote: %+v", got)
	}
	// Once on each node: A ignores its own echo.
	ha.Publish(&storage.QueuedMessage{ID: 8, To: "carol", From: "alice", ClientID: "2"})
	none(t, onA.msgs, ha, hb)
	none(t, onB.msgs, ha, hb)
	hb.Notice("bob.x", server.Notice{LowPreKeys: map[string]int{"one_time": 3}, CardReplaced: "card2"})
	for _, sub := range []*chanSub{onA, onB} {
		select {
		case n := <-sub.notices:
			if n.CardReplaced != "card2" || n.LowPreKeys["one_time"] != 3 {
				t.Fatalf("notice %+v", n)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no notice")
		}
	}
	// After cancel, B's node no longer gets bob.x's messages.
	cancelB()
	ha.Publish(&storage.QueuedMessage{ID: 9, To: "bob.x", From: "alice", ClientID: "3"})
	recvMsg(t, onA.msgs)
	none(t, onB.msgs, ha, hb)
	cancelA()
	if hb.Dropped() != 0 || ha.Dropped() != 0 {
		t.Fatalf("dropped %d %d", ha.Dropped(), hb.Dropped())
	}
}

func TestHubMessageRejects(t *testing.T) {
	var origin [8]byte
	good, err := appendHubMessage(nil, origin, &storage.QueuedMessage{ID: 1, To: "bob", From: "a", ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"kind":        append([]byte{9}, good[1:]...),
		"no id":       good[:12],
		"zero id":     append(append(append([]byte{}, good[:9]...), 0, 0, 0, 0, 0, 0, 0, 0), good[17:]...),
		"name":        append(append([]byte{}, good[:17]...), 0x7f),
		"envelope":    good[:len(good)-3],
		"notice json": append([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 'b', 'o', 'b'}, "{"...),
	} {
		if _, err := parseHubMessage(b); !errors.Is(err, ErrBadHubMessage) {
			t.Errorf("%s: %v, want ErrBadHubMessage", name, err)
		}
	}
}

func FuzzParseHubMessage(f *testing.F) {
	var origin [8]byte
	b, _ := appendHubMessage(nil, origin, &storage.QueuedMessage{ID: 3, To: "bob", From: "a", ClientID: "c", Body: []byte("x")})
	f.Add(b)
	b, _ = appendHubNotice(nil, origin, "bob", &server.Notice{Limit: "x"})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		hm, err := parseHubMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadHubMessage) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if hm.name == "" {
			t.Fatal("parsed without a name")
		}
	})
}

// BenchmarkHubLocalPublish: a push for a recipient connected to the publishing node
// (its hub subscribed to the recipient's subject), with NATS's echo (each push sent
// back to the node and dropped there) and without it (NoEcho, the default), on one
// in-process server; cpu = the whole process's (server included) per push.
//
//	go test -run '^$' -bench HubLocalPublish -benchtime 200000x ./relay/cluster/
func BenchmarkHubLocalPublish(b *testing.B) {
	s := natstest.Single(b)
	for _, echo := range []bool{true, false} {
		b.Run(fmt.Sprintf("echo=%v", echo), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := Connect(ctx, Options{URLs: []string{s.URL()}, echo: echo, Prefix: fmt.Sprintf("E%v", echo)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			h := NewHub(ctx, c)
			got := make(chan struct{}, 1024)
			h.Subscribe("bob", countSub{got})
			m := &storage.QueuedMessage{ID: 1, To: "bob", From: "alice", FromCardID: "card", ClientID: "x", Body: make([]byte, 256)}
			cpu0 := processCPU()
			for b.Loop() {
				h.Publish(m)
				<-got
			}
			c.NATS().Flush()
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/push")
		})
	}
}

// countSub signals each delivery on a channel.
type countSub struct{ ch chan struct{} }

func (s countSub) Deliver(*storage.QueuedMessage) { s.ch <- struct{}{} }
func (s countSub) Notify(server.Notice)           {}
