package relay

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// peekIDReference is PeekID by encoding/json: the last top-level key that is "id" in
// any ASCII case, of a valid JSON object, read as an unsigned integer, or 0.
func peekIDReference(b []byte) (uint64, bool) {
	if !json.Valid(b) {
		return 0, false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return 0, false
	}
	var id uint64
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return 0, false
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return 0, false
		}
		if k, _ := t.(string); len(k) == 2 && strings.EqualFold(k, "id") {
			id = 0
			if len(v) > 0 && v[0] >= '0' && v[0] <= '9' {
				id, _ = strconv.ParseUint(string(v), 10, 64)
			}
		}
	}
	return id, true
}

func TestPeekID(t *testing.T) {
	for _, c := range []struct {
		frame string
		want  uint64
	}{
		{`{"type":"ping","id":5}`, 5},
		{`{"type": "ping", "id": 5}`, 5}, // Python's json.dumps
		{"{\n  \"type\": \"ping\",\n  \"id\": 7\n}", 7},
		{`{"type":"send","to":"bob","body":"` + string(bytes.Repeat([]byte("A"), 200)) + `","client_id":"c","id":9}`, 9},
		{`{"type":"ack","ids":[1,2,{"id":3}],"id":4}`, 4}, // not a nested "id"
		{`{"type":"x","note":"\"id\":8","id":6}`, 6},      // not one inside a string
		{`{"\u0069d":11,"type":"ping"}`, 11},
		{`{"id":18446744073709551615}`, 1<<64 - 1},
		{`{"id":1000000000000000000}`, 1e18},
		{`{"id":18446744073709551616}`, 0},
		{`{"id":-1}`, 0},
		{`{"id":1.0}`, 0},
		{`{"id":1e3}`, 0},
		{`{"id":01}`, 0},
		{`{"id":"5"}`, 0},
		{`{"type":"ping"}`, 0},
		{`{"type":"ping","id":5,"id":6}`, 6}, // the last, as encoding/json sets it
		{`{"type":"ping","id":5,"ID":6}`, 6},
		{`{"iD":6,"type":"ping"}`, 6},
		{`{"type":"ping","id":5,"id":null}`, 0},
		{`{"type":"ping","id":5,"id":"6"}`, 0},
		{`{"type":"ping","id":5,"id":0}`, 0},
		{`{"type":"ping","id":5`, 0}, // cut short
		{`{"type":"ping","id":5,}`, 0},
		{`{"id":5} trailing`, 5},
		{`{}`, 0},
		{`[{"id":5}]`, 0},
		{`{"type":"ping" "id":5}`, 0},
		{``, 0},
		{`{`, 0},
	} {
		if got := PeekID([]byte(c.frame)); got != c.want {
			t.Errorf("PeekID(%.60q) = %d, want %d", c.frame, got, c.want)
		}
	}
}

// FuzzPeekID: PeekID never panics and, on every valid JSON object, finds what
// encoding/json finds.
func FuzzPeekID(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"type": "ping", "id": 5}`))
	f.Add([]byte(`{"a":[{"b":"}"}],"id":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := PeekID(b)
		if want, ok := peekIDReference(b); ok && got != want {
			t.Fatalf("PeekID(%q) = %d, encoding/json finds %d", b, got, want)
		}
	})
}
