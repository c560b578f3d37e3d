package daemon

import (
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"pfschat/relay/fifo"
	"pfschat/relay/strictjson"
)

// FuzzDecodeRequest: the decoder never panics, refuses with a JSON-RPC code, and what it
// accepts is a well-formed request that encodes back with the same method and id.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"hi"},"id":1}`,
		`{"jsonrpc":"2.0","method":"version"}`,
		`{"jsonrpc":"2.0","method":"contacts","params":[]}`,
		`{"jsonrpc":"2.0","method":"x","id":null,"params":null}`,
		`{"jsonrpc":"2.0","method":"x","id":"a\u0000"}`,
		`[1]`, `{}`, `"x"`, `{"jsonrpc":"2.0","method":"x","id":1e400}`, ``,
		`{"jsonrpc":"2.0","Method":"x","id":1}`, `{"jsonrpc":"2.0","method":"x","method":"y"}`,
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"\u017Farams\":{}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, id, err := DecodeRequest(b)
		if err != nil {
			if req != nil {
				t.Fatal("request and error")
			}
			if _, ok := codeNames[err.Code]; !ok {
				t.Fatalf("unnamed code %d", err.Code)
			}
			if id != nil && !json.Valid(id) {
				t.Fatalf("invalid id %q with the error", id)
			}
			return
		}
		if req.Method == "" || (req.Params != nil && (!json.Valid(req.Params) || string(req.Params) == "null")) || req.Notify != (req.ID == nil) {
			t.Fatalf("accepted %q as %+v", b, req)
		}
		exactMembers(t, b, reflect.TypeFor[wireRequest]())
		out, merr := json.Marshal(Response{JSONRPC: Version, ID: req.ID, Result: json.RawMessage(`{}`)})
		if merr != nil || !json.Valid(out) {
			t.Fatalf("response for %q does not encode: %v", b, merr)
		}
	})
}

// FuzzDecodeParams: every method's params decode from what DecodeRequest accepts
// without panicking; a refusal is CodeInvalidParams, and what decodes encodes to
// params that decode to the same value.
func FuzzDecodeParams(f *testing.F) {
	for _, s := range []string{
		`{"to":"bob","text":"hi","waitMs":100}`,
		`{"to":"bob","path":"/tmp/x","caption":"c"}`,
		`{"id":5,"dir":"/tmp"}`,
		`{"subscription":3}`,
		`{"contact":"bob","through":-1}`,
		`{"count":1e3}`,
		`{"name":"bob","nickname":"b","muted":true}`,
		`{"name":null}`, `{"to":1}`, `{"id":9223372036854775808}`, `{"x":1}`, `{}`, `null`,
		`{"Name":"bob"}`, `{"to":"bob","to":"eve","text":"hi"}`, "{\"\u017Fubscription\":1}",
	} {
		f.Add([]byte(`{"jsonrpc":"2.0","method":"m","id":1,"params":` + s + `}`))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, _, rerr := DecodeRequest(line)
		if rerr != nil {
			return
		}
		for _, newP := range []func() any{
			func() any { return new(empty) }, func() any { return new(NameParams) }, func() any { return new(SendParams) },
			func() any { return new(SendFileParams) }, func() any { return new(DownloadParams) },
			func() any { return new(SubscriptionParams) }, func() any { return new(MarkReadParams) },
			func() any { return new(RotateKeysParams) }, func() any { return new(GapsParams) },
			func() any { return new(NicknameParams) }, func() any { return new(MutedParams) },
		} {
			p := newP()
			if e := DecodeParams(req.Params, p); e != nil {
				if e.Code != CodeInvalidParams {
					t.Fatalf("%T: code %d", p, e.Code)
				}
				continue
			}
			exactMembers(t, req.Params, reflect.TypeOf(p).Elem())
			enc, err := json.Marshal(p)
			if err != nil {
				t.Fatalf("%T does not encode: %v", p, err)
			}
			q := newP()
			if e := DecodeParams(enc, q); e != nil {
				t.Fatalf("%T: %s refused: %v", p, enc, e)
			}
			if enc2, _ := json.Marshal(q); string(enc2) != string(enc) {
				t.Fatalf("%T: round trip %s, %s", p, enc, enc2)
			}
		}
	})
}

// exactMembers fails unless every member of the object b (when it is one) is exactly
// the JSON name of one of struct type t's fields, read back case-sensitively through a
// map.
func exactMembers(t *testing.T, b []byte, st reflect.Type) {
	t.Helper()
	var members map[string]json.RawMessage
	if json.Unmarshal(b, &members) != nil {
		return
	}
	names := map[string]bool{}
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	for m := range members {
		if !names[m] {
			t.Fatalf("%q accepted for %v with member %q", b, st, m)
		}
	}
}

