package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `json:"name"`
}

type Embedded struct {
	Digits string `json:"digits"`
	Shadow int    `json:"shadow"`
}

type outer struct {
	Embedded
	Shadow  string            `json:"shadow"` // shallower: wins over Embedded's
	ID      int               `json:"id"`
	Inner   *inner            `json:"inner"`
	List    []inner           `json:"list"`
	Counts  map[string]inner  `json:"counts"`
	Raw     json.RawMessage   `json:"raw"`
	Any     any               `json:"any"`
	When    time.Time         `json:"when"`
	Plain   string            // no tag: its Go name
	Skipped string            `json:"-"`
	Free    map[string]string `json:"free"`
	hidden  string            //lint:ignore U1000 an unexported field takes no member
}

// Every member that appears twice, or that names a field only when case is ignored, is
// refused with the member, the name it folds to and where it is.
func TestCheckKeysRefuses(t *testing.T) {
	for _, tc := range []struct {
		in, key, want, path string
	}{
		{`{"id":1,"id":2}`, "id", "", ""},
		{`{"ID":1}`, "ID", "id", ""},
		{`{"Id":1}`, "Id", "id", ""},
		{`{"plain":"x"}`, "plain", "Plain", ""},
		{`{"DIGITS":"1"}`, "DIGITS", "digits", ""},          // a promoted field
		{`{"inner":{"Name":"x"}}`, "Name", "name", "inner"}, // through a pointer
		{`{"inner":{"name":"x","name":"y"}}`, "name", "", "inner"},
		{`{"list":[{"name":"a"},{"nAme":"b"}]}`, "nAme", "name", "list[1]"},
		{`{"counts":{"a":{"NAME":"x"}}}`, "NAME", "name", "counts.a"}, // a map's values
		{`{"counts":{"a":{},"a":{}}}`, "a", "", "counts"},             // a map's keys, duplicated
		{`{"any":{"x":[{"y":1,"y":2}]}}`, "y", "", "any.x[0]"},        // under an interface: duplicates
		{`{"free":{"k":"1","k":"2"}}`, "k", "", "free"},
		{"{\"\u017Fhadow\":\"x\"}", "\u017Fhadow", "shadow", ""},              // encoding/json folds the long s to s
		{`{"nosuch":1,"skipped":"x","Skipped":"y","hidden":"z"}`, "", "", ""}, // no field takes them: the decoder refuses them
	} {
		err := CheckKeys([]byte(tc.in), reflect.TypeFor[outer]())
		if tc.key == "" {
			if err != nil {
				t.Errorf("%s: %v, want no refusal (the decoder refuses what no field takes)", tc.in, err)
			}
			continue
		}
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key || ke.Want != tc.want || ke.Path != tc.path || ke.Duplicate() != (tc.want == "") {
			t.Errorf("%s: %#v, want key %q want %q path %q", tc.in, err, tc.key, tc.want, tc.path)
		}
	}
}

