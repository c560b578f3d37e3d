package chat_test

import (
	"errors"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
)

// TestContactChangesEmitContactChanged: every change the user makes to a contact
// through the controller — mute, nickname, reject and accept a new key, verify, accept
// a request, block, unblock, remove, add again, accept a request by writing to them —
// is followed by one ContactChanged event naming the contact, after which Contact reads
// the change: a UI on the same controller sees what a headless command did through
// the owner socket (found by a tester: 'pfschat mute bob' left the UI's list stale).
func TestContactChangesEmitContactChanged(t *testing.T) {
	r, alice, _, _, _ := verifiedThenChanged(t, "new key, same bob")
	ctx := t.Context()
	// Earlier events (the setup's own AddContact and Verify) go by before this one.
	chattest.WaitEvent(t, alice, "bob's key change", func(e chat.Event) bool { return e.Kind == chat.ContactKeyChanged })
	for _, name := range []string{"carol", "dave"} { // two message requests
		u := chattest.NewUser(t, r, name)
		chattest.AddContact(t, u, "alice")
		chattest.Send(t, u, alice, "hello from "+name)
	}

	steps := []struct {
		what, contact string
		do            func() error
		want          func(ct chat.Contact, err error) bool
	}{
		{"mute", "bob", func() error { return alice.SetMuted(ctx, "bob", true) },
			func(ct chat.Contact, err error) bool { return err == nil && ct.Muted }},
		{"nickname", "bob", func() error { return alice.SetNickname(ctx, "bob", "Bobby") },
			func(ct chat.Contact, err error) bool { return err == nil && ct.Nickname == "Bobby" }},
		{"reject the new key", "bob", func() error { return alice.RejectKey(ctx, "bob") },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.KeyChanged && ct.KeyRejected }},
		{"accept the rejected key", "bob", func() error { return alice.AcceptKey(ctx, "bob") },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.KeyRejected && !ct.Verified }},
		{"verify", "bob", func() error { return alice.Verify(ctx, "bob") },
			func(ct chat.Contact, err error) bool { return err == nil && ct.Verified }},
		{"unmute", "bob", func() error { return alice.SetMuted(ctx, "bob", false) },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.Muted }},
		{"accept a request", "carol", func() error { return alice.AcceptRequest(ctx, "carol") },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.Request }},
		{"block", "carol", func() error { return alice.Block(ctx, "carol") },
			func(ct chat.Contact, err error) bool { return err == nil && ct.Blocked }},
		{"unblock", "carol", func() error { return alice.Unblock(ctx, "carol") },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.Blocked }},
		{"remove", "carol", func() error { return alice.RemoveContact(ctx, "carol") },
			func(_ chat.Contact, err error) bool { return errors.Is(err, chat.ErrUnknownContact) }},
		{"add again", "carol", func() error { _, err := alice.AddContact(ctx, "carol"); return err },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.Request }},
		{"write to a request", "dave", func() error { _, err := alice.Send(ctx, "dave", "hi dave"); return err },
			func(ct chat.Contact, err error) bool { return err == nil && !ct.Request }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		ev := chattest.WaitEvent(t, alice, "ContactChanged after "+s.what, func(e chat.Event) bool { return e.Kind == chat.ContactChanged })
		if ev.Contact != s.contact {
			t.Fatalf("%s: ContactChanged names %q, want %q", s.what, ev.Contact, s.contact)
		}
		if ct, err := alice.Contact(ctx, s.contact); !s.want(ct, err) {
			t.Fatalf("%s: after the event %s reads %+v, %v", s.what, s.contact, ct, err)
		}
	}
}
