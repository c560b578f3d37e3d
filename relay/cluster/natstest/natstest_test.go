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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := nats.Connect(c.URLs()[0]+","+c.URLs()[1]+","+c.URLs()[2], nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Stop(2)
	var perr error
	for ctx.Err() == nil {
		// Each try has its own deadline: a publish that reached the stopped leader
		// gets no answer, and must not use up the whole test's time.
		try, cancelTry := context.WithTimeout(ctx, 2*time.Second)
		_, perr = js.Publish(try, "t.a", []byte("y"))
		cancelTry()
		if perr == nil {
			break
		}
	}
	if perr != nil {
		t.Fatalf("publish with 2 of 3: %v", perr)
	}
	c.Restart(2)
}