// FuzzNotificationEvent: the client's reading of a notification's params never panics;
// a refusal is a *NotificationError naming the notification's method; what it accepts
// has exact, unique member names, and encodes to params it reads back the same.
func FuzzNotificationEvent(f *testing.F) {
	message := `{"id":7,"contact":"alice","text":"hi","sentAt":"2026-01-02T03:04:05Z","state":"received","file":{"name":"a.png","size":3,"state":"available"}}`
	for _, s := range []struct{ method, params string }{
		{NotifyMessage, `{"subscription":1,"message":` + message + `}`},
		{NotifyDelivery, `{"subscription":2,"message":{"id":1,"contact":"bob","outgoing":true,"text":"x","sentAt":"2026-01-02T03:04:05Z","state":"read"}}`},
		{NotifyKeyChanged, `{"subscription":1,"contact":"alice"}`},
		{NotifyContact, `{"subscription":1,"contact":"alice"}`}, {NotifyContact, `{"subscription":1}`},
		{NotifyMarkedRead, `{"subscription":1,"contact":"alice"}`}, {NotifyMarkedRead, `{"subscription":1}`},
		{NotifyDeleted, `{"subscription":1,"contact":"alice","id":7}`}, {NotifyDeleted, `{"subscription":1,"contact":"alice"}`}, {NotifyDeleted, `{"subscription":1,"id":7}`},
		{NotifyConnection, `{"subscription":1,"status":"reconnecting","error":"dial: refused"}`},
		{NotifyTransfer, `{"subscription":1,"contact":"alice","transfer":{"id":3,"name":"a","size":10,"done":5,"state":"downloading"}}`},
		{"later", `{"subscription":1,"added":[1,{"x":null}]}`},
		{NotifyMessage, `{"subscription":1}`}, {NotifyKeyChanged, `null`}, {NotifyConnection, `[]`}, {NotifyConnection, ``},
		{NotifyMessage, `{"subscription":1,"Message":{}}`}, {NotifyConnection, `{"subscription":1,"status":"a","status":"b"}`},
		{NotifyConnection, "{\"\u017Fubscription\":1,\"status\":\"online\"}"}, {NotifyConnection, `{"subscription":-1,"status":"online"}`},
		{NotifyMessage, `{"subscription":1,"message":{"sentAt":"yesterday"}}`},
	} {
		f.Add(s.method, []byte(s.params))
	}
	f.Fuzz(func(t *testing.T, method string, params []byte) {
		n := Notification{JSONRPC: Version, Method: method, Params: params}
		ev, err := n.Event()
		if err != nil {
			var ne *NotificationError
			if !errors.As(err, &ne) || ne.Method != method {
				t.Fatalf("refused %q with %T %v", params, err, err)
			}
			return
		}
		if ev.Subscription <= 0 {
			t.Fatalf("accepted %q without a subscription", params)
		}
		if err := strictjson.CheckKeys(params, reflect.TypeFor[Event]()); err != nil {
			t.Fatalf("accepted %q: %v", params, err)
		}
		enc, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%+v does not encode: %v", ev, err)
		}
		again, err := Notification{JSONRPC: Version, Method: method, Params: enc}.Event()
		if err != nil {
			t.Fatalf("%s, encoded from %q, refused: %v", enc, params, err)
		}
		if enc2, _ := json.Marshal(again); string(enc2) != string(enc) {
			t.Fatalf("round trip %s, %s", enc, enc2)
		}
	})
}

// FuzzClientRead: what an owner's socket sends a client (responses and
// notifications, a line each) ends the connection with an error when the client
// cannot read it, and never panics the client: a notification it passes on decodes,
// and a response's result decodes into the types Call is given, or is refused.
func FuzzClientRead(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","result":{"id":7},"id":"1"}`,
		`{"jsonrpc":"2.0","result":[{"id":1,"contact":"bob","text":"hi","sentAt":"2026-01-02T03:04:05Z","state":"read"}],"id":1}`,
		`{"jsonrpc":"2.0","error":{"code":-32602,"message":"no","data":{"x":1}},"id":1}`,
		`{"jsonrpc":"2.0","method":"message","params":{"subscription":1,"message":{"id":7,"contact":"alice","text":"hi","sentAt":"2026-01-02T03:04:05Z","state":"received"}}}`,
		`{"jsonrpc":"2.0","method":"connection","params":{"subscription":1,"status":"online"}}` + "\n" + `{"jsonrpc":"2.0","result":null,"id":1}`,
		`{"jsonrpc":"2.0","method":"connection","params":{"subscription":1,"Status":"online"}}`,
		`{"jsonrpc":"2.0","result":{},"id":1,"ID":2}`, `not json`, `{"method":null,"id":1}`, ``, "\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, lines []byte) {
		a, b := net.Pipe()
		defer b.Close()
		resp := make(chan Response, 2) // one for each pending id: the client's read never waits on it
		c := &Client{nc: a, pending: map[string]chan Response{"1": resp, `"1"`: resp}, notes: fifo.New[Notification](), done: make(chan struct{})}
		go c.read()
		go func() {
			b.Write(lines)
			b.Close()
		}()
		<-c.done
		if c.Err() == nil {
			t.Fatal("the connection ended without an error")
		}
		for {
			n, err := c.Next(t.Context())
			if err != nil {
				break
			}
			if _, err := n.Event(); err != nil {
				t.Fatalf("passed on a notification it cannot read: %v", err)
			}
		}
		close(resp)
		for r := range resp {
			for _, v := range []any{new(Message), new([]Message), new([]Contact), new(SafetyNumber), new([]Gap), new(Transfer), new(File)} {
				if err := unmarshalExact(r.Result, v); err == nil {
					if _, err := json.Marshal(v); err != nil {
						t.Fatalf("%T decoded from %s does not encode: %v", v, r.Result, err)
					}
				}
			}
		}
	})
}