// The exact names pass, whatever a map's keys or an interface's members are called, and
// what a type decodes itself is not looked into; malformed input is left to the
// decoder.
func TestCheckKeysAccepts(t *testing.T) {
	for _, in := range []string{
		`{"id":1,"shadow":"s","digits":"1","inner":{"name":"x"},"list":[{"name":"a"},{"name":"b"}],"Plain":"p"}`,
		`{"counts":{"Name":{"name":"x"},"NAME":{"name":"y"}},"free":{"ID":"1","id":"2"}}`,
		`{"raw":{"a":1,"a":2,"A":3},"any":{"Id":1,"ID":2}}`,
		`{"when":"2024-01-01T00:00:00Z","inner":null,"list":null}`,
		`[{"id":1},{"id":1}]`, `"x"`, `null`, `17`,
		`{"id":1,`, `{"id":1,"x"`, `{"id" 1}`, ``, `}`,
	} {
		if err := CheckKeys([]byte(in), reflect.TypeFor[outer]()); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
	// Untyped: duplicates only.
	if err := CheckKeys([]byte(`{"a":{"A":1,"a":2}}`), nil); err != nil {
		t.Errorf("untyped: %v", err)
	}
	var ke *KeyError
	if err := CheckKeys([]byte(`[{"a":{"b":1,"b":2}}]`), nil); !errors.As(err, &ke) || ke.Path != "[0].a" {
		t.Errorf("untyped duplicate: %v", err)
	}
}

// Nesting as deep as encoding/json allows is followed; deeper is the decoder's to refuse.
func TestCheckKeysDepth(t *testing.T) {
	deep := func(n int, leaf string) []byte {
		return []byte(strings.Repeat(`{"a":`, n) + leaf + strings.Repeat(`}`, n))
	}
	var ke *KeyError
	if err := CheckKeys(deep(maxDepth-1, `{"b":1,"b":2}`), nil); !errors.As(err, &ke) || ke.Key != "b" {
		t.Fatalf("a duplicate %d deep: %v", maxDepth, err)
	}
	b := deep(maxDepth+1, `{"b":1,"b":2}`)
	if err := CheckKeys(b, nil); err != nil {
		t.Fatalf("deeper than encoding/json's limit: %v", err)
	}
	var v any
	if json.Unmarshal(b, &v) == nil {
		t.Fatal("encoding/json decoded input deeper than its limit: CheckKeys must not leave it")
	}
}

func TestKeyErrorMessage(t *testing.T) {
	long := strings.Repeat("é", 100)
	for _, tc := range []struct {
		err  *KeyError
		want string
	}{
		{&KeyError{Key: "to"}, `member "to" appears twice; send each member once`},
		{&KeyError{Key: "Text", Want: "text", Path: "params"}, `member "Text" in "params" is not "text": member names are case-sensitive`},
		{&KeyError{Key: long}, `member "` + strings.Repeat("é", 32) + `…" appears twice; send each member once`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

type fuzzInner struct {
	B string `json:"b"`
}

type fuzzT struct {
	A      int             `json:"a"`
	Nested *fuzzInner      `json:"nested"`
	Items  []fuzzInner     `json:"items"`
	M      map[string]int  `json:"m"`
	Raw    json.RawMessage `json:"raw"`
}

// FuzzCheckKeys: it never panics, a refusal names a member that is in the input and
// folds to what it names, and input it accepts and encoding/json decodes strictly uses
// the fields' exact names (read back case-sensitively through a map).
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"nested":{"b":"x"},"items":[{"b":"y"}],"m":{"K":1},"raw":{"z":1}}`,
		`{"A":1}`, `{"a":1,"a":2}`, `{"nested":{"B":"x"}}`, `{"items":[{},{"b":"1","b":"2"}]}`,
		"{\"\u017F\":1}", `{"m":{"x":1,"x":2}}`, `[`, `{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckKeys(b, reflect.TypeFor[fuzzT]())
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("%T", err)
			}
			if !ke.Duplicate() && (ke.Key == ke.Want || !strings.EqualFold(ke.Key, ke.Want)) {
				t.Fatalf("%q refused as %q for %q", b, ke.Key, ke.Want)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var v fuzzT
		if dec.Decode(&v) != nil {
			return
		}
		var loose map[string]json.RawMessage
		if json.Unmarshal(b, &loose) != nil {
			return // the first value decoded; trailing data is the caller's business
		}
		exact := func(raw json.RawMessage, names ...string) {
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				return
			}
			for k := range m {
				if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+k+" ") {
					t.Fatalf("%q accepted with member %q (want one of %v)", b, k, names)
				}
			}
		}
		exact(json.RawMessage(b), "a", "nested", "items", "m", "raw")
		exact(loose["nested"], "b")
		var items []json.RawMessage
		if json.Unmarshal(loose["items"], &items) == nil {
			for _, it := range items {
				exact(it, "b")
			}
		}
	})
}
