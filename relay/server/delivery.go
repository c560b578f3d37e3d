package server

// Delivery: committed messages for a logged-in connection, live from the hub or from
// the stored backlog, in order and each once, into the connection's outbound queue.

import (
	"context"
	"fmt"

	"pfschat/relay"
	"pfschat/storage"
)

// Deliver implements Subscriber: a committed message for this connection's card.
func (c *conn) Deliver(m *storage.QueuedMessage) { c.deliver(m, nil, nil) }

// maxLiveSent bounds liveSent: a client that never acks makes it forget, and a Resync
// may then hand it a message a second time (receivers de-duplicate by msg_id).
const maxLiveSent = 4096

// deliver queues m for the writer and reports whether it did (false: the backlog will
// bring it, it came already, or the queue is full). When owner is set (m is owner.msg), the queued item holds a reference to it, which
// the writer releases. The committer passes its writeSet (see pushTo); other callers
// nil. A failed push closes the connection (slow), so what liveSent then holds for it
// no longer matters.
func (c *conn) deliver(m *storage.QueuedMessage, owner *sendReq, ws *writeSet) bool {
	c.dmu.Lock()
	if c.backfilling {
		c.missed = true // the backlog goroutine will read it from the store
		c.dmu.Unlock()
		return false
	}
	// The backlog handed the writer every message up to lastQueued; a live one at or
	// below it came with it. Live messages from several relay nodes may arrive slightly
	// out of order; each comes once, and one that a Resync brought first is in liveSent.
	if m.ID <= c.lastQueued {
		c.dmu.Unlock()
		return false
	}
	if c.liveSent != nil {
		if _, dup := c.liveSent[m.ID]; dup || c.ackedRecently(m.ID) {
			c.dmu.Unlock()
			return false
		}
		if len(c.liveSent) >= maxLiveSent {
			clear(c.liveSent)
		}
		c.liveSent[m.ID] = struct{}{}
	}
	if owner != nil {
		owner.refs.Add(1) // before the push: the writer may release it at once
	}
	ok := c.pushTo(ws, outItem{msg: m, owner: owner})
	if !ok && owner != nil {
		owner.refs.Add(-1) // never the last: the publisher holds one
	}
	c.dmu.Unlock()
	if !ok {
		c.slow()
	}
	return ok
}

// Resync implements Resyncable: it delivers the messages the store has for this
// connection's name that it has neither handed over nor had acked — a live push the
// hub lost. Called by the hub's goroutine, one connection at a time. An error is the
// store's (this connection's own closing is none).
func (c *conn) Resync(ctx context.Context) (int, error) {
	c.dmu.Lock()
	if c.liveSent == nil || c.acct == nil || c.ctx.Err() != nil {
		c.dmu.Unlock()
		return 0, nil
	}
	if c.backfilling {
		c.missed = true // the backlog goroutine reads the store once more
		c.dmu.Unlock()
		return 0, nil
	}
	after := c.lastQueued
	c.resyncing = true
	c.dmu.Unlock()
	defer func() {
		c.dmu.Lock()
		c.resyncing = false
		for _, id := range c.forgetLater {
			delete(c.liveSent, id)
		}
		c.forgetLater = c.forgetLater[:0]
		if cap(c.forgetLater) > maxLiveSent {
			c.forgetLater = nil
		}
		c.dmu.Unlock()
	}()
	const page = 256
	n := 0
	for {
		msgs, err := c.s.queue.Pending(ctx, c.acct.name, after, page)
		if err != nil {
			if c.ctx.Err() != nil {
				return n, nil // closing: its queue is read again on the next login
			}
			return n, fmt.Errorf("resync of %s: %w", c.acct.name, err)
		}
		now := c.s.now()
		// Like the backlog, a resync fills at most half the outbound queue (a long
		// outage can leave many messages behind): the rest waits for the next pass,
		// which finds it by liveSent, instead of a full queue closing the connection.
		backlogMax := max(1, c.s.limits.OutboundQueue/2)
		for i := range msgs {
			m := &msgs[i]
			if c.out.len() >= backlogMax || c.ctx.Err() != nil {
				return n, nil
			}
			if !m.ExpiresAt.IsZero() && now.After(m.ExpiresAt) {
				continue
			}
			if c.deliver(m, nil, nil) {
				n++
			}
		}
		if len(msgs) > 0 {
			after = msgs[len(msgs)-1].ID
		}
		if len(msgs) < page {
			return n, nil
		}
	}
}

