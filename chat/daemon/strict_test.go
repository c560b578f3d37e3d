package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// noParamMethods take no params: every member is unknown to them, and refused as such.
var noParamMethods = []string{"version", "receive", "subscribe", "contacts", "oneTimeKeys", "pendingDownloads"}

// Every method's params are read by exact, unique member names: a mis-cased member
// (which encoding/json alone would take for the field) and a duplicated one (whose
// last copy it would take) are invalid_params, with a message naming the member, and
// nothing runs. The table covers every method the server serves that takes params.
func TestSocketParamsMembersAreExactAndUnique(t *testing.T) {
	dir := t.TempDir()
	cases := strictCases(dir)
	served := servedMethods(t)
	for m := range served {
		if !slices.Contains(noParamMethods, m) && !slices.ContainsFunc(cases, func(c strictCase) bool { return c.method == m }) {
			t.Errorf("%s takes params and has no row in this test", m)
		}
	}

	r := relaytest.Start(t)
	chattest.NewUser(t, r, "alice") // so that a call that ran would find her
	o := startOwner(t, r, chattest.NewUser(t, r, "bob"))
	cl := dial(t, o.sock)
	for _, tc := range cases {
		if !strings.Contains(tc.params, `"`+tc.member+`":`) {
			t.Fatalf("%s: %s has no member %q", tc.method, tc.params, tc.member)
		}
		misCased := strings.Replace(tc.params, `"`+tc.member+`":`, strconv.Quote(tc.misCased)+`:`, 1)
		duplicated := strings.TrimSuffix(tc.params, "}") + "," + tc.params[1:]
		for _, p := range []struct{ params, member string }{{misCased, tc.misCased}, {duplicated, firstMember(tc.params)}} {
			err := cl.Call(t.Context(), tc.method, json.RawMessage(p.params), nil)
			var re *daemon.Error
			if !errors.As(err, &re) || re.Code != daemon.CodeInvalidParams || !strings.Contains(re.Message, strconv.Quote(p.member)) {
				t.Errorf("%s %s: %v; want invalid_params naming %q", tc.method, p.params, err, p.member)
			}
		}
		if tc.method == "addContact" { // nothing ran: alice, who is on the relay, is no contact
			var contacts []daemon.Contact
			if err := cl.Call(t.Context(), "contacts", nil, &contacts); err != nil || len(contacts) != 0 {
				t.Errorf("contacts after the refused addContact calls: %v, %v", contacts, err)
			}
		}
	}
	for _, m := range noParamMethods {
		err := cl.Call(t.Context(), m, json.RawMessage(`{"x":1,"x":1}`), nil)
		var re *daemon.Error
		if !errors.As(err, &re) || re.Code != daemon.CodeInvalidParams {
			t.Errorf("%s with params: %v; want invalid_params", m, err)
		}
	}
}

type strictCase struct {
	method, params   string
	member, misCased string // a member of params, and how it is mis-cased
}

func strictCases(dir string) []strictCase {
	return []strictCase{
		{"send", `{"to":"alice","text":"hi"}`, "text", "Text"},
		{"sendFile", `{"to":"alice","path":"/nonexistent/f","caption":"c"}`, "path", "PATH"},
		{"download", `{"id":1,"dir":` + strconv.Quote(dir) + `}`, "dir", "Dir"},
		{"unsubscribe", `{"subscription":1}`, "subscription", "\u017Fubscription"}, // encoding/json folds ſ to s
		{"markRead", `{"contact":"alice","through":0}`, "contact", "Contact"},
		{"deleteMessage", `{"contact":"alice","id":1}`, "id", "ID"},
		{"clearConversation", `{"contact":"alice"}`, "contact", "CONTACT"},
		{"addContact", `{"name":"alice"}`, "name", "Name"},
		{"fingerprint", `{"name":"alice"}`, "name", "NAME"},
		{"verify", `{"name":"alice"}`, "name", "nAme"},
		{"acceptKey", `{"name":"alice"}`, "name", "Name"},
		{"rejectKey", `{"name":"alice"}`, "name", "NAME"},
		{"resetSession", `{"name":"alice"}`, "name", "Name"},
		{"rotateKeys", `{"count":1}`, "count", "Count"},
		{"gaps", `{"name":"alice"}`, "name", "Name"},
		{"acceptRequest", `{"name":"alice"}`, "name", "Name"},
		{"block", `{"name":"alice"}`, "name", "Name"},
		{"unblock", `{"name":"alice"}`, "name", "Name"},
		{"removeContact", `{"name":"alice"}`, "name", "Name"},
		{"setNickname", `{"name":"alice","nickname":"al"}`, "nickname", "Nickname"},
		{"setMuted", `{"name":"alice","muted":true}`, "muted", "Muted"},
	}
}

