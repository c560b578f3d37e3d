package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var frameSeeds = []string{
	`{"type":"hello","id":1,"versions":[1]}`,
	`{"type":"register","id":2,"card":"pfscard1:AAAA"}`,
	`{"type":"login","id":3,"card_id":"00ff","signature":"AAAA"}`,
	`{"type":"resume","id":4,"token":"AAAA"}`,
	`{"type":"lookup","id":5,"name":"bob"}`,
	`{"type":"lookup_card","id":5,"card_id":"9f00000000000000000000000000000000000000000000000000000000000000"}`,
	`{"type":"lookup_card","id":5,"card_id":"9f","name":"bob"}`,
	`{"type":"upload_prekeys","id":6,"prekeys":["AQID"]}`,
	`{"type":"prekey_status","id":7}`,
	`{"type":"fetch_bundle","id":8,"name":"bob"}`,
	`{"type":"replace_card","id":9,"card":"pfscard1:AAAA"}`,
	`{"type":"send","id":10,"to":"bob","body":"aGk=","client_id":"c1","ttl":60}`,
	`{"type":"ack","id":11,"ids":[1,2,3]}`,
	`{"type":"ack","ids":[1,2,3]}`,
	`{"type":"ping","id":12}`,
	`{"type":"send","id":10,"to":"bob","body":"aGk=","client_id":"c1","from":"alice"}`,
	`{"type":"ack","id":11,"ids":[-1]}`,
	`{"type":"lookup","id":1,"name":"bob"}{"type":"ping","id":2}`,
	`{"type":1}`,
	`{"type":"lookup","id":-1,"name":"x"}`,
	`{"type":"lookup","id":1e30,"name":"x"}`,
	`{"type":"send","id":1,"to":"b","body":"!!","client_id":"c"}`,
	`{"type":"deliver","msg_id":1}`,
	`{"type":"lookup","id":1,"name":"\ud800"}`,
	`[]`, `null`, `"x"`, `{`, ``, `{"type":"ping","id":1,"type":"ack"}`,
	`{"type":"lookup","id":1,"name":"bob","name":"eve"}`,
	`{"type":"lookup","id":1,"Name":"bob"}`,
	`{"TYPE":"ping","id":1}`,
	`{"type":"upload_prekeys","id":6,"prekeys":["AQID"],"limits":{"max_frame_bytes":1,"max_frame_bytes":2}}`,
	// Blocking.
	`{"type":"block","id":13,"name":"mallory"}`,
	`{"type":"unblock","id":14,"name":"mallory"}`,
	`{"type":"block","id":15}`,
	`{"type":"block","id":16,"name":"mallory","to":"bob"}`,
	`{"type":"unblock","id":17,"name":"a","name":"b"}`,
	`{"type":"block","name":"mallory"}`,
	// identity recovery
	`{"type":"register","id":2,"card":"pfscard1:AAAA","recovery":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
	`{"type":"recover","id":13,"card":"pfscard1:AAAA","recovery":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","new_recovery":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}`,
	`{"type":"recover","id":13,"card":"pfscard1:AAAA","recovery":"AAAA","new_recovery":"AAAA"}`,
	`{"type":"set_recovery","id":14,"recovery":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
	`{"type":"set_recovery","id":14,"recovery":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","Recovery":"AAAA"}`,
	`{"type":"blob_begin","id":20,"size":32769,"chunks":2,"recipients":1}`,
	`{"type":"blob_begin","id":20,"recipients":1}`,
	`{"type":"blob_begin","id":20,"size":5,"chunks":2,"recipients":1}`,
	`{"type":"blob_resume","id":21,"blob_id":"0123456789abcdef0123456789abcdef"}`,
	`{"type":"blob_put","id":22,"blob_id":"0123456789abcdef0123456789abcdef","index":3,"data":"AQID"}`,
	`{"type":"blob_put","id":22,"blob_id":"0123456789ABCDEF0123456789abcdef","data":"AQID"}`,
	`{"type":"blob_commit","id":23,"blob_id":"0123456789abcdef0123456789abcdef","digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
	`{"type":"blob_commit","id":23,"blob_id":"0123456789abcdef0123456789abcdef","crc32c":"3q2+7w=="}`,
	`{"type":"blob_get","id":24,"blob_id":"0123456789abcdef0123456789abcdef","capability":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","index":1}`,
	`{"type":"blob_done","id":25,"blob_id":"0123456789abcdef0123456789abcdef","capability":"AAAA"}`,
	`{"type":"blob_get","id":24,"blob_id":"0123456789abcdef0123456789abcdef","capability":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","next":1}`,
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FrameError: %T %v", err, err)
			}
			switch fe.Code {
			case CodeBadFrame, CodeBadField, CodeUnknownType, CodeFrameTooLarge:
			default:
				t.Fatalf("unexpected code %q", fe.Code)
			}
			return
		}
		// An accepted frame is a known client type with its required fields, and
		// survives a round trip unchanged.
		rule, ok := clientFrames[fr.Type]
		if !ok || (fr.ID == 0 && rule.needID) {
			t.Fatalf("accepted frame of type %q id %d", fr.Type, fr.ID)
		}
		if missing := rule.required &^ fr.present(); missing != 0 {
			t.Fatalf("accepted %q without %s", fr.Type, firstField(missing))
		}
		if fr.Type == TypeAck && len(fr.IDs) == 0 {
			// "ids":[] is a valid (no-op) ack, but encoding/json's omitempty drops the
			// empty list, so it has no round trip.
			return
		}
		again, err := DecodeFrame(EncodeFrame(&fr))
		if err != nil {
			t.Fatalf("re-encoded frame refused: %v", err)
		}
		a, _ := json.Marshal(fr)
		c, _ := json.Marshal(again)
		if string(a) != string(c) {
			t.Fatalf("round trip changed the frame:\n%s\n%s", a, c)
		}
	})
}

