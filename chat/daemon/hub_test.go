package daemon_test

import (
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/daemon"
)

// TestHubForMissesNothing: NewHubFor's subscriber gets the events that were waiting
// before the hub started, in order — the UI's first "online" among them, which a
// Subscribe after NewHub could lose to the hub's reader, leaving the UI on
// "connecting…" while the profile was online.
func TestHubForMissesNothing(t *testing.T) {
	events := make(chan chat.Event, 3)
	for _, st := range []chat.ConnStatus{chat.Connecting, chat.Online, chat.Reconnecting} {
		events <- chat.Event{Kind: chat.ConnectionChanged, State: chat.ConnState{Status: st}}
	}
	close(events)
	hub, sub := daemon.NewHubFor(events)
	defer sub.Close()
	var got []chat.ConnStatus
	timeout := time.After(10 * time.Second)
	for len(got) < 3 {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				t.Fatalf("the subscription closed after %v, want all three events", got)
			}
			got = append(got, ev.State.Status)
		case <-timeout:
			t.Fatalf("got %v, want all three events", got)
		}
	}
	if got[0] != chat.Connecting || got[1] != chat.Online || got[2] != chat.Reconnecting {
		t.Fatalf("events %v, want connecting, online, reconnecting", got)
	}
	<-hub.Done()
}
