package server_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// TestSlowReaderDisconnectedMessagesKept: a recipient that stops reading is cut off
// once its outbound queue overflows; the relay keeps its messages and delivers them
// all on the next connection.
func TestSlowReaderDisconnectedMessagesKept(t *testing.T) {
	eachStore(t, testSlowReaderDisconnectedMessagesKept)
}

func testSlowReaderDisconnectedMessagesKept(t *testing.T, bk store) {
	// The write timeout is far longer than the test: the cut-off under test is the
	// outbound queue's overflow. With the default 10 s, the writer blocked on the full
	// socket timed out first on a loaded machine (the 256 sends that fill the queue took
	// longer than that under -race), closing the connection for another reason, and the
	// loop below sent on until its deadline. NORMAL: the disk is not what is tested.
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{OutboundQueue: 256, FramesPerSecond: -1, MaxQueueBytes: 1 << 30, WriteTimeout: time.Hour}, SenderQuota: -1, Synchronous: "NORMAL"})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
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
	receiveInOrder(t, bob.login(t, r), ids, len(body), 32)
	t.Logf("disconnected after %d messages of %d KiB", len(ids), len(body)>>10)
}

// TestClientReconnects: a client kept up by Run reports its state, reconnects after a
// relay restart, logs in again and gets what was sent meanwhile.
func TestClientReconnects(t *testing.T) { eachStore(t, testClientReconnects) }

func testClientReconnects(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := register(t, r, "bob")
	bc := runningClient(t, r, bob)
	waitState := func(want client.ConnStatus) client.ConnState {
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
	waitState(client.StateOnline)
	r.Restart(t)
	off := waitState(client.StateOffline)
	if off.Err == nil {
		t.Fatal("offline state without a reason")
	}
	waitState(client.StateOnline)
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

// TestSlowRecipientNeverStallsSender: a recipient that logs in and then reads nothing
// must not slow down or fail anybody's send. The relay's write to it blocks (its socket
// buffers are full, and the write timeout here is far longer than the test), so every
// send below only succeeds if nothing on the send path waits for that write: the
// message is durable in the queue, the send is accepted, and the non-reader is cut off
// once its bounded outbound queue overflows. Several senders send at once so the
// group commit carries many messages per round, some of them for the stuck connection.
func TestSlowRecipientNeverStallsSender(t *testing.T) {
	eachStore(t, func(t *testing.T, bk store) {
		for _, q := range []int{64, server.DefaultLimits.OutboundQueue} {
			t.Run(fmt.Sprintf("outbound=%d", q), func(t *testing.T) { testSlowRecipientNeverStallsSender(t, bk, q) })
		}
	})
}

func testSlowRecipientNeverStallsSender(t *testing.T, bk store, outbound int) {
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{
		OutboundQueue: outbound, FramesPerSecond: -1, MaxQueueBytes: 1 << 30,
		WriteTimeout: time.Hour, // a send that waited for the stuck write would never finish
	}})
	bob := register(t, r, "bob")
	rc := dialRaw(t, r) // logs in, then never reads
	if f := rc.login(bob); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	// carol is a healthy recipient: her deliveries must keep flowing meanwhile.
	carol := newUser(t, r, "carol")
	const senders = 4
	body := bytes.Repeat([]byte{7}, 32<<10)
	slowCut := func() bool {
		return strings.Contains(r.Get(t, "/metrics"), "pfschat_relay_slow_reader_disconnects_total 1")
	}

	var mu sync.Mutex
	var ids []int64 // accepted for bob
	cut := make(chan struct{})
	var cutOnce sync.Once
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		u := newUser(t, r, fmt.Sprintf("sender%d", s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := 0 // sends after the cut
			for i := 0; i < 4000 && after < 50; i++ {
				// Each send gets a bound far above its normal few milliseconds; the
				// stuck write would hold it for an hour.
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				id, err := u.c.Send(ctx, "bob", body, fmt.Sprintf("b%d", i))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("%s: send %d to the non-reading bob: %w", u.name, i, err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				select {
				case <-cut:
					after++
				default:
					if i%16 == 15 && slowCut() {
						cutOnce.Do(func() { close(cut) })
					}
				}
				if i%64 == 0 {
					ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
					_, err := u.c.Send(ctx, "carol", []byte("hi"), fmt.Sprintf("c%d", i))
					cancel()
					if err != nil {
						errs <- fmt.Errorf("%s: send to carol: %w", u.name, err)
						return
					}
				}
			}
		}()
	}
	// carol reads while the senders send.
	carolDone := make(chan int)
	go func() {
		n := 0
		for {
			p, err := carol.c.Pushes().Wait(context.Background())
			if err != nil {
				break
			}
			if p.Message != nil {
				n++
				if n == senders { // the first send to carol of every sender
					carol.c.AckNoWait(p.Message.ID)
					break
				}
			}
		}
		carolDone <- n
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if !slowCut() {
		t.Fatal("the non-reading recipient was never disconnected")
	}
	select {
	case <-carolDone:
	case <-time.After(waitFor):
		t.Fatal("carol's deliveries stalled while bob was stuck")
	}

	// Everything accepted for bob is in his queue and arrives on his next connection.
	slices.Sort(ids)
	receiveInOrder(t, bob.login(t, r), ids, len(body), 64)
	t.Logf("%d messages accepted for the non-reader, every one delivered after it came back", len(ids))
}

// receiveInOrder reads the messages ids, in that order and each bodyLen bytes long, on
// a fresh connection, acking them every ackEvery.
func receiveInOrder(t *testing.T, c *client.Client, ids []int64, bodyLen, ackEvery int) {
	t.Helper()
	var acks []int64
	for i, want := range ids {
		m := nextMessage(t, c)
		if m.ID != want || len(m.Body) != bodyLen {
			t.Fatalf("message %d after reconnect: id %d (%d bytes), want %d", i, m.ID, len(m.Body), want)
		}
		if acks = append(acks, m.ID); len(acks) == ackEvery || i == len(ids)-1 {
			if err := c.AckNoWait(acks...); err != nil {
				t.Fatal(err)
			}
			acks = acks[:0]
		}
	}
}
