package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/cluster/natstest"
)

func TestSingleRestartKeepsStream(t *testing.T) {
	s := natstest.Single(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Restart()
	st, err := js.Stream(ctx, "T")
	for err != nil && ctx.Err() == nil { // the client reconnects on its own schedule
		st, err = js.Stream(ctx, "T")
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil || string(m.Data) != "x" {
		t.Fatalf("after restart: %v %v", m, err)
	}
}

func TestClusterR3SurvivesOneStop(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster start in -short")
	}
	c := natstest.Cluster(t, 3)
	// Bounded like an election: on two loaded cores the meta leader can change just
	// after the cluster settled, and a request sent to the old one gets no answer.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nc, err := nats.Connect(c.URLs()[0]+","+c.URLs()[1]+","+c.URLs()[2], nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cfg := jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}
	if err := retry(ctx, func(try context.Context) error { _, err := js.CreateOrUpdateStream(try, cfg); return err }); err != nil {
		t.Fatalf("create an R3 stream: %v", err)
	}
	if err := retry(ctx, func(try context.Context) error { _, err := js.Publish(try, "t.a", []byte("x")); return err }); err != nil {
		t.Fatalf("publish with 3 of 3: %v", err)
	}
	c.Stop(2)
	if err := retry(ctx, func(try context.Context) error { _, err := js.Publish(try, "t.a", []byte("y")); return err }); err != nil {
		t.Fatalf("publish with 2 of 3: %v", err)
	}
	c.Restart(2)
}

// retry calls f until it succeeds or ctx ends, each call with a deadline of its own:
// a request that reached a server which stopped, or a leader which stepped down, gets
// no answer and must not use up the whole test's time.
func retry(ctx context.Context, f func(context.Context) error) error {
	var err error
	for ctx.Err() == nil {
		try, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = f(try)
		cancel()
		if err == nil {
			return nil
		}
		select { // an answer such as "no responders" comes at once: do not spin
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return err
}
