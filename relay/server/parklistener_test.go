package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/relaytest"
)

// TestTLSParkedReadLoopSeesBufferedFrames: over wss:// through ParkingListener the
// read loop parks on the socket, below TLS. Frames the client writes in one TLS
// record, more than the relay's read buffer holds, wait inside tls.Conn while the
// socket is quiet: each must still be answered (a loop that parked on the socket
// without asking tls.Conn first would wait for the next packet forever).
func TestTLSParkedReadLoopSeesBufferedFrames(t *testing.T) {
	r := relaytest.StartWith(t, relaytest.Options{TLS: true})
	ctx := testCtx(t)
	conf := r.CA.ClientTLS()
	conf.DynamicRecordSizingDisabled = true // one write, one record (up to 16 KiB)
	dial := func(name string) (*relaytest.LoadConn, relaytest.LoadUser) {
		u, err := relaytest.NewLoadUser(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relaytest.DialLoadTLS(ctx, r.URL, conf)
		if err != nil {
			t.Fatal(err)
		}
		// A read loop that misses buffered frames leaves the reads below waiting: the
		// deadline closes the connection and the test fails instead of hanging.
		timer := time.AfterFunc(5*time.Second, func() { c.Close() })
		t.Cleanup(func() { timer.Stop(); c.Close() })
		if err := c.Register(u); err != nil {
			t.Fatal(err)
		}
		if err := c.Login(u); err != nil {
			t.Fatal(err)
		}
		return c, u
	}
	alice, _ := dial("alice")
	bob, _ := dial("bob")
	if got := r.Server.ParkedBelowTLS(); got != 2 {
		t.Fatalf("%d connections park below TLS, want 2", got)
	}

	// Frames smaller than the read buffer (they straddle its refills), and frames
	// bigger than it, whose bodies gorilla reads past the buffer straight from
	// tls.Conn, so that the buffer is empty at a frame boundary with more frames
	// waiting in tls.Conn.
	rounds := []struct{ n, body int }{{3, 200}, {40, 200}, {8, 1000}, {2, 6000}}
	for round, rd := range rounds {
		n := rd.n
		for i := 0; i < n; i++ {
			alice.QueueSend("bob", []byte(strings.Repeat("x", rd.body)), fmt.Sprintf("r%d-%d", round, i))
		}
		if err := alice.Flush(); err != nil {
			t.Fatal(err)
		}
		for accepted := 0; accepted < n; {
			ev, err := alice.Next()
			if err != nil {
				t.Fatalf("round %d: alice after %d of %d accepted: %v", round, accepted, n, err)
			}
			if ev.Type == relay.TypeAccepted {
				accepted++
			} else if ev.Type == relay.TypeError {
				t.Fatalf("round %d: %v", round, ev.Err)
			}
		}
		var ids []int64
		for len(ids) < n {
			ev, err := bob.Next()
			if err != nil {
				t.Fatalf("round %d: bob after %d of %d: %v", round, len(ids), n, err)
			}
			if ev.Type == relay.TypeDeliver {
				ids = append(ids, ev.MsgID)
			}
		}
		bob.QueueAckAnswered(ids)
		if err := bob.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := bob.Next()
			if err != nil {
				t.Fatalf("round %d: bob's ack: %v", round, err)
			}
			if ev.Type == relay.TypeOK {
				break
			}
		}
	}
}
