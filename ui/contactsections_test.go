package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// TestRequestsAndBlockedSections: a stranger's request is listed under "Requests" and a
// blocked contact under "Blocked", below the contacts, and a click on a row opens the
// contact drawn there; /block (confirmed) moves a request to Blocked, /accept-request
// makes it a contact, /nick shows the nickname.
func TestRequestsAndBlockedSections(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64), Request: true, Unread: 1})
	b.addContact(chat.Contact{Name: "mallory", CardID: strings.Repeat("d", 64), Blocked: true})
	b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("e", 64), Request: true})
	drive(t, m, m.c.loadContacts(b), "")
	list := func() []string {
		var out []string
		for _, l := range m.contactsView(contactsWidth-1, 20) {
			if l = strings.TrimSpace(ansi.Strip(l)); l != "" {
				out = append(out, strings.Fields(l)[0])
			}
		}
		return out
	}
	got := strings.Join(list(), " ")
	// Each contact has a second row; only the first words matter here.
	for _, want := range []string{"Contacts", "bob", "Requests", "carol", "dave", "Blocked", "mallory"} {
		i := strings.Index(got, want)
		if i < 0 {
			t.Fatalf("contact list %q has no %q", got, want)
		}
		got = got[i+len(want):]
	}
	// Clicks land on the contact drawn on that row, below the section headers.
	for y, l := range m.contactsView(contactsWidth-1, m.bodyHeight()) {
		l = strings.TrimSpace(ansi.Strip(l))
		for _, name := range []string{"bob", "carol", "dave", "mallory"} {
			if strings.HasPrefix(l, name) {
				if i := m.contactAt(1, y); i < 0 || m.contacts[i].Name != name {
					t.Errorf("click on row %d (%q) hits %d", y, l, i)
				}
			}
		}
	}

	drive(t, m, m.openContact("carol"), "")
	if v := strings.Join(m.conversationView(m.convWidth(), 5), "\n"); !strings.Contains(ansi.Strip(v), "message request") {
		t.Errorf("a request's conversation does not say so:\n%s", ansi.Strip(v))
	}
	drive(t, m, m.command([]string{"/block"}), "y")
	if ct, _ := m.contact("carol"); !ct.Blocked {
		t.Fatalf("after /block: %+v", ct)
	}
	drive(t, m, m.command([]string{"/unblock"}), "")
	drive(t, m, m.command([]string{"/accept-request"}), "")
	if ct, _ := m.contact("carol"); ct.Blocked || ct.Request {
		t.Fatalf("after /unblock, /accept-request: %+v", ct)
	}
	drive(t, m, m.command([]string{"/nick", "Caro", "Line"}), "")
	if v := ansi.Strip(strings.Join(m.conversationView(m.convWidth(), 5), "\n")); !strings.Contains(v, "Caro Line") {
		t.Errorf("the nickname is not shown:\n%s", v)
	}
	drive(t, m, m.command([]string{"/remove"}), "y")
	if _, ok := m.contact("carol"); ok || m.open == "carol" {
		t.Fatalf("after /remove: still listed or open")
	}
}
