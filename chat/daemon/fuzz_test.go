package daemon

import (
	"encoding/json"
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
		out, merr := json.Marshal(Response{JSONRPC: Version, ID: req.ID, Result: json.RawMessage(`{}`)})
		if merr != nil || !json.Valid(out) {
			t.Fatalf("response for %q does not encode: %v", b, merr)
		}
	})
}