func TestDecodeFrameLimits(t *testing.T) {
	big := `{"type":"lookup","id":1,"name":"` + strings.Repeat("a", MaxFrameSize) + `"}`
	if _, err := DecodeFrame([]byte(big)); err == nil {
		t.Fatal("oversized frame accepted")
	}
	for _, s := range []string{
		`{"type":"lookup","id":1,"name":"` + strings.Repeat("a", 65) + `"}`,
		`{"type":"send","id":1,"to":"b","body":"aGk=","client_id":"` + strings.Repeat("c", 65) + `"}`,
		`{"type":"send","id":1,"to":"b","body":"","client_id":"c"}`,
		`{"type":"send","id":1,"to":"b","body":"aGk=","client_id":"c","ttl":-5}`,
	} {
		if _, err := DecodeFrame([]byte(s)); err == nil {
			t.Errorf("accepted %.80s", s)
		}
	}
}

func TestHotEncodersMatchJSON(t *testing.T) {
	got := AppendDeliver(nil, 42, "alice", "ab12", 1700000000123, []byte{0, 1, 2, 250})
	var f Frame
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatalf("deliver encoding is not JSON: %v\n%s", err, got)
	}
	if f.Type != TypeDeliver || f.MsgID != 42 || f.From != "alice" || f.FromCardID != "ab12" || f.ReceivedAt != 1700000000123 || string(f.Body) != "\x00\x01\x02\xfa" {
		t.Fatalf("deliver decodes to %+v", f)
	}
	got = AppendAccepted(nil, 7, 9, true)
	f = Frame{}
	if err := json.Unmarshal(got, &f); err != nil || f.Type != TypeAccepted || f.ID != 7 || f.MsgID != 9 || !f.Duplicate {
		t.Fatalf("accepted encoding %s: %+v %v", got, f, err)
	}
	for _, fr := range []Frame{{Type: TypeAck, ID: 8, IDs: []int64{1, 99, 1 << 40}}, {Type: TypeOK, ID: 1 << 50}} {
		var got []byte
		if fr.Type == TypeAck {
			got = AppendAck(nil, fr.ID, fr.IDs)
		} else {
			got = AppendOK(nil, fr.ID)
		}
		if want := EncodeFrame(&fr); !bytes.Equal(got, want) {
			t.Fatalf("hand encoding %s, encoding/json %s", got, want)
		}
	}
	if s := string(appendJSONString(nil, "a\"<\x01")); s != `"a\"\u003c\u0001"` {
		t.Fatalf("escaping: %s", s)
	}
}

