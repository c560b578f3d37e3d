package relay

import (
	"errors"
	"testing"
)

// encoding/json accepts duplicate keys (the last wins) and keys that match a field
// only case-insensitively; the strict decoder refuses both with bad_field.
func TestDecodeFrameRefusesDuplicateAndFoldedKeys(t *testing.T) {
	for _, tc := range []struct{ frame, field string }{
		{`{"type":"lookup","id":1,"name":"bob","name":"eve"}`, "name"},
		{`{"type":"ping","id":1,"id":2}`, "id"},
		{`{"type":"ping","id":1,"type":"ping"}`, "type"},
		{`{"type":"lookup","id":1,"Name":"bob"}`, "Name"},
		{`{"Type":"ping","id":1}`, "Type"},
		{`{"type":"ping","ID":1}`, "ID"},
		{`{"type":"send","id":3,"to":"bob","body":"aGk=","Client_ID":"c"}`, "Client_ID"},
		{`{"type":"send","id":3,"to":"bob","to":"eve","body":"aGk=","client_id":"c"}`, "to"},
		{`{"type":"ack","id":3,"ids":[1],"ids":[2]}`, "ids"},
		// encoding/json folds beyond ASCII: the long s is an s, the Kelvin sign a k.
		{"{\"type\":\"login\",\"id\":4,\"card_id\":\"c\",\"\u017Fignature\":\"AAAA\"}", "\u017Fignature"},
		{"{\"type\":\"upload_prekeys\",\"id\":6,\"pre\u212Aeys\":[\"AQID\"]}", "pre\u212Aeys"},
		// A nested object: hello's limits.
		{`{"type":"hello","id":1,"limits":{"Max_frame_bytes":1}}`, "Max_frame_bytes"},
	} {
		_, err := DecodeFrame([]byte(tc.frame))
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != CodeBadField || fe.Field != tc.field {
			t.Errorf("%s: %v, want bad_field on %q", tc.frame, err, tc.field)
		}
	}
	// Such a refusal answers the last id given (PROTOCOL.md, Errors).
	for _, frame := range []string{`{"type":"ping","id":1,"id":2}`, `{"type":"ping","id":1,"ID":2}`, `{"type":"ping","Id":1,"id":2}`} {
		if f, err := DecodeFrame([]byte(frame)); err == nil || f.ID != 2 {
			t.Errorf("%s: answered with id %d (%v), want 2", frame, f.ID, err)
		}
	}
	// The last id is what counts, also when it is absent by value or unreadable: an
	// earlier one (which encoding/json keeps) is not answered (found by an
	// implementation written from PROTOCOL.md alone).
	for _, tc := range []struct {
		frame string
		id    uint64
	}{
		{`{"type":"ping","id":4,"id":0}`, 0},
		{`{"type":"ping","id":3,"id":null}`, 0},
		{`{"type":"ack","ids":[1],"id":3,"id":null}`, 0},
		{`{"type":"ping","id":7,"id":"x"}`, 0},
		{`{"type":"ping","id":7,"ID":-1}`, 0},
		{`{"type":"ping","id":null,"id":8}`, 8},
		{`{"type":"ping","id":"x"}`, 0},
		{`{"type":"ping","id":9,"zzz":1}`, 9},
		{`{"type":"ping","id":9,"name":0}`, 9},
	} {
		f, err := DecodeFrame([]byte(tc.frame))
		if err == nil || f.ID != tc.id {
			t.Errorf("%s: answered with id %d (%v), want %d", tc.frame, f.ID, err, tc.id)
		}
	}
	// The exact names still decode, nested arrays and all.
	for _, ok := range []string{
		`{"type":"lookup","id":1,"name":"bob"}`,
		`{"type":"upload_prekeys","id":6,"prekeys":["AQID","BAUG"]}`,
		`{"type":"register","id":2,"card":"pfscard1:AAAA","invite":"pfsinv-x"}`,
	} {
		if _, err := DecodeFrame([]byte(ok)); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

// A type the protocol does not have is unknown_type whatever else the frame holds, so
// that a client can tell a frame this relay does not have from a field it got wrong
// (PROTOCOL.md, Frames; a newer frame type comes with fields this relay does not know).
func TestUnknownTypeComesBeforeItsFields(t *testing.T) {
	for _, frame := range []string{
		`{"type":"nosuch","id":7,"zzz":1}`,
		`{"type":"nosuch","id":7,"ids":"not a list"}`,
		`{"type":"nosuch","id":7,"id":7}`,
		`{"type":"deliver","id":7,"msg_id":1,"from":"bob"}`,
		`{"type":"nosuch","id":7}`,
	} {
		f, err := DecodeFrame([]byte(frame))
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != CodeUnknownType || f.ID != 7 {
			t.Errorf("%s: %v (id %d), want unknown_type with id 7", frame, err, f.ID)
		}
	}
	// A known type keeps its field errors, and malformed JSON stays bad_frame.
	for frame, code := range map[string]string{
		`{"type":"ping","id":7,"zzz":1}`: CodeBadField,
		`{"type":"nosuch","id":7,"zzz"}`: CodeBadFrame,
		`{"type":7,"id":7}`:              CodeBadField,
		`{"id":7,"zzz":1}`:               CodeBadFrame, // no type: the type's check comes first
		`{"type":null,"id":7,"zzz":1}`:   CodeBadFrame,
		`{"type":"","id":7,"ids":"x"}`:   CodeBadFrame,
		`{"type":"ping","ID":7}`:         CodeBadField,
	} {
		_, err := DecodeFrame([]byte(frame))
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != code {
			t.Errorf("%s: %v, want %s", frame, err, code)
		}
	}
}
