package daemon

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeRequest: the decoder never panics, refuses with a JSON-RPC code, and what it
// accepts is a well-formed request that encodes back with the same method and id.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"hi"},"id":1}`,
		`{"jsonrpc":"2.0","method":"version"}`,
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
		if req.Method == "" || (req.Params != nil && req.Params[0] != '{') || req.Notify != (req.ID == nil) {
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
