package server

import "time"

// tokenBucket limits frames per second on one connection: it refills at rate tokens per
// second up to burst. It is used only by the connection's read loop, so it needs no lock.
type tokenBucket struct {
	tokens float64
	last   time.Time
	rate   float64
	burst  float64
}

func newTokenBucket(rate, burst int, now time.Time) tokenBucket {
	return tokenBucket{tokens: float64(burst), last: now, rate: float64(rate), burst: float64(burst)}
}

// allow takes one token if there is one. Otherwise it reports how long until one will
// be available.
func (b *tokenBucket) allow(now time.Time) (ok bool, retryAfter time.Duration) {
	return b.allowN(now, 1)
}

// allowN takes n tokens if there are n (n at most the burst). Otherwise it reports
// how long until there will be.
func (b *tokenBucket) allowN(now time.Time, n float64) (ok bool, retryAfter time.Duration) {
	if b.rate <= 0 {
		return true, 0 // unlimited
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens += elapsed.Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
		b.last = now
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	need := (n - b.tokens) / b.rate
	return false, time.Duration(need * float64(time.Second))
}

// give puts back a token taken by allow.
func (b *tokenBucket) give() {
	if b.rate > 0 {
		b.tokens = min(b.tokens+1, b.burst)
	}
}
