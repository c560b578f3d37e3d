package payload_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"pfschat/chat/payload"
)

// fuzzMinimizeBudget caps minimization of a failing input: payloads run to 45 KiB, and
// the default (60 s per input) would stall a shared machine.
const fuzzMinimizeBudget = "10s"

func TestMain(m *testing.M) {
	flag.Parse()
	if fuzzing := flag.Lookup("test.fuzz"); fuzzing != nil && fuzzing.Value.String() != "" {
		given := false
		flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
		if !given {
			if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeBudget); err != nil {
				panic("payload: setting -test.fuzzminimizetime: " + err.Error())
			}
		}
	}
	os.Exit(m.Run())
}

func TestRoundTripEveryVector(t *testing.T) {
	for _, v := range vectorPayloads() {
		b, err := payload.Encode(&v.p)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if len(b) != payload.Bucket(len(b)) {
			t.Errorf("%s: %d bytes is not a bucket size", v.name, len(b))
		}
		got, err := payload.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		want := v.p
		want.Version = payload.Version
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", v.name, *got, want)
		}
	}
}

// Text arrives exactly as typed: every valid UTF-8 string, control characters included.
func TestTextIsNeverAltered(t *testing.T) {
	for _, s := range []string{"\t", "a\tb", "\r", "\r\n", "\x00", "?", " leading and trailing ",
		"👨\u200d👩\u200d👧\u200d👦", "\u202eRTL override", "עברית and English", "\x1b[2J", "\u0085\u2028\u2029",
		strings.Repeat("é", payload.MaxText/2)} {
		b, err := payload.Encode(&payload.Payload{Type: payload.Text, At: time.UnixMilli(1), ID: "x", Seq: 1, Text: s})
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		p, err := payload.Decode(b)
		if err != nil || p.Text != s {
			t.Fatalf("%q: decoded %q, %v", s, p.Text, err)
		}
	}
}

func TestLimits(t *testing.T) {
	id := strings.Repeat("i", payload.MaxID)
	max := &payload.Payload{Type: payload.Text, ID: id, Seq: 1<<64 - 1, Text: strings.Repeat("m", payload.MaxText)}
	b, err := payload.Encode(max)
	if err != nil || len(b) != payload.MaxPayload {
		t.Fatalf("the longest text with the longest id: %d bytes, %v; want exactly MaxPayload %d", len(b), err, payload.MaxPayload)
	}
	un, _ := payload.AppendUnpadded(nil, max)
	if len(un) != payload.MaxPayload {
		t.Fatalf("MaxText is not derived from MaxPayload: unpadded %d", len(un))
	}
	max.Text += "m"
	if _, err := payload.Encode(max); !errors.Is(err, payload.ErrOversize) {
		t.Fatalf("one byte over MaxText: %v, want ErrOversize", err)
	}
	big := &payload.Payload{Type: payload.Attachment, ID: "a", Seq: 1, Text: strings.Repeat("c", payload.MaxText),
		Attachment: payload.AttachmentRef{BlobID: "b", Thumbnail: make([]byte, payload.MaxThumbnail)}}
	if _, err := payload.Encode(big); !errors.Is(err, payload.ErrOversize) {
		t.Fatalf("an attachment over the cap: %v, want ErrOversize", err)
	}
}

func TestBuckets(t *testing.T) {
	for n, want := range map[int]int{0: 256, 1: 256, 256: 256, 257: 512, 1000: 1024, 32768: 32768, 32769: payload.MaxPayload,
		payload.MaxPayload: payload.MaxPayload, payload.MaxPayload + 1: -1} {
		if got := payload.Bucket(n); got != want {
			t.Errorf("Bucket(%d) = %d, want %d", n, got, want)
		}
	}
}

