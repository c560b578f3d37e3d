package server

// Delivery: committed messages for a logged-in connection, live from the hub or from
// the stored backlog, in order and each once, into the connection's outbound queue.

import (
	"pfschat/relay"
	"pfschat/storage"
)

// Deliver implements Subscriber: a committed message for this connection's card.
func (c *conn) Deliver(m *storage.QueuedMessage) { c.deliver(m, nil, nil) }

// deliver queues m for the writer. When owner is set (m is owner.msg), the queued
// item holds a reference to it, which the writer releases. The committer passes its
// writeSet (see pushTo); other callers nil.
func (c *conn) deliver(m *storage.QueuedMessage, owner *sendReq, ws *writeSet) {
	c.dmu.Lock()
	if c.backfilling {
		c.missed = true // the backlog goroutine will read it from the store
		c.dmu.Unlock()
		return
	}
	// The backlog handed the writer every message up to lastQueued; a live one at or
	// below it came with it. Live messages are not compared with each other: from
	// several relay nodes they may arrive slightly out of order, and each comes once.
	if m.ID <= c.lastQueued {
		c.dmu.Unlock()
		return
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
			c.kill(relay.CodeCardReplaced, "the card this connection logged in with was replaced; log in with the current card")
		}
	}
	if n.LogoutAllExcept != "" && n.LogoutAllExcept != c.connKey() {
		c.kill(relay.CodeLoggedOut, "logout_all on another connection of this card logged this one out")
	}
	if n.AccountDeleted != "" {
		if id := c.cardID.Load(); id != nil && *id == n.AccountDeleted {
			c.kill(relay.CodeAccountDeleted, "the account this connection logged in with was deleted")
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
