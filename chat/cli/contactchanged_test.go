package cli

import (
	"bytes"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
)

// The tester's case: while the UI owns bob's profile, 'pfschat mute alice', 'nickname
// alice Ally' and 'block alice' go through its socket into its controller, and the
// UI's event stream gets a ContactChanged for each, after which its backend reads the
// change (ui reloads its contact list on it: ui's
// TestContactChangesThroughTheControllerShowInTheUI).
func TestHeadlessContactChangesReachTheUIOwner(t *testing.T) {
	r, _, p, b := bobOwnedByTheUI(t)
	for _, c := range []struct {
		args []string
		want func(chat.Contact) bool
	}{
		{[]string{"mute", "alice"}, func(ct chat.Contact) bool { return ct.Muted }},
		{[]string{"nickname", "alice", "Ally"}, func(ct chat.Contact) bool { return ct.Nickname == "Ally" }},
		{[]string{"block", "alice"}, func(ct chat.Contact) bool { return ct.Blocked }},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"--home", p.Dir, "--relay", r.URL}, c.args...)
		if code := Main(t.Context(), args, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v while the UI owns the profile: exit %d, %q %q", c.args, code, out.String(), errb.String())
		}
		chattest.WaitEvent(t, b, "ContactChanged after "+c.args[0], func(e chat.Event) bool {
			return e.Kind == chat.ContactChanged && e.Contact == "alice"
		})
		list, err := b.Contacts(t.Context())
		if err != nil || len(list) != 1 || !c.want(list[0]) {
			t.Fatalf("after %v the UI's backend lists %+v, %v", c.args, list, err)
		}
	}
}