// firstMember is the name of params' first member.
func firstMember(params string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(params, `{"`), `"`)
	return name
}

// DecodeParams holds nested objects to the same rule, and names where the member is.
func TestDecodeParamsNestedMembers(t *testing.T) {
	type item struct {
		Name string `json:"name"`
	}
	type params struct {
		Items []item `json:"items"`
		Main  *item  `json:"main"`
	}
	for _, tc := range []struct{ raw, member, where string }{
		{`{"items":[{"name":"a"},{"Name":"b"}]}`, "Name", "items[1]"},
		{`{"main":{"name":"a","name":"b"}}`, "name", "main"},
	} {
		var p params
		e := daemon.DecodeParams(json.RawMessage(tc.raw), &p)
		if e == nil || e.Code != daemon.CodeInvalidParams || !strings.Contains(e.Message, strconv.Quote(tc.member)) || !strings.Contains(e.Message, strconv.Quote(tc.where)) {
			t.Errorf("%s: %v; want invalid_params naming %q in %q", tc.raw, e, tc.member, tc.where)
		}
	}
	var p params
	if e := daemon.DecodeParams(json.RawMessage(`{"items":[{"name":"a"}],"main":{"name":"b"}}`), &p); e != nil || p.Main.Name != "b" || p.Items[0].Name != "a" {
		t.Errorf("exact names: %+v, %v", p, e)
	}
}

// The client reads the owner's answers by the same rule: a result with a mis-cased
// member is refused, and a response with a duplicated member ends the connection
// rather than being read as its last copy.
func TestClientRefusesMisCasedOrDuplicatedMembers(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := []string{
		`{"jsonrpc":"2.0","result":{"Id":5,"state":"queued"},"id":ID}`,
		`{"jsonrpc":"2.0","result":{"id":5,"state":"queued"},"id":ID,"id":ID}`,
	}
	owner := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			owner <- err
			return
		}
		defer nc.Close()
		rd := bufio.NewReader(nc)
		for _, a := range answers {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				owner <- err
				return
			}
			var req struct {
				ID json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(line, &req); err != nil {
				owner <- err
				return
			}
			if _, err := io.WriteString(nc, strings.ReplaceAll(a, "ID", string(req.ID))+"\n"); err != nil {
				owner <- err
				return
			}
		}
		owner <- nil
	}()
	cl := dial(t, ln.Addr().String())
	var res daemon.SendResult
	if err := cl.Call(t.Context(), "send", daemon.SendParams{To: "bob", Text: "hi"}, &res); err == nil || !strings.Contains(err.Error(), `"Id"`) {
		t.Errorf("a result with \"Id\": %+v, %v; want an error naming the member", res, err)
	}
	if err := cl.Call(t.Context(), "send", daemon.SendParams{To: "bob", Text: "hi"}, &res); err == nil || !strings.Contains(err.Error(), `"id"`) {
		t.Errorf("a response with \"id\" twice: %v; want an error naming the member", err)
	}
	if err := <-owner; err != nil {
		t.Fatal(err)
	}
}

