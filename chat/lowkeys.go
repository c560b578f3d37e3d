package chat

import (
	"sync"
	"time"

	"pfschat/relay"
)

// lowKeysGate lets low_prekeys notices wake the key rotator at most once per
// relay.LowPreKeysWindow. Each rotation generates and stores new one-time keys: a
// relay (or someone draining our keys through it) that sent a notice per bundle fetch
// would otherwise grow our database without bound. The periodic rotation and the
// rotation on reconnect still run; a notice inside the window is dropped.
type lowKeysGate struct {
	mu   sync.Mutex
	last time.Time
}

// allow reports whether a notice at now may wake the rotator, and if so starts a new
// window.
func (g *lowKeysGate) allow(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < relay.LowPreKeysWindow && now.Sub(g.last) >= 0 {
		return false
	}
	g.last = now
	return true
}

// onLowPreKeys handles a low_prekeys notice.
func (c *Controller) onLowPreKeys() {
	if c.lowKeys.allow(c.now()) {
		c.kickRotate()
	} else {
		c.log.Debug("low_prekeys notice inside the window; not rotating again")
	}
}
