package chat

import (
	"context"
	"errors"
	"testing"
	"time"

	"pfschat/relay"
)

// blockedSendsRelay reports every send the relay refused because the recipient blocked
// the sender, so a test knows the refusal has come back, not only that it was asked for.
type blockedSendsRelay struct {
	RelayClient
	refused chan string // the refused sends' client ids
}

func (r *blockedSendsRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	id, err := r.RelayClient.Send(ctx, to, body, clientID)
	var pe *relay.ProtocolError
	if errors.As(err, &pe) && pe.Code == relay.CodeBlocked {
		r.refused <- clientID
	}
	return id, err
}

// blockPair is refusalPair with alice's sends watched for blocked refusals and, beneath
// that, a refusingRelay the test can make lose a send.
func blockPair(t *testing.T) (alice, bob *user, clock *fakeClock, watch *blockedSendsRelay, loses *refusingRelay) {
	t.Helper()
	loses = &refusingRelay{}
	watch = &blockedSendsRelay{RelayClient: loses, refused: make(chan string, 16)}
	alice, bob, clock = refusalPair(t, func(c RelayClient) RelayClient { loses.RelayClient = c; return watch })
	return alice, bob, clock, watch, loses
}

// refuseWhileBlocked has alice send text to bob, who has blocked her on the relay, and
// returns once the relay has refused both the message and its withdrawn notice (the
// notice would otherwise reach bob after the unblock and take the number).
func refuseWhileBlocked(t *testing.T, alice *user, watch *blockedSendsRelay, text string) {
	t.Helper()
	m, err := alice.c.Send(t.Context(), "bob", text)
	must(t, err)
	waitEvent(t, alice.c, text+" refused", func(e Event) bool {
		return e.Kind == DeliveryChanged && e.Message.ID == m.ID && e.Message.State == Failed
	})
	for range 2 {
		select {
		case <-watch.refused:
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for the relay to refuse %q and its withdrawn notice", text)
		}
	}
}

// sendReceived has alice send text to bob and returns it as bob received it.
func sendReceived(t *testing.T, alice, bob *user, text string) Message {
	t.Helper()
	_, err := alice.c.Send(t.Context(), "bob", text)
	must(t, err)
	return waitReceived(t, bob.c, "alice", text)
}

// blockCycle has bob block alice, alice's refused text be refused, bob unblock her, and
// alice's next text arrive; it returns next as bob received it.
func blockCycle(t *testing.T, alice, bob *user, watch *blockedSendsRelay, refused, next string) Message {
	t.Helper()
	must(t, bob.c.Block(t.Context(), "alice"))
	refuseWhileBlocked(t, alice, watch, refused)
	must(t, bob.c.Unblock(t.Context(), "alice"))
	return sendReceived(t, alice, bob, next)
}

// loseBetween has alice send lost, which the relay loses, then next, which arrives;
// it returns next as bob received it.
func loseBetween(t *testing.T, alice, bob *user, loses *refusingRelay, lost, next string) Message {
	t.Helper()
	loses.mu.Lock()
	loses.drop = 1
	loses.mu.Unlock()
	_, err := alice.c.Send(t.Context(), "bob", lost)
	must(t, err)
	return sendReceived(t, alice, bob, next)
}

// wantOneGap checks that, after wait, bob's conversation with alice reports exactly
// the gap of number seq, before message before.
func wantOneGap(t *testing.T, bob *user, clock *fakeClock, wait time.Duration, seq uint64, before int64) {
	t.Helper()
	clock.Add(wait)
	gaps, err := bob.c.Gaps(t.Context(), "alice")
	must(t, err)
	if len(gaps) != 1 || gaps[0].From != seq || gaps[0].To != seq || gaps[0].Before != before {
		t.Fatalf("gaps = %+v, want only seq %d before message %d", gaps, seq, before)
	}
}

