package server

// Accounts end: a card deletes its own account (delete_account), and an operator's
// --account-expiry frees names not logged in for that long.

import (
	"context"
	"errors"
	"strconv"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// accountStore is what account deletion and expiry need of the Directory.
type accountStore interface {
	DeleteAccount(ctx context.Context, name, cardID string) (int, error)
	TouchLogins(ctx context.Context, logins map[string]time.Time) error
	IdleAccounts(ctx context.Context, cutoff time.Time, limit int) ([]storage.IdleAccount, error)
}

var _ accountStore = (*storage.Relay)(nil)

// touchEvery: a login is recorded at most this often per account (expiry is in days).
const touchEvery = 12 * time.Hour

// sweepEvery is how often idle accounts are looked for.
const sweepEvery = time.Hour

// liveMargin: a sweep records the accounts connected to this node that would expire
// within it as active (two sweeps' time, so that every node's sweep comes first).
const liveMargin = 2 * sweepEvery

// touchLogin queues name's login to be recorded (for the expiry), at most every
// touchEvery per account; the toucher writes them in batches, so a crowd of logins
// costs a few transactions, not one each.
func (s *Server) touchLogin(name string) {
	if _, ok := s.dir.(accountStore); !ok {
		return
	}
	now := s.now()
	if v, ok := s.touched.Load(name); ok && now.Sub(v.(time.Time)) < touchEvery {
		return
	}
	s.touched.Store(name, now)
	select {
	case s.touches <- login{name, now}:
	default: // the toucher is behind: forget this one, the next login records it
		s.touched.Delete(name)
	}
}

// login is a login to record.
type login struct {
	name string
	at   time.Time
}

// toucher records queued logins in batches until the server stops.
func (s *Server) toucher() {
	defer close(s.touchDone)
	as, ok := s.dir.(accountStore)
	if !ok {
		return
	}
	for {
		batch := map[string]time.Time{}
		select {
		case l := <-s.touches:
			batch[l.name] = l.at.UTC()
		case <-s.stopPing:
			return
		}
	more:
		for len(batch) < 1024 {
			select {
			case l := <-s.touches:
				batch[l.name] = l.at.UTC()
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := as.TouchLogins(ctx, batch); err != nil {
			s.log.Warn("recording logins", "n", len(batch), "err", err)
			for n := range batch {
				s.touched.Delete(n)
			}
		}
		cancel()
	}
}

// forgetAccount drops what the server holds about a deleted account and closes its
// connections.
func (s *Server) forgetAccount(name, cardID string) {
	s.accounts.Delete(name)
	s.touched.Delete(name)
	s.blocks.forget(name)
	s.deletions.Add(1)
	s.hub.Notice(name, Notice{AccountDeleted: cardID})
}

func (c *conn) onDeleteAccount(f *relay.Frame) bool {
	as, ok := c.s.dir.(accountStore)
	if !ok {
		c.replyError(f.ID, relay.CodeInternal, "this relay's directory cannot delete accounts", "")
		return true
	}
	if f.CardID != c.acct.cardID {
		c.replyError(f.ID, relay.CodeForbidden, "a connection can delete only the account it logged in with", "")
		return true
	}
	now := c.s.now()
	if d := now.Sub(time.Unix(f.Time, 0)); d > relay.DeleteAccountSkew || d < -relay.DeleteAccountSkew {
		c.replyError(f.ID, relay.CodeBadTime, "time is more than "+relay.DeleteAccountSkew.String()+" from the relay's clock ("+strconv.FormatInt(now.Unix(), 10)+"); check your clock", "")
		return true
	}
	if err := ratchet.VerifySignature(c.acct.card.SigningKey, relay.DeleteAccountDomain, relay.DeleteAccountMessage(c.s.pub, f.CardID, f.Time), f.Signature); err != nil {
		c.replyError(f.ID, relay.CodeForbidden, "the signature does not verify against your card (sign DeleteAccountDomain ‖ relay key ‖ card id ‖ time)", "")
		return true
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	name, cardID := c.acct.name, c.acct.cardID
	// Only the account of this connection's card: one whose card was replaced
	// elsewhere (the owner took the name back) deletes nothing of what the name holds
	// now, and one already deleted (by another connection of this card) touches
	// nothing a new owner of the name may hold.
	n := 0
	switch cur, err := c.s.dir.AccountByName(ctx, name); {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		c.internal(f.ID, "looking up the account", err)
		return true
	case cur.CardID != cardID:
		c.replyError(f.ID, relay.CodeCardReplaced, "the card this connection logged in with is no longer the name's", "")
		return true
	default:
		// The account's connections go first, this one's acks too, before anything is
		// deleted: a new owner may register the name the moment the deletion commits,
		// and a connection still logged in as the old one received that owner's
		// messages and could ack them away (found by a red team). On this node that is
		// at once; another cluster node's connections follow the notice, milliseconds
		// later, and meanwhile their acks are kept from the new owner's messages by the
		// queue's check of the card (OwnedAcker, PROTOCOL.md, delete_account).
		c.acctGone.Store(true)
		c.cardID.Store(nil) // this connection answers, then closes: the notice is for the others
		c.s.hub.Notice(name, Notice{AccountDeleted: cardID})
		failed := func(what string, err error) bool {
			// The account stays (its queue may be gone already): this connection goes on
			// as it was, and the others reconnect.
			c.acctGone.Store(false)
			c.cardID.Store(&cardID)
			c.internal(f.ID, what, err)
			return true
		}
		if n, err = c.s.purgeQueueFirst(ctx, name); err != nil {
			return failed("deleting the account's queue", err)
		}
		m, err := as.DeleteAccount(ctx, name, cardID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Deleted or replaced in the instant since the look above, by another
			// connection: what the name holds now is not this card's to delete.
		case err != nil:
			return failed("deleting the account", err)
		default:
			// The cached account, blocks and the rest go at once, before the answer: a
			// new owner may register the moment the deletion commits, and its login
			// met the old card in the cache (login_failed).
			c.s.accountGen.Add(1)
			c.s.forgetAccount(name, cardID)
			n += m + c.s.purgeQueue(ctx, name)
			c.s.deleteAccountBlobs(ctx, name)
		}
	}
	c.s.log.Info("account deleted by its owner", "conn", c.id, "name", name, "queued_dropped", n)
	c.send(&relay.Frame{Type: relay.TypeOK, ID: f.ID, Name: name, CardID: cardID})
	c.cardID.Store(nil) // this connection closes after its answer, not with the notice
	c.close()
	return false
}

// sweeper deletes idle accounts at start and every sweepEvery, when expiry is on.
func (s *Server) sweeper() {
	defer close(s.sweepDone)
	if s.accountExpiry <= 0 {
		return
	}
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		s.sweepAccounts(context.Background())
		select {
		case <-t.C:
		case <-s.stopPing:
			return
		}
	}
}

// sweepAccounts deletes the accounts not logged in for accountExpiry, except those
// logged in right now (their login is recorded instead). It returns how many went.
func (s *Server) sweepAccounts(ctx context.Context) int {
	as, ok := s.dir.(accountStore)
	if !ok || s.accountExpiry <= 0 {
		return 0
	}
	now := s.now()
	live := map[string]bool{}
	s.mu.Lock()
	for c := range s.conns {
		if id := c.cardID.Load(); id != nil {
			live[*id] = true
		}
	}
	s.mu.Unlock()
	// Accounts within liveMargin of the expiry that are connected here are recorded as
	// active now: a node sharing the directory cannot see this node's connections, and
	// may sweep first.
	cutoff := now.Add(-s.accountExpiry)
	deleted := 0
	for {
		idle, err := as.IdleAccounts(ctx, cutoff.Add(liveMargin), 256)
		if err != nil {
			s.log.Error("looking for idle accounts", "err", err)
			return deleted
		}
		progress := false
		for _, a := range idle {
			at, keep := now, live[a.CardID] // connected now
			if v, ok := s.touched.Load(a.Name); ok && !keep && now.Sub(v.(time.Time)) < s.accountExpiry {
				at, keep = v.(time.Time), true // logged in lately; the toucher has not written it yet
			}
			if keep {
				if err := as.TouchLogins(ctx, map[string]time.Time{a.Name: at.UTC()}); err != nil {
					s.log.Warn("recording a login", "name", a.Name, "err", err)
					continue
				}
				progress = true
				continue
			}
			if !a.LastActive.Before(cutoff) {
				continue // not idle yet: it mattered only if connected here (above)
			}
			// The account first, then (on a cluster) its queue: emptying the queue
			// first would lose the messages of an owner who replaced the card
			// meanwhile (the deletion then finds no such card). A queue a failure
			// leaves between the two is dropped by the name's next registration
			// (purgeStaleQueue).
			n, err := as.DeleteAccount(ctx, a.Name, a.CardID)
			if errors.Is(err, storage.ErrNotFound) {
				progress = true // replaced or deleted meanwhile
				continue
			}
			if err != nil {
				s.log.Error("deleting an idle account", "name", a.Name, "err", err)
				continue
			}
			progress = true
			deleted++
			n += s.purgeQueue(ctx, a.Name)
			s.deleteAccountBlobs(ctx, a.Name)
			s.forgetAccount(a.Name, a.CardID)
			s.log.Info("account expired: name freed", "name", a.Name, "last_active", a.LastActive, "queued_dropped", n)
		}
		if len(idle) < 256 || !progress {
			return deleted
		}
	}
}