// forgetAcked drops ids from liveSent once their ack is committed: a Resync after that
// finds them gone from the store. (Forgotten before the commit, a Resync in between —
// or after an ack that failed and is retried — would hand them over again; forgotten
// while a Resync is under way, that Resync's page, read before the commit, would.) The
// committer calls it; liveSent itself is set at login, before any ack of the
// connection reached the committer.
func (c *conn) forgetAcked(ids []int64) {
	if c.liveSent == nil {
		return // one node: nothing tracked
	}
	c.dmu.Lock()
	for _, id := range ids {
		c.rememberAcked(id)
	}
	if c.resyncing {
		// The resync under way may have read them before the ack's commit.
		c.forgetLater = append(c.forgetLater, ids...)
	} else {
		for _, id := range ids {
			delete(c.liveSent, id)
		}
	}
	c.dmu.Unlock()
}

// ackedRing is how many acked ids a connection remembers (2 KiB): a late push is
// milliseconds late, and a stale read follows a change of stream leader by about as
// long; 256 acks cover that at thousands of messages a second to one recipient.
const ackedRing = 256

// rememberAcked puts id in recentAcked, in place of the oldest. c.dmu must be held.
func (c *conn) rememberAcked(id int64) {
	if id <= 0 {
		return // not a message's: an empty slot holds 0
	}
	if c.recentAcked == nil {
		c.recentAcked = new([ackedRing]int64)
	}
	c.recentAcked[c.ackedNext] = id
	c.ackedNext = (c.ackedNext + 1) % ackedRing
}

// ackedRecently reports whether id is among the connection's last ackedRing acks (a
// scan of 2 KiB: cheaper than a map's upkeep on every ack, and done only for a
// message that is about to be handed over). c.dmu must be held.
func (c *conn) ackedRecently(id int64) bool {
	if c.recentAcked == nil || id <= 0 {
		return false
	}
	for _, a := range c.recentAcked {
		if a == id {
			return true
		}
	}
	return false
}

// Notify implements Subscriber.
func (c *conn) Notify(n Notice) {
	if n.LowPreKeys != nil {
		c.send(&relay.Frame{Type: relay.TypeLowPreKeys, Counts: n.LowPreKeys})
	}
	if n.Limit != "" {
		c.send(&relay.Frame{Type: relay.TypeLimitNotice, Limit: n.Limit, Message: limitNoticeText[n.Limit]})
	}
	if n.CardReplaced != "" {
		if id := c.cardID.Load(); id != nil && *id != n.CardReplaced {
			c.kill(relay.CodeCardReplaced, "", "the card this connection logged in with was replaced; log in with the current card")
		}
	}
	if n.LogoutAllExcept != "" && n.LogoutAllExcept != c.connKey() {
		c.kill(relay.CodeLoggedOut, "", "logout_all on another connection of this card logged this one out")
	}
	if n.AccountDeleted != "" {
		if id := c.cardID.Load(); id != nil && *id == n.AccountDeleted {
			c.acctGone.Store(true) // before the kill: the committer drops this connection's acks from now on
			c.kill(relay.CodeAccountDeleted, "", "the account this connection logged in with was deleted")
		}
	}
}

// backfill streams the stored backlog in order, then hands over to live delivery.
func (c *conn) backfill(name string) {
	defer c.s.wg.Done()
	const page = 256
	// The backlog fills at most half the outbound queue; the rest is for answers.
	backlogMax := max(1, c.s.limits.OutboundQueue/2)
	after := int64(0)
	for {
		// Not c.ctx: a query leaves a child-context map in its parent for good (see
		// opCtx); a page is read in milliseconds, and c.ctx still stops the loop below.
		ctx, cancel := c.opCtx()
		msgs, err := c.s.queue.Pending(ctx, name, after, page)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.s.log.Error("reading backlog", "conn", c.id, "err", err)
				c.send(&relay.Frame{Type: relay.TypeError, Code: relay.CodeInternal, Message: "could not read your queue; reconnect"})
				c.close()
			}
			return
		}
		now := c.s.now()
		for i := range msgs {
			m := &msgs[i]
			after = m.ID
			if !m.ExpiresAt.IsZero() && now.After(m.ExpiresAt) {
				continue
			}
			if err := c.out.push(c.ctx, outItem{msg: m}, backlogMax); err != nil {
				return
			}
		}
		c.dmu.Lock()
		c.lastQueued = after
		if len(msgs) < page {
			if !c.missed {
				c.backfilling = false
				c.dmu.Unlock()
				break
			}
			c.missed = false
		}
		c.dmu.Unlock()
	}
	c.send(&relay.Frame{Type: relay.TypeSynced})
}