// The client reads a notification's params by the same rule as a response: a member
// mis-cased (at the top or nested) or sent twice, a value of the wrong type, params
// that are no object, or a notification without the member its method carries ends
// the connection with a *NotificationError naming the notification, after the good
// notifications before it were handed out. A member the client does not know is let
// through (a newer owner may add some).
func TestClientRefusesBadNotificationParams(t *testing.T) {
	message := `{"id":7,"contact":"alice","text":"hi","sentAt":"2026-01-02T03:04:05Z","state":"received"}`
	for _, tc := range []struct {
		name, method, params, member string
	}{
		{"mis-cased", "message", `{"subscription":1,"Message":` + message + `}`, `"Message"`},
		{"mis-cased inside the message", "message", `{"subscription":1,"message":` + strings.Replace(message, `"text"`, `"Text"`, 1) + `}`, `"Text"`},
		{"twice", "delivery", `{"subscription":1,"message":` + message + `,"message":` + message + `}`, `"message"`},
		{"twice inside the transfer", "transfer", `{"subscription":1,"contact":"alice","transfer":{"name":"a","name":"b","size":1,"done":0,"state":"uploading"}}`, `"name"`},
		{"wrong type", "connection", `{"subscription":1,"status":5}`, "status"},
		{"not an object", "keyChanged", `["alice"]`, "params"},
		{"null", "keyChanged", `null`, "params"},
		{"without its member", "keyChanged", `{"subscription":1}`, `"contact"`},
		{"without a subscription", "connection", `{"status":"online"}`, `"subscription"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := `{"jsonrpc":"2.0","method":"connection","params":{"subscription":1,"status":"online","addedLater":{"x":1}}}`
			bad := `{"jsonrpc":"2.0","method":"` + tc.method + `","params":` + tc.params + `}`
			cl := dial(t, fakeOwner(t, good, bad))
			n, err := cl.Next(t.Context())
			if err != nil {
				t.Fatalf("the good notification before it: %v", err)
			}
			if ev, err := n.Event(); err != nil || ev.Status != "online" || ev.Subscription != 1 {
				t.Fatalf("the good notification: %+v, %v", ev, err)
			}
			n, err = cl.Next(t.Context())
			var ne *daemon.NotificationError
			if err == nil || !errors.As(err, &ne) || ne.Method != tc.method || !strings.Contains(err.Error(), tc.member) ||
				!errors.As(cl.Err(), &ne) {
				t.Fatalf("%s: got %+v, %v; want the connection ended with a NotificationError for %q naming %s", bad, n, err, tc.method, tc.member)
			}
		})
	}
}

// fakeOwner serves one connection on a new socket, writing lines to it, and returns
// the socket's path.
func fakeOwner(t *testing.T, lines ...string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	wrote := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			wrote <- err
			return
		}
		defer nc.Close()
		for _, l := range lines {
			if _, err := io.WriteString(nc, l+"\n"); err != nil {
				wrote <- err
				return
			}
		}
		io.Copy(io.Discard, nc) // until the client hangs up
		wrote <- nil
	}()
	t.Cleanup(func() {
		if err := <-wrote; err != nil {
			t.Errorf("the fake owner: %v", err)
		}
	})
	return sock
}

// Every kind of notification the owner sends, through a real owner and relay, is one
// the client reads (Notification.Event) and names only members the API defines: the
// client would let an unknown member through, so the owner must not rely on that.
func TestEveryNotificationKindRoundTrips(t *testing.T) {
	r, alice, _, _, cl, watcher := watchedOwner(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seen := map[string]int{}
	wait := func(method string, match func(daemon.Event) bool) {
		t.Helper()
		for {
			n, err := watcher.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for a %q notification (seen %v): %v", method, seen, err)
			}
			ev, err := n.Event()
			if err != nil {
				t.Fatalf("the client refuses %s: %v", n.Params, err)
			}
			dec := json.NewDecoder(bytes.NewReader(n.Params))
			dec.DisallowUnknownFields()
			if err := dec.Decode(new(daemon.Event)); err != nil {
				t.Fatalf("the owner sent a %q notification with a member the API does not define: %s: %v", n.Method, n.Params, err)
			}
			seen[n.Method]++
			if n.Method == method && match(ev) {
				return
			}
		}
	}
	if _, err := alice.Send(ctx, "bob", "to the owner"); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyMessage, func(ev daemon.Event) bool { return ev.Message.Text == "to the owner" })

	var sr daemon.SendResult
	if err := cl.Call(ctx, "send", daemon.SendParams{To: "alice", Text: "from the owner"}, &sr); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyDelivery, func(ev daemon.Event) bool { return ev.Message.ID == sr.ID && ev.Message.State == "delivered" })

	src := filepath.Join(t.TempDir(), "notes.txt")
	chattest.Must(t, os.WriteFile(src, bytes.Repeat([]byte("note\n"), 1000), 0o600))
	if err := cl.Call(ctx, "sendFile", daemon.SendFileParams{To: "alice", Path: src, Caption: "notes"}, &sr); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyTransfer, func(ev daemon.Event) bool { return ev.Transfer.Ended && ev.Transfer.State == "sent" })

	if _, err := alice.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "new key"); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyKeyChanged, func(ev daemon.Event) bool { return ev.Contact == "alice" })

	if err := cl.Call(ctx, "setMuted", daemon.MutedParams{Name: "alice", Muted: true}, nil); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyContact, func(ev daemon.Event) bool { return ev.Contact == "alice" })

	if err := cl.Call(ctx, "markRead", daemon.MarkReadParams{Contact: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyMarkedRead, func(ev daemon.Event) bool { return ev.Contact == "alice" })
	if err := cl.Call(ctx, "deleteMessage", daemon.DeleteMessageParams{Contact: "alice", ID: sr.ID}, nil); err != nil {
		t.Fatal(err)
	}
	wait(daemon.NotifyDeleted, func(ev daemon.Event) bool { return ev.Contact == "alice" && ev.ID == sr.ID })

	r.Restart(t)
	wait(daemon.NotifyConnection, func(ev daemon.Event) bool { return ev.Status == "online" })

	for _, m := range []string{daemon.NotifyMessage, daemon.NotifyDelivery, daemon.NotifyTransfer, daemon.NotifyKeyChanged, daemon.NotifyContact, daemon.NotifyMarkedRead, daemon.NotifyDeleted, daemon.NotifyConnection} {
		if seen[m] == 0 {
			t.Errorf("no %q notification was seen (%v)", m, seen)
		}
	}
}
