package client

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"

	"pfschat/relay"
)

// Pacing. The relay limits the frames each connection sends (frames_per_second and
// frame_burst, announced in its hello) and refuses a frame over the limit with
// rate_limited. The client paces every frame it sends under that limit, so a request
// never bounces off it and an operator's `pfschat relay --rate N` governs every
// client. The limiter is set again from every hello, so a relay restarted with other
// limits is followed on the next connection.
//
// The client keeps a margin: it sends at paceShare of the relay's rate, with a burst
// of at most one second of that rate and at most half the relay's burst (on a relay
// with the defaults, 200 frames/s and a burst of 400: 180 frames/s, burst 180, as
// chat's own pacer did before the client took it over). The relay measures frames
// when it reads them, so frames that reach it bunched up (the network, a busy
// scheduler) look like a burst; the unused half of the relay's bucket absorbs that.
const paceShare = 0.9

// The limits PROTOCOL.md documents, for a hello that announces none.
const (
	defaultFramesPerSecond = 200
	defaultFrameBurst      = 400
)

// paceFor is the client's rate and burst for the relay's announced limits. A relay
// without a frame-rate limit (frames_per_second < 0) is not paced.
func paceFor(l *relay.FrameLimits) (rate.Limit, int) {
	perSecond, burst := defaultFramesPerSecond, defaultFrameBurst
	if l != nil {
		if l.FramesPerSecond != 0 {
			perSecond = l.FramesPerSecond
		}
		if l.FrameBurst > 0 {
			burst = l.FrameBurst
		}
	}
	if perSecond < 0 {
		return rate.Inf, 0
	}
	r := paceShare * float64(perSecond)
	return rate.Limit(r), max(1, min(int(r), burst/2))
}

// setPace sets the limiter from a hello's limits.
func (c *Client) setPace(l *relay.FrameLimits) {
	r, burst := paceFor(l)
	c.pace.SetLimit(r)
	c.pace.SetBurst(burst)
}

// waitPace takes one frame's token, waiting until the relay's rate allows the frame.
func (c *Client) waitPace(ctx context.Context) error {
	if err := c.pace.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The limiter knows the wait would outlast ctx's deadline and does not start it.
		return fmt.Errorf("relay: the relay's frame rate allows no frame before the deadline: %w", context.DeadlineExceeded)
	}
	return nil
}

// FramesScarce reports whether less than half the client's frame burst is left: the
// client is near the relay's rate limit, and a caller with frames it can combine
// (chat's delivery receipts) does better to wait a moment and send fewer.
func (c *Client) FramesScarce() bool {
	if c.pace.Limit() == rate.Inf {
		return false
	}
	return c.pace.Tokens() < float64(c.pace.Burst())/2
}
