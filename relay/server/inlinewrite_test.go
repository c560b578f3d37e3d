package server_test

import (
	"fmt"
	"testing"
	"time"

	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// TestAnswersAfterWriteDeadline: the committer's answer writer writes answers and
// deliveries to plain sockets without blocking (see writeSet in committer.go). A write deadline
// left on the socket by an earlier, blocking write, long passed, must not fail those
// writes (they did, and the connections closed, when the committer wrote through
// RawConn.Write, which checks the deadline).
func TestAnswersAfterWriteDeadline(t *testing.T) { eachStore(t, testAnswersAfterWriteDeadline) }

func testAnswersAfterWriteDeadline(t *testing.T, bk store) {
	const writeTimeout = 100 * time.Millisecond
	r := bk.StartWith(t, relaytest.Options{Limits: server.Limits{WriteTimeout: writeTimeout, FramesPerSecond: -1}})
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")
	waitSynced(t, bob.c)
	ctx := testCtx(t)
	for i := range 3 {
		// Not synchronisation: the deadline of the last write (the login's answers,
		// then the committer's handoffs, if any) passes.
		time.Sleep(2 * writeTimeout)
		id, err := alice.c.Send(ctx, "bob", []byte(fmt.Sprint("m", i)), fmt.Sprint("c", i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if m := nextMessage(t, bob.c); m.ID != id || string(m.Body) != fmt.Sprint("m", i) {
			t.Fatalf("message %d: got id %d %q, want id %d", i, m.ID, m.Body, id)
		}
	}
}
