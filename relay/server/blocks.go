package server

// Blocking (PROTOCOL.md "Blocking"): a name refuses another name's messages and bundle
// fetches. The blocks live in the store and, for the send path, in memory.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// blockList is who blocks whom: blocker → blocked names. A send checks it with one
// read lock and two map lookups.
type blockList struct {
	mu sync.RWMutex
	m  map[string]map[string]struct{}
}

// blocks reports whether blocker blocks sender.
func (b *blockList) blocks(blocker, sender string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.m[blocker][sender]
	return ok
}

func (b *blockList) set(blocker, blocked string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on {
		if b.m == nil {
			b.m = make(map[string]map[string]struct{})
		}
		if b.m[blocker] == nil {
			b.m[blocker] = make(map[string]struct{})
		}
		b.m[blocker][blocked] = struct{}{}
		return
	}
	delete(b.m[blocker], blocked)
	if len(b.m[blocker]) == 0 {
		delete(b.m, blocker)
	}
}

// forget drops a deleted account's blocks (the store deleted them with it).
func (b *blockList) forget(blocker string) {
	b.mu.Lock()
	delete(b.m, blocker)
	b.mu.Unlock()
}

// loadBlocks reads every block from the store at start.
func (s *Server) loadBlocks(ctx context.Context, st *storage.Relay) error {
	s.blockStore = st
	if st == nil {
		return nil
	}
	all, err := st.Blocks(ctx)
	if err != nil {
		return fmt.Errorf("relay: loading blocks: %w", err)
	}
	for blocker, names := range all {
		for _, n := range names {
			s.blocks.set(blocker, n, true)
		}
	}
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
		c.replyError(f.ID, relay.CodeTooManyBlocks, fmt.Sprintf("a name can block at most %d names; unblock some first", relay.MaxBlocks), "max_blocks")
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