// A receiver accepts any amount of zero padding up to the cap.
func TestAnyZeroPadding(t *testing.T) {
	un, err := payload.AppendUnpadded(nil, &payload.Payload{Type: payload.Read, IDs: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	for pad := 0; len(un)+pad <= payload.MaxPayload; pad += 997 {
		if _, err := payload.Decode(append(append([]byte(nil), un...), make([]byte, pad)...)); err != nil {
			t.Fatalf("%d padding bytes: %v", pad, err)
		}
	}
}

func TestEncodeRefusesWhatDecodeRejects(t *testing.T) {
	for name, p := range map[string]payload.Payload{
		"seq 0":           {Type: payload.Text, ID: "x", Text: "t"},
		"empty text":      {Type: payload.Text, ID: "x", Seq: 1},
		"bad utf-8":       {Type: payload.Text, ID: "x", Seq: 1, Text: "\xff"},
		"id with space":   {Type: payload.Text, ID: "a b", Seq: 1, Text: "t"},
		"no ids":          {Type: payload.Delivered},
		"retry nothing":   {Type: payload.RetryRequest, Retry: payload.Retry{Reason: payload.RetryUndecryptable}},
		"retry reason 0":  {Type: payload.RetryRequest, Retry: payload.Retry{ID: "x"}},
		"short signature": {Type: payload.IdentityChanged, Identity: payload.IdentityChange{Signature: make([]byte, 10)}},
		"file name ..":    {Type: payload.Attachment, ID: "x", Seq: 1, Attachment: payload.AttachmentRef{BlobID: "b", FileName: ".."}},
		"unknown type":    {Type: 99},
	} {
		if _, err := payload.Encode(&p); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range vectorPayloads() {
		b, err := payload.Encode(&v.p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		un, _ := payload.AppendUnpadded(nil, &v.p)
		f.Add(un)
	}
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := payload.Decode(b)
		if err != nil {
			kinds := 0
			for _, kind := range []error{payload.ErrMalformed, payload.ErrOversize, payload.ErrUnknownVersion, payload.ErrPadding, payload.ErrUnknownType} {
				if errors.Is(err, kind) {
					kinds++
				}
			}
			if kinds != 1 {
				t.Fatalf("error %v wraps %d of the typed errors, not exactly one (PAYLOAD.md §7)", err, kinds)
			}
			if p != nil && !errors.Is(err, payload.ErrUnknownType) {
				t.Fatalf("a payload with error %v", err)
			}
			return
		}
		// Whatever decodes re-encodes (as version 2) and decodes to the same fields.
		if p.Version == payload.VersionV1 {
			p.Seq = 1
			if p.Type == payload.Text && p.Text == "" {
				return // a version-1 text may be empty (PAYLOAD.md §8), a version-2 one may not
			}
		}
		again, err := payload.Encode(p)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", p, err)
		}
		q, err := payload.Decode(again)
		if err != nil {
			t.Fatal(err)
		}
		q.Version = p.Version
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("re-encoding changed the payload:\n%+v\n%+v", p, q)
		}
	})
}

func BenchmarkEncodeText(b *testing.B) {
	p := &payload.Payload{Type: payload.Text, At: vectorAt, ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Seq: 42, Text: "a typical chat message of some sixty bytes, give or take."}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := payload.Encode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeText(b *testing.B) {
	enc, _ := payload.Encode(&payload.Payload{Type: payload.Text, At: vectorAt, ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Seq: 42, Text: "a typical chat message of some sixty bytes, give or take."})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := payload.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMaxText(b *testing.B) {
	enc, _ := payload.Encode(&payload.Payload{Type: payload.Text, ID: "x", Seq: 1, Text: strings.Repeat("m", payload.MaxText-63)})
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := payload.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReceipt1000(b *testing.B) {
	ids := make([]string, payload.MaxIDs)
	for i := range ids {
		ids[i] = strings.Repeat("0123456789abcdef", 2)
	}
	enc, err := payload.Encode(&payload.Payload{Type: payload.Delivered, IDs: ids})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := payload.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// ReceiptFit splits by count and by size: 1000 ids of MaxID bytes do not fit one
// payload, and each batch it gives encodes (a list of long ids failed to encode and was
// dropped, receipts and all).
func TestReceiptFit(t *testing.T) {
	long := make([]string, 2000)
	for i := range long {
		long[i] = fmt.Sprintf("%064d", i)
	}
	short := make([]string, 1500)
	for i := range short {
		short[i] = fmt.Sprintf("%032x", i)
	}
	for name, ids := range map[string][]string{"long": long, "short": short} {
		batches := 0
		for rest := ids; len(rest) > 0; batches++ {
			n := payload.ReceiptFit(rest)
			if n < 1 || n > payload.MaxIDs {
				t.Fatalf("%s: ReceiptFit = %d", name, n)
			}
			if _, err := payload.Encode(&payload.Payload{Type: payload.Read, At: time.Unix(1, 0), IDs: rest[:n]}); err != nil {
				t.Fatalf("%s: a batch of %d does not encode: %v", name, n, err)
			}
			if n < len(rest) && n < payload.MaxIDs {
				if _, err := payload.Encode(&payload.Payload{Type: payload.Read, At: time.Unix(1, 0), IDs: rest[:n+1]}); err == nil {
					t.Fatalf("%s: %d ids fit, ReceiptFit said %d", name, n+1, n)
				}
			}
			rest = rest[n:]
		}
		if want := map[string]int{"long": 3, "short": 2}[name]; batches != want {
			t.Errorf("%s: %d receipts, want %d", name, batches, want)
		}
	}
	if payload.ReceiptFit(nil) != 0 {
		t.Error("payload.ReceiptFit(nil) != 0")
	}
}
