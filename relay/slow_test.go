package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/relaytest"
)

// TestSlowReaderDisconnectedMessagesKept: a recipient that stops reading is cut off
// once its outbound queue overflows; the relay keeps its messages and delivers them
// all on the next connection.
func TestSlowReaderDisconnectedMessagesKept(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{Limits: relay.Limits{OutboundQueue: 256, FramesPerSecond: -1}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := newUser(t, r, "alice")
	bob := register(t, r, "bob")
	rc := dialRaw(t, r) // logs in, then never reads
	if f := rc.login(bob); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	body := bytes.Repeat([]byte{7}, 40<<10)
	var ids []int64
	for i := 0; i < 2000; i++ {
		id, err := alice.c.Send(ctx, "bob", body, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if i%10 == 9 && strings.Contains(r.Get(t, "/metrics"), "pfschat_relay_slow_reader_disconnects_total 1") {
			break
		}
	}
	if !strings.Contains(r.Get(t, "/metrics"), "pfschat_relay_slow_reader_disconnects_total 1") {
		t.Fatal("the slow reader was never disconnected")
	}
	c := bob.login(t, r)
	var acks []int64
	for i, want := range ids {
		m := nextMessage(t, c)
		if m.ID != want || len(m.Body) != len(body) {
			t.Fatalf("message %d after reconnect: id %d (%d bytes), want %d", i, m.ID, len(m.Body), want)
		}
		if acks = append(acks, m.ID); len(acks) == 32 || i == len(ids)-1 {
			if err := c.AckNoWait(acks...); err != nil {
				t.Fatal(err)
			}
			acks = acks[:0]
		}
	}
	t.Logf("disconnected after %d messages of %d KiB", len(ids), len(body)>>10)
}

// TestClientReconnects: a client kept up by Run reports its state, reconnects after a
// relay restart, logs in again and gets what was sent meanwhile.
func TestClientReconnects(t *testing.T) {
	r := relaytest.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := register(t, r, "bob")
	bc := runningClient(t, r, bob)
	waitState := func(want relay.ConnStatus) relay.ConnState {
		t.Helper()
		timeout := time.After(waitFor)
		for {
			select {
			case s := <-bc.States():
				if s.State == want {
					return s
				}
			case <-timeout:
				t.Fatalf("client never reached state %v", want)
			}
		}
	}
	waitState(relay.StateOnline)
	r.Restart(t)
	off := waitState(relay.StateOffline)
	if off.Err == nil {
		t.Fatal("offline state without a reason")
	}
	waitState(relay.StateOnline)
	// alice's client was not running Run: reconnect it by hand.
	alice.login(t, r)
	id, err := alice.c.Send(ctx, "bob", []byte("after restart"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, bc); m.ID != id {
		t.Fatalf("got %d, want %d", m.ID, id)
	}
}
