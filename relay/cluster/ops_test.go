package cluster_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func openTestNode(t *testing.T, url string) *cluster.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, cluster.Options{URLs: []string{url}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.OpenNode(ctx, conn, cluster.NodeOptions{SealKey: testSealKey})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// TestOpsQueueKeepsExtensions: the measured queue has every exported method of the
// queue (the relay looks for optional extensions by type assertion), and no other:
// none is lost by measuring. It lists the queue's methods rather than naming them, so a
// method the queue grows is checked without anyone remembering to add it here (the
// list it had missed AckOwned once, and MarkRecipient and PurgeRecipientBefore, which
// the registration's drop of a deleted account's queue needs, until they were found
// missing in 'pfschat relay --nats').
func TestOpsQueueKeepsExtensions(t *testing.T) {
	n := openTestNode(t, natstest.Single(t).URL())
	raw, measured := reflect.TypeOf(&cluster.Queue{}), reflect.TypeOf(n.Queue)
	for i := range raw.NumMethod() {
		m := raw.Method(i)
		w, wraps := measured.MethodByName(m.Name)
		if !wraps {
			t.Errorf("cluster.Queue has %s; the measured queue has not", m.Name)
			continue
		}
		if m.Type.NumIn() != w.Type.NumIn() || m.Type.NumOut() != w.Type.NumOut() {
			t.Errorf("%s: the measured queue's signature differs", m.Name)
		}
	}
	for i := range measured.NumMethod() {
		if name := measured.Method(i).Name; !hasMethod(raw, name) {
			t.Errorf("the measured queue has %s, which cluster.Queue has not", name)
		}
	}
	for _, ext := range []reflect.Type{reflect.TypeFor[server.AckBatcher](), reflect.TypeFor[server.OwnedAcker](),
		reflect.TypeFor[server.QueuePurger](), reflect.TypeFor[server.StaleQueuePurger]()} {
		if !measured.Implements(ext) {
			t.Errorf("the measured queue is no %v", ext)
		}
	}
}

func hasMethod(t reflect.Type, name string) bool { _, ok := t.MethodByName(name); return ok }

// TestOpsHealthAndMetrics: /healthz says ok while NATS and JetStream answer and 503
// unavailable once the node lost NATS; /metrics adds the publish latency and the
// JetStream errors.
func TestOpsHealthAndMetrics(t *testing.T) {
	ns := natstest.Single(t)
	n := openTestNode(t, ns.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next "+r.URL.Path+"\n") })
	admin, public := n.AdminHandler(next), n.PublicHandler(next)

	for _, h := range []http.Handler{admin, public} {
		if code, body := get(t, h, "/healthz"); code != 200 || body != "next /healthz\n" {
			t.Errorf("/healthz while connected: %d %q, want the relay's own answer", code, body)
		}
	}
	msg := func(id string) storage.QueuedMessage {
		return storage.QueuedMessage{To: "bob", From: "alice", FromCardID: "card-alice", ClientID: id, Body: []byte(id), ReceivedAt: time.Now()}
	}
	if _, err := n.Queue.Enqueue(ctx, []storage.QueuedMessage{msg("1"), msg("2"), msg("3")}); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, public, "/metrics"); strings.Contains(body, "pfschat_jetstream") {
		t.Errorf("the public port's /metrics shows the JetStream figures:\n%s", body)
	}

	down := make(chan struct{}, 1)
	n.Conn.NATS().SetDisconnectErrHandler(func(*nats.Conn, error) {
		select {
		case down <- struct{}{}:
		default:
		}
	})
	ns.Stop()
	select {
	case <-down:
	case <-ctx.Done():
		t.Fatal("the NATS client never saw the server go")
	}
	if res, err := n.Queue.Enqueue(ctx, []storage.QueuedMessage{msg("4")}); err == nil && !errors.Is(res[0].Err, server.ErrUnavailable) {
		t.Fatalf("enqueued without NATS: %+v", res)
	}
	for _, h := range []http.Handler{admin, public} {
		if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "unavailable: nats: not connected") {
			t.Errorf("/healthz without NATS: %d %q, want 503 unavailable: nats: not connected", code, body)
		}
	}
	_, body := get(t, admin, "/metrics")
	for _, want := range []string{
		"next /metrics\n",
		"pfschat_jetstream_connected 0\n",
		"pfschat_jetstream_publishes_total 2\n",
		"pfschat_jetstream_published_messages_total 4\n",
		"pfschat_jetstream_publish_seconds_count 2\n",
		`pfschat_jetstream_errors_total{op="enqueue"} 1` + "\n",
		`pfschat_jetstream_errors_total{op="ack"} 0` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
