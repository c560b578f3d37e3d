package chat

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_790_000_000_123).UTC()
	for _, p := range []payload{
		{Kind: kindText, At: at, ClientID: "c1", Text: "hello, 世界"},
		{Kind: kindText, At: at, ClientID: strings.Repeat("x", maxClientID), Text: ""},
		{Kind: kindText, At: at, ClientID: "big", Text: strings.Repeat("a", MaxTextBytes)},
		{Kind: kindDeliveryReceipt, At: at, ClientIDs: []string{"a", "b"}},
		{Kind: kindReadReceipt, At: at, ClientIDs: []string{"only"}},
	} {
		b, err := p.marshal()
		if err != nil {
			t.Fatalf("marshal %+v: %v", p.Kind, err)
		}
		if len(b)%payloadBlock != 0 {
			t.Errorf("kind %d: %d bytes, not padded to %d", p.Kind, len(b), payloadBlock)
		}
		got, err := parsePayload(b)
		if err != nil {
			t.Fatalf("parse kind %d: %v", p.Kind, err)
		}
		if !reflect.DeepEqual(*got, p) {
			t.Errorf("round trip: got %+v, want %+v", *got, p)
		}
	}
}

func TestPayloadRejects(t *testing.T) {
	good, _ := (&payload{Kind: kindText, At: time.Unix(1, 0), ClientID: "id", Text: "hi"}).marshal()
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"empty":         {nil, ErrPayloadMalformed},
		"version":       {mut(func(b []byte) []byte { b[0] = 9; return b }), ErrPayloadVersion},
		"kind":          {mut(func(b []byte) []byte { b[1] = 9; return b }), ErrPayloadKind},
		"truncated":     {good[:20], ErrPayloadMalformed},
		"trailing":      {append(append([]byte(nil), good...), 0), ErrPayloadMalformed},
		"nonzero pad":   {mut(func(b []byte) []byte { b[len(b)-1] = 1; return b }), ErrPayloadMalformed},
		"empty id":      {mut(func(b []byte) []byte { b[10] = 0; return b }), ErrPayloadMalformed},
		"huge text len": {mut(func(b []byte) []byte { copy(b[13:17], []byte{0xff, 0xff, 0xff, 0xff}); return b }), ErrTextTooLong},
		"bad utf8":      {mut(func(b []byte) []byte { b[17] = 0xff; return b }), ErrPayloadMalformed},
	}
	for name, c := range cases {
		if _, err := parsePayload(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	if _, err := (&payload{Kind: kindText, ClientID: "x", Text: strings.Repeat("a", MaxTextBytes+1)}).marshal(); !errors.Is(err, ErrTextTooLong) {
		t.Errorf("oversize text: %v", err)
	}
	if _, err := (&payload{Kind: kindReadReceipt}).marshal(); !errors.Is(err, ErrPayloadMalformed) {
		t.Errorf("empty receipt: %v", err)
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, p := range []payload{
		{Kind: kindText, At: time.Unix(5, 0), ClientID: "c", Text: "hi"},
		{Kind: kindDeliveryReceipt, At: time.Unix(5, 0), ClientIDs: []string{"a", "b"}},
		{Kind: kindReadReceipt, At: time.Unix(5, 0), ClientIDs: []string{"z"}},
	} {
		b, _ := p.marshal()
		f.Add(b)
	}
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := parsePayload(in)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to the same bytes (the encoding is canonical).
		out, err := p.marshal()
		if err != nil {
			t.Fatalf("parsed payload does not marshal: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("not canonical:\n in %x\nout %x", in, out)
		}
	})
}
