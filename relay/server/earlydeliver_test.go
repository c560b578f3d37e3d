package server_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// flushGate is the SQLite queue with a Flush that waits for the test's word (and
// fails when given an error), so a test can hold a round between its commit and the
// disk's flush. Its other methods are the store's own.
type flushGate struct {
	*storage.Relay
	entered chan struct{}
	release chan error
}

func (g *flushGate) Flush(ctx context.Context) error {
	g.entered <- struct{}{}
	if err := <-g.release; err != nil {
		return err
	}
	return g.Relay.Flush(ctx)
}

// TestDeliverBeforeFlush: the relay delivers a committed round to its connected
// recipient while the disk flushes it, and answers "accepted" only after the flush;
// the next round commits and is delivered meanwhile. A
// flush that fails is answered as not stored, retry with the same client_id: the
// retry is the first message's duplicate, with its msg_id, and is not delivered again.
func TestDeliverBeforeFlush(t *testing.T) {
	ctx := testCtx(t)
	q, err := storage.OpenRelay(ctx, filepath.Join(t.TempDir(), "queue.db"), storage.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	gate := &flushGate{Relay: q, entered: make(chan struct{}), release: make(chan error)}
	r := relaytest.StartWith(t, relaytest.Options{Queue: gate})
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	waitSynced(t, bob.c)

	// The first round reserves the queue's ids, which are flushed before any is seen:
	// no separate flush.
	if _, err := alice.c.Send(ctx, "bob", []byte("first"), "c0"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, bob.c); string(m.Body) != "first" {
		t.Fatalf("got %q", m.Body)
	}

	type sent struct {
		id  int64
		err error
	}
	send := func(body, clientID string) <-chan sent {
		ch := make(chan sent, 1)
		go func() {
			id, err := alice.c.Send(ctx, "bob", []byte(body), clientID)
			ch <- sent{id, err}
		}()
		return ch
	}

	flushing := func() {
		t.Helper()
		select {
		case <-gate.entered:
		case <-ctx.Done():
			t.Fatal("the round was never flushed")
		}
	}
	answer := send("second", "c1")
	flushing() // committed, the flush holds
	m := nextMessage(t, bob.c)
	if string(m.Body) != "second" {
		t.Fatalf("delivered %q during the flush, want %q", m.Body, "second")
	}
	select {
	case a := <-answer:
		t.Fatalf("the sender was answered (%d, %v) before the flush", a.id, a.err)
	default:
	}
	// The next round commits and is delivered while the flush still holds.
	answerB := send("second-b", "c1b")
	if mb := nextMessage(t, bob.c); string(mb.Body) != "second-b" || mb.ID <= m.ID {
		t.Fatalf("delivered %q (id %d) during the first round's flush, want %q after id %d", mb.Body, mb.ID, "second-b", m.ID)
	}
	gate.release <- nil
	if a := <-answer; a.err != nil || a.id != m.ID {
		t.Fatalf("accepted %d, %v; want msg_id %d", a.id, a.err, m.ID)
	}
	flushing() // the second round's own
	gate.release <- nil
	if a := <-answerB; a.err != nil {
		t.Fatal(a.err)
	}

	answer = send("third", "c2")
	flushing()
	third := nextMessage(t, bob.c)
	gate.release <- errors.New("the disk refused the flush")
	a := <-answer
	wantCode(t, a.err, relay.CodeInternal)

	// The retry the error asks for: the stored message's duplicate, with its id.
	answer = send("third", "c2")
	flushing()
	gate.release <- nil
	if a := <-answer; a.err != nil || a.id != third.ID {
		t.Fatalf("retry: accepted %d, %v; want the first copy's msg_id %d", a.id, a.err, third.ID)
	}
	// Nothing was delivered twice: the next message is the next send.
	answer = send("fourth", "c3")
	flushing()
	gate.release <- nil
	if m := nextMessage(t, bob.c); string(m.Body) != "fourth" {
		t.Fatalf("after the retry bob got %q, want %q", m.Body, "fourth")
	}
	if a := <-answer; a.err != nil {
		t.Fatal(a.err)
	}
}