// FuzzFastDecoders: whatever a fast path accepts, the full decoder accepts with the
// same result.
func FuzzFastDecoders(f *testing.F) {
	f.Add([]byte(`{"type":"send","id":10,"to":"bob","body":"aGk=","client_id":"c1"}`))
	f.Add([]byte(`{"type":"send","id":10,"to":"bob","body":"aGk=","client_id":"c1","ttl":60}`))
	f.Add(AppendDeliver(nil, 5, "alice", "abcd", 17, []byte("xyz")))
	f.Add(AppendAccepted(nil, 3, 9, true))
	f.Add(AppendAccepted(nil, 3, 9, false))
	f.Add([]byte(`{"type":"send","id":01,"to":"bob","body":"aGk=","client_id":"c1"}`))
	f.Add([]byte(`{"type":"send","id":1,"to":"bob","body":"aG\nk=","client_id":"c1"}`))
	f.Add(AppendAck(nil, 4, []int64{1, 22, 333}))
	f.Add(AppendAck(nil, 4, nil))
	f.Add(AppendAck(nil, 0, []int64{1, 22, 333}))
	f.Add([]byte(`{"type":"ack","ids":[]}`))
	f.Add([]byte(`{"type":"ack","ids":[1],"id":2}`))
	f.Add([]byte(`{"type":"ack","id":4,"ids":[1,,2]}`))
	f.Add([]byte(`{"type":"ack","id":4,"ids":[-1]}`))
	f.Add(AppendOK(nil, 12))
	f.Add([]byte(`{"type":"ack","id":0,"ids":[1]}`))
	f.Add([]byte(`{"type":"ack","id":3,"ids":[0]}`))
	f.Add([]byte(`{"type":"ack","id":3,"ids":[]}`))
	f.Add(AppendAck(nil, 4, make([]int64, MaxAckIDs+1)))
	f.Add([]byte(`{"type":"send","id":0,"to":"bob","body":"aGk=","client_id":"c1"}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"","body":"aGk=","client_id":"c1"}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"bob","body":"","client_id":"c1"}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"bob","body":"aGk=","client_id":""}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"bob","body":"aGk=","client_id":"c","ttl":0}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"bob","body":"aG==","client_id":"c","ttl":5}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"bob","body":"aGk=aGk=","client_id":"c"}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"` + strings.Repeat("b", 65) + `","body":"aGk=","client_id":"c"}`))
	f.Add([]byte(`{"type":"send","id":7,"to":"bob","body":"aGk=","client_id":"` + strings.Repeat("c", 65) + `"}`))
	f.Add(AppendBlobPut(nil, 9, "0123456789abcdef0123456789abcdef", 0, []byte("chunk")))
	f.Add(AppendBlobPut(nil, 9, "0123456789abcdef0123456789abcdef", 3, []byte("chunk")))
	f.Add(AppendBlobPut(nil, 9, "0123456789abcdef0123456789abcdef", 3, []byte{}))
	f.Add(AppendBlobChunk(nil, 10, []byte("chunk")))
	f.Add([]byte(`{"type":"blob_put","id":9,"blob_id":"x","index":01,"data":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The relay's send path (into a reused body buffer) accepts only what
		// DecodeFrame accepts, with the same values.
		if sf, ok := DecodeSendInto(b, make([]byte, 3, 16)); ok {
			fr, err := DecodeFrame(b)
			if err != nil {
				t.Fatalf("DecodeSendInto accepted what DecodeFrame refuses: %v", err)
			}
			if fr.Type != TypeSend || fr.ID != sf.ID || fr.To != string(sf.To) || fr.ClientID != string(sf.ClientID) ||
				fr.TTL != sf.TTL || !bytes.Equal(fr.Body, sf.Body) {
				t.Fatalf("DecodeSendInto: id %d to %q client_id %q ttl %d body %x\nDecodeFrame %+v", sf.ID, sf.To, sf.ClientID, sf.TTL, sf.Body, fr)
			}
		}
		if id, ids, ok := DecodeAckInto(b, []int64{7, 8}); ok {
			fr, err := DecodeFrame(b)
			if err != nil {
				t.Fatalf("DecodeAckInto accepted what DecodeFrame refuses: %v", err)
			}
			if fr.Type != TypeAck || fr.ID != id || len(fr.IDs) != len(ids) || (len(ids) > 0 && !reflect.DeepEqual(fr.IDs, ids)) {
				t.Fatalf("DecodeAckInto: id %d ids %v\nDecodeFrame %+v", id, ids, fr)
			}
		}
		// Decoding a deliver into a reused buffer changes no value.
		if got, ok := DecodeDeliverInto(b, []byte("stale")); ok {
			want, _ := fastDecodeDeliver(b)
			if got.MsgID != want.MsgID || string(got.From) != want.From || string(got.FromCardID) != want.FromCardID ||
				got.ReceivedAtMS != want.ReceivedAt || !bytes.Equal(got.Body, want.Body) {
				t.Fatalf("into a buffer %+v\nplain %+v", got, want)
			}
		}
		if fast, ok := fastDecodeSend(b); ok {
			var slow Frame
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&slow); err != nil {
				t.Fatalf("fast send path accepted what encoding/json refuses: %v", err)
			}
			if !reflect.DeepEqual(normalize(fast), normalize(slow)) {
				t.Fatalf("fast %+v\nslow %+v", fast, slow)
			}
			fr, err1 := DecodeFrame(b)
			if err1 == nil && !reflect.DeepEqual(normalize(fr), normalize(slow)) {
				t.Fatalf("DecodeFrame %+v\nslow %+v", fr, slow)
			}
		}
		if fast, ok := fastDecodeAck(b); ok {
			var slow Frame
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&slow); err != nil {
				t.Fatalf("fast ack path accepted what encoding/json refuses: %v", err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("fast %+v\nslow %+v", fast, slow)
			}
			if again := AppendAck(nil, fast.ID, fast.IDs); !bytes.Equal(again, EncodeFrame(&fast)) && len(fast.IDs) > 0 { // omitempty drops an empty list
				t.Fatalf("AppendAck %s, encoding/json %s", again, EncodeFrame(&fast))
			}
		}
		if fast, ok := fastDecodeBlobPut(b); ok {
			var slow Frame
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&slow); err != nil {
				t.Fatalf("fast blob_put path accepted what encoding/json refuses: %v", err)
			}
			if !reflect.DeepEqual(normalize(fast), normalize(slow)) {
				t.Fatalf("fast %+v\nslow %+v", fast, slow)
			}
			if fr, err := DecodeFrame(b); err == nil && !reflect.DeepEqual(normalize(fr), normalize(slow)) {
				t.Fatalf("DecodeFrame %+v\nslow %+v", fr, slow)
			}
			if again := AppendBlobPut(nil, fast.ID, fast.BlobID, fast.Index, fast.Data); fast.ID != 0 && fast.BlobID != "" && !bytes.Equal(again, EncodeFrame(&fast)) {
				t.Fatalf("AppendBlobPut %s, encoding/json %s", again, EncodeFrame(&fast))
			}
		}
		for _, fast := range []func([]byte) (Frame, bool){fastDecodeDeliver, fastDecodeAccepted, fastDecodeOK, fastDecodeBlobChunk} {
			if got, ok := fast(b); ok {
				var slow Frame
				if err := json.Unmarshal(b, &slow); err != nil {
					t.Fatalf("fast path accepted invalid JSON: %v", err)
				}
				if !reflect.DeepEqual(normalize(got), normalize(slow)) {
					t.Fatalf("fast %+v\nslow %+v", got, slow)
				}
			}
		}
		// AppendSend output always takes the fast path back to the same frame.
		if fr, err := DecodeFrame(b); err == nil && fr.Type == TypeSend {
			again, ok := fastDecodeSend(AppendSend(nil, &fr))
			if plainASCII(fr.To) && plainASCII(fr.ClientID) && (!ok || !reflect.DeepEqual(normalize(again), normalize(fr))) {
				t.Fatalf("AppendSend round trip: %+v vs %+v", again, fr)
			}
		}
	})
}

// normalize makes empty and nil byte slices compare equal.
func normalize(f Frame) Frame {
	if len(f.Body) == 0 {
		f.Body = nil
	}
	return f
}

// TestDecodeBlockFrames: block and unblock carry exactly a name and an id.
func TestDecodeBlockFrames(t *testing.T) {
	for _, ty := range []string{TypeBlock, TypeUnblock} {
		f, err := DecodeFrame([]byte(`{"type":"` + ty + `","id":3,"name":"mallory"}`))
		if err != nil || f.Type != ty || f.Name != "mallory" || f.ID != 3 {
			t.Fatalf("%s: %+v, %v", ty, f, err)
		}
		for _, bad := range []string{
			`{"type":"` + ty + `","id":3}`,
			`{"type":"` + ty + `","name":"mallory"}`,
			`{"type":"` + ty + `","id":3,"name":"mallory","to":"bob"}`,
			`{"type":"` + ty + `","id":3,"name":"mallory","name":"eve"}`,
			`{"type":"` + ty + `","id":3,"Name":"mallory"}`,
			`{"type":"` + ty + `","id":3,"name":7}`,
		} {
			var fe *FrameError
			if _, err := DecodeFrame([]byte(bad)); !errors.As(err, &fe) || fe.Code != CodeBadField && fe.Code != CodeBadFrame {
				t.Errorf("%s accepted or wrong error: %v", bad, err)
			}
		}
	}
}

// FuzzDecodeServerFrame: the client's decoder of the relay's frames (a relay is not
// trusted) never panics, refuses with a *FrameError, and what it accepts has a type
// and encodes to a frame it accepts again unchanged.
func FuzzDecodeServerFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	for _, b := range [][]byte{
		AppendDeliver(nil, 5, "alice", "abcd", 17, []byte("xyz")),
		AppendDeliver(nil, 5, "al\"<ice", "abcd", 17, nil),
		AppendAccepted(nil, 3, 9, true),
		AppendOK(nil, 12),
		AppendBlobChunk(nil, 10, []byte("chunk")),
		[]byte(`{"type":"hello","versions":[1],"relay_key":"AAAA","challenge":"AAAA","limits":{"max_frame_bytes":65536},"channel_binding":"x"}`),
		[]byte(`{"type":"prekey_status","id":7,"counts":{"signed":1,"one_time":-3}}`),
		[]byte(`{"type":"error","id":1,"code":"rate_limited","limit":"frames_per_second","retry_after_ms":20,"message":"slow"}`),
		[]byte(`{"type":"deliver","msg_id":1,"from":"a","body":"aGk=","extra":{"x":[1,2]}}`),
		[]byte(`{"TYPE":"ok","ID":3}`),
		[]byte(`{"type":"ok","id":-1}`),
		[]byte(`{"type":""}`),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeServerFrame(b)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FrameError: %T %v", err, err)
			}
			return
		}
		if fr.Type == "" {
			t.Fatal("accepted a frame without a type")
		}
		for _, s := range []string{fr.Code, fr.Message, fr.Limit} {
			if len(s) > maxDisplayText || !utf8.ValidString(s) || strings.ContainsFunc(s, isControl) {
				t.Fatalf("relay's words not safe to show: %q", s)
			}
		}
		enc := EncodeFrame(&fr)
		if len(enc) > MaxServerFrameSize { // escaping can grow a frame past the limit
			return
		}
		again, err := DecodeServerFrame(enc)
		if err != nil {
			t.Fatalf("re-encoded frame %s refused: %v", enc, err)
		}
		if enc2 := EncodeFrame(&again); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the frame:\n%s\n%s", enc, enc2)
		}
	})
}
