package ui

import (
	"strings"
	"testing"
	"time"

	"pfschat/chat"
)

// TestDeliveryMarks walks every delivery state chat knows (its one definition names
// them): an outgoing message in each has a mark, except an undecryptable one, which is
// drawn as a warning instead; a value without a name has neither. With
// chat's TestEnumsAcrossLayers it fails when a state is added in one layer only.
func TestDeliveryMarks(t *testing.T) {
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 60, height: 20,
		now: func() time.Time { return fixedNow }, loc: time.UTC}
	r := &convRenderer{c: c, me: "alice", contact: "bob", width: 50, senderW: 5}
	for v := range 256 {
		s := chat.DeliveryState(v)
		known := !strings.HasPrefix(s.String(), "state(")
		mark, _ := r.mark(chat.Message{Outgoing: true, State: s})
		switch {
		case s == chat.UndecryptableState:
			lines := strings.Join(r.lines(&msgItem{m: chat.Message{ID: 1, State: s, Reason: "why"}}), "\n")
			if mark != "" || !strings.Contains(lines, "could not be decrypted") {
				t.Errorf("undecryptable: mark %q, lines %q", mark, lines)
			}
		case known && mark == "":
			t.Errorf("delivery state %v has no mark", s)
		case !known && mark != "":
			t.Errorf("delivery state %d has a mark but no name", v)
		}
	}
}
