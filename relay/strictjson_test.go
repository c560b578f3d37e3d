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
