package cluster_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// fakeQueue is a queue apart from the directory that commits (server.Committer) but
// has no AckBatch.
type fakeQueue struct{ fail error }

func (q *fakeQueue) Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error) {
	return make([]storage.EnqueueResult, len(msgs)), q.fail
}
func (q *fakeQueue) Pending(context.Context, string, int64, int) ([]storage.QueuedMessage, error) {
	return nil, q.fail
}
func (q *fakeQueue) Ack(context.Context, string, []int64) error     { return q.fail }
func (q *fakeQueue) Expire(context.Context, time.Time) (int, error) { return 7, nil }
func (q *fakeQueue) QueueDepth(context.Context) (int, error)        { return 42, nil }
func (q *fakeQueue) Commit(ctx context.Context, msgs []storage.QueuedMessage, _ map[string][]int64) ([]storage.EnqueueResult, error) {
	return q.Enqueue(ctx, msgs)
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// TestOpsHealthAndMetrics: /healthz says ok while NATS and JetStream answer and 503
// unavailable once the node lost NATS; /metrics adds the publish latency and the
// errors of the measured queue, which keeps exactly the extensions of the queue it
// wraps.
func TestOpsHealthAndMetrics(t *testing.T) {
	ns := natstest.Single(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, cluster.Options{URLs: []string{ns.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ops := cluster.NewOps(conn)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next "+r.URL.Path+"\n") })
	h := ops.Handler(next)

	if code, body := get(t, h, "/healthz"); code != 200 || body != "next /healthz\n" {
		t.Errorf("/healthz while connected: %d %q, want the relay's own answer", code, body)
	}

	fq := &fakeQueue{}
	q, err := ops.Queue(fq)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.(server.Committer); !ok {
		t.Error("the measured queue lost Commit")
	}
	if _, ok := q.(server.AckBatcher); ok {
		t.Error("the measured queue grew an AckBatch its queue does not have")
	}
	if n, _ := q.(interface {
		QueueDepth(context.Context) (int, error)
	}).QueueDepth(ctx); n != 42 {
		t.Errorf("QueueDepth through the measure = %d, want the queue's 42", n)
	}
	if _, err := q.Enqueue(ctx, make([]storage.QueuedMessage, 3)); err != nil {
		t.Fatal(err)
	}
	fq.fail = errors.New("no quorum")
	q.(server.Committer).Commit(ctx, make([]storage.QueuedMessage, 2), nil)
	q.Ack(ctx, "bob", []int64{1})
	_, body := get(t, h, "/metrics")
	for _, want := range []string{
		"next /metrics\n",
		"pfschat_jetstream_connected 1\n",
		"pfschat_jetstream_publishes_total 2\n",
		"pfschat_jetstream_published_messages_total 5\n",
		"pfschat_jetstream_publish_seconds_count 2\n",
		`pfschat_jetstream_errors_total{op="commit"} 1` + "\n",
		`pfschat_jetstream_errors_total{op="ack"} 1` + "\n",
		`pfschat_jetstream_errors_total{op="enqueue"} 0` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}

	if _, err := ops.Queue(struct{ server.Queue }{fq}); err == nil {
		t.Error("Ops.Queue took a queue that does not expire its own messages")
	}

	down := make(chan struct{}, 1)
	conn.NATS().SetDisconnectErrHandler(func(_ *nats.Conn, _ error) {
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
	if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "unavailable: nats: not connected") {
		t.Errorf("/healthz without NATS: %d %q, want 503 unavailable: nats: not connected", code, body)
	}
	if _, body := get(t, h, "/metrics"); !strings.Contains(body, "pfschat_jetstream_connected 0\n") {
		t.Errorf("/metrics without NATS does not say so:\n%s", body)
	}
}
