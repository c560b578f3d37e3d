package daemon_test

import (
	"errors"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// TestSocketRequestsAndBlocking: over the socket, a stranger's first message is a
// request in contacts; acceptRequest, setNickname, setMuted, block and removeContact
// act on it, and their errors carry the stable codes (blocked, not_a_request).
func TestSocketRequestsAndBlocking(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.AddContact(t, alice, "bob")
	chattest.Send(t, alice, bob, "hello stranger")
	o := startOwner(t, r, bob)
	c := dial(t, o.sock)
	ctx := t.Context()
	alicesEntry := func() daemon.Contact {
		t.Helper()
		var list []daemon.Contact
		if err := c.Call(ctx, "contacts", nil, &list); err != nil {
			t.Fatal(err)
		}
		for _, ct := range list {
			if ct.Name == "alice" {
				return ct
			}
		}
		t.Fatal("alice is not listed")
		return daemon.Contact{}
	}
	if ct := alicesEntry(); !ct.Request {
		t.Fatalf("a stranger's first message: %+v, want a request", ct)
	}
	var got daemon.ReceiveResult
	chattest.Must(t, c.Call(ctx, "receive", nil, &got))
	if len(got.Messages) != 1 || !got.Messages[0].Request {
		t.Fatalf("receive of a stranger's first message: %+v, want it marked as a request", got.Messages)
	}
	// Live, in a subscription: a stranger's message is marked, a contact's is not.
	sub := dial(t, o.sock)
	chattest.Must(t, sub.Call(ctx, "subscribe", nil, new(daemon.SubscribeResult)))
	carol := chattest.NewUser(t, r, "carol")
	chattest.AddContact(t, carol, "bob")
	_, err := carol.Send(ctx, "bob", "carol here")
	chattest.Must(t, err)
	name := daemon.NameParams{Name: "alice"}
	chattest.Must(t, c.Call(ctx, "acceptRequest", name, nil))
	_, err = alice.Send(ctx, "bob", "now a contact")
	chattest.Must(t, err)
	for want := map[string]bool{"carol here": true, "now a contact": false}; len(want) > 0; {
		m := nextMessage(t, sub)
		if request, ok := want[m.Text]; ok {
			if m.Request != request {
				t.Fatalf("%q: request %v, want %v", m.Text, m.Request, request)
			}
			delete(want, m.Text)
		}
	}
	var e *daemon.Error
	if err := c.Call(ctx, "acceptRequest", name, nil); !errors.As(err, &e) || e.Code != daemon.CodeNotARequest {
		t.Fatalf("accepting twice: %v", err)
	}
	// A nickname over 64 bytes or with a control character is a bad param, not a
	// failure of the owner.
	for _, bad := range []string{strings.Repeat("n", 65), "Al\x1bi"} {
		if err := c.Call(ctx, "setNickname", daemon.NicknameParams{Name: "alice", Nickname: bad}, nil); !errors.As(err, &e) || e.Code != daemon.CodeInvalidParams {
			t.Fatalf("nickname %q: %v, want invalid_params", bad, err)
		}
	}
	chattest.Must(t, c.Call(ctx, "setNickname", daemon.NicknameParams{Name: "alice", Nickname: strings.Repeat("n", 64)}, nil))
	chattest.Must(t, c.Call(ctx, "setNickname", daemon.NicknameParams{Name: "alice", Nickname: "Ali"}, nil))
	chattest.Must(t, c.Call(ctx, "setMuted", daemon.MutedParams{Name: "alice", Muted: true}, nil))
	chattest.Must(t, c.Call(ctx, "block", name, nil))
	if ct := alicesEntry(); ct.Request || !ct.Blocked || ct.Nickname != "Ali" || !ct.Muted {
		t.Fatalf("after accept, nickname, mute, block: %+v", ct)
	}
	err = c.Call(ctx, "removeContact", name, nil)
	if !errors.As(err, &e) || e.Code != daemon.CodeBlocked || !errors.Is(daemon.ChatError(err), chat.ErrBlocked) {
		t.Fatalf("removing a blocked contact: %v", err)
	}
	chattest.Must(t, c.Call(ctx, "unblock", name, nil))
	chattest.Must(t, c.Call(ctx, "removeContact", name, nil))
	if err := c.Call(ctx, "block", name, nil); !errors.As(err, &e) || e.Code != daemon.CodeUnknownContact || e.Data.Contact != "alice" {
		t.Fatalf("blocking a removed contact: %v", err)
	}
	if err := c.Call(ctx, "markRead", daemon.MarkReadParams{Contact: "dave"}, nil); !errors.As(err, &e) || e.Code != daemon.CodeUnknownContact || e.Data.Contact != "dave" {
		t.Fatalf("markRead of an unknown contact: %v", err)
	}
}

// TestSocketSetNicknameAndMutedNeedTheirValue: "nickname" and "muted" are required, as
// API.md has them; without them the call is invalid_params and changes nothing (it
// removed the nickname, or unmuted).
func TestSocketSetNicknameAndMutedNeedTheirValue(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	c := dial(t, startOwner(t, r, bob).sock)
	ctx := t.Context()
	chattest.Must(t, c.Call(ctx, "setNickname", daemon.NicknameParams{Name: "alice", Nickname: "Ali"}, nil))
	chattest.Must(t, c.Call(ctx, "setMuted", daemon.MutedParams{Name: "alice", Muted: true}, nil))
	var e *daemon.Error
	for _, method := range []string{"setNickname", "setMuted"} {
		if err := c.Call(ctx, method, daemon.NameParams{Name: "alice"}, nil); !errors.As(err, &e) || e.Code != daemon.CodeInvalidParams {
			t.Errorf("%s without its value: %v, want invalid_params", method, err)
		}
	}
	var list []daemon.Contact
	chattest.Must(t, c.Call(ctx, "contacts", nil, &list))
	if len(list) != 1 || list[0].Nickname != "Ali" || !list[0].Muted {
		t.Fatalf("after the refused calls: %+v, want nickname and mute kept", list)
	}
}
