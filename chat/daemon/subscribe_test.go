package daemon_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// rawLine is any line the owner writes: a response or a notification.
type rawLine struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *daemon.Error   `json:"error"`
	ID     json.RawMessage `json:"id"`
}

func readRaw(t *testing.T, rd *bufio.Reader) (rawLine, daemon.Event) {
	t.Helper()
	b, err := rd.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading from the owner: %v", err)
	}
	var l rawLine
	var ev daemon.Event
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("line %s: %v", b, err)
	}
	if l.Method != "" {
		if err := json.Unmarshal(l.Params, &ev); err != nil {
			t.Fatalf("notification %s: %v", b, err)
		}
	}
	return l, ev
}

// A subscribe sent as a notification (no id) is not answered, but it subscribes: its
// events carry the subscription's number, and unsubscribe with that number ends it (a
// second unsubscribe of it is invalid_params, and a new message reaches only the
// subscription made after).
func TestSocketSubscribeAsNotificationThenUnsubscribe(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob) // bob has one unread message: the backlog
	o := startOwner(t, r, bob)
	nc, rd := rawSocket(t, o)
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(nc, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}

	send(`{"jsonrpc":"2.0","method":"subscribe"}`)
	first, ev := readRaw(t, rd)
	if first.Method != daemon.NotifyMessage || ev.Message == nil || ev.Message.Text != "hi" || ev.Subscription == 0 {
		t.Fatalf("after subscribe as a notification, the first line is %+v (%+v); want the backlog's message", first, ev)
	}
	n := ev.Subscription

	// its number, learnt from the event, ends it
	unsub := fmt.Sprintf(`{"jsonrpc":"2.0","method":"unsubscribe","params":{"subscription":%d},"id":"u"}`, n)
	send(unsub)
	if l, _ := readRaw(t, rd); string(l.ID) != `"u"` || l.Error != nil || string(l.Result) != "{}" {
		t.Fatalf("unsubscribe %d: %+v; want {}", n, l)
	}
	send(unsub)
	if l, _ := readRaw(t, rd); string(l.ID) != `"u"` || l.Error == nil || l.Error.Code != daemon.CodeInvalidParams {
		t.Fatalf("unsubscribe %d twice: %+v; want invalid_params", n, l)
	}

	// a new subscription gets the new message; the ended one gets nothing more
	send(`{"jsonrpc":"2.0","method":"subscribe","id":"s"}`)
	l, _ := readRaw(t, rd)
	var sr daemon.SubscribeResult
	if string(l.ID) != `"s"` || l.Error != nil || json.Unmarshal(l.Result, &sr) != nil || sr.Subscription == n {
		t.Fatalf("subscribe: %+v; want a subscription other than %d", l, n)
	}
	if _, err := alice.Send(t.Context(), "bob", "after unsubscribe"); err != nil {
		t.Fatal(err)
	}
	for {
		l, ev := readRaw(t, rd)
		if ev.Subscription == n {
			t.Fatalf("subscription %d ended, yet %s %+v", n, l.Method, ev)
		}
		if l.Method == daemon.NotifyMessage && ev.Message != nil && ev.Message.Text == "after unsubscribe" {
			if ev.Subscription != sr.Subscription {
				t.Fatalf("the new message came on subscription %d; want %d", ev.Subscription, sr.Subscription)
			}
			break
		}
	}
}
