package ui

import (
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// contactColumn is the contact list of a plain frame: each row's left pane, trimmed.
func contactColumn(frame string) []string {
	var out []string
	for _, l := range strings.Split(frame, "\n") {
		r := []rune(l)
		if len(r) > contactsWidth-1 {
			r = r[:contactsWidth-1]
		}
		out = append(out, strings.TrimSpace(string(r)))
	}
	return out
}

// TestContactChangesThroughTheControllerShowInTheUI: changes made through the
// controller the UI runs on, not by the UI — what 'pfschat --home alice mute bob',
// 'nickname carol Caz' and 'block carol' do through the UI's owner socket — show in the
// running UI's contact list (bob muted, carol as Caz under Blocked), and /mute then
// toggles the real state: it unmutes bob (the tester saw "bob muted" from the stale
// list).
func TestContactChangesThroughTheControllerShowInTheUI(t *testing.T) {
	r := relaytest.Start(t)
	ctx := t.Context()
	alice := newUser(t, r, "alice")
	for _, name := range []string{"bob", "carol"} {
		newUser(t, r, name)
		chattest.AddContact(t, alice, name)
	}
	tm, fr := startUI(t, Options{Backend: alice.Controller, OpenContact: "bob"}, 100, 30)
	fr.WaitText(t, "relay connected", "carol")

	chattest.Must(t, alice.SetMuted(ctx, "bob", true))
	chattest.Must(t, alice.SetNickname(ctx, "carol", "Caz"))
	chattest.Must(t, alice.Block(ctx, "carol"))
	fr.WaitFor(t, "bob muted, carol as Caz under Blocked", func(s string) bool {
		col := contactColumn(s)
		bobMuted, blocked, caz := false, -1, -1
		for i, l := range col {
			switch {
			case strings.HasSuffix(l, "bob") && i+1 < len(col):
				bobMuted = strings.Contains(col[i+1], "muted")
			case l == "Blocked":
				blocked = i
			case strings.HasSuffix(l, "Caz"):
				caz = i
			}
		}
		return bobMuted && blocked >= 0 && caz == blocked+1
	})

	tm.Type("/mute")
	press(tm, "enter")
	fr.WaitText(t, "bob unmuted")
	if ct, err := alice.Contact(ctx, "bob"); err != nil || ct.Muted {
		t.Fatalf("after /mute on a muted bob: %+v, %v", ct, err)
	}
	quitUI(t, tm)
}

// TestContactChangedEventRefreshesTheList: a ContactChanged event, and nothing else,
// makes the main screen read the contact list again; a contact removed meanwhile
// closes its open conversation and drops the draft typed for them.
func TestContactChangedEventRefreshesTheList(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	drive(t, m, m.c.loadContacts(b), "")
	drive(t, m, m.openContact("carol"), "")

	b.mu.Lock()
	b.contacts["bob"].Muted = true
	b.contacts["bob"].Nickname = "Bobby"
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.ContactChanged, Contact: "bob"}), "")
	if ct, _ := m.contact("bob"); !ct.Muted || m.displayName("bob") != "Bobby" {
		t.Fatalf("after ContactChanged: %+v shown as %q, want muted, Bobby", ct, m.displayName("bob"))
	}

	m.input.SetValue("for carol only")
	b.mu.Lock()
	delete(b.contacts, "carol")
	b.mu.Unlock()
	drive(t, m, m.handleEvent(chat.Event{Kind: chat.ContactChanged, Contact: "carol"}), "")
	if _, ok := m.contact("carol"); ok || m.open == "carol" || m.convs["carol"] != nil {
		t.Fatalf("carol removed elsewhere: still listed or open (open %q)", m.open)
	}
	if v := m.input.Value(); v != "" {
		t.Fatalf("the draft for the removed carol stays in the input for %s: %q", m.open, v)
	}
}
