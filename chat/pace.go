package chat

import (
	"context"
	"sync"
	"time"
)

// DefaultFramesPerSecond paces the frames this client sends, under the relay's default
// limit (200/s, burst 400). A relay answers a frame over its limit with an error that
// names no request, so the request would only end at its timeout: staying under the
// limit is much faster than bouncing off it.
const DefaultFramesPerSecond = 180

// pacer is a token bucket shared by everything that sends frames to the relay.
type pacer struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newPacer(perSecond int) *pacer {
	p := &pacer{rate: float64(perSecond), burst: float64(perSecond), last: time.Now()}
	p.tokens = p.burst
	return p
}

// wait takes one token, sleeping until one is available or ctx is done.
func (p *pacer) wait(ctx context.Context) error {
	if p.rate <= 0 {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
	p.tokens--
	deficit := -p.tokens
	p.mu.Unlock()
	if deficit <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(deficit / p.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scarce reports whether less than half the burst is left: time to batch frames.
func (p *pacer) scarce() bool {
	if p.rate <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tokens := min(p.burst, p.tokens+time.Since(p.last).Seconds()*p.rate)
	return tokens < p.burst/2
}
