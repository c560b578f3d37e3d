package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"pfschat/relay/cluster"
)

// A relay node says it waits for JetStream within jetStreamSlow of its start, even
// while its first try has not ended (the servers answer some requests and drop others),
// and says when JetStream is ready; a node whose first try succeeds in time says
// nothing of it.
func TestWaitForJetStreamSaysSoon(t *testing.T) {
	urls := []string{"nats://n1:4222", "nats://n2:4222"}
	for _, c := range []struct {
		name  string
		tries []time.Duration // how long each try takes; -1: until its deadline, then not ready
		want  []string        // what stderr says, line by line (substrings)
	}{
		{"quick", []time.Duration{time.Second}, nil},
		{"slow, then ready", []time.Duration{6 * time.Second}, []string{
			"waiting for JetStream at nats://n1:4222,nats://n2:4222: no answer within 5s yet; still trying",
			"JetStream is ready"}},
		{"first try times out", []time.Duration{-1, time.Second}, []string{
			"no answer within 5s yet",
			"trying again every 2s (stop with Ctrl+C): cluster: JetStream is not ready: context deadline exceeded",
			"JetStream is ready"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var stderr bytes.Buffer
				tries := 0
				start := time.Now()
				var saidAt time.Duration
				open := func(ctx context.Context) (*cluster.Node, error) {
					d := c.tries[tries]
					tries++
					if d < 0 {
						<-ctx.Done()
						return nil, fmt.Errorf("%w: %w", cluster.ErrNotReady, ctx.Err())
					}
					time.Sleep(d) // virtual time: the try's length
					return nil, nil
				}
				w := &firstWrite{w: &stderr, at: &saidAt, start: start}
				if _, err := waitForJetStream(t.Context(), urls, w, slog.New(slog.DiscardHandler), open); err != nil {
					t.Fatalf("waitForJetStream: %v", err)
				}
				if tries != len(c.tries) {
					t.Errorf("%d tries, want %d", tries, len(c.tries))
				}
				lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
				if len(c.want) == 0 {
					if stderr.Len() != 0 {
						t.Errorf("stderr %q, want nothing", stderr.String())
					}
					return
				}
				if len(lines) != len(c.want) {
					t.Fatalf("stderr:\n%s\nwant %d lines", stderr.String(), len(c.want))
				}
				for i, l := range lines {
					if !strings.Contains(l, c.want[i]) {
						t.Errorf("line %d: %q, want %q in it", i+1, l, c.want[i])
					}
				}
				if saidAt != jetStreamSlow {
					t.Errorf("first said after %v, want %v", saidAt, jetStreamSlow)
				}
			})
		})
	}
}

// firstWrite records when (in the bubble's time) the first line was written.
type firstWrite struct {
	w     *bytes.Buffer
	at    *time.Duration
	start time.Time
	done  bool
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.done {
		f.done, *f.at = true, time.Since(f.start)
	}
	return f.w.Write(p)
}
