package server

// Blocking (PROTOCOL.md "Blocking"): a name refuses another name's messages and bundle
// fetches. The blocks live in the store and, for the send path, in memory.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// blockList is who blocks whom: blocker → blocked names. A send checks it without a
// lock (one atomic load, two map lookups); blocks change rarely, so a change copies the
// blocker's set and publishes a new map.
type blockList struct {
	mu sync.Mutex // serializes changes
	m  atomic.Pointer[map[string]map[string]struct{}]
}

// blocks reports whether blocker blocks sender.
func (b *blockList) blocks(blocker, sender string) bool {
	m := b.m.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[blocker][sender]
	return ok
}

// change publishes a copy of the map with blocker's set replaced by f's result.
func (b *blockList) change(blocker string, f func(old map[string]struct{}) map[string]struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := make(map[string]map[string]struct{})
	if cur := b.m.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	if set := f(next[blocker]); len(set) > 0 {
		next[blocker] = set
	} else {
		delete(next, blocker)
	}
	b.m.Store(&next)
}

func (b *blockList) set(blocker, blocked string, on bool) {
	b.change(blocker, func(old map[string]struct{}) map[string]struct{} {
		set := make(map[string]struct{}, len(old)+1)
		for k := range old {
			set[k] = struct{}{}
		}
		if on {
			set[blocked] = struct{}{}
		} else {
			delete(set, blocked)
		}
		return set
	})
}

// forget drops a deleted account's blocks (the store deleted them with it).
func (b *blockList) forget(blocker string) {
	b.change(blocker, func(map[string]struct{}) map[string]struct{} { return nil })
}

// loadBlocks reads every block from the store at start.
func (s *Server) loadBlocks(ctx context.Context, st Store) error {
	s.blockStore = st
	if st == nil {
		return nil
	}
	all, err := st.Blocks(ctx)
	if err != nil {
		return fmt.Errorf("relay: loading blocks: %w", err)
	}
	m := make(map[string]map[string]struct{}, len(all))
	for blocker, names := range all {
		set := make(map[string]struct{}, len(names))
		for _, n := range names {
			set[n] = struct{}{}
		}
		m[blocker] = set
	}
	s.blocks.m.Store(&m)
	return nil
}

// onBlock handles block and unblock: committed to the store, then in force for every
// later send and fetch_bundle, answered ok.
func (c *conn) onBlock(f *relay.Frame) {
	if err := ratchet.ValidateName(f.Name); err != nil {
		c.replyError(f.ID, relay.CodeInvalidName, "names are 1 to 32 of a-z 0-9 . _ -", "")
		return
	}
	if c.s.blockStore == nil {
		c.internal(f.ID, "blocking", errors.New("this relay keeps no blocks"))
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	on := f.Type == relay.TypeBlock
	var err error
	if on {
		err = c.s.blockStore.Block(ctx, c.acct.name, f.Name, c.s.now().UTC(), relay.MaxBlocks)
	} else {
		err = c.s.blockStore.Unblock(ctx, c.acct.name, f.Name)
	}
	if errors.Is(err, storage.ErrTooManyBlocks) {
		c.s.m.limited(LimitMaxBlocks)
		c.replyError(f.ID, relay.CodeTooManyBlocks, fmt.Sprintf("a name can block at most %d names; unblock some first", relay.MaxBlocks), LimitMaxBlocks)
		return
	}
	if err != nil {
		c.internal(f.ID, f.Type, err)
		return
	}
	c.s.blocks.set(c.acct.name, f.Name, on)
	c.s.log.Info(f.Type, "conn", c.id)
	c.send(&relay.Frame{Type: relay.TypeOK, ID: f.ID, Name: f.Name})
}
