package client

import (
	"testing"

	"golang.org/x/time/rate"

	"pfschat/relay"
)

func TestPaceFor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limits    *relay.FrameLimits
		wantRate  rate.Limit
		wantBurst int
	}{
		{"no limits announced: the documented defaults", nil, 180, 180},
		{"defaults", &relay.FrameLimits{FramesPerSecond: 200, FrameBurst: 400}, 180, 180},
		{"unlimited relay", &relay.FrameLimits{FramesPerSecond: -1, FrameBurst: 400}, rate.Inf, 0},
		{"fast relay, small burst: half the burst", &relay.FrameLimits{FramesPerSecond: 1000, FrameBurst: 400}, 900, 200},
		{"slow relay: one second of the rate", &relay.FrameLimits{FramesPerSecond: 20, FrameBurst: 400}, 18, 18},
		{"below one frame a second: burst of one", &relay.FrameLimits{FramesPerSecond: 1, FrameBurst: 5}, 0.9, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, burst := paceFor(tc.limits)
			if r != tc.wantRate || burst != tc.wantBurst {
				t.Fatalf("paceFor(%+v) = %v, %d; want %v, %d", tc.limits, r, burst, tc.wantRate, tc.wantBurst)
			}
		})
	}
}
