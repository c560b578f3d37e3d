package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
)

// TestRateLimitedCarriesRetryAfter: a request the relay refuses with rate_limited
// returns a *relay.ProtocolError with the limit and the frame's retry_after_ms as
// RetryAfter, so that a caller (the owner's API: rate_limited's retryAfterMs) can say
// when to try again. The relay's clock stands still: the lookups' bucket never refills.
func TestRateLimitedCarriesRetryAfter(t *testing.T) {
	start := time.Now()
	r := relaytest.StartWith(t, relaytest.Options{Clock: func() time.Time { return start }})
	key, card := register(t, r, "alice")
	c := client.New(client.Config{URL: r.URL, Identity: key, Card: card, PinnedRelayKey: r.Server.RelayKey()})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	defer func() {
		c.Close()
		<-ran
	}()
	select {
	case <-c.Online():
	case <-ctx.Done():
		t.Fatal("not online")
	}
	var pe *relay.ProtocolError
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("lookups never limited")
		}
		_, err := c.LookupCard(ctx, fmt.Sprint("nobody", i))
		if errors.As(err, &pe) && pe.Code == relay.CodeRateLimited {
			break
		}
		if !errors.As(err, &pe) || pe.Code != relay.CodeNotFound {
			t.Fatalf("lookup %d: %v, want not_found until rate_limited", i, err)
		}
	}
	if pe.Limit != "lookup_per_requester" || pe.RetryAfter <= 0 || pe.RetryAfter > time.Minute {
		t.Fatalf("rate_limited: %+v, want lookup_per_requester with a retry-after of at most a minute", pe)
	}
}
