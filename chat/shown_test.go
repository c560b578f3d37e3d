package chat

import "testing"

// A reader of incoming messages (recv --follow, recv through the owner, the daemon's
// stream) shows a resend that replaces a placeholder, under the placeholder's id, as
// a one-shot recv does; anything else once. A hostile-relay run found the resend
// skipped and then marked read: lost to the consumer.
func TestShownTakesTheResendOfAPlaceholder(t *testing.T) {
	shown := make(Shown)
	for i, c := range []struct {
		id                int64
		placeholder, want bool
	}{
		{12, true, true},
		{12, true, false},  // the same placeholder again
		{12, false, true},  // its resend
		{12, false, false}, // the resend again
		{12, true, false},  // never back to the placeholder
		{13, false, true},
		{13, false, false},
	} {
		if got := shown.Fresh(c.id, c.placeholder); got != c.want {
			t.Fatalf("step %d (id %d, placeholder %v): fresh %v, want %v", i, c.id, c.placeholder, got, c.want)
		}
		if shown.Fresh(c.id, c.placeholder) {
			shown.Mark(c.id, c.placeholder)
		}
	}
}
