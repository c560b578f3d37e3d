package server

// Shared directories: when several relay nodes share one directory (relay/cluster),
// what a node caches of it — accounts and their cards (Server.accounts), who blocks
// whom (Server.blocks) — must follow the writes of the other nodes. A directory that
// can tell implements ChangeFeed; the server applies each change to its caches. The
// SQLite store is one node's alone and does not.

import (
	"context"
	"errors"
	"time"

	"pfschat/storage"
)

// Change is one change to the shared directory, by any node.
type Change struct {
	// Account names an account whose record changed: its card is now CardID, or it
	// was Deleted.
	Account string
	CardID  string
	Deleted bool
	// BlocksChanged says Blocker's blocks are now Blocks (none when empty).
	BlocksChanged bool
	Blocker       string
	Blocks        []string
}

// ChangeFeed is implemented by a directory shared between relay nodes.
type ChangeFeed interface {
	// WatchChanges calls f for every change, starting with the current state of
	// every account and blocker, until ctx ends or the feed fails.
	WatchChanges(ctx context.Context, f func(Change)) error
}

// startChangeFeed follows the directory's changes until the server stops, when the
// directory is shared. A feed that fails is restarted (its first changes are the
// current state again, so nothing between is missed).
func (s *Server) startChangeFeed() {
	feed, ok := s.dir.(ChangeFeed)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.changesDone = make(chan struct{})
	go func() {
		<-s.stopPing
		cancel()
	}()
	go func() {
		defer close(s.changesDone)
		for ctx.Err() == nil {
			err := feed.WatchChanges(ctx, s.applyChange)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("following the shared directory's changes; restarting", "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}()
}

// applyChange brings the node's caches in line with one change.
func (s *Server) applyChange(ch Change) {
	if ch.Account != "" {
		if v, ok := s.accounts.Load(ch.Account); ok && !ch.Deleted && v.(*account).cardID == ch.CardID {
			return // a login recorded, a recovery code set: the cached card holds
		}
		// A cachedAccount that read the store before this change must not cache
		// what it read.
		s.accountGen.Add(1)
		s.accounts.Delete(ch.Account)
		if ch.Deleted {
			s.touched.Delete(ch.Account)
			s.deletions.Add(1) // connections forget the names they resolved
		}
	}
	if ch.BlocksChanged {
		set := make(map[string]struct{}, len(ch.Blocks))
		for _, n := range ch.Blocks {
			set[n] = struct{}{}
		}
		s.blocks.change(ch.Blocker, func(map[string]struct{}) map[string]struct{} { return set })
	}
}

// metaCreator is a directory that can store a meta value only if none is there
// (storage.ErrExists otherwise): nodes of a cluster starting together each make a
// relay key, and the first one stored must become everyone's.
type metaCreator interface {
	CreateMeta(ctx context.Context, key string, v []byte) error
}

// createMeta stores a freshly made secret under key; when another node stored one
// first, *v becomes that one.
func (s *Server) createMeta(ctx context.Context, key string, v *[]byte) error {
	mc, ok := s.dir.(metaCreator)
	if !ok {
		return s.dir.SetMeta(ctx, key, *v)
	}
	err := mc.CreateMeta(ctx, key, *v)
	if !errors.Is(err, storage.ErrExists) {
		return err
	}
	got, err := s.dir.Meta(ctx, key)
	if err != nil {
		return err
	}
	*v = got
	return nil
}
