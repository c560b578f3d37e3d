package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"pfschat/storage"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	in := storage.QueuedMessage{From: "alice", FromCardID: "card", ClientID: "c1", Body: []byte("body"),
		ReceivedAt: time.Unix(1700000000, 5).UTC(), ExpiresAt: time.Unix(1700003600, 0).UTC()}
	b, err := appendEnvelope(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	var out storage.QueuedMessage
	if err := parseEnvelope(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.From != in.From || out.FromCardID != in.FromCardID || out.ClientID != in.ClientID ||
		!bytes.Equal(out.Body, in.Body) || !out.ReceivedAt.Equal(in.ReceivedAt) || !out.ExpiresAt.Equal(in.ExpiresAt) {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
	in.ExpiresAt = time.Time{}
	b, _ = appendEnvelope(nil, &in)
	if err := parseEnvelope(b, &out); err != nil || !out.ExpiresAt.IsZero() {
		t.Fatalf("zero expiry: %v %v", out.ExpiresAt, err)
	}
}

// The byte layout is fixed: a vector.
func TestEnvelopeVector(t *testing.T) {
	m := storage.QueuedMessage{From: "a", FromCardID: "", ClientID: "x", Body: []byte{0xff},
		ReceivedAt: time.Unix(0, 1), ExpiresAt: time.Time{}}
	b, err := appendEnvelope(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 1, 'a', 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff}
	if !bytes.Equal(b, want) {
		t.Fatalf("envelope % x, want % x", b, want)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":        {},
		"version":      {2},
		"from length":  {1, 9, 'a'},
		"empty from":   {1, 0, 0, 1, 'x'},
		"no client_id": {1, 1, 'a', 0, 0},
		"no times":     {1, 1, 'a', 0, 1, 'x', 0, 0},
		"huge length":  {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"length > max": append([]byte{1, 0x80, 0x02}, make([]byte, 300)...),
	} {
		var m storage.QueuedMessage
		if err := parseEnvelope(b, &m); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("%s: %v, want ErrBadEnvelope", name, err)
		}
	}
	if _, err := appendEnvelope(nil, &storage.QueuedMessage{From: "a"}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("no client id: %v", err)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	b, _ := appendEnvelope(nil, &storage.QueuedMessage{From: "alice", FromCardID: "c", ClientID: "id", Body: []byte("hi"), ReceivedAt: time.Unix(1, 0)})
	f.Add(b)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m storage.QueuedMessage
		if err := parseEnvelope(data, &m); err != nil {
			if !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := appendEnvelope(nil, &m)
		if err != nil {
			t.Fatalf("parsed envelope does not encode: %v", err)
		}
		var m2 storage.QueuedMessage
		if err := parseEnvelope(again, &m2); err != nil || m2.From != m.From || m2.ClientID != m.ClientID || !bytes.Equal(m2.Body, m.Body) {
			t.Fatalf("re-encoding changed it: %v", err)
		}
	})
}