// Messages a contact sent while blocked never reach this profile's sequence — those
// the relay had queued are dropped unread, later ones the relay refuses (their
// withdrawn notices too) — yet their numbers are spent on the sender's counter. After
// the unblock the conversation reports none of them as "has not arrived", however long
// it waits.
func TestUnblockRaisesNoGap(t *testing.T) {
	t.Run("queued before the block, dropped here", func(t *testing.T) {
		alice, bob, clock, _, _ := blockPair(t)
		ctx := t.Context()
		sendOne(t, alice, bob)
		bob.close()
		for _, text := range []string{"two", "three"} {
			m, err := alice.c.Send(ctx, "bob", text)
			must(t, err)
			waitState(t, alice.c, m.ID, Sent) // queued on the relay for bob
		}
		off, err := bob.p.NewController(ctx, testPass)
		must(t, err)
		must(t, off.Block(ctx, "alice"))
		off.Close()
		bob.reopen() // the block reaches the relay; the queued two and three are dropped
		must(t, bob.c.WaitSynced(ctx))
		must(t, bob.c.Unblock(ctx, "alice"))
		_, err = alice.c.Send(ctx, "bob", "four")
		must(t, err)
		waitReceived(t, bob.c, "alice", "four")
		wantConversation(t, bob, `1 "one" delivered`, `4 "four" delivered`)
		noGapsAfterAnHour(t, bob, clock)
	})
	t.Run("refused by the relay", func(t *testing.T) {
		alice, bob, clock, watch, _ := blockPair(t)
		sendOne(t, alice, bob)
		blockCycle(t, alice, bob, watch, "two", "three")
		wantConversation(t, bob, `1 "one" delivered`, `3 "three" delivered`)
		noGapsAfterAnHour(t, bob, clock)
	})
}

// The block excuses only the numbers before the first message that arrives after the
// unblock: a message lost after that is reported like any other, once GapWait has
// passed.
func TestLossAfterUnblockIsAGap(t *testing.T) {
	alice, bob, clock, watch, loses := blockPair(t)
	sendOne(t, alice, bob)
	blockCycle(t, alice, bob, watch, "two", "three")
	five := loseBetween(t, alice, bob, loses, "four, lost", "five")
	wantOneGap(t, bob, clock, GapWait, 4, five.ID)
}

// A message lost before the block is no number the block took: after the unblock it is
// still reported, while the numbers spent during the block are not.
func TestLossBeforeBlockIsStillAGap(t *testing.T) {
	alice, bob, clock, watch, loses := blockPair(t)
	sendOne(t, alice, bob)
	three := loseBetween(t, alice, bob, loses, "two, lost", "three")
	blockCycle(t, alice, bob, watch, "four", "five")
	wantOneGap(t, bob, clock, GapWait, 2, three.ID)
}

// Each block makes its own hole, and each unblock excuses its own: after a second
// block and unblock the first block's hole is still no gap.
func TestTwoUnblocksRaiseNoGap(t *testing.T) {
	alice, bob, clock, watch, _ := blockPair(t)
	sendOne(t, alice, bob)
	blockCycle(t, alice, bob, watch, "two", "three")
	blockCycle(t, alice, bob, watch, "four", "five")
	wantConversation(t, bob, `1 "one" delivered`, `3 "three" delivered`, `5 "five" delivered`)
	noGapsAfterAnHour(t, bob, clock)
}

// A message lost between two blocks — after the first unblock, before the second
// block — is no number either block took: it is still reported after the second
// unblock.
func TestLossBetweenBlocksIsStillAGap(t *testing.T) {
	alice, bob, clock, watch, loses := blockPair(t)
	sendOne(t, alice, bob)
	blockCycle(t, alice, bob, watch, "two", "three")
	five := loseBetween(t, alice, bob, loses, "four, lost", "five")
	blockCycle(t, alice, bob, watch, "six", "seven")
	wantOneGap(t, bob, clock, time.Hour, 4, five.ID)
}
